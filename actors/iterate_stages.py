"""The stages of one expert iteration, as functions the iterate job chains (each writes only in its folder).

    prove → sft_data → sft → probe → encode → ebm → evaluate → gate

Iteration 0 holds ``evaluate`` (the starting model on the held-out theorems, the figure the first gate
compares against) and ``noise`` (the same model, LLM-only, on the next seed: the evaluation's own noise).
Each function takes an ``IterCtx`` and the stage folder and returns the
stage's outputs (JSON); ``raylib.stages.Stage`` records them, skips a complete stage and resumes an
interrupted one. The prove, SFT, encode and EBM stages resume from their own partial files (results per
theorem, training checkpoints, embedding parts).

Pieces owned elsewhere are imported when their stage runs; a missing one stops the run with an error
naming it (``MissingPieceError``), never a stand-in.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from raylib.config import Config
from raylib.env.theorems import Theorem, theorems_from_config
from raylib.eval.gate import Thresholds, decide
from raylib.stages import MissingInputError, Stage, atomic_write_json, hash_inputs

log = logging.getLogger("rayprover.iterate")

STAGES = ("prove", "sft_data", "sft", "probe", "encode", "ebm", "evaluate", "gate")
BASELINE_STAGES = ("evaluate", "noise")


def baseline_stages(cfg: Config) -> tuple[str, ...]:
    return BASELINE_STAGES if cfg.iterate.noise else BASELINE_STAGES[:1]


class MissingPieceError(RuntimeError):
    """A stage's implementation is not in this tree; the message names the module and function."""


class InfraFailure(RuntimeError):
    """Theorems of a prove/evaluate stage still failed on infrastructure after their retries. The stage is
    left incomplete (no record), so the same command redoes exactly those theorems and keeps the rest."""


def check_infra(label: str, infra_errors: int, where: Path) -> None:
    if infra_errors:
        raise InfraFailure(f"{label}: {infra_errors} theorem(s) failed on infrastructure (an actor died, the engine "
                           f"raised, a Lean worker was lost) after their retries; see {where}. They are not "
                           "results: run the same command again to redo them (the other theorems are kept)")


def need(module: str, name: str, what: str) -> Callable:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise MissingPieceError(f"the {what} needs {module}.{name}, which is not available in this tree "
                                f"({type(e).__name__}: {e})") from None


@dataclass
class IterCtx:
    cfg: Config
    run_dir: Path
    iteration: int
    current: dict                # model pointers in use: base, adapter, ebm (+ their held-out figures)
    config_hash: str
    outputs: dict = field(default_factory=dict)  # outputs of this iteration's earlier stages, by stage
    serving: Any = None          # actors.serving.ServingFleet held across stages; None: a fleet per stage

    def stage(self, name: str) -> Stage:
        return Stage(self.run_dir, self.iteration, name)

    def earlier(self, name: str) -> dict:
        """Outputs of an earlier stage of this iteration (MissingInputError naming it when absent)."""
        if name in self.outputs:
            return self.outputs[name]
        return self.stage(name).outputs()


# -- configs and theorem sets ----------------------------------------------------------------------

def with_settings(cfg: Config, **dotted: Any) -> Config:
    """A copy of ``cfg`` with ``section__key=value`` settings replaced (validated again)."""
    raw = cfg.model_dump(mode="json")
    for key, value in dotted.items():
        node = raw
        parts = key.split("__")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return Config.model_validate(raw)


def policy_config(cfg: Config, pointers: dict, max_nodes: int | None = None, use_ebm: bool = True) -> Config:
    """The config that proves with the model ``pointers`` name: base, LoRA adapter, and the EBM with the
    encoder it was trained on (base + ``encoder_adapter``); ``use_ebm=False`` leaves the EBM out."""
    return with_settings(cfg, model__path=pointers["base"], model__adapter=pointers.get("adapter"),
                         value__ebm_path=pointers.get("ebm") if use_ebm else None,
                         value__encoder_path=pointers["base"], value__encoder_adapter=pointers.get("encoder_adapter"),
                         search__max_nodes=max_nodes or cfg.search.max_nodes)


def initial_pointers(cfg: Config) -> dict:
    return {"base": cfg.model.path, "adapter": cfg.model.adapter, "ebm": cfg.value.ebm_path,
            "encoder_adapter": cfg.value.encoder_adapter, "iteration": 0}


