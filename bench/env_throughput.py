"""Tactic round trips per second through the REPL client to the built-in server, and the client's overhead.

    python bench/env_throughput.py [--requests 2000]

Three timings of the same tactic on the same state, each averaged over --requests calls:
  in_process_us: the server's own work (``Repl.handle`` called directly, no process, no pipe)
  pipe_us:       one request through ``ReplProcess.request`` (JSON over the pipe to the server process)
  client_us:     one ``LeanReplEnv.run_tac`` (filter, state bookkeeping, outcome classification on top)
client_overhead_us = client_us - pipe_us is what the client adds per request. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raylib.env import State, Theorem, builtin_command  # noqa: E402
from raylib.env.builtin.server import Repl  # noqa: E402
from raylib.env.repl import LeanReplEnv, ReplSettings  # noqa: E402

THEOREM = Theorem("bench", "theorem bench (p q r : Prop) (h : p ∧ (q ∨ r)) : (p ∧ q) ∨ (p ∧ r)")
TACTIC = "obtain ⟨hp, hq | hr⟩ := h"


def _timed(fn, n: int) -> float:
    fn()  # warm up
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args(argv)
    n = args.requests

    repl = Repl()
    ans = repl.handle({"cmd": THEOREM.command()})
    ps = ans["sorries"][0]["proofState"]
    in_process = _timed(lambda: repl.handle({"tactic": TACTIC, "proofState": ps}), n)

    env = LeanReplEnv(ReplSettings(command=builtin_command(False), max_requests=10**9))
    try:
        s0 = env.start(THEOREM)
        assert isinstance(s0, State), s0
        ps = s0.handle.proof_state
        pipe = _timed(lambda: env.proc.request({"tactic": TACTIC, "proofState": ps}, 10.0), n)
        client = _timed(lambda: env.run_tac(s0, TACTIC), n)
        t = time.perf_counter()
        starts = 200
        for _ in range(starts):
            env.start(THEOREM)
        start_us = (time.perf_counter() - t) / starts * 1e6
    finally:
        env.close()
    out = {
        "bench": "env_throughput", "requests": n, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "in_process_us": round(in_process * 1e6, 1), "pipe_us": round(pipe * 1e6, 1),
        "client_us": round(client * 1e6, 1), "client_overhead_us": round((client - pipe) * 1e6, 1),
        "round_trips_per_s": round(1 / client, 1), "theorem_start_us": round(start_us, 1),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
