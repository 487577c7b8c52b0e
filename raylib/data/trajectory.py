"""Trajectory parquet: one file per searched theorem, one row per search-tree node.

Columns: run, iteration, theorem, statement, node_id, parent_id (null at the root),
depth, state (goals joined by blank lines; empty for a finished node), tactic that led here (null at
the root), step_logprob, energy (null when the EBM did not score the node: terminal states never go
through it), outcome (state | finished | error | timeout | sorry | verify_failed), on_proof_path, probe
(the tactic came from the search's probe list, not the generator; null in files older than the column), timings
(gen_s / lean_s / ebm_s spent producing the node), generator and encoder fingerprints, config_hash.

Files are written atomically (tmp file in the same folder, fsync, rename, fsync of the folder), so a
reader never sees half a file and an interrupted search leaves either the whole file or none.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

__all__ = [
    "ADDED_COLUMNS",
    "OUTCOMES",
    "TRAJECTORY_SCHEMA",
    "TrajectoryError",
    "atomic_write_table",
    "read_trajectories",
    "read_trajectory",
    "trajectory_files",
    "trajectory_path",
    "write_trajectory",
]

# The environment's outcome kinds, plus the search's verify_failed: goals closed but the whole-proof check failed.
OUTCOMES = ("state", "finished", "error", "timeout", "sorry", "verify_failed")

TIMINGS = pa.struct([("gen_s", pa.float64()), ("lean_s", pa.float64()), ("ebm_s", pa.float64())])

TRAJECTORY_SCHEMA = pa.schema([
    pa.field("run", pa.string(), nullable=False),
    pa.field("iteration", pa.int32(), nullable=False),
    pa.field("theorem", pa.string(), nullable=False),
    pa.field("statement", pa.string(), nullable=False),
    pa.field("node_id", pa.int64(), nullable=False),
    pa.field("parent_id", pa.int64(), nullable=True),
    pa.field("depth", pa.int32(), nullable=False),
    pa.field("state", pa.string(), nullable=False),
    pa.field("tactic", pa.string(), nullable=True),
    pa.field("step_logprob", pa.float64(), nullable=True),
    pa.field("energy", pa.float64(), nullable=True),
    pa.field("outcome", pa.string(), nullable=False),
    pa.field("on_proof_path", pa.bool_(), nullable=False),
    pa.field("probe", pa.bool_(), nullable=True),   # the tactic came from search.probe_tactics, not the generator
    pa.field("timings", TIMINGS, nullable=False),
    pa.field("generator_fingerprint", pa.string(), nullable=False),
    pa.field("encoder_fingerprint", pa.string(), nullable=True),
    pa.field("config_hash", pa.string(), nullable=False),
    pa.field("env_versions", pa.string(), nullable=True),  # JSON of the env's versions() (Lean, REPL, Mathlib)
], metadata={b"rayprover.kind": b"trajectory", b"rayprover.version": b"1"})


class TrajectoryError(ValueError):
    """A trajectory file or row that cannot be used; the message names the file and what is wrong."""


ADDED_COLUMNS = ("env_versions", "probe")  # nullable columns added after version 1; older files lack them


def _safe_name(theorem: str) -> str:
    """A file name for a theorem: readable prefix plus a hash, so distinct names never collide."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", theorem)[:80].strip("._") or "theorem"
    return f"{stem}-{hashlib.sha256(theorem.encode('utf-8')).hexdigest()[:10]}"


