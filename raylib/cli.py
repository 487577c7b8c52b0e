"""The ``rayprover`` command line: the jobs under one command, plus a few tools of its own.

    rayprover iterate --iterations 3                 # = python -m jobs.iterate --iterations 3
    rayprover evaluate --theorems held_out.jsonl --attempts 4
    rayprover report runs/local
    rayprover steps --theorem 'theorem t (p q : Prop) (h : p ∧ q) : q ∧ p' --tactic 'exact ⟨h.2, h.1⟩'
    rayprover config --config configs/local.yaml --set env.timeout_s=30
    rayprover theorems --set theorems.source=builtin:generated --out theorems.jsonl

A job subcommand forwards every argument after it to the job's ``main(argv)`` (``rayprover prove --help``
prints the prove job's own help), so ``rayprover X ...`` and ``python -m jobs.<x> ...`` are the same.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from raylib.config import ConfigError, add_config_args, dump_config, load_config
from raylib.logs import setup_logging

log = logging.getLogger("rayprover")

# subcommand -> (job module, one-line help); the module's main(argv) takes the rest of the command line
JOBS: dict[str, tuple[str, str]] = {
    "iterate": ("jobs.iterate", "expert iteration: prove, SFT, probes, encode, EBM, evaluate, gate; resumable"),
    "prove": ("jobs.prove", "best-first search on Ray over a theorem set; trajectories, results, summary"),
    "train-sft": ("jobs.train_sft", "Ray Train SFT (LoRA or full) on SFT example parquet, with guards"),
    "encode": ("jobs.encode", "encode trajectory states into an embeddings folder (Ray Data + encoder actors)"),
    "train-ebm": ("jobs.train_ebm", "train the EBM value head on trajectories and their embeddings (Ray Train)"),
    "probe": ("jobs.probe", "separation probe: do the encoder's embeddings tell provable from unprovable states?"),
    "evaluate": ("jobs.evaluate", "LLM-only and LLM+EBM on a theorem set under a stated budget; pass@k, grid"),
    "report": ("jobs.report", "rebuild runs/<run>/report.md and report.html from the run's files"),
    "bootstrap": ("jobs.bootstrap", "build the tiny built-in model (cached)"),
    "env-check": ("jobs.env_check", "oracle proofs through the Lean worker pool, each re-checked whole"),
}


def _config_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayprover", description="Ray-distributed expert-iteration theorem prover for Lean 4.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, text) in JOBS.items():  # listed here; main() forwards them before parsing
        sub.add_parser(name, help=f"{text} ({module})", add_help=False)

    p = sub.add_parser("steps", help="run tactics one by one in the configured environment; JSON line per step",
                       description="Check a Lean set-up before spending GPU hours on it: open THEOREM in the "
                       "configured environment (env.backend), run each --tactic in order on the current state and "
                       "print one JSON line per step: tactic, kind (state, finished, error, timeout, sorry), goals, "
                       "message. Stops at the first step that is not a new state. Exit status 0 when every step "
                       "succeeded, 1 otherwise.")
    _config_args(p)
    p.add_argument("--theorem", required=True, help="a Lean theorem statement (':= by sorry' optional)")
    p.add_argument("--header", default=None, help="Lean commands run before the theorem (default: from config)")
    p.add_argument("--tactic", dest="tactics", action="append", default=[], help="a tactic (repeatable)")
    p.add_argument("--verify", action="store_true", help="when the proof finishes, check it again whole")

    p = sub.add_parser("config", help="print the resolved config and its hash",
                       description="Load, validate and print the config as YAML with its hash.")
    _config_args(p)

    p = sub.add_parser("theorems", help="write the configured theorem set to a JSONL file",
                       description="Resolve theorems.source (a JSONL file or builtin:textbook / builtin:generated), "
                       "filter by theorems.split and theorems.limit, and write JSONL.")
    _config_args(p)
    p.add_argument("--out", required=True, help="output JSONL path")
    return parser


def cmd_steps(args, cfg) -> int:
    from raylib.env import State, make_env
    from raylib.env.theorems import TheoremFileError, name_of, theorem_from_row

    header = args.header if args.header is not None else ""
    try:
        theorem = theorem_from_row({"statement": args.theorem, "header": header,
                                    "name": name_of(args.theorem) or "example"}, "--theorem")
    except TheoremFileError as e:
        print(f"rayprover steps: {e}", file=sys.stderr)
        return 2
    env = make_env(cfg.env)
    ok = True
    try:
        out = env.start(theorem)
        _emit(0, None, out)
        for i, tactic in enumerate(args.tactics, 1):
            if not isinstance(out, State):
                break
            out = env.run_tac(out, tactic)
            _emit(i, tactic, out)
        ok = out.kind in ("state", "finished")
        if args.verify and out.kind == "finished":
            v = env.verify(theorem, out.path)
            print(json.dumps({"verify": v.ok, "messages": list(v.messages), "proof": v.proof}, ensure_ascii=False))
            ok = v.ok
    finally:
        env.close()
    return 0 if ok else 1


def _emit(step: int, tactic: str | None, out) -> None:
    print(json.dumps({"step": step, "tactic": tactic, "kind": out.kind, "goals": list(getattr(out, "goals", ())),
                      "message": getattr(out, "message", "")}, ensure_ascii=False), flush=True)


def cmd_theorems(args, cfg) -> int:
    from raylib.env.theorems import save_theorems, theorems_from_config

    theorems = theorems_from_config(cfg.theorems)
    save_theorems(theorems, args.out)
    log.info("wrote %d theorems to %s", len(theorems), args.out)
    return 0


def run_job(name: str, argv: list[str]) -> int:
    """Forward ``argv`` to the job module's ``main``; a job missing from this installation is named."""
    import importlib

    module = JOBS[name][0]
    try:
        job = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        print(f"rayprover {name}: {module} is not part of this installation", file=sys.stderr)
        return 2
    return int(job.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in JOBS:
        return run_job(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"rayprover {args.command}: {e}", file=sys.stderr)
        return 2
    if args.command == "config":
        print(dump_config(cfg) + f"# hash: {cfg.hash()}")
        return 0
    from raylib.env.theorems import TheoremFileError
    try:
        return {"steps": cmd_steps, "theorems": cmd_theorems}[args.command](args, cfg)
    except TheoremFileError as e:
        print(f"rayprover {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
