"""The encode stage: distinct proof states of trajectory files → embeddings folder, on Ray Data.

Pipeline: ``read_parquet`` (columns ``state``, ``outcome``) → keep open states (outcome ``state``,
non-empty text: finished and failed nodes have no state to score, and terminal states never go
through the EBM) → ``state_hash`` column (``raylib.hashing.state_hash``) → distinct by hash (groupby)
minus the states already in the folder → ``map_batches`` over an ``ActorPoolStrategy`` of encoder
actors (``value.encode_workers`` actors with ``value.encode_gpus`` GPUs each) → the driver writes
parquet parts of ``value.part_states`` embeddings each (``raylib.data.embeddings`` format, atomic).

Cache: the folder is keyed by (state hash, fingerprint). States already in it are not encoded again
(reported as ``warm``); a folder of another fingerprint is refused before any work. Resume: every part
written is whole (atomic rename) and kept, so a killed job run again encodes only the states in no part.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylib.data.embeddings import EmbeddingsError, embeddings_meta, list_parts, read_hashes, write_embeddings_part
from raylib.data.trajectory import ADDED_COLUMNS, TRAJECTORY_SCHEMA, TrajectoryError

log = logging.getLogger(__name__)

__all__ = ["EncodeError", "check_trajectory_files", "encode_gpus", "encode_trajectories"]

NEEDED = ("state", "outcome")


class EncodeError(ValueError):
    """Bad input to the encode stage; the message names the file or folder and what to do."""


def check_trajectory_files(files: Sequence[str | Path], what: str = "--trajectories") -> list[Path]:
    """The files as paths, each checked to be a trajectory parquet file (schema only, nothing read)."""
    paths = [Path(f) for f in files]
    if not paths:
        raise EncodeError(f"{what}: no trajectory files given (a glob that matched nothing?)")
    for p in paths:
        if not p.is_file():
            raise TrajectoryError(f"{p}: trajectory file not found")
        try:
            names = pq.read_schema(p).names
        except (pa.ArrowInvalid, OSError) as e:
            raise TrajectoryError(f"{p}: not a readable parquet file: {e}") from None
        missing = [n for n in TRAJECTORY_SCHEMA.names if n not in names and n not in ADDED_COLUMNS]
        if missing:
            raise TrajectoryError(f"{p}: not a trajectory file: missing columns {missing} (has {names}); pass "
                                  "trajectory files written by the prove job (<run>/trajectories/*.parquet)")
    return paths


def encode_gpus(cfg) -> float:
    """GPUs per encoder actor: value.encode_gpus, else workers.encoder_gpus (``raylib.placement``, role encode)."""
    from raylib.placement import role_options

    return role_options(cfg, "encode")["num_gpus"]


def _encode_placement(cfg) -> dict:
    """``map_batches`` resource arguments of the encoder actors (custom resources only when configured)."""
    from raylib.placement import role_options

    o = role_options(cfg, "encode")
    extra = {"resources": o["resources"]} if o["resources"] else {}
    return {"num_cpus": o["num_cpus"], "num_gpus": o["num_gpus"], **extra}


def _open_states(batch: pa.Table) -> pa.Table:
    """Rows of open states with their hash (Ray Data batch UDF)."""
    import pyarrow.compute as pc

    from raylib.hashing import state_hash

    keep = pc.and_(pc.equal(batch.column("outcome"), "state"),
                   pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(batch.column("state"))), 0))
    states = batch.column("state").filter(keep)
    return pa.table({"state_hash": pa.array([state_hash(s) for s in states.to_pylist()], pa.string()),
                     "state": states})


def _distinct(group: pa.Table, known: frozenset) -> pa.Table:
    """Group UDF: the first row of each state hash, flagged ``warm`` when the folder already holds it."""
    first = group.slice(0, 1)
    warm = first.num_rows == 1 and first.column("state_hash")[0].as_py() in known
    return first.append_column("warm", pa.array([warm] * first.num_rows, pa.bool_()))


def _cold(batch: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return batch.filter(pc.invert(batch.column("warm"))).drop_columns(["warm"])


class _EncoderUDF:
    """Ray Data actor: a StateEncoder built from the config; one call encodes one batch of states."""

    def __init__(self, cfg_json: dict, fingerprint: str):
        from raylib.config import Config
        from raylib.models.encoder import state_encoder_from_config

        self.encoder = state_encoder_from_config(Config.model_validate(cfg_json))
        if self.encoder.fingerprint() != fingerprint:
            raise EmbeddingsError(f"encoder actor made fingerprint {self.encoder.fingerprint()!r}, the job expected "
                                  f"{fingerprint!r}: the model or adapter folder changed while the job ran")

    def __call__(self, batch: dict) -> dict:
        states = [str(s) for s in batch["state"]]
        cut: list[bool] = []
        ids = self.encoder.token_ids(states, cut)
        emb = self.encoder.encode(states, ids=ids)  # raises EmbeddingCheckError naming a bad state
        return {"state_hash": batch["state_hash"], "embedding": emb, "cut": np.asarray(cut, dtype=bool)}


def _check_out_dir(out_dir: Path, fingerprint: str) -> set[str]:
    """State hashes already in ``out_dir`` for ``fingerprint``; refuse a folder of another kind."""
    if not out_dir.exists():
        return set()
    if not out_dir.is_dir():
        raise EmbeddingsError(f"{out_dir}: exists and is not a folder; pass a folder for the embeddings")
    meta = embeddings_meta(out_dir)
    if meta is None:
        stray = [p.name for p in out_dir.iterdir() if not p.name.startswith(".")]
        if stray:
            raise EmbeddingsError(f"{out_dir}: not an embeddings folder (no meta.json) and not empty ({stray[:3]}); "
                                  "pass a new or empty folder")
        return set()
    return read_hashes(out_dir, fingerprint)  # raises EmbeddingsError naming the folder on another fingerprint


def encode_trajectories(cfg, trajectory_files: Sequence[str | Path], out_dir: str | Path,
                        progress: bool = True) -> dict:
    """Encode the distinct open states of ``trajectory_files`` into the embeddings folder ``out_dir``.

    Returns ``{"states", "warm", "encoded", "truncated", "parts_written", "count", "fingerprint", "dim",
    "dtype", "out", "wall_s", "states_per_s"}``: ``states`` distinct open states in the input, ``warm``
    those already in the folder, ``encoded`` those encoded now, ``count`` rows in the folder after.
    Ray must be up (``raylib.rayutil.init_ray``).
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext
    from tqdm import tqdm

    from raylib.models.encoder import config_fingerprint

    t0 = time.perf_counter()
    files = check_trajectory_files(trajectory_files)
    out_dir = Path(out_dir)
    fingerprint = config_fingerprint(cfg)
    known = _check_out_dir(out_dir, fingerprint)
    v = cfg.value

    ctx = DataContext.get_current()
    bars, ctx.enable_progress_bars = ctx.enable_progress_bars, False  # one bar: ours, on written embeddings
    try:
        ds = ray.data.read_parquet([str(f) for f in files]).select_columns(list(NEEDED))
        ds = ds.map_batches(_open_states, batch_format="pyarrow")
        # A few shuffle partitions: the distinct states are small beside their embeddings.
        parts_n = max(1, min(len(files), 4 * v.encode_workers))
        distinct = ds.groupby("state_hash", num_partitions=parts_n).map_groups(
            functools.partial(_distinct, known=frozenset(known)), batch_format="pyarrow").materialize()
        total = distinct.count()
        warm = sum(int(b["warm"].sum()) for b in distinct.select_columns(["warm"]).iter_batches(batch_format="numpy"))
        todo = total - warm
        log.info("%d distinct open states in %d files: %d already encoded (warm), %d to encode; fingerprint %s",
                 total, len(files), warm, todo, fingerprint)
        written, truncated, dim = 0, 0, None
        parts: list[str] = []
        if todo:
            encoded = distinct.map_batches(_cold, batch_format="pyarrow").map_batches(
                _EncoderUDF,
                fn_constructor_kwargs={"cfg_json": cfg.model_dump(mode="json"), "fingerprint": fingerprint},
                batch_size=v.encode_batch_states, batch_format="numpy", **_encode_placement(cfg),
                compute=ActorPoolStrategy(size=v.encode_workers))
            with tqdm(total=todo, desc="encode", unit="state", disable=not progress) as bar:
                for batch in encoded.iter_batches(batch_size=v.part_states, batch_format="numpy"):
                    emb = np.asarray(batch["embedding"], dtype=np.float32)
                    hashes = [str(h) for h in batch["state_hash"]]
                    part = write_embeddings_part(out_dir, hashes, emb, fingerprint, v.dtype)
                    parts.append(part.name)
                    dim, written = emb.shape[1], written + len(hashes)
                    truncated += int(np.asarray(batch["cut"]).sum())
                    bar.update(len(hashes))
    finally:
        ctx.enable_progress_bars = bars
    meta = embeddings_meta(out_dir) or {}
    wall = time.perf_counter() - t0
    result = {"states": total, "warm": warm, "encoded": written, "truncated": truncated,
              "parts_written": len(parts), "parts": len(list_parts(out_dir)) if out_dir.exists() else 0,
              "count": meta.get("count", 0), "fingerprint": fingerprint, "dim": meta.get("dim", dim),
              "dtype": v.dtype, "out": str(out_dir), "wall_s": round(wall, 2),
              "states_per_s": round(written / wall, 2) if written else None}
    log.info("encode: %s", result)
    return result