def pointer_fingerprints(pointers: dict) -> dict:
    """Content hashes of the models a stage uses (a retrained adapter at the same path is a new input)."""
    from raylib.hashing import json_hash
    from raylib.models.loading import model_hash

    out = {"base": model_hash(pointers["base"])}
    if pointers.get("adapter"):
        out["adapter"] = model_hash(pointers["adapter"])
    if pointers.get("ebm"):
        out["ebm"] = json_hash(hash_inputs([Path(pointers["ebm"])]))
    return out


def split_theorems(cfg: Config, split: str) -> list[Theorem]:
    return theorems_from_config(cfg.theorems.model_copy(update={"split": split, "limit": None}))


def train_window(cfg: Config, iteration: int) -> list[Theorem]:
    """Iteration k's train theorems: the k-th window of ``iterate.train_theorems`` (wrapping)."""
    pool = split_theorems(cfg, cfg.iterate.train_split)
    n = min(cfg.iterate.train_theorems, len(pool))
    start = ((iteration - 1) * n) % len(pool)
    return [pool[(start + i) % len(pool)] for i in range(n)]


def heldout_theorems(cfg: Config) -> list[Theorem]:
    pool = split_theorems(cfg, cfg.iterate.heldout_split)
    return pool[: cfg.iterate.heldout_theorems] if cfg.iterate.heldout_theorems else pool


def trajectory_files(run_dir: Path, upto: int) -> list[Path]:
    """Trajectory files of the prove stages of iterations 1..upto (in order)."""
    files: list[Path] = []
    for k in range(1, upto + 1):
        d = Stage(run_dir, k, "prove").dir / "trajectories"
        files += sorted(d.glob("*.parquet"))
    return files


# -- stages -------------------------------------------------------------------------------------

def stage_prove(ctx: IterCtx, out: Path) -> dict:
    prove_theorems = need("actors.fleet", "prove_theorems", "prove stage")
    cfg = policy_config(ctx.cfg, ctx.current, ctx.cfg.iterate.prove_max_nodes)
    theorems = train_window(ctx.cfg, ctx.iteration)
    fleet = ctx.serving.fleet(cfg) if ctx.serving is not None else None
    summary = prove_theorems(cfg, theorems, out, fleet=fleet, seed=ctx.cfg.run.seed + ctx.iteration,
                             run_name=ctx.cfg.run.name, iteration=ctx.iteration)
    check_infra(f"iter_{ctx.iteration}/prove", summary.get("infra_errors") or 0, out / "results.jsonl")
    return {"theorems": summary.get("theorems"), "proved": summary.get("proved"),
            "proof_rate": summary.get("proof_rate"), "proof_rate_model_only": summary.get("proof_rate_model_only"),
            "trajectories": len(list((out / "trajectories").glob("*.parquet"))),
            "wall_s": summary.get("wall_s")}


def stage_sft_data(ctx: IterCtx, out: Path) -> dict:
    import pyarrow.parquet as pq

    from raylib.data.sft import build_sft_examples, trajectory_pairs

    pairs, rows = [], {}
    for k in range(1, ctx.iteration + 1):
        files = trajectory_files(ctx.run_dir, k)[len(trajectory_files(ctx.run_dir, k - 1)):]
        src = f"iter_{k}"
        rows[src] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        pairs += [replace(p, source=src) for p in trajectory_pairs(files)] if files else []
    if not pairs:
        raise MissingInputError(f"{out}: no proof-path steps in the trajectories of iterations 1..{ctx.iteration} "
                                "(the prove stages proved nothing): nothing to fine-tune on")
    build = build_sft_examples(pairs, out, eval_theorems=heldout_theorems(ctx.cfg),
                               valid_fraction=ctx.cfg.sft.valid_fraction, seed=ctx.cfg.sft.seed,
                               template=ctx.cfg.generation.template, probe_steps=ctx.cfg.iterate.sft_probe_steps)
    table = {src: {"input": rows.get(src, 0), "positives": c.get("input", 0), "empty": c.get("empty", 0),
                   "sorry": c.get("sorry", 0), "denied": c.get("denied", 0), "probe": c.get("probe", 0),
                   "duplicates": c.get("duplicate", 0), "kept": c.get("kept", 0)} for src, c in build.by_source.items()}
    atomic_write_json(out / "sources.json", table)
    return {"train": build.counts.get("train", 0), "valid": build.counts.get("valid", 0),
            "data_hash": build.data_hash, "sources": table}


