"""Evaluation figures computed from result rows and trajectory tables: plain functions, no Ray, no I/O.

A *result row* is one line of a prove stage's ``results.jsonl`` (``actors/fleet.py``): at least
``theorem`` and ``proved``; used when present: ``verified``, ``outcome`` (proved, exhausted, budget,
timeout, start_failed, infra_error), ``probe_steps`` (proof steps that came from the probe tactics),
``proof_depth``, ``generate_s`` / ``lean_s`` / ``ebm_s`` / ``other_s``, ``mean_unique_tactics``,
``mean_children``, ``lean_pass_rate``.

Conventions:

* a theorem counts as proved only when ``proved`` and not ``verified == False`` (the whole-proof check);
* theorems whose statement did not start (``start_failed``) and infrastructure failures are counted
  apart and stay in the denominator (the proof rate is over every theorem asked);
* the *model-only* proof rate counts only proofs with no probe-tactic step, so the policy's own share
  is visible next to what the fixed probe tactics found;
* standard deviations are sample standard deviations (n - 1); one value has sd 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from statistics import mean, median, stdev
from typing import Any

__all__ = [
    "depth_distribution",
    "gained_lost",
    "is_proved",
    "mean_sd",
    "outcome_of",
    "pass_at_k",
    "pass_at_k_table",
    "proof_rates",
    "proved_map",
    "search_figures",
    "time_split",
    "trajectory_stats",
]

TIME_KEYS = ("generate", "lean", "ebm", "other")


def is_proved(row: Mapping[str, Any]) -> bool:
    return bool(row.get("proved")) and row.get("verified", True) is not False


def outcome_of(row: Mapping[str, Any]) -> str:
    """The row's outcome; rows from before outcomes existed fall back on ``stop_reason``."""
    if is_proved(row):
        return "proved"
    return str(row.get("outcome") or row.get("stop_reason") or "unknown")


def proved_map(rows: Iterable[Mapping[str, Any]]) -> dict[str, bool]:
    """theorem name -> proved (a later row of the same theorem replaces an earlier one)."""
    return {str(r["theorem"]): is_proved(r) for r in rows}


def proof_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Proof rate with and without the probe tactics, and the theorems counted apart.

    ``proof_rate_model_only`` is None when the rows do not say how many probe steps a proof used."""
    rows = list(rows)
    n = len(rows)
    proved = [r for r in rows if is_proved(r)]
    known = all("probe_steps" in r for r in proved)
    model_only = [r for r in proved if not r.get("probe_steps")]
    outcomes = Counter(outcome_of(r) for r in rows)
    return {"theorems": n, "proved": len(proved),
            "proof_rate": round(len(proved) / n, 4) if n else 0.0,
            "proved_model_only": len(model_only) if known else None,
            "proof_rate_model_only": (round(len(model_only) / n, 4) if n else 0.0) if known else None,
            "start_failed": outcomes.get("start_failed", 0), "infra_errors": outcomes.get("infra_error", 0),
            "outcomes": dict(sorted(outcomes.items()))}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for fewer than two values)."""
    vals = [float(v) for v in values]
    if not vals:
        return 0.0, 0.0
    return mean(vals), (stdev(vals) if len(vals) > 1 else 0.0)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one theorem with ``c`` successes out of ``n`` attempts: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_table(attempts: Sequence[Mapping[str, bool]], theorems: Sequence[str] | None = None) -> dict[str, Any]:
    """pass@k for k = 1..K over K attempts (each a theorem -> proved map), and the per-attempt rates.

    A theorem missing from an attempt counts as not proved there. Returns ``pass_at_k`` {k: rate},
    ``attempt_rates`` (proof rate of each attempt), ``mean`` and ``sd`` of those rates, ``theorems``,
    ``proved_any`` (proved in at least one attempt) and ``per_theorem`` (successes out of K).
    """
    k_max = len(attempts)
    names = sorted(theorems if theorems is not None else {t for a in attempts for t in a})
    if not k_max or not names:
        return {"theorems": len(names), "attempts": k_max, "pass_at_k": {}, "attempt_rates": [],
                "mean": 0.0, "sd": 0.0, "proved_any": 0, "per_theorem": {}}
    succ = {t: sum(bool(a.get(t, False)) for a in attempts) for t in names}
    table = {k: round(sum(pass_at_k(k_max, c, k) for c in succ.values()) / len(names), 4)
             for k in range(1, k_max + 1)}
    rates = [sum(bool(a.get(t, False)) for t in names) / len(names) for a in attempts]
    m, sd = mean_sd(rates)
    return {"theorems": len(names), "attempts": k_max, "pass_at_k": table,
            "attempt_rates": [round(r, 4) for r in rates], "mean": round(m, 4), "sd": round(sd, 4),
            "proved_any": sum(1 for c in succ.values() if c), "per_theorem": succ}


