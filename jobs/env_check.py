"""Check a proof environment end to end on Ray: replay oracle proofs through LeanWorker actors.

    python -m jobs.env_check [--config configs/local.yaml] [--set theorems.split=valid] [--limit N]

Starts (or joins) Ray, creates the LeanWorker pool, and for every configured built-in theorem sends the
oracle's tactic script step by step through the REPL client, then checks the whole proof again from a
fresh environment. Writes ``<run_dir>/env_check/results.jsonl`` and ``summary.json``; exits 1 if any
theorem fails. Works unchanged under ``ray job submit``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from raylib.config import ConfigError, job_parser, load_config
from raylib.env.theorems import TheoremFileError, theorems_from_config
from raylib.logs import setup_logging

log = logging.getLogger("jobs.env_check")


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.env_check", __doc__, "theorems.split=test")
    p.add_argument("--limit", type=int, default=None, help="check only the first N theorems")
    return p.parse_args(argv)


def run(cfg, limit: int | None = None) -> dict:
    import ray
    from ray.util import ActorPool
    from tqdm import tqdm

    from actors.lean_worker import lean_worker_pool
    from raylib.env.builtin.corpus import oracle_proof
    from raylib.rayutil import init_ray

    if not cfg.theorems.source.startswith("builtin:"):
        raise TheoremFileError("env_check proves theorems with the built-in oracle: set theorems.source to "
                               "builtin:textbook or builtin:generated (and env.backend to builtin)")
    theorems = theorems_from_config(cfg.theorems)[:limit]
    jobs = [(t, oracle_proof(t.statement)) for t in theorems]
    out_dir = cfg.run_dir / "env_check"
    out_dir.mkdir(parents=True, exist_ok=True)
    init_ray(cfg)
    workers = lean_worker_pool(cfg)
    pool = ActorPool(workers)
    t0 = time.perf_counter()
    rows = []
    results = pool.map(lambda w, job: w.replay.remote(job[0], job[1]), jobs)  # in order of jobs
    tmp = out_dir / "results.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        progress = tqdm(results, total=len(jobs), desc="env check", unit="thm")
        for (theorem, script), (outcomes, verification) in zip(jobs, progress):
            last = outcomes[-1]
            row = {"theorem": theorem.name, "steps": len(outcomes) - 1, "kinds": [o.kind for o in outcomes],
                   "finished": last.kind == "finished", "verified": bool(verification and verification.ok),
                   "message": getattr(last, "message", "") or
                   ("; ".join(verification.messages) if verification else ""), "script": script}
            rows.append(row)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(out_dir / "results.jsonl")
    for w in workers:
        ray.kill(w)
    seconds = time.perf_counter() - t0
    steps = sum(r["steps"] for r in rows)
    summary = {"config_hash": cfg.hash(), "theorems": len(rows), "verified": sum(r["verified"] for r in rows),
               "failed": [r["theorem"] for r in rows if not r["verified"]], "tactic_steps": steps,
               "seconds": round(seconds, 3), "steps_per_s": round(steps / seconds, 1) if seconds else None,
               "workers": len(workers)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.config, args.overrides)
        summary = run(cfg, args.limit)
    except (ConfigError, TheoremFileError) as e:
        print(f"env_check: {e}", file=sys.stderr)
        return 2
    log.info("verified %d/%d theorems in %.1f s (%s tactic steps/s); results in %s", summary["verified"],
             summary["theorems"], summary["seconds"], summary["steps_per_s"], cfg.run_dir / "env_check")
    if summary["failed"]:
        log.error("failed: %s", ", ".join(summary["failed"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
