"""The prove stage on Ray: start the actor fleet for a config, schedule theorems over search drivers, write
results. Any job (prove, iterate, evaluate) calls ``prove_theorems`` with its own output folder.

``out_dir`` receives one trajectory parquet per searched theorem (``trajectories/``, atomic),
``results.jsonl`` (one line per theorem attempt that ended: its outcome, proof, nodes, time split, queue
wait, result key) and ``summary.json``.

Outcomes: a theorem's own result is ``proved``, ``exhausted``, ``budget`` (max_nodes), ``timeout`` or
``start_failed`` (the statement does not elaborate). An infrastructure failure (an actor died, the engine
raised, a Lean worker was lost) is not an outcome: the theorem is retried with exponential backoff up to
``workers.infra_retries`` times, and past that recorded as ``infra_error``, which the next run redoes.

Resume: a theorem is reused only when its last row has an outcome and the same result key (the
result-affecting config: search, model, env, value, the prompt template; plus the generator and encoder
fingerprints and the seed). Worker counts and other placement settings do not enter the key.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from raylib.config import Config
from raylib.env import Theorem
from raylib.hashing import json_hash

log = logging.getLogger(__name__)

OUTCOMES = ("proved", "exhausted", "budget", "timeout", "start_failed")
INFRA_ERROR = "infra_error"


@dataclass
class Fleet:
    """Handles of the actors one prove stage uses; ``names`` are their Ray names (drivers look them up)."""

    generator: Any
    encoder: Any
    lean: list
    drivers: list
    fingerprints: dict
    names: dict = field(default_factory=dict)

    def shutdown(self) -> None:
        """Kill every actor of the fleet (frees their GPUs and Lean processes)."""
        import ray

        for a in [*self.drivers, *self.lean, self.generator, self.encoder]:
            if a is not None:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # noqa: BLE001 - an actor already gone is fine
                    pass
        self.drivers, self.lean = [], []

    def env_versions(self) -> Optional[dict]:
        """What one Lean worker reports of its environment (backend, Lean, REPL and Mathlib versions)."""
        import ray

        try:
            return ray.get(self.lean[0].versions.remote(), timeout=60) if self.lean else None
        except Exception as e:  # noqa: BLE001 - versions are informative, never fatal
            log.warning("could not read the Lean worker's versions: %s", e)
            return None


def needs_encoder(cfg: Config) -> bool:
    """Whether a search under ``cfg`` scores states with the EBM (and so needs an encoder actor)."""
    return bool(cfg.value.ebm_path) and cfg.search.beta > 0


def start_serving_actor(cfg: Config, role: str, name: str, cls=None):
    """Start the ``generator`` (GeneratorActor, or ``cls``) or ``encoder`` (EncoderActor) named ``name``, placed
    as ``workers.*`` says; restarted by Ray when its process dies, its calls never retried."""
    import ray

    from raylib.placement import role_options

    if cls is None:
        from actors.encoder import EncoderActor
        from actors.generator import GeneratorActor

        cls = {"generator": GeneratorActor, "encoder": EncoderActor}[role]
    return ray.remote(cls).options(name=name, **role_options(cfg, role), max_restarts=-1,
                                   max_task_retries=0).remote(cfg)


def start_drivers(cfg: Config, names: dict) -> list:
    """``workers.drivers`` SearchDrivers for ``cfg.search`` over the actors ``names`` names."""
    import ray

    from actors.search_driver import SearchDriver
    from raylib.placement import role_options

    w = cfg.workers
    driver_cls = ray.remote(SearchDriver).options(**role_options(cfg, "driver"), max_restarts=-1,
                                                  max_task_retries=0, max_concurrency=w.searches_per_driver + 2)
    return [driver_cls.remote(cfg, names) for _ in range(w.drivers)]


def start_actors(cfg: Config, env_factory=None, generator_cls=None) -> Fleet:
    """Start the generator, the encoder (when an EBM is configured), the Lean workers and the drivers.

    ``env_factory`` (a small picklable callable returning a ``ProofEnv``) and ``generator_cls`` replace the
    configured environment and generator actor class; benches and fault-injection tests use them.
    """
    import ray

    from actors.lean_worker import lean_worker_pool
    from raylib.placement import wait_placed

    tag = f"rp-{uuid.uuid4().hex[:8]}"
    names: dict[str, Any] = {"generator": f"{tag}-generator", "encoder": None}
    generator = start_serving_actor(cfg, "generator", names["generator"], generator_cls)
    encoder = None
    if needs_encoder(cfg):
        names["encoder"] = f"{tag}-encoder"
        encoder = start_serving_actor(cfg, "encoder", names["encoder"])
    names["lean"] = [f"{tag}-lean-{i}" for i in range(cfg.workers.lean)]
    lean = lean_worker_pool(cfg, names=names["lean"], env_factory=env_factory)
    drivers = start_drivers(cfg, names)
    fleet = Fleet(generator, encoder, lean, drivers, {}, names)
    try:  # requests go out as configured; one not met in workers.placement_timeout_s stops the job
        wait_placed({"generator": [generator], "encoder": [encoder] if encoder is not None else [],
                     "lean": lean, "driver": drivers}, cfg)
    except BaseException:
        fleet.shutdown()
        raise
    fleet.fingerprints = {"generator": ray.get(generator.fingerprint.remote()),
                          "encoder": ray.get(encoder.fingerprint.remote()) if encoder is not None else None}
    return fleet


# -- results ------------------------------------------------------------------------------------------
# value.* settings of the encode stage alone (pool size, placement, part size): they change no search result.
ENCODE_ONLY = ("encode_workers", "encode_gpus", "encode_batch_states", "part_states")


def result_key(cfg: Config, fingerprints: dict, seed: Optional[int] = None) -> str:
    """Hash of what produces a theorem's result (not worker counts, not where outputs go)."""
    value = cfg.value.model_dump(mode="json", exclude=set(ENCODE_ONLY))
    return json_hash({"search": cfg.search.model_dump(mode="json"), "model": cfg.model.model_dump(mode="json"),
                      "env": cfg.env.model_dump(mode="json"), "value": value,
                      "template": cfg.generation.template, "fingerprints": fingerprints, "seed": seed})