def gained_lost(now: Mapping[str, bool], before: Mapping[str, bool]) -> dict[str, Any]:
    """Theorems proved now but not before (gained) and before but not now (lost), on the common theorems."""
    common = sorted(set(now) & set(before))
    return {"compared": len(common),
            "gained": [t for t in common if now[t] and not before[t]],
            "lost": [t for t in common if before[t] and not now[t]],
            "both": sum(1 for t in common if now[t] and before[t]),
            "neither": sum(1 for t in common if not now[t] and not before[t]),
            "only_now": sorted(set(now) - set(before)), "only_before": sorted(set(before) - set(now))}


def depth_distribution(rows: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """Number of proofs per proof depth (tactics in the proof), proved theorems only, by depth."""
    c = Counter(int(r["proof_depth"]) for r in rows if is_proved(r) and r.get("proof_depth") is not None)
    return dict(sorted(c.items()))


def time_split(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Search seconds per bucket (generate, lean, ebm, other) summed over rows, and each bucket's share."""
    secs = {k: 0.0 for k in TIME_KEYS}
    for r in rows:
        for k in TIME_KEYS:
            secs[k] += float(r.get(f"{k}_s") or 0.0)
    total = sum(secs.values())
    return {"seconds": {k: round(v, 3) for k, v in secs.items()},
            "share": {k: round(v / total, 4) if total else 0.0 for k, v in secs.items()}}


def search_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-search means: unique tactics and children per expansion, Lean pass rate, generate seconds."""
    def avg(key: str):
        vals = [float(r[key]) for r in rows if r.get(key) is not None]
        return round(mean(vals), 4) if vals else None

    return {"mean_unique_tactics": avg("mean_unique_tactics"), "mean_children": avg("mean_children"),
            "lean_pass_rate": avg("lean_pass_rate"), "generate_s_per_theorem": avg("generate_s"),
            "wall_s_per_theorem": avg("wall_s")}


def trajectory_stats(table) -> dict[str, Any]:
    """Statistics of trajectory rows (a pyarrow Table or a list of dicts with the trajectory columns).

    * ``label_balance``: open proof states (outcome ``state``) on a proof path (positives) against the
      others (negatives), the EBM's raw material;
    * ``branching``: children per expanded node (a node is expanded when it has a child);
    * ``depth_distribution``: nodes per depth; ``nodes_per_theorem``: mean, median, max;
    * ``outcomes``: nodes per outcome kind.
    """
    cols = ("theorem", "run", "iteration", "node_id", "parent_id", "depth", "outcome", "on_proof_path")
    if hasattr(table, "column_names"):
        present = [c for c in cols if c in table.column_names]
        data = {c: table.column(c).to_pylist() for c in present}
        n = table.num_rows
        rows = [{c: data[c][i] for c in present} for i in range(n)]
    else:
        rows = list(table)
    if not rows:
        return {"nodes": 0, "theorems": 0}
    states = [r for r in rows if r.get("outcome") == "state"]
    pos = sum(1 for r in states if r.get("on_proof_path"))
    per_tree: Counter = Counter()
    children: Counter = Counter()
    for r in rows:
        tree = (r.get("run"), r.get("iteration"), r["theorem"])
        per_tree[tree] += 1
        if r.get("parent_id") is not None:
            children[(tree, r["parent_id"])] += 1
    sizes = list(per_tree.values())
    kids = list(children.values())
    return {"nodes": len(rows), "theorems": len({r["theorem"] for r in rows}), "trees": len(per_tree),
            "label_balance": {"positive": pos, "negative": len(states) - pos,
                              "positive_share": round(pos / len(states), 4) if states else 0.0},
            "branching": {"expanded": len(kids), "mean_children": round(float(mean(kids)), 4) if kids else 0.0,
                          "max_children": max(kids) if kids else 0},
            "depth_distribution": dict(sorted(Counter(int(r["depth"]) for r in rows).items())),
            "nodes_per_theorem": {"mean": round(float(mean(sizes)), 4), "median": float(median(sizes)),
                                  "max": max(sizes)},
            "outcomes": dict(sorted(Counter(str(r.get("outcome")) for r in rows).items()))}