def stage_sft(ctx: IterCtx, out: Path) -> dict:
    from raylib.train.guards import GuardStop
    from raylib.train.sft import run_sft

    sft = ctx.cfg.sft
    if ctx.cfg.iterate.sft_steps:
        sft = sft.model_copy(update={"max_steps": ctx.cfg.iterate.sft_steps})
    examples = ctx.stage("sft_data").dir
    try:
        res = run_sft(sft, examples, ctx.current["base"], out, config_hash=ctx.config_hash)
    except GuardStop as e:
        log.warning("iter_%d/sft: stopped by the %s guard: %s", ctx.iteration, e.guard, e.reason)
        return {"passed": False, "guard": e.guard, "reason": str(e.reason), "adapter": None}
    m = res.metrics
    return {"passed": True, "adapter": str(res.model_dir), "steps": res.steps,
            "loss": res.history[-1]["loss"] if res.history else None, "eval_loss": m.get("eval_loss"),
            "probe": {k: v for k, v in m.items() if k.startswith("probe_")}, "fingerprint": res.fingerprint.get("id")}


def heldout_states(ctx: IterCtx, limit: int) -> list[str]:
    """Root states (the theorem goals) of held-out theorems, from the latest evaluate stage's trajectories."""
    from raylib.data.trajectory import read_trajectories

    for k in range(ctx.iteration - 1, -1, -1):
        files = sorted((Stage(ctx.run_dir, k, "evaluate").dir / "llm").rglob("trajectories/*.parquet"))
        if files:
            states: list[str] = []
            for f in files:
                t = read_trajectories(f).select(["depth", "state"]).to_pylist()
                states += [r["state"] for r in t if r["depth"] == 0]
            return sorted(set(states))[:limit]
    raise MissingInputError(f"{ctx.run_dir}: no held-out trajectories; they are made by the evaluate stage of "
                            "iteration 0 (the baseline)")


def generation_probe(ctx: IterCtx, adapter: str) -> dict:
    """The SFT guards' generation probe on held-out states, for the trained candidate (base + adapter)."""
    from raylib.models.loading import load_causal_lm, load_tokenizer
    from raylib.models.prompt import format_prompt
    from raylib.train.guards import CollapseGuard, analyze_probe, probe_generate

    g = ctx.cfg.sft.guards
    states = heldout_states(ctx, max(3, g.probe_states))
    model = load_causal_lm(ctx.current["base"], dtype=ctx.cfg.sft.dtype, adapter=adapter, merge=True)
    tok = load_tokenizer(ctx.current["base"])
    prompts = [format_prompt(s, ctx.cfg.generation.template) for s in states]
    greedy, sampled = probe_generate(model, tok, prompts, g.probe_samples, g.probe_temperature, g.probe_max_tokens)
    rep = analyze_probe(greedy, sampled)
    problems = CollapseGuard(g).problems(rep)
    return dict(rep.metrics(), passed=not problems, reason="; ".join(problems) or None, examples=rep.examples)


def separation(ctx: IterCtx, adapter: str | None) -> dict:
    """C2's separation probe of the encoder (base + ``adapter``) on held-out states; {"error"} when too few."""
    probe_model = need("raylib.train.probe", "probe_model", "separation probe")
    from raylib.train.probe import ProbeError

    cfg = policy_config(ctx.cfg, ctx.current)
    held, mine = probe_files(ctx)
    err = None
    for files in (held, held + mine):
        if not files:
            continue
        try:
            return probe_model(cfg, files, adapter=adapter, split="all")
        except ProbeError as e:
            err = str(e)
    return {"error": err or "no trajectories to probe"}


def stage_probe(ctx: IterCtx, out: Path) -> dict:
    sft = ctx.earlier("sft")
    if not sft.get("passed"):
        return {"generation": {"passed": False, "reason": f"SFT stopped by the {sft.get('guard')} guard: "
                               f"{sft.get('reason')}"}, "separation_before": None, "separation_after": None}
    res = {"generation": generation_probe(ctx, sft["adapter"]),
           "separation_before": separation(ctx, ctx.current.get("adapter")),
           "separation_after": separation(ctx, sft["adapter"])}
    atomic_write_json(out / "probe.json", res)
    return res


def probe_files(ctx: IterCtx) -> tuple[list[Path], list[Path]]:
    """(held-out trajectories of the latest evaluation, LLM-only; this iteration's search trajectories)."""
    held: list[Path] = []
    for k in range(ctx.iteration - 1, -1, -1):
        held = sorted((Stage(ctx.run_dir, k, "evaluate").dir / "llm").rglob("trajectories/*.parquet"))
        if held:
            break
    mine = trajectory_files(ctx.run_dir, ctx.iteration)[len(trajectory_files(ctx.run_dir, ctx.iteration - 1)):]
    return held, mine


