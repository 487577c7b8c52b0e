"""Evaluation theorems must be disjoint from every theorem the models trained on.

``read_trained_theorems`` collects the training theorems from the files the models were trained on:
trajectory parquet (``theorem`` and ``statement`` columns), SFT example parquet (``theorem``), or a JSONL
theorem file (``name``, ``statement``); a folder means every such file under it. ``check_disjoint``
raises ``OverlapError`` naming each evaluation theorem found among them, by name or by statement
(``raylib.data.sft.normalize_statement``: the same statement under another name is the same theorem).
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from raylib.data.sft import normalize_statement
from raylib.env.theorems import Theorem

log = logging.getLogger(__name__)

__all__ = ["OverlapError", "check_disjoint", "read_trained_theorems"]


class OverlapError(ValueError):
    """Evaluation theorems were among the training theorems; the message names them."""

    def __init__(self, message: str, theorems: Sequence[str]):
        super().__init__(message)
        self.theorems = list(theorems)


def _files(spec: str | Path) -> list[Path]:
    p = Path(spec)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.suffix in (".parquet", ".jsonl") and f.is_file())
    if p.is_file():
        return [p]
    found = sorted(Path(x) for x in glob.glob(str(spec), recursive=True))
    if not found:
        raise FileNotFoundError(f"{spec}: no trajectory, SFT example or theorem file matches; give the parquet "
                                "files (or their folder, or a glob) the models were trained on")
    return [f for g in found for f in _files(g)]


def read_trained_theorems(specs: Iterable[str | Path]) -> dict[str, str | None]:
    """theorem name -> statement (None when the file has no statement) over every file of ``specs``."""
    out: dict[str, str | None] = {}
    for spec in specs:
        for f in _files(spec):
            if f.suffix == ".parquet":
                names = pq.read_schema(f).names
                if "theorem" not in names:
                    raise ValueError(f"{f}: no 'theorem' column; expected trajectory or SFT example parquet")
                cols = ["theorem"] + (["statement"] if "statement" in names else [])
                t = pq.read_table(f, columns=cols)
                stmts = t.column("statement").to_pylist() if "statement" in cols else [None] * t.num_rows
                for name, stmt in zip(t.column("theorem").to_pylist(), stmts):
                    if out.get(name) is None:
                        out[name] = stmt
            else:
                for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                    if line.strip():
                        row = json.loads(line)
                        name = row.get("name") or row.get("theorem")
                        if not name:
                            raise ValueError(f"{f}:{i}: no 'name' or 'theorem' field")
                        out.setdefault(name, row.get("statement") or row.get("formal_statement"))
    return out


def check_disjoint(eval_theorems: Sequence[Theorem | str],
                   trained: Mapping[str, str | None] | Iterable[str | Theorem]) -> dict:
    """Raise ``OverlapError`` naming every evaluation theorem among the training theorems; else the figures.

    ``trained`` is a name -> statement map (``read_trained_theorems``) or an iterable of names / Theorems."""
    if isinstance(trained, Mapping):
        tmap = dict(trained)
    else:
        tmap = {}
        for t in trained:
            if isinstance(t, Theorem):
                tmap[t.name] = t.statement
            else:
                tmap[str(t)] = None
    by_stmt: dict[str, str] = {}
    for name, stmt in tmap.items():
        if stmt:
            by_stmt.setdefault(normalize_statement(stmt), name)
    hits: dict[str, str] = {}
    for t in eval_theorems:
        name, stmt = (t.name, t.statement) if isinstance(t, Theorem) else (str(t), None)
        if name in tmap:
            hits[name] = name
        elif stmt and (other := by_stmt.get(normalize_statement(stmt))) is not None:
            hits[name] = f"{name} (same statement as training theorem {other})"
    if hits:
        shown = ", ".join(list(hits.values())[:20])
        more = f" and {len(hits) - 20} more" if len(hits) > 20 else ""
        raise OverlapError(f"{len(hits)} of {len(eval_theorems)} evaluation theorems are among the "
                           f"{len(tmap)} theorems the models trained on: {shown}{more}. Evaluate on held-out "
                           "theorems (another split) or train without them.", sorted(hits))
    log.info("disjointness: %d evaluation theorems, %d training theorems, no overlap", len(eval_theorems), len(tmap))
    return {"checked": True, "eval_theorems": len(eval_theorems), "trained_theorems": len(tmap)}
