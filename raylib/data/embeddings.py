"""Embeddings folder: state embeddings of one encoder fingerprint, written in parts, read as one array.

Format of a folder ``DIR``:

- ``DIR/meta.json``: ``{"fingerprint", "dim", "dtype", "count"}``. ``fingerprint`` is the encoder's
  (model, adapter, dtype, pooling, max length); ``dtype`` is the stored precision (``float32``,
  ``float16`` or ``bfloat16``); ``count`` the rows over all parts.
- ``DIR/part-*.parquet``: columns ``state_hash: string`` (``raylib.hashing.state_hash`` of the state
  text), ``embedding: list<float32>`` (values rounded to the stored dtype, so what is read is what a
  model of that dtype produced) and ``fingerprint: string``.

A folder holds one fingerprint only: writing or reading with another raises ``EmbeddingsError`` naming
the folder (an EBM trained on bf16 embeddings and served fp16 ones saw cosine 0.945). Parts and meta are
written atomically, so a killed writer leaves whole parts or none.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylib.data.trajectory import atomic_write_table
from raylib.hashing import json_hash

log = logging.getLogger(__name__)

__all__ = ["EMBEDDINGS_SCHEMA", "STORED_DTYPES", "EmbeddingsError", "embeddings_meta", "list_parts",
           "part_path", "read_embeddings", "read_hashes", "round_to_dtype", "write_embeddings_part"]

META = "meta.json"
STORED_DTYPES = ("float32", "float16", "bfloat16")
EMBEDDINGS_SCHEMA = pa.schema([
    pa.field("state_hash", pa.string(), nullable=False),
    pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    pa.field("fingerprint", pa.string(), nullable=False),
], metadata={b"rayprover.kind": b"embeddings", b"rayprover.version": b"1"})


class EmbeddingsError(ValueError):
    """An embeddings folder or part that cannot be used; the message names the folder and what to do."""


def round_to_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    """float32 copy of ``array`` with values rounded to ``dtype`` (bfloat16: round to nearest even)."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    if dtype == "float32":
        return a.copy()
    if dtype == "float16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        u = a.view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        return u.astype(np.uint32).view(np.float32)
    raise EmbeddingsError(f"stored dtype {dtype!r} is not one of {', '.join(STORED_DTYPES)}")


def list_parts(dir: str | Path) -> list[Path]:
    """The part files of a folder, sorted by name (temporary files of a killed writer are not parts)."""
    return sorted(Path(dir).glob("part-*.parquet"))


def part_path(dir: str | Path, name: str) -> Path:
    """Where part ``name`` lives: ``DIR/part-<name>.parquet``."""
    return Path(dir) / f"part-{name}.parquet"


def embeddings_meta(dir: str | Path) -> dict | None:
    """The folder's meta.json as a dict, or None when the folder has none."""
    p = Path(dir) / META
    if not p.is_file():
        return None
    try:
        meta = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EmbeddingsError(f"{p}: unreadable embeddings meta ({e}); delete the folder {dir} and "
                              "encode again") from None
    missing = [k for k in ("fingerprint", "dim", "dtype", "count") if k not in meta]
    if missing:
        raise EmbeddingsError(f"{p}: embeddings meta lacks {missing}; delete the folder {dir} and encode again")
    return meta