def trajectory_path(out_dir: str | Path, theorem: str) -> Path:
    """Where the trajectory of ``theorem`` lives inside ``out_dir`` (one file per theorem)."""
    return Path(out_dir) / f"{_safe_name(theorem)}.parquet"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_table(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` atomically: tmp file beside it, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _check_rows(rows: Sequence[Mapping], theorem: str) -> None:
    names = set(TRAJECTORY_SCHEMA.names)
    ids = set()
    for i, row in enumerate(rows):
        where = f"trajectory of {theorem!r}, row {i}"
        extra = set(row) - names
        if extra:
            raise TrajectoryError(f"{where}: unknown columns {sorted(extra)}; allowed: {TRAJECTORY_SCHEMA.names}")
        missing = [f.name for f in TRAJECTORY_SCHEMA if not f.nullable and row.get(f.name) is None]
        if missing:
            raise TrajectoryError(f"{where}: missing required columns {missing}")
        if row["theorem"] != theorem:
            raise TrajectoryError(f"{where}: theorem {row['theorem']!r} in a file for {theorem!r} (one file per theorem)")
        if row["outcome"] not in OUTCOMES:
            raise TrajectoryError(f"{where}: outcome {row['outcome']!r} not one of {', '.join(OUTCOMES)}")
        if row["node_id"] in ids:
            raise TrajectoryError(f"{where}: duplicate node_id {row['node_id']}")
        ids.add(row["node_id"])
    for i, row in enumerate(rows):
        parent = row.get("parent_id")
        if parent is not None and parent not in ids:
            raise TrajectoryError(f"trajectory of {theorem!r}, row {i}: parent_id {parent} is not a node of the tree")


def write_trajectory(rows: Sequence[Mapping], out_dir: str | Path, theorem: str | None = None) -> Path:
    """Validate ``rows`` (dicts keyed by the schema's columns) and write them atomically for one theorem."""
    if not rows:
        raise TrajectoryError("write_trajectory: no rows (a searched theorem has at least its root node)")
    theorem = theorem if theorem is not None else rows[0].get("theorem")
    if not isinstance(theorem, str) or not theorem:
        raise TrajectoryError("write_trajectory: rows name no theorem")
    _check_rows(rows, theorem)
    cols = {f.name: [r.get(f.name) for r in rows] for f in TRAJECTORY_SCHEMA}
    try:
        table = pa.Table.from_pydict(cols, schema=TRAJECTORY_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise TrajectoryError(f"trajectory of {theorem!r}: a value does not fit the schema: {e}") from None
    path = atomic_write_table(table, trajectory_path(out_dir, theorem))
    log.debug("wrote %d trajectory rows for %s to %s", len(rows), theorem, path)
    return path


def read_trajectory(path: str | Path) -> pa.Table:
    """Read one trajectory file, checking columns and types; errors name the file and what is missing."""
    path = Path(path)
    if not path.is_file():
        raise TrajectoryError(f"{path}: trajectory file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise TrajectoryError(f"{path}: not a readable parquet file: {e}") from None
    for name in ADDED_COLUMNS:  # files written before a column existed read back with nulls there
        if name not in table.column_names:
            field = TRAJECTORY_SCHEMA.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    missing = [n for n in TRAJECTORY_SCHEMA.names if n not in table.column_names]
    if missing:
        raise TrajectoryError(f"{path}: missing trajectory columns {missing} "
                              f"(has {table.column_names}); was it written by raylib.data.trajectory?")
    table = table.select(TRAJECTORY_SCHEMA.names)
    bad = []
    for field in TRAJECTORY_SCHEMA:
        col = table.column(field.name)
        if col.type != field.type:
            try:
                table = table.set_column(table.schema.get_field_index(field.name), field,
                                         col.cast(field.type, safe=True))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad.append(f"{field.name} is {col.type}, expected {field.type}")
                continue
        if not field.nullable and table.column(field.name).null_count:
            bad.append(f"{field.name} has {table.column(field.name).null_count} nulls")
    if bad:
        raise TrajectoryError(f"{path}: bad trajectory columns: {'; '.join(bad)}")
    return table.cast(TRAJECTORY_SCHEMA)


def trajectory_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files named by ``paths``: a folder (its ``*.parquet``, sorted), a glob, a file, or a list of files.

    The one reading of a ``--trajectories`` argument for every job and stage. A string that names nothing
    and matches no file is a ``TrajectoryError``; a folder or a list may give no files (``[]``).
    """
    if not isinstance(paths, (str, Path)):
        return [Path(x) for x in paths]
    p = Path(paths)
    if p.is_dir():
        return sorted(p.glob("*.parquet"))
    if p.exists():
        return [p]
    matches = sorted(Path(x) for x in glob.glob(str(paths), recursive=True) if Path(x).is_file())
    if not matches:
        raise TrajectoryError(f"{paths}: no such trajectory file or folder, and no file matches it as a glob "
                              "(run the prove job first)")
    return matches


def read_trajectories(paths: str | Path | Iterable[str | Path]) -> pa.Table:
    """Read and concatenate trajectory files named as ``trajectory_files`` reads them."""
    files = trajectory_files(paths)
    if not files:
        return TRAJECTORY_SCHEMA.empty_table()
    return pa.concat_tables([read_trajectory(f) for f in files])
