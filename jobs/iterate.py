"""Expert iteration end to end: prove → SFT → probes → encode → EBM → evaluate → gate → promote, N times.

    python -m jobs.iterate [--config C] [--iterations N] [--from-stage S] [--set KEY=VALUE ...]

Iteration 0 evaluates the starting model on the held-out theorems (the gate's first reference). Each
iteration k then: proves its window of train theorems with the current policy (+ EBM when there is one);
builds SFT examples from the trajectories of iterations 1..k (per-source table: input, positives,
empty, sorry, denied, probe, duplicates, kept; the steps made by the search's probe tactics are left
out unless iterate.sft_probe_steps); trains a LoRA adapter on the base model; runs the generation
probe and the separation probe (before vs after); encodes the states and trains the EBM; evaluates the
candidate on the held-out theorems (LLM-only and LLM+EBM); and the gate promotes it only if the
held-out proof rate fell by at most iterate.tolerance, the generation probe passed and the separation
probe held (iter_<k>/gate/decision.json says why). ``current.json`` names the model in use.

Every stage writes under <run.root>/<run.name>/iter_<k>/<stage>/ and, last, a stage.json record (config
hash, model fingerprints, inputs with hashes, outputs, wall time). Run the same command after a kill:
complete stages are skipped, interrupted ones resume. A run folder made by another config or model is
refused, naming the difference, unless --from-stage says where to restart (STAGE: in the iteration the run
stopped in; iter_K/STAGE: there); the stages before it are kept. After each stage summary.json and the
report are rewritten. The generator, encoder and Lean workers are started once and kept across stages
(actors/serving.py): a new adapter is hot-loaded, a new EBM loaded, and they give their GPUs and CPUs
back before sft, probe, encode and ebm (workers.serve_during_training: true keeps them up).
Console: a bar per iteration (one step per stage) and one line per stage result;
everything else goes to <run>/logs/iterate.log (Ray's worker output stays in Ray's session logs).
Exit status: 0 done, 2 bad config or input, 3 a missing stage implementation, 4 theorems left by an
infrastructure failure (run again to redo them), 130 interrupted (Ctrl-C; run again to resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from raylib.config import Config, config_from_args, job_parser
from raylib.hashing import json_hash
from raylib.stages import (
    MissingInputError,
    RunMismatchError,
    atomic_write_json,
    check_run,
    invalidate_from,
    iteration_dirs,
    parse_stage_ref,
    run_summary,
    write_run_record,
)

log = logging.getLogger("rayprover.iterate")

# Settings that change no stage's result: a rerun that changes only these is the same run.
NEUTRAL = ("iterate.iterations", "ray", "workers")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.iterate", __doc__, "iterate.train_theorems=64")
    p.add_argument("--iterations", type=int, help="expert iterations (default: iterate.iterations)")
    p.add_argument("--from-stage", dest="from_stage", metavar="S",
                   help="restart from stage S (prove, sft_data, sft, probe, encode, ebm, evaluate, gate) of the "
                        "iteration the run stopped in, or from iter_K/S; earlier stages are kept as they are")
    return p.parse_args(argv)


def result_config(cfg: Config) -> dict:
    """The settings that decide stage results (not where the run lives, nor how many iterations it asks)."""
    raw = cfg.model_dump(mode="json")
    raw["run"] = {k: v for k, v in raw["run"].items() if k not in ("name", "root")}
    raw["iterate"] = {k: v for k, v in raw["iterate"].items() if k != "iterations"}
    for k in NEUTRAL:
        if "." not in k:
            raw.pop(k, None)
    return raw


def setup_console(run_dir: Path) -> Path:
    """Console: this job's stage lines and warnings (Ray's: errors only); <run>/logs/iterate.log: everything."""
    from raylib.logs import quiet_console

    return quiet_console(run_dir / "logs" / "iterate.log", log.name)


def _line(label: str, outputs: dict, skipped: bool, wall: float) -> str:
    keys = ("proved", "theorems", "proof_rate", "proof_rate_llm", "proof_rate_ebm", "train", "valid", "steps",
            "loss", "passed", "promote", "skipped", "states", "encoded", "spread")
    shown = {k: outputs[k] for k in keys if k in outputs and outputs[k] is not None}
    if "generation" in outputs and isinstance(outputs["generation"], dict):
        shown["generation_probe"] = "passed" if outputs["generation"].get("passed") else "FAILED"
    if "reason" in outputs:
        shown["reason"] = outputs["reason"]
    return f"{label:<18} {'skipped (complete)' if skipped else f'{wall:7.1f} s'}  " + \
        " ".join(f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in shown.items())


class Runner:
    def __init__(self, cfg: Config, iterations: int, from_stage: str | None, stop_after: str | None = None):
        """``stop_after`` (tests): end the last iteration after that stage."""
        from actors import iterate_stages as st

        self.st, self.cfg, self.iterations, self.stop_after = st, cfg, iterations, stop_after
        self.run_dir = cfg.run_dir
        self.config_hash = json_hash(result_config(cfg))
        self.adopt_until: tuple[int, int] | None = None  # (iteration, stage index): stages before it are kept
        self.from_stage = from_stage
        self.serving = None  # actors.serving.ServingFleet of the last run(): serving actors kept across stages

    def pin(self) -> None:
        from raylib.models.loading import model_hash

        fp = model_hash(self.cfg.model.path)
        diffs = check_run(self.run_dir, result_config(self.cfg), self.config_hash, fp, self.from_stage)
        if self.from_stage:
            stages = list(self.st.STAGES)
            ref = parse_stage_ref(self.from_stage, stages)
            iters = iteration_dirs(self.run_dir)
            k = ref.iteration if ref.iteration is not None else (iters[-1] if iters else 0)
            self.adopt_until = (k, stages.index(ref.stage))
            invalidate_from(self.run_dir, ref.__class__(k, ref.stage), stages)
            if diffs:
                log.info("run folder made by another config; restarting at iter_%d/%s with:\n  %s", k, ref.stage,
                         "\n  ".join(diffs))
        write_run_record(self.run_dir, result_config(self.cfg), self.config_hash, fp)

    def adopt(self, k: int, name: str) -> bool:
        if self.adopt_until is None:
            return False
        ak, ai = self.adopt_until
        if name not in self.st.STAGES:  # iteration 0's noise stage: kept only when the restart is later
            return k < ak
        return k < ak or (k == ak and self.st.STAGES.index(name) < ai)

    def after_stage(self, current: dict) -> None:
        atomic_write_json(self.run_dir / "current.json", current)
        atomic_write_json(self.run_dir / "summary.json", run_summary(self.run_dir))
        try:
            from raylib.eval.report import write_report
        except ImportError:
            log.debug("raylib.eval.report not in this tree: no report written")
            return
        try:
            write_report(self.run_dir)
        except Exception as e:  # a report bug must not stop a long run; the files stay the source of truth
            logging.getLogger(__name__).warning("report not written: %s: %s", type(e).__name__, e)

    def run_stage(self, ctx, name: str, bar) -> dict:
        stage = ctx.stage(name)
        bar.set_postfix_str(name)
        files, params = self.st.stage_inputs(ctx, name)
        fps = self.st.pointer_fingerprints(ctx.current)
        t0 = time.perf_counter()
        outputs, skipped = stage.run(lambda d: self.call_stage(ctx, name, d), config_hash=self.config_hash,
                                     fingerprints=fps, inputs=files, params=params, root=self.run_dir,
                                     adopt=self.adopt(ctx.iteration, name))
        ctx.outputs[name] = outputs
        log.info("%s", _line(stage.label, outputs, skipped, time.perf_counter() - t0))
        bar.update(1)
        return outputs

    def call_stage(self, ctx, name: str, out: Path) -> dict:
        """Run stage ``name``; a stage that trains or encodes first has the serving actors give their GPUs and
        CPUs back (unless workers.serve_during_training); prove and evaluate bring them back."""
        from actors.serving import TRAINING_STAGES

        if name in TRAINING_STAGES and self.serving is not None:
            self.serving.release(f"iter_{ctx.iteration}/{name}")
        return self.st.STAGE_FUNCS[name](ctx, out)

    def run(self) -> dict:
        """Run the iterations; one ServingFleet serves every prove and evaluate stage and is shut down at the end."""
        from actors.serving import ServingFleet

        self.serving = ServingFleet(self.cfg)
        try:
            return self._run()
        finally:
            self.serving.shutdown()  # its event log stays readable

    def _run(self) -> dict:
        from tqdm import tqdm

        st = self.st
        current = st.initial_pointers(self.cfg)
        ctx = st.IterCtx(self.cfg, self.run_dir, 0, current, self.config_hash, serving=self.serving)
        baseline = st.baseline_stages(self.cfg)
        with tqdm(total=len(baseline), desc="iter 0 (baseline)", unit="stage", leave=True) as bar:
            for name in baseline:
                self.run_stage(ctx, name, bar)
        ev = ctx.outputs["evaluate"]
        current = dict(current, proof_rate=ev.get("proof_rate"), proof_rate_llm=ev.get("proof_rate_llm"),
                       proof_rate_ebm=ev.get("proof_rate_ebm"))
        self.after_stage(current)
        for k in range(1, self.iterations + 1):
            ctx = st.IterCtx(self.cfg, self.run_dir, k, current, self.config_hash, serving=self.serving)
            with tqdm(total=len(st.STAGES), desc=f"iter {k}", unit="stage", leave=True) as bar:
                for name in st.STAGES:
                    self.run_stage(ctx, name, bar)
                    self.after_stage(ctx.outputs["gate"]["current"] if name == "gate" else current)
                    if k == self.iterations and name == self.stop_after:
                        return run_summary(self.run_dir)
            current = ctx.outputs["gate"]["current"]
        summary = run_summary(self.run_dir)
        return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = config_from_args(args, log)
    if cfg is None:
        return 2
    from raylib.models.loading import ModelLoadError, check_model_dir

    try:
        check_model_dir(cfg.model.path)
    except ModelLoadError as e:
        log.error("model.path: %s (for the built-in tiny model: python -m jobs.bootstrap)", e)
        return 2
    logfile = setup_console(cfg.run_dir)
    runner = Runner(cfg, args.iterations or cfg.iterate.iterations, args.from_stage)
    try:
        runner.pin()
    except (RunMismatchError, ValueError) as e:
        log.error("%s", e)
        return 2
    import ray

    from raylib.rayutil import init_ray

    init_ray(cfg, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    from actors.iterate_stages import InfraFailure, MissingPieceError

    try:
        summary = runner.run()
    except MissingInputError as e:
        log.error("%s", e)
        return 2
    except InfraFailure as e:
        log.error("%s", e)
        return 4
    except KeyboardInterrupt:
        log.error("interrupted: complete stages are kept; run the same command to resume (log: %s)", logfile)
        return 130
    except MissingPieceError as e:
        log.error("%s", e)
        return 3
    log.info("done: %s (log: %s)", json.dumps([{k: it[k] for k in ("iteration", "proof_rate_llm", "proof_rate_ebm",
                                                                    "promoted")} for it in summary["iterations"]]),
             logfile)
    g = summary.get("progress") or {}
    if g.get("gain") is not None:
        log.info("held-out proof rate: the starting model %s -> the model in use after iteration %d %s "
                 "(LLM-only %s; gain %+.3f; evaluation noise, one model on two seeds: %s; %s after iteration 1)",
                 g["baseline"], summary["iterations"][-1]["iteration"], g["last"], g.get("last_llm"), g["gain"],
                 g["noise"], g["first"])
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
