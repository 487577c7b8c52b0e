"""The promotion gate: does a newly trained policy/EBM replace the current one?

``decide(current, candidate, thresholds)`` is a pure function of figures already measured:

* ``proof_rate``: the held-out proof rate (the configuration the next iteration would prove with) must
  not fall by more than ``tolerance`` (absolute, a share of theorems);
* ``generation_probe``: the SFT run's generation probe must have passed (no collapse guard stop, last
  probe healthy);
* ``separation``: the separation probe of the state embeddings (provable vs unprovable held-out
  states) must not collapse: centroid L2 must keep at least ``1 - max_centroid_drop`` of its value
  before training, and the linear-probe accuracy must not fall by more than ``max_probe_drop``.

Every check is reported with its figures before and after and its limit, so ``decision.json`` says
exactly why a candidate was refused. A check whose figures are missing fails (a candidate is never
promoted on figures nobody measured) unless the thresholds say it is not required.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Check", "Decision", "Thresholds", "decide"]


@dataclass(frozen=True)
class Thresholds:
    tolerance: float = 0.02          # largest allowed fall of the held-out proof rate
    max_centroid_drop: float = 0.5   # largest allowed relative fall of the centroid L2 distance
    max_probe_drop: float = 0.1      # largest allowed absolute fall of the linear-probe accuracy
    require_separation: bool = True  # missing separation figures fail the gate


@dataclass
class Check:
    name: str
    passed: bool
    before: Any
    after: Any
    limit: Any
    detail: str


@dataclass
class Decision:
    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"promote": self.promote, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _proof_rate(current: dict, candidate: dict, t: Thresholds) -> Check:
    before, after = _num(current.get("proof_rate")), _num(candidate.get("proof_rate"))
    if before is None or after is None:
        return Check("proof_rate", False, before, after, t.tolerance, "held-out proof rate not measured")
    floor = round(before - t.tolerance, 6)
    ok = after >= floor
    return Check("proof_rate", ok, before, after, floor,
                 f"held-out proof rate {before:.3f} -> {after:.3f} "
                 + ("within" if ok else "fell past") + f" the tolerance {t.tolerance:.3f} (floor {floor:.3f})")


def _generation(candidate: dict) -> Check:
    probe = candidate.get("generation_probe")
    if not isinstance(probe, dict):
        return Check("generation_probe", False, None, None, "healthy", "generation probe not measured")
    ok = bool(probe.get("passed"))
    detail = "generation probe healthy" if ok else f"generation probe failed: {probe.get('reason') or 'unhealthy'}"
    return Check("generation_probe", ok, None, {k: v for k, v in probe.items() if k != "passed"}, "healthy", detail)


def _separation(current: dict, candidate: dict, t: Thresholds) -> list[Check]:
    before, after = current.get("separation") or {}, candidate.get("separation") or {}
    out = []
    b, a = _num(before.get("centroid_l2")), _num(after.get("centroid_l2"))
    if b is None or a is None:
        out.append(Check("separation_centroid", not t.require_separation, b, a, None,
                         "separation probe (centroid L2) not measured"))
    else:
        floor = round(b * (1 - t.max_centroid_drop), 6)
        ok = a >= floor
        out.append(Check("separation_centroid", ok, b, a, floor,
                         f"centroid L2 {b:.3f} -> {a:.3f} " + ("above" if ok else "below")
                         + f" the floor {floor:.3f} (at most {t.max_centroid_drop:.0%} drop)"))
    b, a = _num(before.get("probe_accuracy")), _num(after.get("probe_accuracy"))
    if b is None or a is None:
        out.append(Check("separation_probe_accuracy", not t.require_separation, b, a, None,
                         "separation probe (linear-probe accuracy) not measured"))
    else:
        floor = round(b - t.max_probe_drop, 6)
        ok = a >= floor
        out.append(Check("separation_probe_accuracy", ok, b, a, floor,
                         f"linear-probe accuracy {b:.3f} -> {a:.3f} " + ("above" if ok else "below")
                         + f" the floor {floor:.3f} (at most {t.max_probe_drop:.3f} drop)"))
    return out


def decide(current: dict, candidate: dict, thresholds: Thresholds) -> Decision:
    """Promote ``candidate`` over ``current`` only if every check passes.

    ``current``: {"proof_rate", "separation": {"centroid_l2", "probe_accuracy", ...}} of the model in use;
    ``candidate``: the same plus "generation_probe": {"passed": bool, "reason": str, ...}.
    """
    checks = [_proof_rate(current, candidate, thresholds), _generation(candidate),
              *_separation(current, candidate, thresholds)]
    failed = [c for c in checks if not c.passed]
    if failed:
        return Decision(False, "kept the current model: " + "; ".join(c.detail for c in failed), checks)
    return Decision(True, "promoted: " + "; ".join(c.detail for c in checks), checks)
