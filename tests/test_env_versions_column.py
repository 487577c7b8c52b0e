"""Trajectories record which Lean, REPL and Mathlib produced them (``env_versions``: JSON of versions()),
and files written before the column existed still read, with nulls there."""

import json

import pyarrow as pa
import pytest
import pyarrow.parquet as pq

from raylib.data.trajectory import TRAJECTORY_SCHEMA, read_trajectory, write_trajectory


def _row(**kw):
    row = {"run": "r", "iteration": 0, "theorem": "t", "statement": "theorem t : True", "node_id": 0,
           "parent_id": None, "depth": 0, "state": "⊢ True", "tactic": None, "step_logprob": None, "energy": None,
           "outcome": "state", "on_proof_path": True, "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0},
           "generator_fingerprint": "g", "encoder_fingerprint": None, "config_hash": "c"}
    row.update(kw)
    return row


def test_env_versions_round_trip_and_old_files_read(tmp_path):
    versions = {"backend": "lean_repl", "lean": "Lean (version 4.9.0)", "repl_commit": "a" * 40,
                "mathlib_commit": "b" * 40}
    path = write_trajectory([_row(env_versions=json.dumps(versions, sort_keys=True))], tmp_path / "new")
    got = read_trajectory(path).column("env_versions").to_pylist()
    assert [json.loads(v) for v in got] == [versions]
    # a file from before the column: same schema minus env_versions
    old_schema = pa.schema([f for f in TRAJECTORY_SCHEMA if f.name != "env_versions"])
    old = pa.Table.from_pylist([{k: v for k, v in _row().items()}], schema=old_schema)
    pq.write_table(old, tmp_path / "old.parquet")
    table = read_trajectory(tmp_path / "old.parquet")
    assert table.schema == TRAJECTORY_SCHEMA and table.column("env_versions").to_pylist() == [None]


def test_encode_accepts_trajectory_files_older_than_the_added_columns(tmp_path):
    from raylib.data.encode import check_trajectory_files
    from raylib.data.trajectory import ADDED_COLUMNS, TrajectoryError

    old_schema = pa.schema([f for f in TRAJECTORY_SCHEMA if f.name not in ADDED_COLUMNS])
    pq.write_table(pa.Table.from_pylist([_row()], schema=old_schema), tmp_path / "old.parquet")
    assert check_trajectory_files([tmp_path / "old.parquet"]) == [tmp_path / "old.parquet"]
    no_state = pa.schema([f for f in old_schema if f.name != "state"])
    pq.write_table(pa.Table.from_pylist([_row()], schema=no_state), tmp_path / "bad.parquet")
    with pytest.raises(TrajectoryError, match="missing columns \\['state'\\]"):
        check_trajectory_files([tmp_path / "bad.parquet"])