def candidate_pointers(ctx: IterCtx) -> dict | None:
    sft = ctx.earlier("sft")
    if not sft.get("passed"):
        return None
    ebm = ctx.earlier("ebm") if ctx.cfg.iterate.value_model else {}
    return {"base": ctx.current["base"], "adapter": sft["adapter"], "ebm": ebm.get("ebm"),
            "encoder_adapter": sft["adapter"] if ebm.get("ebm") else None, "iteration": ctx.iteration}


def stage_encode(ctx: IterCtx, out: Path) -> dict:
    sft = ctx.earlier("sft")
    if not ctx.cfg.iterate.value_model or not sft.get("passed"):
        return {"skipped": "value model off" if not ctx.cfg.iterate.value_model else "SFT did not pass"}
    encode_trajectories = need("raylib.data.encode", "encode_trajectories", "encode stage")
    cfg = with_settings(ctx.cfg, value__encoder_path=ctx.current["base"], value__encoder_adapter=sft["adapter"])
    res = encode_trajectories(cfg, trajectory_files(ctx.run_dir, ctx.iteration), out / "embeddings")
    return {"embeddings": str(out / "embeddings"), **{k: v for k, v in res.items() if isinstance(v, (int, float, str))}}


def stage_ebm(ctx: IterCtx, out: Path) -> dict:
    enc = ctx.earlier("encode")
    if enc.get("skipped"):
        return {"skipped": enc["skipped"], "ebm": None}
    train_ebm = need("raylib.train.ebm", "train_ebm", "EBM training stage")
    cfg = with_settings(ctx.cfg, value__encoder_path=ctx.current["base"],
                        value__encoder_adapter=ctx.earlier("sft")["adapter"])
    if ctx.cfg.iterate.ebm_steps:
        cfg = with_settings(cfg, ebm__max_steps=ctx.cfg.iterate.ebm_steps)
    res = train_ebm(cfg, trajectory_files(ctx.run_dir, ctx.iteration), Path(enc["embeddings"]), out,
                    config_hash=ctx.config_hash)
    return {"ebm": str(res.ebm_dir), "steps": res.steps, "resumed_from": res.resumed_from,
            "metrics": {k: v for k, v in (res.metrics or {}).items() if isinstance(v, (int, float))}}


def run_evaluate(ctx: IterCtx, out: Path, pointers: dict) -> dict:
    """Held-out evaluation of the model ``pointers`` name, LLM-only and (with an EBM) LLM+EBM."""
    evaluate = need("actors.evaluate", "evaluate", "evaluate stage")
    from raylib.env.theorems import save_theorems

    held = heldout_theorems(ctx.cfg)
    # every theorem the run trains on, this iteration's and the later ones' (no theorem ever crosses over),
    # and every theorem in the trajectories so far: evaluate() refuses an overlap, naming the theorems
    windows = [t for k in range(1, max(ctx.iteration, ctx.cfg.iterate.iterations) + 1) for t in train_window(ctx.cfg, k)]
    save_theorems(windows, out / "train_theorems.jsonl")
    trained_on = [str(out / "train_theorems.jsonl")] + [
        str(Stage(ctx.run_dir, k, "prove").dir / "trajectories") for k in range(1, ctx.iteration + 1)]
    cfg = policy_config(ctx.cfg, pointers, ctx.cfg.iterate.eval_max_nodes, use_ebm=False)
    fleet = None  # the held fleet serves the model with its EBM (evaluate runs both variants on it)
    if ctx.serving is not None:
        fleet = ctx.serving.fleet(policy_config(ctx.cfg, pointers, ctx.cfg.iterate.eval_max_nodes), drivers=False)
    res = evaluate(cfg, held, out, attempts=ctx.cfg.iterate.eval_attempts, ebm_path=pointers.get("ebm"),
                   trained_on=trained_on, fleet=fleet, iteration=ctx.iteration)
    infra = sum(v.get("infra_errors") or 0 for v in res.get("variants", {}).values())
    check_infra(f"iter_{ctx.iteration}/{out.name}", infra, out)
    llm, ebm = res.get("proof_rate_llm"), res.get("proof_rate_ebm")
    variants = res.get("variants", {})
    return {"proof_rate_llm": llm, "proof_rate_ebm": ebm, "proof_rate": ebm if ebm is not None else llm,
            "proof_rate_llm_model_only": res.get("proof_rate_llm_model_only"),
            "proof_rate_ebm_model_only": res.get("proof_rate_ebm_model_only"),
            "attempt_rates": {v: d.get("attempt_rates") for v, d in variants.items()},
            "sd": {v: d.get("proof_rate_sd") for v, d in variants.items()},
            "theorems": len(held), "attempts": ctx.cfg.iterate.eval_attempts, "eval": str(out / "eval.json")}


