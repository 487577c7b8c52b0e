"""The ``rayprover`` command line.

    rayprover steps --theorem 'theorem t (p q : Prop) (h : p ∧ q) : q ∧ p' --tactic 'exact ⟨h.2, h.1⟩'
    rayprover config --config configs/local.yaml --set env.timeout_s=30
    rayprover theorems --set theorems.source=builtin:generated --out theorems.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from raylib.config import ConfigError, add_config_args, dump_config, load_config
from raylib.logs import setup_logging

log = logging.getLogger("rayprover")


def _config_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayprover", description="Ray-distributed expert-iteration theorem prover for Lean 4.")
    sub = parser.add_subparsers(dest="command", required=True)

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


def main(argv: list[str] | None = None) -> int:
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
