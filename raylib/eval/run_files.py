"""Reading a run folder for the report: every file tolerated missing, torn or half-written."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from raylib.eval.metrics import trajectory_stats

log = logging.getLogger(__name__)

__all__ = ["NOT_RUN", "STAGES", "collect"]

STAGES = ("prove", "sft_data", "sft", "probe", "encode", "ebm", "evaluate", "gate", "noise")  # noise: iteration 0 only
NOT_RUN = "not run yet"


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _jsonl(path: Path) -> list[dict]:
    out = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line of a live run
    except OSError:
        pass
    return out


def _iterations(run_dir: Path) -> list[int]:
    ks = []
    for d in run_dir.glob("iter_*"):
        if d.is_dir() and d.name[5:].isdigit():
            ks.append(int(d.name[5:]))
    return sorted(ks)


def _status(d: Path) -> str:
    """complete, running (folder without a complete record) or not run yet."""
    if not d.is_dir():
        return NOT_RUN
    rec = _json(d / "stage.json")
    return "complete" if isinstance(rec, dict) and rec.get("status") == "complete" else "running"


def _record(d: Path) -> dict:
    rec = _json(d / "stage.json")
    return rec if isinstance(rec, dict) and rec.get("status") == "complete" else {}


def collect(run_dir: Path) -> dict[str, Any]:
    """Everything the report shows, read from the files (missing pieces are None / empty)."""
    run_dir = Path(run_dir)
    iters = {}
    for k in _iterations(run_dir):
        d = run_dir / f"iter_{k}"
        traj = d / "prove" / "trajectories"
        files = sorted(traj.glob("*.parquet")) if traj.is_dir() else []
        iters[k] = {
            "status": {s: _status(d / s) for s in STAGES},
            "wall_s": {s: _record(d / s).get("wall_s") for s in STAGES},
            "outputs": {s: _record(d / s).get("outputs") or {} for s in STAGES},
            "prove": _json(d / "prove" / "summary.json"),
            "sources": _json(d / "sft_data" / "sources.json"),
            "sft_history": _jsonl(d / "sft" / "history.jsonl"), "sft_result": _json(d / "sft" / "result.json"),
            "probe": _json(d / "probe" / "probe.json"),
            "ebm_history": _jsonl(d / "ebm" / "history.jsonl"), "ebm_result": _json(d / "ebm" / "result.json"),
            "eval": _json(d / "evaluate" / "eval.json"), "gate": _json(d / "gate" / "decision.json"),
            "trajectories": _trajectory_stats(files),
        }
    return {"run_dir": str(run_dir), "name": run_dir.name, "summary": _json(run_dir / "summary.json") or {},
            "run": _json(run_dir / "run.json") or {}, "iterations": iters}


def _trajectory_stats(files: list[Path]) -> dict | None:
    if not files:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ["run", "iteration", "theorem", "node_id", "parent_id", "depth", "outcome", "on_proof_path"]
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f, columns=cols))
        except Exception as e:  # noqa: BLE001 - a file being written by a live run is skipped
            log.warning("report: %s unreadable, skipped: %s", f, e)
    return trajectory_stats(pa.concat_tables(tables)) if tables else None
