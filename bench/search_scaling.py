"""Search scaling on Ray: theorems/minute at 1, 4, 16, 64 concurrent searches against the ideal line.

    python bench/search_scaling.py [--lean-latency 0.2] [--gen-latency 0.05] [--steps 3]

The search machinery is the real one (SearchDriver actors, RayEnvPool, BestFirstSearch); Lean and the
generator are stand-ins with FIXED LATENCY (async actors that sleep): a "chain" theorem needs --steps
`step` tactics, each answered after --lean-latency seconds, and the generator answers after
--gen-latency seconds with `step` and one wrong tactic. Since the waits are not CPU-bound, throughput
should grow linearly with concurrency; `efficiency` is measured / (concurrency × rate at 1).
(a) `machinery`: the share of wall time the search and actor machinery itself takes on the embedded
config. With zero-latency stand-ins, one search at a time, every second is machinery: that gives the
cost of one actor round trip (search bookkeeping included). The prove job then runs --theorems built-in
valid theorems with the embedded config (the bootstrap model, real Lean workers on the built-in
environment), and the share is round trips × that cost / the searches' wall time. Skipped, with a
note, when the bootstrap model is missing (python -m jobs.bootstrap).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raylib.config import load_config  # noqa: E402
from raylib.env import Finished, LeanError, State, Theorem, Verification  # noqa: E402
from raylib.models.generator import Candidate  # noqa: E402


class ChainEnv:
    """Stand-in for Lean with a fixed latency per request (an async actor: unlimited concurrency)."""

    def __init__(self, latency: float, steps: int):
        self.latency, self.steps = latency, steps

    async def start(self, theorem):
        await asyncio.sleep(self.latency)
        return State(theorem, (f"⊢ chain {self.steps}",), ())

    def _step(self, state, tactic):
        if tactic != "step":
            return LeanError("unknown tactic")
        left = self.steps - len(state.path) - 1
        path = state.path + (tactic,)
        return Finished(state.theorem, path) if left == 0 else State(state.theorem, (f"⊢ chain {left}",), path)

    async def run_tac(self, state, tactic):
        await asyncio.sleep(self.latency)
        return self._step(state, tactic)

    async def run_tacs(self, state, tactics):  # one latency for all: a pool with a worker per tactic
        await asyncio.sleep(self.latency)
        return [self._step(state, t) for t in tactics]

    async def verify(self, theorem, tactics):
        await asyncio.sleep(self.latency)
        return Verification(list(tactics) == ["step"] * self.steps)


class FixedGenerator:
    """Stand-in for the generator with a fixed latency per request."""

    def __init__(self, latency: float):
        self.latency = latency

    async def propose(self, state, n, temperature, max_tokens):
        await asyncio.sleep(self.latency)
        return [Candidate("step", -0.1), Candidate("wrong", -2.0)][:n]

    async def fingerprint(self):
        return "fixed-latency"


def measure(concurrency: int, args, env, gen) -> dict:
    import ray

    from actors.search_driver import SearchDriver
    from actors.fleet import summarize

    drivers_n = min(concurrency, 4)
    per = concurrency // drivers_n
    # the stand-in Lean is one async actor with unlimited concurrency: the old dealing (no leases) reaches it
    cfg = load_config(None, ["search.probe_tactics=[]", "search.num_candidates=2", "search.batch_expansion_size=1",
                             f"workers.drivers={drivers_n}", f"workers.searches_per_driver={per}",
                             "workers.lean_dealing=spread"])
    names = {"lean": [env[1]], "generator": gen[1], "encoder": None}
    drivers = [ray.remote(SearchDriver).options(num_cpus=0, max_concurrency=per).remote(cfg, names)
               for _ in range(drivers_n)]
    n = max(2 * concurrency, 8)
    theorems = [Theorem(f"chain_{i}", f"theorem chain_{i} : True") for i in range(n)]
    ray.get([d.failovers.remote() for d in drivers])  # actors up before the clock starts
    t = time.perf_counter()
    results = ray.get([drivers[i % drivers_n].prove.remote(th, "bench", 0, {}) for i, th in enumerate(theorems)])
    wall = time.perf_counter() - t
    for d in drivers:
        ray.kill(d)
    rows = [r["summary"] for r in results]
    assert all(r["proved"] for r in rows), rows
    s = summarize(rows, cfg, {}, wall)
    return {"concurrency": concurrency, "theorems": n, "wall_s": round(wall, 3),
            "theorems_per_min": round(60 * n / wall, 1), "in_search_other_share": s["time_split"]["other"]}


def machinery(args, env0, gen0) -> dict:
    """Part (a); see the module docstring."""
    import tempfile

    from jobs.prove import run
    from raylib.env.theorems import theorems_from_config
    from raylib.models.loading import ModelLoadError, check_model_dir

    zero = measure(1, args, env0, gen0)
    rpcs_per_theorem = 1 + args.steps * 2 + 1  # start, per step 1 generate + 1 batched tactic call, verify
    rpc_s = zero["wall_s"] / (zero["theorems"] * rpcs_per_theorem)
    out = {"round_trip_ms": round(1000 * rpc_s, 3)}
    cfg = load_config(None, [f"run.root={tempfile.mkdtemp(prefix='bench_prove')}"])
    try:
        check_model_dir(cfg.model.path)
    except ModelLoadError as e:
        return {**out, "skipped": f"{e}; run python -m jobs.bootstrap"}
    summary = run(cfg, theorems_from_config(cfg.theorems)[: args.theorems])
    rows = [json.loads(line) for line in
            (cfg.run_dir / "iter_0" / "prove" / "results.jsonl").read_text().splitlines()]
    # per expanded node: one generate call and one batched tactic call per Lean worker (at most one per tactic)
    rpcs = sum(min(r["tactics_run"], r["nodes_expanded"] * cfg.workers.lean) + r["nodes_expanded"] + 1
               + (1 if r["proved"] else 0) for r in rows)
    wall = sum(r["wall_s"] for r in rows)
    return {**out, "theorems": len(rows), "round_trips": rpcs, "search_wall_s": round(wall, 2),
            "share": round(rpcs * rpc_s / wall, 4), "in_search_other_share": summary["time_split"]["other"],
            "time_split": summary["time_split"], "proof_rate": summary["proof_rate"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lean-latency", type=float, default=0.2)
    ap.add_argument("--gen-latency", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--theorems", type=int, default=30, help="valid theorems proved for part (a)")
    args = ap.parse_args(argv)
    import ray

    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    env = (ray.remote(ChainEnv).options(num_cpus=0, name="bench-lean").remote(args.lean_latency, args.steps),
           "bench-lean")
    gen = (ray.remote(FixedGenerator).options(num_cpus=0, name="bench-gen").remote(args.gen_latency), "bench-gen")
    levels = [measure(int(c), args, env, gen) for c in args.levels.split(",")]
    base = levels[0]["theorems_per_min"] / levels[0]["concurrency"]
    for lv in levels:
        lv["ideal_per_min"] = round(base * lv["concurrency"], 1)
        lv["efficiency"] = round(lv["theorems_per_min"] / lv["ideal_per_min"], 3)
    env0 = (ray.remote(ChainEnv).options(num_cpus=0, name="bench-lean0").remote(0.0, args.steps), "bench-lean0")
    gen0 = (ray.remote(FixedGenerator).options(num_cpus=0, name="bench-gen0").remote(0.0), "bench-gen0")
    out = {"bench": "search_scaling", "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
           "lean_latency_s": args.lean_latency, "gen_latency_s": args.gen_latency, "steps": args.steps,
           "levels": levels, "machinery": machinery(args, env0, gen0)}
    print(json.dumps(out))
    ray.shutdown()
    return out


if __name__ == "__main__":
    main()