def read_results(results_path: Path) -> dict[str, dict]:
    """The last row per theorem (a torn last line from a crash is ignored and redone)."""
    done: dict[str, dict] = {}
    if results_path.is_file():
        for line in results_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row["theorem"]] = row
    return done


def reusable(row: Optional[dict], key: str) -> bool:
    return row is not None and row.get("outcome") in OUTCOMES and row.get("result_key") == key


def _append(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def outcome_of(summary: dict) -> Optional[str]:
    """The theorem's own outcome from a search summary, or None for an infrastructure failure."""
    reason = summary.get("stop_reason")
    return reason if reason in OUTCOMES else None


# -- the stage ----------------------------------------------------------------------------------------
def prove_theorems(cfg: Config, theorems: Sequence[Theorem], out_dir: Path, fleet: Optional[Fleet] = None,
                   seed: Optional[int] = None, run_name: Optional[str] = None, iteration: int = 0) -> dict:
    """Prove ``theorems`` into ``out_dir`` (resuming what matches) and return the summary (also in summary.json).

    Starts Ray and a fleet when none is given (and shuts that fleet down at the end).
    """
    import ray
    from ray.exceptions import RayActorError
    from tqdm import tqdm

    from raylib.data.trajectory import write_trajectory
    from raylib.rayutil import init_ray

    out_dir = Path(out_dir)
    traj_dir = out_dir / "trajectories"
    traj_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.jsonl"
    init_ray(cfg)
    own = fleet is None
    fleet = fleet or start_actors(cfg)
    try:
        fps = fleet.fingerprints
        key = result_key(cfg, fps, seed)
        if seed is not None:  # each attempt samples differently (HF; vLLM keeps model.seed)
            ray.get(fleet.generator.reseed.remote(cfg.model.seed + seed))
        done = read_results(results_path)
        versions = fleet.env_versions()  # stamped on every trajectory row and the summary
        versions_json = json.dumps(versions, sort_keys=True) if versions is not None else None
        todo = [t for t in theorems if not reusable(done.get(t.name), key)]
        reused = len(theorems) - len(todo)
        log.info("%d theorems: %d reused, %d to prove", len(theorems), reused, len(todo))
        w = cfg.workers
        drivers = fleet.drivers
        capacity = w.searches_per_driver
        pending = list(reversed(todo))
        attempts: dict[str, int] = {}
        not_before: dict[str, float] = {}
        inflight: dict = {}  # ref -> (theorem, driver index)
        load = [0] * len(drivers)
        run_name = run_name or cfg.run.name
        t0 = time.perf_counter()
        bar = tqdm(total=len(theorems), initial=reused, desc="prove", unit="thm")
        while pending or inflight:
            now = time.monotonic()
            ready_now = [t for t in pending if not_before.get(t.name, 0) <= now]
            while ready_now and min(load) < capacity:
                i = min(range(len(drivers)), key=lambda k: load[k])
                thm = ready_now.pop()
                pending.remove(thm)
                attempts[thm.name] = attempts.get(thm.name, 0) + 1
                ref = drivers[i].prove.remote(thm, run_name, iteration, fps)
                inflight[ref] = (thm, i)
                load[i] += 1
            if not inflight:
                time.sleep(0.05)
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                thm, i = inflight.pop(ref)
                load[i] -= 1
                try:
                    res = ray.get(ref)
                    failure = None if outcome_of(res["summary"]) else res["summary"].get("error") or "no outcome"
                except RayActorError as e:
                    res, failure = None, f"search driver died: {type(e).__name__}"
                if failure is not None:
                    n = attempts[thm.name]
                    if n <= w.infra_retries:
                        delay = w.retry_backoff_s * 2 ** (n - 1)
                        log.warning("%s: infrastructure failure (%s); retry %d/%d in %.1fs", thm.name,
                                    str(failure)[:300], n, w.infra_retries, delay)
                        not_before[thm.name] = time.monotonic() + delay
                        pending.append(thm)
                        continue
                    log.error("%s: infrastructure failure after %d attempts, recorded as %s (the next run "
                              "redoes it): %s", thm.name, n, INFRA_ERROR, str(failure)[:300])
                    summary = dict(res["summary"]) if res else {"theorem": thm.name, "proved": False,
                                                                 "verified": False}
                    row = {**summary, "outcome": INFRA_ERROR, "error": str(failure), "proof": [],
                           "attempts": n, "result_key": key}
                else:
                    if res["rows"]:
                        write_trajectory([{**r, "env_versions": versions_json} for r in res["rows"]], traj_dir,
                                         thm.name)
                    row = {**res["summary"], "outcome": outcome_of(res["summary"]), "proof": res["proof"],
                           "attempts": attempts[thm.name], "result_key": key}
                _append(results_path, row)
                done[thm.name] = row
                bar.update(1)
        bar.close()
        names = {t.name for t in theorems}
        summary = summarize([r for n, r in done.items() if n in names], cfg, fps, time.perf_counter() - t0)
        summary.update(reused=reused, result_key=key, seed=seed, env_versions=versions)
        from raylib.eval.value_stats import sibling_accuracy_dir  # EBM vs chance on proof paths; null: no EBM
        summary["ebm_sibling_accuracy"] = sibling_accuracy_dir(traj_dir, names)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary
    finally:
        if own:
            fleet.shutdown()


def summarize(rows: list[dict], cfg: Config, fingerprints: dict, wall_s: float) -> dict:
    """Figures of a prove stage from its result rows (one per theorem)."""
    n = len(rows)
    proved = [r for r in rows if r.get("outcome", r.get("stop_reason")) == "proved" and r.get("verified", True)]
    model_only = [r for r in proved if not r.get("probe_steps")]
    outcomes = {k: 0 for k in (*OUTCOMES, INFRA_ERROR)}
    for r in rows:
        o = r.get("outcome") or r.get("stop_reason")
        outcomes[o if o in outcomes else INFRA_ERROR] += 1
    split = {k: sum(r.get(k) or 0.0 for r in rows) for k in ("generate_s", "lean_s", "ebm_s", "other_s")}
    total = sum(split.values()) or 1.0

    def mean(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    return {"config_hash": cfg.hash(), "fingerprints": fingerprints, "theorems": n, "proved": len(proved),
            "proof_rate": round(len(proved) / n, 4) if n else 0.0,
            "proof_rate_model_only": round(len(model_only) / n, 4) if n else 0.0,
            "outcomes": outcomes, "infra_errors": outcomes[INFRA_ERROR],
            "errors": outcomes[INFRA_ERROR],
            "time_split": {k.removesuffix("_s"): round(v / total, 4) for k, v in split.items()},
            "search_seconds": {k: round(v, 3) for k, v in split.items()},
            "queue_seconds": round(sum(r.get("queue_s") or 0.0 for r in rows), 3),
            "mean_unique_tactics": mean("mean_unique_tactics"), "mean_children": mean("mean_children"),
            "lean_pass_rate": mean("lean_pass_rate"), "ebm_top1_rate": mean("ebm_top1_rate"),
            "mean_proof_depth": mean("proof_depth"), "wall_s": round(wall_s, 2)}
