"""Lean affinity: theorems/minute and Lean seconds per theorem, leased workers against the old dealing.

    python bench/lean_affinity.py [--reopen 2.0] [--tactic 0.05] [--workers 4] [--levels 1,4,16]

Lean is a stand-in whose costs are those of Mathlib-scale Lean: the built-in environment served over the
REPL protocol by this script (``--serve``), where opening a theorem (a ``cmd`` ending in ``by sorry``)
costs ``--reopen`` seconds and every other request (a tactic, a whole-proof check) ``--tactic`` seconds.
The client is the real one (``LeanReplEnv`` with longest-prefix replay), in real LeanWorker actors
driven by the real ``RayEnvPool`` and ``BestFirstSearch``; the generator is an in-process stand-in
that proposes the next step of the built-in oracle's proof among three wrong tactics.

Modes: ``lease`` (a search leases one worker; its tactics go there) and ``spread`` (the old dealing:
a node's tactics are dealt over all workers, each of which rebuilds the state it has not seen).
Every worker's process is started before the clock (a process start, like Mathlib's header import, is
paid once per process). For each concurrency level: theorems/minute (wall clock), Lean seconds per
theorem (the workers' time inside the environment, summed) and, as the plain reference measured in the same run, the ideal Lean
seconds per theorem: one open plus the tactic cost of every request the search itself made (its tactics
and its proof check). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raylib.config import load_config  # noqa: E402
from raylib.env import Theorem  # noqa: E402
from raylib.models.generator import Candidate  # noqa: E402


def serve(reopen_s: float, tactic_s: float) -> None:
    """The built-in REPL with Mathlib-like costs (see the module docstring)."""
    import json as _json

    from raylib.env.builtin.server import Repl, render

    repl = Repl()
    buf: list[str] = []

    def answer(query: str) -> None:
        req = _json.loads(query)
        opening = isinstance(req, dict) and "cmd" in req and req["cmd"].rstrip().endswith("by sorry")
        time.sleep(reopen_s if opening else tactic_s)
        sys.stdout.write(render(repl.handle(req)) + "\n\n")
        sys.stdout.flush()

    for line in sys.stdin:
        if line.strip():
            buf.append(line.rstrip())
        elif buf:
            answer("".join(buf))
            buf = []


class OracleGenerator:
    """Stand-in generator: the oracle's next tactic (logprob -0.1) and three wrong ones, one of which makes
    a new useless state (so the frontier holds more than the proof path)."""

    def __init__(self, steps: dict[str, str]):
        self.steps, self.counter = steps, itertools.count()

    async def propose(self, state, n, temperature, max_tokens):
        out = [Candidate(f"have hb{next(self.counter)} : True := trivial", -3.0),
               Candidate("exact nonsense", -4.0), Candidate("apply h99", -5.0)]
        if state in self.steps:
            out.insert(0, Candidate(self.steps[state], -0.1))
        return out[:n]


def oracle_steps(theorems) -> dict[str, str]:
    """Goal text -> the oracle's next tactic along each theorem's oracle proof (fast in-process env)."""
    from raylib.env import make_env
    from raylib.env.builtin.corpus import oracle_proof

    env = make_env(load_config(None).env)
    steps: dict[str, str] = {}
    try:
        for t in theorems:
            state = env.start(t)
            for tac in oracle_proof(t.statement):
                steps[state.text] = tac
                state = env.run_tac(state, tac)
    finally:
        env.close()
    return steps


def measure(mode: str, concurrency: int, n: int, theorems, steps, args) -> dict:
    import ray

    from actors.lean_worker import lean_worker_pool
    from actors.pools import RayEnvPool
    from raylib.search.best_first import BestFirstSearch

    cfg = load_config(None, [
        "env.backend=lean_repl", f"env.lean_repl.command={json.dumps(_serve_command(args))}",
        f"env.lean_repl.cwd={ROOT}", "env.timeout_s=60", "workers.lean_cpus=0.01",
        f"workers.leases_per_worker={max(1, -(-concurrency // args.workers))}",
        "search.num_candidates=4", "search.probe_tactics=[]", "search.batch_expansion_size=1",
        "search.max_nodes=30", "search.timeout_per_theorem=300"])
    workers = lean_worker_pool(cfg, args.workers)
    warm = Theorem("warm_up", "theorem warm_up (p : Prop) : p → p")  # start every process before the clock:
    ray.get([w.start.remote(warm) for w in workers])                  # a process start (a Mathlib header) is
    ray.get([w.release.remote("warm-up", warm) for w in workers])     # paid once per process, not per theorem
    base = ray.get([w.stats.remote() for w in workers])
    pool = RayEnvPool(workers, mode=mode)
    search = BestFirstSearch(cfg.search, pool, OracleGenerator(steps))
    todo = theorems[:n]
    t0 = time.perf_counter()
    results = asyncio.run(search.prove_many(todo, concurrency=concurrency))
    wall = time.perf_counter() - t0
    stats = ray.get([w.stats.remote() for w in workers])
    for w in workers:
        ray.kill(w)
    assert all(r.proved for r in results), [r.summary() for r in results if not r.proved]
    lean_s = sum(s["busy_s"] - b["busy_s"] for s, b in zip(stats, base))
    requests = sum(r.tactics_run + (2 if r.proved else 0) for r in results)  # tactics + check + axioms
    ideal = (n * args.reopen + requests * args.tactic) / n
    env = [{k: s["env"].get(k, 0) - b["env"].get(k, 0) for k in ("opens", "replayed_tactics", "restarts")}
           for s, b in zip(stats, base)]
    out = {"mode": mode, "concurrency": concurrency, "theorems": n, "wall_s": round(wall, 2),
            "theorems_per_min": round(60 * n / wall, 1), "lean_s_per_theorem": round(lean_s / n, 3),
            "ideal_lean_s_per_theorem": round(ideal, 3), "lean_vs_ideal": round(lean_s / n / ideal, 3),
            "opens_per_theorem": round(sum(e.get("opens", 0) for e in env) / n, 2),
            "replayed_tactics_per_theorem": round(sum(e.get("replayed_tactics", 0) for e in env) / n, 2),
            "process_restarts": sum(e.get("restarts", 0) for e in env),
            "queue_s_per_theorem": round(sum(r.queue_s for r in results) / n, 3)}
    logging.getLogger("bench.lean_affinity").info("%s", json.dumps(out))
    return out


def _serve_command(args) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve", "--reopen", str(args.reopen),
            "--tactic", str(args.tactic)]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reopen", type=float, default=2.0, help="seconds to open a theorem (a Mathlib header)")
    ap.add_argument("--tactic", type=float, default=0.05, help="seconds per tactic or other request")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--theorems", default="3,8,16", help="theorems proved at each level")
    ap.add_argument("--modes", default="lease,spread")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.reopen, args.tactic)
        return {}
    import ray

    from raylib.env.builtin.corpus import builtin_theorems, oracle_proof

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bench.lean_affinity").setLevel(logging.INFO)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    theorems = [t for t in builtin_theorems("generated", 400, 0) if 3 <= len(oracle_proof(t.statement)) <= 6]
    steps = oracle_steps(theorems[:64])
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    levels = [int(c) for c in args.levels.split(",")]
    counts = [int(c) for c in args.theorems.split(",")]
    runs = [measure(mode, c, n, theorems, steps, args)
            for c, n in zip(levels, counts) for mode in args.modes.split(",")]
    by = {(r["mode"], r["concurrency"]): r for r in runs}
    speedup = {str(c): round(by[("lease", c)]["theorems_per_min"] / by[("spread", c)]["theorems_per_min"], 2)
               for c in levels if ("lease", c) in by and ("spread", c) in by}
    out = {"bench": "lean_affinity", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "reopen_s": args.reopen, "tactic_s": args.tactic, "workers": args.workers, "runs": runs,
           "lease_over_spread_throughput": speedup,
           "targets": {"lean_vs_ideal_max": 1.2, "throughput_ratio_at_16_min": 3.0}}
    print(json.dumps(out))
    ray.shutdown()
    return out


if __name__ == "__main__":
    main()
