"""Theorems and theorem files.

A theorem file is JSONL, one object per line:

    {"name": "and_swap", "statement": "theorem and_swap (p q : Prop) (h : p ∧ q) : q ∧ p",
     "header": "", "split": "valid"}

``statement`` is a Lean theorem statement without its proof; a trailing ``:= by sorry``,
``:= by`` or ``:= sorry`` is removed. ``header`` (imports, ``open`` lines), ``split`` and ``file_path`` (LeanDojo) are optional.
miniF2F-style rows (``formal_statement`` and ``header``, as in DeepSeek-Prover's data) load too.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

_PROOF_TAIL = re.compile(r"\s*:=\s*(by\s*(sorry)?|sorry)?\s*$", re.S)
_DECL = re.compile(r"^\s*(theorem|lemma|example)\b")
SPLITS = ("train", "valid", "test")


class TheoremFileError(ValueError):
    """A theorem file or row that cannot be used; the message names the file, line and fix."""


@dataclass(frozen=True)
class Theorem:
    name: str
    statement: str
    header: str = ""
    split: str | None = None
    file_path: str | None = None  # LeanDojo: the file of a traced repository that holds the theorem

    def command(self, proof: str = "by sorry") -> str:
        """The Lean command for this theorem with the given proof (``by sorry`` by default)."""
        return f"{self.statement} := {proof}"

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None,)}


def strip_proof(statement: str) -> str:
    """Remove a trailing ``:= by sorry`` / ``:= by`` / ``:= sorry`` / ``:=`` from a statement."""
    return _PROOF_TAIL.sub("", statement.rstrip())


def theorem_from_row(row: dict, where: str = "<row>") -> Theorem:
    """Build a Theorem from one JSON object (native or miniF2F-style), or raise TheoremFileError."""
    if not isinstance(row, dict):
        raise TheoremFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    stmt = row.get("statement", row.get("formal_statement"))
    if not isinstance(stmt, str) or not stmt.strip():
        raise TheoremFileError(
            f"{where}: missing 'statement' (or miniF2F 'formal_statement'): a Lean theorem statement "
            f"such as \"theorem t (p : Prop) (h : p) : p\"; keys present: {sorted(row)}")
    stmt = strip_proof(stmt)
    if not _DECL.match(stmt):
        raise TheoremFileError(f"{where}: statement must start with 'theorem', 'lemma' or 'example': {stmt[:80]!r}")
    name = row.get("name") or name_of(stmt)
    if not isinstance(name, str) or not name:
        raise TheoremFileError(f"{where}: missing 'name' and the statement names none (an 'example')")
    header = row.get("header") or ""
    if not isinstance(header, str):
        raise TheoremFileError(f"{where}: 'header' must be a string of Lean commands, got {type(header).__name__}")
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise TheoremFileError(f"{where}: 'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    file_path = row.get("file_path")
    if file_path is not None and not isinstance(file_path, str):
        raise TheoremFileError(f"{where}: 'file_path' must be a path string inside the traced repository")
    return Theorem(name=name, statement=stmt, header=header.strip(), split=split, file_path=file_path)


def name_of(stmt: str) -> str | None:
    m = re.match(r"^\s*(?:theorem|lemma)\s+([^\s(:{\[]+)", stmt)
    return m.group(1) if m else None


def load_theorems(path: str | Path) -> list[Theorem]:
    """Load a JSONL theorem file; every bad line is reported with its line number."""
    path = Path(path)
    if not path.is_file():
        raise TheoremFileError(f"{path}: theorem file not found")
    out: list[Theorem] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TheoremFileError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            thm = theorem_from_row(row, where)
            if thm.name in seen:
                raise TheoremFileError(f"{where}: duplicate theorem name {thm.name!r} (first on line {seen[thm.name]})")
            seen[thm.name] = lineno
            out.append(thm)
    if not out:
        raise TheoremFileError(f"{path}: no theorems in file")
    return out


def save_theorems(theorems: Iterable[Theorem], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for t in theorems:
            f.write(json.dumps(t.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def theorems_from_config(tcfg) -> list[Theorem]:
    """The theorems a ``TheoremsSection`` names: a JSONL file or a built-in set, filtered by split and limit."""
    if tcfg.source.startswith("builtin:"):
        from raylib.env.builtin.corpus import builtin_theorems
        kind = tcfg.source.split(":", 1)[1]
        theorems = builtin_theorems(kind, n=tcfg.n, seed=tcfg.seed)
    else:
        theorems = load_theorems(tcfg.source)
    if tcfg.split is not None:
        theorems = [t for t in theorems if t.split == tcfg.split]
        if not theorems:
            raise TheoremFileError(f"{tcfg.source}: no theorem in split {tcfg.split!r}")
    return theorems[: tcfg.limit] if tcfg.limit else theorems


def job_theorems(tcfg, path: str | None = None, limit: int | None = None) -> list[Theorem]:
    """A job's theorems: the ``--theorems`` file when given, else the config's set; the first ``limit``."""
    theorems = load_theorems(path) if path else theorems_from_config(tcfg)
    return theorems[:limit] if limit else theorems
