"""Training guards: plain classes, testable without Ray, each reporting metrics and able to stop a run.

* ``check_plan``: before training, planned coverage (samples seen / dataset size) and the LR schedule;
  warns when coverage is below ``min_coverage`` epochs or the LR sits below ``lr_floor_fraction`` of the
  peak for most of the run (or the peak is 0), or when no held-out example is there for the probe;
  stops when ``stop_on_plan``.
* ``GradNormGuard``: zero or NaN/inf gradient norms for ``grad_patience`` consecutive steps stop the run.
* ``CollapseGuard`` + ``probe_generate`` / ``analyze_probe``: at each evaluation, greedy and sampled
  tactics for held-out states; the share of empty or whitespace-only, repetitive, and identical-across-
  states outputs; a collapse stops the run and names the last healthy checkpoint.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from raylib.models.prompt import END_MARKER
from raylib.train.probe import probe_model, separation_probe  # noqa: F401  (the separation probe lives there)
from raylib.train.schedule import TrainPlan, lr_at

log = logging.getLogger(__name__)

__all__ = [
    "CollapseGuard",
    "GradNormGuard",
    "GuardStop",
    "PlanReport",
    "ProbeReport",
    "analyze_probe",
    "check_plan",
    "classify_output",
    "is_repetitive",
    "probe_generate",
]


class GuardStop(RuntimeError):
    """A guard stopped the run; ``reason`` says why, ``last_healthy`` names a checkpoint to go back to."""

    def __init__(self, guard: str, reason: str, step: int = 0, last_healthy: str | None = None):
        self.guard, self.reason, self.step, self.last_healthy = guard, reason, step, last_healthy
        tail = f"; last healthy checkpoint: {last_healthy}" if last_healthy else ""
        super().__init__(f"[{guard} guard, step {step}] {reason}{tail}")

    def __reduce__(self):  # crosses process boundaries (Ray workers → driver) intact
        return (GuardStop, (self.guard, self.reason, self.step, self.last_healthy))

    def as_metrics(self) -> dict:
        return {"stop_guard": self.guard, "stop_reason": self.reason, "stop_step": self.step,
                "last_healthy_checkpoint": self.last_healthy or ""}

    @classmethod
    def from_metrics(cls, m: dict) -> GuardStop:
        return cls(m["stop_guard"], m["stop_reason"], int(m.get("stop_step", 0)),
                   m.get("last_healthy_checkpoint") or None)


# -- before training ----------------------------------------------------------------------------

@dataclass
class PlanReport:
    coverage: float
    total_steps: int
    global_batch: int
    dataset_size: int
    peak_lr: float
    dead_lr_share: float
    lr_quartiles: tuple[float, float, float, float]
    warnings: list[str] = field(default_factory=list)

    def metrics(self) -> dict:
        q = self.lr_quartiles
        return {"plan_coverage": self.coverage, "plan_total_steps": self.total_steps,
                "plan_global_batch": self.global_batch, "plan_dataset_size": self.dataset_size,
                "plan_dead_lr_share": self.dead_lr_share, "plan_lr_25": q[0], "plan_lr_50": q[1],
                "plan_lr_75": q[2], "plan_lr_end": q[3], "plan_warnings": len(self.warnings)}

    def enforce(self, stop: bool) -> None:
        for w in self.warnings:
            log.warning("training plan: %s", w)
        if stop and self.warnings:
            raise GuardStop("plan", "; ".join(self.warnings))


def check_plan(plan: TrainPlan, sft, held_out: int | None = None) -> PlanReport:
    """Coverage and LR-schedule report for a plan under an ``SFTSection`` (its ``guards`` thresholds).

    ``held_out``: the number of held-out examples available for the eval loss and the generation probe;
    0 with ``guards.probe_states > 0`` warns that the probe guard is off (None: not checked).
    """
    g = sft.guards
    total = plan.total_steps
    lrs = [lr_at(s, total, sft.lr, sft) for s in range(total)]
    floor = g.lr_floor_fraction * sft.lr
    dead = sum(1 for x in lrs if x < floor or x <= 0.0) / max(1, total)
    quart = tuple(lrs[min(total - 1, max(0, math.ceil(f * total) - 1))] for f in (0.25, 0.5, 0.75, 1.0))
    rep = PlanReport(plan.coverage, total, plan.global_batch, plan.dataset_size, sft.lr, dead, quart)
    if plan.coverage < g.min_coverage:
        rep.warnings.append(
            f"planned coverage {plan.coverage:.3f} epochs: {total} steps x {plan.global_batch} examples see "
            f"{plan.samples_seen} of {plan.dataset_size} examples (below {g.min_coverage} epoch); "
            f"raise max_steps/epochs or the batch")
    if sft.lr <= 0:
        rep.warnings.append("peak LR is 0: no parameter will change")
    elif dead > g.lr_floor_max_share:
        rep.warnings.append(
            f"LR is below {g.lr_floor_fraction:.0%} of the peak {sft.lr:g} for {dead:.0%} of the {total} steps; "
            f"shorten the decay or raise min_lr_ratio")
    if held_out == 0 and g.probe_states > 0:
        rep.warnings.append(
            f"no held-out examples (valid.parquet missing or empty): the generation probe "
            f"(guards.probe_states={g.probe_states}) and the eval loss are off, so a collapse goes unnoticed; "
            f"raise sft.valid_fraction or pass an examples folder with valid.parquet")
    return rep


# -- during training ----------------------------------------------------------------------------

class GradNormGuard:
    """Counts consecutive zero or non-finite gradient norms; ``update`` raises GuardStop at the patience."""

    def __init__(self, patience: int = 3, eps: float = 0.0):
        self.patience, self.eps = patience, eps
        self.streak = 0
        self.bad_total = 0

    def update(self, step: int, norm: float) -> dict:
        bad = not math.isfinite(norm) or norm <= self.eps
        self.streak = self.streak + 1 if bad else 0
        self.bad_total += int(bad)
        if self.streak >= self.patience:
            what = "NaN/inf" if not math.isfinite(norm) else "zero"
            raise GuardStop("grad_norm", f"gradient norm was zero or NaN for {self.streak} consecutive steps "
                                         f"(last: {what}, {norm}); frozen parameters, a dead LR or a broken loss?",
                            step)
        return {"grad_norm_bad_streak": self.streak, "grad_norm_bad_total": self.bad_total}


# -- generation probe ---------------------------------------------------------------------------

def is_repetitive(text: str, min_len: int = 12) -> bool:
    """A short unit repeated (periodic text), a dominant character, or an n-gram of words covering most."""
    t = text.strip()
    if len(t) < min_len:
        return False
    for period in range(1, min(16, len(t) // 3) + 1):
        if t[period:] == t[:-period]:
            return True
    chars = [c for c in t if not c.isspace()]
    if chars and Counter(chars).most_common(1)[0][1] / len(chars) >= 0.6:
        return True
    words = t.split()
    for n in (1, 2, 3):
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        if len(grams) >= 3:
            count = Counter(grams).most_common(1)[0][1]
            if count >= 3 and count * n / len(words) >= 0.6:
                return True
    return False


def classify_output(completion: str) -> str:
    """``empty``, ``whitespace``, ``repetitive`` or ``ok`` for a generated completion (cut at END_MARKER)."""
    tactic = completion.split(END_MARKER, 1)[0]
    if tactic == "":
        return "empty"
    if not tactic.strip():
        return "whitespace"
    return "repetitive" if is_repetitive(tactic) else "ok"


@dataclass
class ProbeReport:
    n_states: int
    n_outputs: int
    empty_share: float        # empty or whitespace-only
    repetitive_share: float
    identical_share: float    # largest share of states given the same greedy tactic
    examples: list[str]

    def metrics(self) -> dict:
        return {"probe_empty_share": self.empty_share, "probe_repetitive_share": self.repetitive_share,
                "probe_identical_share": self.identical_share, "probe_outputs": self.n_outputs}


def analyze_probe(greedy: Sequence[str], sampled: Sequence[Sequence[str]] = ()) -> ProbeReport:
    """Shares over all outputs (greedy and sampled); identical share over the greedy outputs of distinct states."""
    outputs = list(greedy) + [x for group in sampled for x in group]
    kinds = Counter(classify_output(o) for o in outputs)
    n = max(1, len(outputs))
    tactics = [g.split(END_MARKER, 1)[0].strip() for g in greedy]
    identical = Counter(tactics).most_common(1)[0][1] / len(tactics) if len(tactics) >= 3 else 0.0
    return ProbeReport(len(greedy), len(outputs), (kinds["empty"] + kinds["whitespace"]) / n,
                       kinds["repetitive"] / n, identical, [repr(x[:60]) for x in list(greedy)[:4]])


class CollapseGuard:
    """Tracks checkpoints and probe results; ``check`` raises GuardStop on a collapse (from ``start_step`` on).

    ``last_healthy`` is the newest checkpoint at or before the latest healthy probe, whatever the order
    of ``check`` and ``note_checkpoint`` at one step (the worker probes a step, then saves it). ``state``/``load_state`` carry the record across a resume.
    """

    def __init__(self, guards_cfg):
        self.g = guards_cfg
        self.checkpoints: list[tuple[int, str]] = []
        self.last_healthy: str | None = None
        self.last_healthy_step: int | None = None
        self.healthy_probe_step: int | None = None  # the latest step whose probe was healthy

    def _promote(self) -> None:
        if self.healthy_probe_step is None:
            return
        done = [(s, name) for s, name in self.checkpoints if s <= self.healthy_probe_step]
        if done:
            self.last_healthy_step, self.last_healthy = done[-1]

    def note_checkpoint(self, step: int, name: str) -> None:
        self.checkpoints.append((step, name))
        self._promote()

    def state(self) -> dict:
        return {"checkpoints": [list(c) for c in self.checkpoints], "last_healthy": self.last_healthy,
                "last_healthy_step": self.last_healthy_step, "healthy_probe_step": self.healthy_probe_step}

    def load_state(self, state: dict | None) -> None:
        if not state:
            return
        self.checkpoints = [(int(s), str(n)) for s, n in state.get("checkpoints", [])]
        self.last_healthy = state.get("last_healthy")
        self.last_healthy_step = state.get("last_healthy_step")
        self.healthy_probe_step = state.get("healthy_probe_step")

    def problems(self, rep: ProbeReport) -> list[str]:
        g, out = self.g, []
        if rep.empty_share > g.max_empty_share:
            out.append(f"{rep.empty_share:.0%} of probe outputs are empty or whitespace-only")
        if rep.repetitive_share > g.max_repetitive_share:
            out.append(f"{rep.repetitive_share:.0%} of probe outputs are repetitive")
        if rep.identical_share > g.max_identical_share:
            out.append(f"{rep.identical_share:.0%} of {rep.n_states} different states got the same greedy tactic")
        return out

    def check(self, rep: ProbeReport, step: int) -> dict:
        problems = self.problems(rep)
        metrics = dict(rep.metrics(), probe_healthy=int(not problems))
        if not problems:
            self.healthy_probe_step = step
            self._promote()
            return metrics
        if step < self.g.probe_start_step:
            log.info("probe at step %d degenerate (%s), before probe_start_step %d: not stopping",
                     step, "; ".join(problems), self.g.probe_start_step)
            return metrics
        raise GuardStop("generation_probe", "generation collapsed: " + "; ".join(problems)
                        + f" (greedy examples: {', '.join(rep.examples)})", step, self.last_healthy)


def probe_generate(model, tokenizer, prompts: Sequence[str], samples: int = 2, temperature: float = 1.0,
                   max_tokens: int = 32, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Greedy and ``samples`` sampled completions (decoded, cut at EOS) for each prompt."""
    import torch

    if not prompts:
        return [], []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    enc = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(len(x) for x in enc)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([[pad] * (width - len(x)) + x for x in enc], device=device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in enc], device=device)
    common = dict(attention_mask=mask, max_new_tokens=max_tokens, pad_token_id=pad,
                  eos_token_id=tokenizer.eos_token_id)

    def decode(out, rows: int) -> list[str]:
        return [tokenizer.decode(out[i, width:], skip_special_tokens=True) for i in range(rows)]

    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            greedy = decode(model.generate(input_ids=ids, do_sample=False, **common), len(prompts))
            sampled: list[list[str]] = [[] for _ in prompts]
            if samples > 0:
                out = model.generate(input_ids=ids, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                     num_return_sequences=samples, **common)
                flat = decode(out, len(prompts) * samples)
                sampled = [flat[i * samples:(i + 1) * samples] for i in range(len(prompts))]
    finally:
        model.train(was_training)
    return greedy, sampled
