"""EBM training throughput: the Ray Train path (``raylib.train.ebm.train_ebm``) against a plain PyTorch loop.

    python bench/_ebm_bench.py [--dim 4096] [--batch 256] [--negatives 7] [--steps 60] [--threads 1]

Both run the same steps (``raylib.train.ebm_loop.ebm_step``: gather ``[batch, 1 + K, dim]`` rows of the
embedding matrix, MLP head, info_nce loss, AdamW) on the same sampled groups, in the same process run:

* plain: ``train_in_memory``, tensors already in memory, one process, ``--threads`` torch threads;
* ray: ``train_ebm`` on local Ray, one Ray Train worker given ``--threads`` CPUs (Ray sets its torch
  threads from them), groups streamed from a Ray Dataset, the embedding matrix from the object store.

Steps/s are steady-state (from the end of the first step to the last, no evaluation or checkpoint in
between); the ray figure is measured inside the worker, and the whole call's wall time (Ray Train start,
data checks, final save) is reported beside it. The plain loop runs before and after the ray run, to
show the noise of a shared machine. Data: synthetic trajectories (trees of ``--branch`` children per
proof-path node) and random embeddings of ``--dim``, written with the real writers. Peak memory: the
driver's and the Ray Train worker's max RSS. Used by ``bench/value_throughput.py`` (``ebm_bench``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

log = logging.getLogger("bench.ebm")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_synthetic(root: Path, theorems: int, dim: int, depth: int = 4, branch: int = 5, seed: int = 0):
    """Trajectory files (every third theorem unproved) and an embeddings folder of random ``dim`` vectors."""
    import numpy as np

    from raylib.data.embeddings import write_embeddings_part
    from raylib.data.trajectory import write_trajectory
    from raylib.hashing import state_hash

    states = []
    for t in range(theorems):
        name, proved = f"bench_{t}", t % 3 != 0
        rows, cur = [], 0

        def row(parent, d, text, on_path, outcome="state"):
            rows.append({"run": "bench", "iteration": 0, "theorem": name, "statement": "p", "node_id": len(rows),
                         "parent_id": parent, "depth": d, "state": text, "tactic": None if parent is None else "t",
                         "outcome": outcome, "on_proof_path": on_path,
                         "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0}, "generator_fingerprint": "g",
                         "config_hash": "c"})
            return len(rows) - 1

        row(None, 0, f"{name} root", proved)
        for d in range(1, depth + 1):
            kids = [row(cur, d, f"{name} d{d} c{c}", proved and c == 0) for c in range(branch)]
            cur = kids[0]
        if proved:
            row(cur, depth + 1, "", True, "finished")
        write_trajectory(rows, root / "traj", name)
        states += [state_hash(r["state"]) for r in rows if r["state"]]
    rng = np.random.default_rng(seed)
    for i in range(0, len(states), 2048):
        part = states[i:i + 2048]
        write_embeddings_part(root / "emb", part, rng.normal(size=(len(part), dim)).astype(np.float32),
                              "bench-fingerprint", "float32", name=f"{i:08d}")
    return root / "traj", root / "emb", len(states)


def _plain(ebm, data, steps: int, threads: int) -> dict:
    import torch

    from raylib.train.ebm_loop import train_in_memory

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train_in_memory(ebm, data.train, data.embeddings, steps=1)  # warm-up (allocator, kernels)
        t0 = time.perf_counter()
        _, hist = train_in_memory(ebm, data.train, data.embeddings, steps=steps)
        dt = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    return {"steps": steps, "seconds": round(dt, 3), "steps_per_s": round(steps / dt, 3),
            "last_loss": round(hist[-1]["loss"], 4), "torch_threads": threads}


def ebm_bench(dim: int = 4096, batch: int = 256, negatives: int = 7, steps: int = 60, threads: int = 1,
              theorems: int = 400, workdir: str | Path | None = None, worker_niceness: int | None = 0) -> dict:
    """Run both paths on the same data; returns the figures (``ratio`` = ray steps/s over plain steps/s).

    ``worker_niceness``: the niceness of Ray's worker processes when this starts Ray (Ray's own default is
    15: on a machine shared with other work at niceness 0 that alone halves the workers' CPU share, which
    is not what this compares). None: Ray's default.
    """
    import os

    import ray

    from raylib.train.config import EBMSection
    from raylib.train.ebm import prepare_ebm_data, train_ebm

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        traj, emb, n_states = write_synthetic(root, theorems, dim)
        ebm = EBMSection(batch_size=batch, negatives=negatives, max_steps=steps, eval_every=0, checkpoint_every=0,
                         log_every=10 ** 6, eval_groups=batch, valid_fraction=0.1,
                         resources_per_worker={"CPU": threads})
        data = prepare_ebm_data(ebm, traj, emb)
        setup_s = time.perf_counter() - t0
        plain_before = _plain(ebm, data, steps, threads)
        started = not ray.is_initialized()
        if started:
            if worker_niceness is not None:
                os.environ["RAY_worker_niceness"] = str(worker_niceness)
            ray.init(num_cpus=max(2, threads + 1), include_dashboard=False, configure_logging=False,
                     log_to_driver=False)
        try:
            t1 = time.perf_counter()
            res = train_ebm(ebm, traj, emb, root / "out", data=data)
            wall = time.perf_counter() - t1
        finally:
            if started:
                ray.shutdown()
        plain_after = _plain(ebm, data, steps, threads)
    m = res.metrics
    ray_rate = float(m["steps_per_s"])
    plain_rate = 0.5 * (plain_before["steps_per_s"] + plain_after["steps_per_s"])
    return {
        "what": "EBM training steps/s: Ray Train V2 + Ray Data path vs a plain PyTorch loop, same steps and data",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": __import__("os").cpu_count()},
        "shape": {"dim": dim, "batch": batch, "negatives": negatives, "hidden_sizes": ebm.hidden_sizes,
                  "loss": ebm.loss, "states": n_states, "train_groups": int(len(data.train))},
        "setup_s": round(setup_s, 2),
        "plain_before": plain_before, "plain_after": plain_after,
        "ray": {"steps": res.steps, "steps_per_s": round(ray_rate, 3), "timed_steps": steps - 1,
                "wall_s_incl_start": round(wall, 2), "torch_threads": m.get("torch_threads"),
                "worker_peak_rss_mb": round(float(m.get("peak_rss_mb", 0.0)), 1),
                "data_wait_s": round(float(m.get("data_wait_s", 0.0)), 3),
                "step_compute_s": round(float(m.get("step_compute_s", 0.0)), 3),
                "last_loss": round(float(m["loss"]), 4)},
        "ratio_ray_over_plain": round(ray_rate / plain_rate, 3),
        "ray_worker_niceness": worker_niceness if started else "ray already up", "driver_niceness": os.nice(0),
        "target": ">= 0.9 on CPU",
        "driver_peak_rss_mb": round(_rss_mb(), 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--negatives", type=int, default=7)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1, help="torch threads of both paths (Ray worker CPUs)")
    p.add_argument("--theorems", type=int, default=400)
    p.add_argument("--worker-niceness", type=int, default=0,
                   help="niceness of Ray workers (Ray's default 15 starves them on a shared machine); -1: Ray's")
    args = p.parse_args(argv)
    logging.basicConfig(level="WARNING")
    niceness = None if args.worker_niceness < 0 else args.worker_niceness
    print(json.dumps(ebm_bench(args.dim, args.batch, args.negatives, args.steps, args.threads, args.theorems,
                               worker_niceness=niceness), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
