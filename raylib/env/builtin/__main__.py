"""`python -m raylib.env.builtin`: serve the built-in propositional environment over the
leanprover-community/repl protocol on stdin/stdout (logs go to stderr)."""
from __future__ import annotations

import argparse
import logging
import sys

from .server import serve


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m raylib.env.builtin",
        description=(
            "A small, sound classical propositional logic in Lean 4 syntax, answering the "
            "leanprover-community/repl JSON protocol: send {\"cmd\": ...} or "
            "{\"tactic\": ..., \"proofState\": n} objects separated by blank lines on stdin; "
            "each answer is a JSON object followed by a blank line on stdout."),
    )
    ap.add_argument("--faults", action="store_true",
                    help="enable fault-injection tactics for client tests: fault_sleep S, fault_exit, "
                         "fault_garbage, fault_truncate, fault_alloc MB, fault_forget (forget every proof state)")
    ap.add_argument("--log-level", default="WARNING", help="logging level for stderr (default WARNING)")
    args = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.setrecursionlimit(10000)
    serve(sys.stdin, sys.stdout, faults=args.faults)
    return 0


if __name__ == "__main__":
    sys.exit(main())