def _write_meta(dir: Path, meta: dict) -> None:
    p = dir / META
    tmp = p.with_name(f".{META}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(meta, indent=2))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def _check_meta(dir: Path, meta: dict, fingerprint: str, dim: int | None, dtype: str | None) -> None:
    if meta["fingerprint"] != fingerprint:
        raise EmbeddingsError(
            f"{dir}: embeddings folder holds fingerprint {meta['fingerprint']!r}, not {fingerprint!r}; embeddings of "
            "another model, adapter, dtype, pooling or max length are never mixed: use another folder")
    if dim is not None and int(meta["dim"]) != dim:
        raise EmbeddingsError(f"{dir}: embeddings folder holds dim {meta['dim']}, not {dim}")
    if dtype is not None and meta["dtype"] != dtype:
        raise EmbeddingsError(f"{dir}: embeddings folder stores {meta['dtype']}, not {dtype}; use another folder")


def _count_rows(dir: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in list_parts(dir))


def write_embeddings_part(dir: str | Path, hashes: Sequence[str], array: np.ndarray, fingerprint: str,
                          dtype: str, name: str | None = None) -> Path:
    """Write one part (atomically) and update meta.json; returns the part's path.

    ``array`` is ``[len(hashes), dim]``; values are rounded to ``dtype``. ``name`` names the part
    (``part-<name>.parquet``; default: a hash of its state hashes). The folder's meta is created on the
    first write; a folder of another fingerprint, dim or dtype is refused.
    """
    dir = Path(dir)
    if dtype not in STORED_DTYPES:
        raise EmbeddingsError(f"stored dtype {dtype!r} is not one of {', '.join(STORED_DTYPES)}")
    arr = np.asarray(array)
    if arr.ndim != 2 or arr.shape[0] != len(hashes):
        raise EmbeddingsError(f"{dir}: embeddings of shape {arr.shape} for {len(hashes)} state hashes")
    if not np.isfinite(arr).all():
        raise EmbeddingsError(f"{dir}: refusing to write NaN or Inf embeddings")
    dim = int(arr.shape[1])
    dir.mkdir(parents=True, exist_ok=True)
    meta = embeddings_meta(dir)
    if meta is not None:
        _check_meta(dir, meta, fingerprint, dim, dtype)
    else:
        meta = {"fingerprint": fingerprint, "dim": dim, "dtype": dtype, "count": 0}
        _write_meta(dir, meta)
    values = round_to_dtype(arr, dtype)
    table = pa.Table.from_arrays([
        pa.array([str(h) for h in hashes], pa.string()),
        pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), dim).cast(pa.list_(pa.float32())),
        pa.array([fingerprint] * len(hashes), pa.string()),
    ], schema=EMBEDDINGS_SCHEMA)
    path = atomic_write_table(table, part_path(dir, name or json_hash(list(hashes))))
    _write_meta(dir, {**meta, "count": _count_rows(dir)})
    log.debug("wrote %d embeddings to %s", len(hashes), path)
    return path


def _read_part(path: Path, fingerprint: str, columns: list[str]) -> pa.Table:
    try:
        table = pq.read_table(path, columns=columns + (["fingerprint"] if "fingerprint" not in columns else []))
    except (pa.ArrowInvalid, OSError, KeyError) as e:
        raise EmbeddingsError(f"{path}: not an embeddings part ({e}); delete it and encode again") from None
    fps = set(table.column("fingerprint").unique().to_pylist())
    if fps - {fingerprint}:
        raise EmbeddingsError(f"{path}: rows of fingerprint {sorted(fps - {fingerprint})} in a folder of "
                              f"{fingerprint!r}; delete this part and encode again")
    return table


def _open(dir: str | Path, fingerprint: str | None) -> tuple[Path, dict]:
    dir = Path(dir)
    if not dir.is_dir():
        raise EmbeddingsError(f"{dir}: no such embeddings folder (run the encode job: python -m jobs.encode)")
    meta = embeddings_meta(dir)
    if meta is None:
        raise EmbeddingsError(f"{dir}: not an embeddings folder (no {META}); run the encode job "
                              "(python -m jobs.encode) to make one")
    if fingerprint is not None:
        _check_meta(dir, meta, fingerprint, None, None)
    return dir, meta


def read_hashes(dir: str | Path, fingerprint: str | None = None) -> set[str]:
    """State hashes already in the folder (only the hash column is read); checks the fingerprint."""
    dir, meta = _open(dir, fingerprint)
    out: set[str] = set()
    for p in list_parts(dir):
        out.update(_read_part(p, meta["fingerprint"], ["state_hash"]).column("state_hash").to_pylist())
    return out


def read_embeddings(dir: str | Path, fingerprint: str | None = None) -> tuple[list[str], np.ndarray, dict]:
    """(state hashes, float32 array ``[n, dim]``, meta) of a folder; a hash stored twice is returned once.

    Raises EmbeddingsError naming the folder when meta.json is missing or the fingerprint differs.
    """
    dir, meta = _open(dir, fingerprint)
    dim = int(meta["dim"])
    hashes: list[str] = []
    chunks: list[np.ndarray] = []
    seen: set[str] = set()
    for p in list_parts(dir):
        table = _read_part(p, meta["fingerprint"], ["state_hash", "embedding"])
        hs = table.column("state_hash").to_pylist()
        emb = table.column("embedding").combine_chunks()
        flat = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if flat.size != len(hs) * dim:
            raise EmbeddingsError(f"{p}: embeddings are not all of dim {dim}; delete this part and encode again")
        arr = flat.reshape(len(hs), dim)
        keep = [i for i, h in enumerate(hs) if h not in seen]
        seen.update(hs)
        hashes.extend(hs[i] for i in keep)
        chunks.append(arr[keep] if len(keep) != len(hs) else arr)
    array = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
    return hashes, array, meta
