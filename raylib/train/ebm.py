"""Train the EBM head on state embeddings with Ray Train (V2) over a Ray Dataset of contrastive groups.

``train_ebm`` checks every input before any work: the trajectory files (schema, named on error), the
embeddings folder (meta, fingerprint, a vector for every state the sampler may draw) and the data
(at least one positive). Then it samples groups (``raylib.data.sampler``: train groups resampled each
epoch, validation groups once, theorems split by hash), puts the embedding matrix in the object store
once, and runs ``ebm_worker_loop`` on ``ebm.num_workers`` workers (``TorchTrainer``) over a Ray Dataset
of index rows. Metrics at each evaluation, for train and val: loss, energy gap, rank.

Files under ``out``: ``sampler.json`` (eligible positives and negatives of each kind per split, and
what was drawn), ``train/ebm-<key>/`` (Ray Train checkpoints; a rerun with the same data and settings
resumes there, any other trains afresh), ``ebm/`` (the final head, ``EBM.load``-able, carrying the
embeddings' fingerprint; written to a temporary folder and renamed), ``history.jsonl``, ``result.json``
and ``COMPLETE`` (an identical rerun does nothing).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raylib.data.sampler import KINDS, SamplerError, build_index, sample_groups, sampler_report
from raylib.hashing import file_hash, json_hash
from raylib.train.config import EBMSection
from raylib.train.jobdir import complete_marker, open_job_dir

log = logging.getLogger(__name__)

__all__ = ["EBMData", "EBMResult", "prepare_ebm_data", "resume_key", "train_ebm"]

# Settings that change neither the weights nor the data order: a rerun that changes only these resumes.
RESUME_NEUTRAL = ("log_every", "keep_checkpoints", "max_failures", "eval_every", "eval_groups")


@dataclass
class EBMResult:
    ebm_dir: Path
    steps: int
    history: list[dict]
    metrics: dict
    report: dict
    fingerprint: str
    resumed_from: int = 0
    cached: bool = False


@dataclass
class EBMData:
    """Checked, sampled inputs: ``train``/``val`` index rows ``[n, 1 + K]`` into ``embeddings``."""

    train: np.ndarray
    val: np.ndarray
    embeddings: np.ndarray
    fingerprint: str
    report: dict
    data_hash: str
    files: list[Path] = field(default_factory=list)


def _files(trajectory_files: str | Path | Iterable[str | Path]) -> list[Path]:
    from raylib.data.trajectory import trajectory_files as resolve

    files = resolve(trajectory_files)
    if not files:
        raise SamplerError(f"{trajectory_files}: no trajectory files (run the prove job first)")
    return files


def _epochs_needed(ebm: EBMSection, groups_per_epoch: int) -> tuple[int, int]:
    """(total steps, epochs of groups to sample): ``max_steps`` or ``epochs`` passes, whole batches."""
    total = ebm.max_steps or max(1, math.ceil(ebm.epochs * groups_per_epoch / ebm.batch_size))
    return total, math.ceil(total * ebm.batch_size / groups_per_epoch)


def prepare_ebm_data(ebm: EBMSection, trajectory_files, embeddings_dir: str | Path,
                     fingerprint: str | None = None) -> EBMData:
    """Read and check the inputs, sample the groups; raises before any training (errors name the file)."""
    from raylib.data.embeddings import EmbeddingsError, read_embeddings
    from raylib.data.trajectory import read_trajectory

    import pyarrow as pa

    files = _files(trajectory_files)
    table = pa.concat_tables([read_trajectory(f) for f in files])  # TrajectoryError names a bad file
    hashes, array, meta = read_embeddings(embeddings_dir, fingerprint)  # EmbeddingsError names the folder
    splits = build_index(table, ebm.valid_fraction, ebm.seed)
    where = files[0].parent if len(files) > 1 else files[0]
    if not any(t.positives for t in splits["train"].theorems.values()):
        n_val = sum(len(t.positives) for t in splits["val"].theorems.values())
        raise SamplerError(f"{where}: no proof-path state among the train theorems of {len(files)} trajectory "
                           f"file(s) ({n_val} in val): the EBM needs proved theorems; prove more theorems or "
                           "lower ebm.valid_fraction")
    needed = {h for s in splits.values() for t in s.theorems.values() for h in (*t.positives, *t.off_path)}
    row = {h: i for i, h in enumerate(hashes)}
    missing = sorted(needed - row.keys())
    if missing:
        raise EmbeddingsError(f"{embeddings_dir}: {len(missing)} of {len(needed)} states of the trajectories have "
                              f"no embedding (e.g. state hash {missing[0]}); encode these trajectories into it: "
                              f"python -m jobs.encode --trajectories ... --out {embeddings_dir}")
    keep = sorted(needed, key=row.__getitem__)
    local = {h: i for i, h in enumerate(keep)}
    ratios = {"hard": ebm.hard_ratio, "medium": ebm.medium_ratio, "easy": ebm.easy_ratio}

    def rows(g) -> np.ndarray:
        return np.array([[local[p], *(local[n] for n in negs)] for p, negs in zip(g.positive, g.negatives)],
                        dtype=np.int64).reshape(len(g), 1 + ebm.negatives)

    first = sample_groups(splits["train"], ebm.negatives, ratios, ebm.fallback, seed=ebm.seed)
    val = sample_groups(splits["val"], ebm.negatives, ratios, ebm.fallback, seed=ebm.seed)
    total, epochs = _epochs_needed(ebm, len(first))
    chunks = [rows(first)] + [rows(sample_groups(splits["train"], ebm.negatives, ratios, ebm.fallback,
                                                 seed=ebm.seed + e)) for e in range(1, epochs)]
    train = np.concatenate(chunks)[: total * ebm.batch_size]
    report = sampler_report(splits, {"train": first, "val": val})
    report["plan"] = {"steps": total, "epochs_sampled": epochs, "groups_per_epoch": len(first),
                      "batch_size": ebm.batch_size, "negatives": ebm.negatives, "kinds": list(KINDS),
                      "coverage_epochs": total * ebm.batch_size / len(first)}
    data_hash = json_hash([file_hash(*files), meta["fingerprint"], meta["count"], file_hash(
        *sorted(Path(embeddings_dir).glob("part-*.parquet")))])
    return EBMData(train, rows(val), np.ascontiguousarray(array[[row[h] for h in keep]]), meta["fingerprint"],
                   report, data_hash, files)


def resume_key(ebm: EBMSection, data_hash: str) -> dict:
    """What a checkpoint must share with a run to resume from it: the data and every weight-affecting setting."""
    settings = {k: v for k, v in ebm.model_dump(mode="json").items() if k not in RESUME_NEUTRAL}
    return {"data": data_hash, "ebm": settings}


def _section(cfg) -> EBMSection:
    return cfg.ebm if hasattr(cfg, "ebm") else cfg


def train_ebm(cfg, trajectory_files: str | Path | Sequence[str | Path], embeddings_dir: str | Path,
              out_dir: str | Path, fingerprint: str | None = None, config_hash: str = "",
              interrupt_after_step: int | None = None, callbacks: Sequence[Any] = (),
              data: EBMData | None = None) -> EBMResult:
    """Train and save ``out_dir/ebm``; resume or skip as the files in ``out_dir`` say. Needs Ray up.

    ``cfg``: a ``Config`` (its ``ebm`` section is used) or an ``EBMSection``. ``fingerprint``: the encoder
    fingerprint the embeddings must have (None: the folder's own). ``interrupt_after_step`` (tests)
    makes the workers fail right after the checkpoint of that step. ``data``: the result of
    ``prepare_ebm_data`` for these inputs when the caller already checked them. Raises TrajectoryError,
    EmbeddingsError or SamplerError (naming the file and what to do) before any work.
    """
    import ray
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raylib.models.ebm import EBM
    from raylib.placement import section_scaling
    from raylib.train.devices import torch_config
    from raylib.train.ebm_loop import ebm_worker_loop, make_head

    ebm = _section(cfg)
    if ebm.batch_size % ebm.num_workers:
        raise ValueError(f"ebm.batch_size {ebm.batch_size} must be a multiple of ebm.num_workers {ebm.num_workers}")
    data = data or prepare_ebm_data(ebm, trajectory_files, embeddings_dir, fingerprint)
    out = Path(out_dir).resolve()
    rkey = resume_key(ebm, data.data_hash)
    run_name = "ebm-" + json_hash(rkey)
    job_id = json_hash(dict(rkey, ebm=ebm.model_dump(mode="json"), config_hash=config_hash))
    if open_job_dir(out, run_name, job_id, "EBM", require=out / "ebm" / "ebm.json"):
        return _load_result(out, cached=True)
    done = complete_marker(out)
    storage = out / "train"
    (out / "sampler.json").write_text(json.dumps(data.report, indent=2))
    log.info("EBM data: %s", json.dumps({s: {k: data.report[s][k] for k in ("theorems", "positives", "hard",
                                                                             "medium", "easy")}
                                          for s in ("train", "val")}))
    total = data.report["plan"]["steps"]
    evals = {"train": data.train[: ebm.eval_groups]}
    if len(data.val):
        evals["val"] = data.val[: ebm.eval_groups]
    else:
        log.warning("no validation groups (no proved theorem among the val theorems): val metrics are missing")
    loop_cfg = {"ebm": ebm.model_dump(mode="json"), "total_steps": total,
                "embeddings": ray.put(data.embeddings), "eval_groups": ray.put(evals),
                "interrupt_after_step": interrupt_after_step}
    ray.data.DataContext.get_current().enable_progress_bars = False
    train_ds = ray.data.from_numpy(data.train).rename_columns({"data": "idx"})
    trainer = TorchTrainer(
        ebm_worker_loop, train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(**section_scaling(ebm)),
        torch_config=torch_config(ebm.num_workers),
        run_config=RunConfig(name=run_name, storage_path=str(storage),
                             checkpoint_config=CheckpointConfig(num_to_keep=ebm.keep_checkpoints),
                             failure_config=FailureConfig(max_failures=ebm.max_failures), callbacks=list(callbacks)),
        datasets={"train": train_ds},
        dataset_config=DataConfig(datasets_to_split=["train"],
                                  execution_options=ExecutionOptions(preserve_order=True)))
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"EBM run in {storage} ended without a checkpoint")
    import torch

    with result.checkpoint.as_directory() as ckpt:
        ckpt = Path(ckpt)
        state = json.loads((ckpt / "history.json").read_text())
        head = make_head(ebm, data.embeddings.shape[1])
        head.load_state_dict(torch.load(ckpt / "head.pt", map_location="cpu", weights_only=True))
    history, step = state["history"], state["step"]
    last_eval = next((h for h in reversed(history) if any(k.startswith("train_") for k in h)), {})
    meta = {"trained_steps": step, "loss": ebm.loss, "negatives": ebm.negatives, "data_hash": data.data_hash,
            "valid_fraction": ebm.valid_fraction, "split_seed": ebm.seed,
            "job": job_id, "config_hash": config_hash, "metrics": {k: v for k, v in last_eval.items()
                                                                 if k.startswith(("train_", "val_"))}}
    tmp = out / ".ebm.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    EBM(head, data.fingerprint, meta).save(tmp)
    shutil.rmtree(out / "ebm", ignore_errors=True)
    tmp.rename(out / "ebm")
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (out / "result.json").write_text(json.dumps({"metrics": dict(result.metrics or {}), "steps": step,
                                                 "resumed_from": state.get("resumed_from", 0),
                                                 "fingerprint": data.fingerprint, "report": data.report},
                                                indent=2, default=str))
    done.write_text(json.dumps({"job": job_id, "fingerprint": data.fingerprint}))
    log.info("EBM done: %d steps, val rank %s, val gap %s -> %s", step, meta["metrics"].get("val_rank"),
             meta["metrics"].get("val_gap"), out / "ebm")
    return _load_result(out)


def _load_result(out: Path, cached: bool = False) -> EBMResult:
    res = json.loads((out / "result.json").read_text())
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines() if x.strip()]
    return EBMResult(out / "ebm", res["steps"], history, res.get("metrics", {}), res.get("report", {}),
                     res["fingerprint"], res.get("resumed_from", 0), cached)
