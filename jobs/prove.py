"""Prove theorems with best-first search on Ray: generator, encoder, Lean workers and search drivers.

    python -m jobs.prove [--config C] [--theorems FILE] [--limit N] [--iteration K] [--set KEY=VALUE ...]

Starts a local Ray (``ray.address: null``) or joins a cluster (``ray job submit`` works unchanged).
Writes under ``<run.root>/<run.name>/iter_<K>/prove/``: one trajectory parquet per finished theorem
(atomic), ``results.jsonl`` (theorem, proved, proof, nodes, depth, time split; one line per theorem)
and ``summary.json`` (proof rate, time split, unique tactics and children per expansion, Lean pass
rate). Rerunning the same command skips finished theorems; actors that die mid-run are replaced and
their theorems retried, so every theorem is accounted for once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from raylib.config import Config, ConfigError, add_config_args, load_config
from raylib.env.theorems import TheoremFileError, load_theorems, theorems_from_config
from raylib.logs import setup_logging
from raylib.models.loading import ModelLoadError, check_model_dir

log = logging.getLogger("jobs.prove")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jobs.prove", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, "search.max_nodes=128")
    p.add_argument("--theorems", help="JSONL theorem file (default: theorems.source of the config)")
    p.add_argument("--limit", type=int, help="prove only the first N theorems")
    p.add_argument("--iteration", type=int, default=0, help="expert-iteration index (output folder iter_K)")
    return p.parse_args(argv)


def prove_dir(cfg: Config, iteration: int) -> Path:
    return cfg.run_dir / f"iter_{iteration}" / "prove"


def finished_theorems(results_path: Path) -> dict[str, dict]:
    """Results already written (a torn last line from a crash is ignored and redone)."""
    done: dict[str, dict] = {}
    if results_path.is_file():
        for line in results_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row["theorem"]] = row
    return done


def _append(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def start_actors(cfg: Config) -> dict:
    import ray

    from actors.encoder import EncoderActor
    from actors.generator import GeneratorActor
    from actors.lean_worker import lean_worker_pool
    from actors.search_driver import SearchDriver

    w = cfg.workers
    has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
    gen_gpus = w.generator_gpus if w.generator_gpus is not None else (1 if has_gpu else 0)
    generator = ray.remote(GeneratorActor).options(
        num_cpus=1, num_gpus=gen_gpus, max_restarts=-1, max_task_retries=-1).remote(cfg)
    encoder = None
    if cfg.value.ebm_path and cfg.search.beta > 0:
        enc_gpus = w.encoder_gpus if w.encoder_gpus is not None else gen_gpus
        encoder = ray.remote(EncoderActor).options(
            num_cpus=0, num_gpus=enc_gpus, max_restarts=-1, max_task_retries=-1).remote(cfg)
    lean = lean_worker_pool(cfg)
    driver_cls = ray.remote(SearchDriver).options(num_cpus=0, max_restarts=-1, max_task_retries=0,
                                                  max_concurrency=w.searches_per_driver)
    drivers = [driver_cls.remote(cfg, lean, generator, encoder) for _ in range(w.drivers)]
    fingerprints = {"generator": ray.get(generator.fingerprint.remote()),
                    "encoder": ray.get(encoder.fingerprint.remote()) if encoder is not None else None}
    return {"generator": generator, "encoder": encoder, "lean": lean, "drivers": drivers,
            "fingerprints": fingerprints}


def run(cfg: Config, theorems: list, iteration: int = 0, actors: dict | None = None) -> dict:
    """Prove ``theorems`` (skipping finished ones) and return the summary; see the module docstring."""
    import ray
    from ray.exceptions import RayActorError
    from tqdm import tqdm

    from raylib.data.trajectory import write_trajectory
    from raylib.rayutil import init_ray

    out = prove_dir(cfg, iteration)
    traj_dir = out / "trajectories"
    traj_dir.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = finished_theorems(results_path)
    todo = [t for t in theorems if t.name not in done]
    log.info("%d theorems, %d already finished, %d to prove", len(theorems), len(theorems) - len(todo), len(todo))
    init_ray(cfg)
    actors = actors or start_actors(cfg)
    drivers, fps = actors["drivers"], actors["fingerprints"]
    capacity = cfg.workers.searches_per_driver
    pending = list(reversed(todo))
    attempts: dict[str, int] = {}
    inflight: dict = {}  # ref -> (theorem, driver index)
    load = [0] * len(drivers)
    t0 = time.perf_counter()
    bar = tqdm(total=len(theorems), initial=len(theorems) - len(todo), desc="prove", unit="thm")
    while pending or inflight:
        while pending and min(load) < capacity:
            i = min(range(len(drivers)), key=lambda k: load[k])
            thm = pending.pop()
            attempts[thm.name] = attempts.get(thm.name, 0) + 1
            ref = drivers[i].prove.remote(thm, cfg.run.name, iteration, fps)
            inflight[ref] = (thm, i)
            load[i] += 1
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
        for ref in ready:
            thm, i = inflight.pop(ref)
            load[i] -= 1
            try:
                res = ray.get(ref)
            except RayActorError as e:
                if attempts[thm.name] < cfg.workers.max_attempts:
                    log.warning("driver %d died while proving %s; retrying (%d/%d)", i, thm.name,
                                attempts[thm.name], cfg.workers.max_attempts)
                    pending.append(thm)
                    continue
                res = {"summary": {"theorem": thm.name, "proved": False, "verified": False,
                                   "stop_reason": "error", "error": f"search driver died: {e}"},
                       "proof": [], "rows": []}
            if res["rows"]:
                write_trajectory(res["rows"], traj_dir, thm.name)
            row = {**res["summary"], "proof": res["proof"], "attempts": attempts[thm.name]}
            _append(results_path, row)
            done[thm.name] = row
            bar.update(1)
    bar.close()
    names = {t.name for t in theorems}
    summary = summarize([r for n, r in done.items() if n in names], cfg, fps, time.perf_counter() - t0)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def summarize(rows: list[dict], cfg: Config, fingerprints: dict, wall_s: float) -> dict:
    n = len(rows)
    proved = [r for r in rows if r.get("proved") and r.get("verified", True)]
    split = {k: sum(r.get(k) or 0.0 for r in rows) for k in ("generate_s", "lean_s", "ebm_s", "other_s")}
    total = sum(split.values()) or 1.0

    def mean(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    return {"config_hash": cfg.hash(), "fingerprints": fingerprints, "theorems": n, "proved": len(proved),
            "proof_rate": round(len(proved) / n, 4) if n else 0.0,
            "errors": sum(1 for r in rows if r.get("error")),
            "time_split": {k.removesuffix("_s"): round(v / total, 4) for k, v in split.items()},
            "search_seconds": {k: round(v, 3) for k, v in split.items()},
            "mean_unique_tactics": mean("mean_unique_tactics"), "mean_children": mean("mean_children"),
            "lean_pass_rate": mean("lean_pass_rate"), "ebm_top1_rate": mean("ebm_top1_rate"),
            "mean_proof_depth": mean("proof_depth"), "wall_s": round(wall_s, 2)}


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.config, args.overrides)
        theorems = load_theorems(args.theorems) if args.theorems else theorems_from_config(cfg.theorems)
        if args.limit:
            theorems = theorems[: args.limit]
        check_model_dir(cfg.model.path)  # before any actor starts: a clear error, not an actor crash
        summary = run(cfg, theorems, args.iteration)
    except ModelLoadError as e:
        print(f"prove: {e} (for the built-in tiny model: python -m jobs.bootstrap)", file=sys.stderr)
        return 2
    except (ConfigError, TheoremFileError) as e:
        print(f"prove: {e}", file=sys.stderr)
        return 2
    log.info("proved %d/%d (%.1f%%); time split %s; results in %s", summary["proved"], summary["theorems"],
             100 * summary["proof_rate"], summary["time_split"], prove_dir(cfg, args.iteration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