def stage_evaluate(ctx: IterCtx, out: Path) -> dict:
    if ctx.iteration == 0:
        return run_evaluate(ctx, out, ctx.current)
    cand = candidate_pointers(ctx)
    if cand is None:
        return {"skipped": "SFT did not pass", "proof_rate_llm": None, "proof_rate_ebm": None, "proof_rate": None}
    return run_evaluate(ctx, out, cand)


def stage_noise(ctx: IterCtx, out: Path) -> dict:
    """The starting model evaluated LLM-only on seed run.seed+1 beside the evaluate stage's run.seed: how far
    two evaluations of one model differ (a rise of the proof rate smaller than this is not a rise)."""
    seed = ctx.cfg.run.seed + 1
    other = replace(ctx, cfg=with_settings(ctx.cfg, run__seed=seed, iterate__eval_attempts=1))
    res = run_evaluate(other, out, dict(ctx.current, ebm=None))
    first = ctx.earlier("evaluate")
    rates = [(first.get("attempt_rates") or {}).get("llm", [first.get("proof_rate_llm")])[0], res["proof_rate_llm"]]
    return {"seeds": [ctx.cfg.run.seed, seed], "proof_rate_llm": rates,
            "spread": round(abs(rates[0] - rates[1]), 4) if None not in rates else None, "eval": res["eval"]}


def stage_gate(ctx: IterCtx, out: Path) -> dict:
    it = ctx.cfg.iterate
    ev, probe = ctx.earlier("evaluate"), ctx.earlier("probe")
    current = {"proof_rate": ctx.current.get("proof_rate"), "separation": probe.get("separation_before")}
    candidate = {"proof_rate": ev.get("proof_rate"), "generation_probe": probe.get("generation"),
                 "separation": probe.get("separation_after")}
    thresholds = Thresholds(tolerance=it.tolerance, max_centroid_drop=it.max_centroid_drop,
                            max_probe_drop=it.max_probe_drop)
    decision = decide(current, candidate, thresholds)
    cand = candidate_pointers(ctx) if decision.promote else None
    new_current = (dict(cand, proof_rate=ev.get("proof_rate"), proof_rate_llm=ev.get("proof_rate_llm"),
                        proof_rate_ebm=ev.get("proof_rate_ebm")) if cand else dict(ctx.current))
    atomic_write_json(out / "decision.json", {"iteration": ctx.iteration, **decision.to_json(),
                                              "current_before": ctx.current, "current_after": new_current})
    return {"promote": decision.promote, "reason": decision.reason, "current": new_current}


STAGE_FUNCS: dict[str, Callable[[IterCtx, Path], dict]] = {
    "prove": stage_prove, "sft_data": stage_sft_data, "sft": stage_sft, "probe": stage_probe,
    "encode": stage_encode, "ebm": stage_ebm, "evaluate": stage_evaluate, "gate": stage_gate,
    "noise": stage_noise,
}


def stage_inputs(ctx: IterCtx, name: str) -> tuple[list[Path], dict]:
    """(input files, params) of a stage: what enters its key beside the config hash and model fingerprints.

    Stages after ``sft`` take the records of the stages before them in this iteration (their keys and
    outputs), so a stage redone upstream makes everything after it run again.
    """
    from raylib.hashing import json_hash

    it = ctx.iteration
    params: dict = {"current": {k: ctx.current.get(k) for k in ("proof_rate", "iteration")}}
    if name == "prove":
        return [], dict(params, theorems=[t.name for t in train_window(ctx.cfg, it)])
    if name == "sft_data":
        return trajectory_files(ctx.run_dir, it), params
    if name == "sft":
        d = ctx.stage("sft_data").dir
        return [d / "train.parquet", d / "valid.parquet"], params
    if name in BASELINE_STAGES and it == 0:
        return [], dict(params, theorems=[t.name for t in heldout_theorems(ctx.cfg)])
    upstream = {}
    for s in STAGES[: STAGES.index(name)]:
        rec = ctx.stage(s).record()
        if rec is None:
            raise MissingInputError(f"{ctx.stage(name).label} needs the output of {ctx.stage(s).label}, which "
                                    f"has no complete record: it is made by the {s} stage of iteration {it}")
        upstream[s] = json_hash([rec["key"], rec["outputs"]])
    return [], dict(params, upstream=upstream)
