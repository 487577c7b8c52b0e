"""Content hashing: the one place that says how rayprover names content by its hash.

Every artifact key (state hashes, config hashes, input-file hashes, run and checkpoint ids) goes through
these functions, so two places never hash the same thing two slightly different ways. Model and adapter
directories are hashed by sampling their weights (``raylib.models.loading.model_hash``), built on
``new_hasher`` here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DEFAULT_DIGITS = 16


def new_hasher():
    """The hash function every key uses (sha256)."""
    return hashlib.sha256()


def text_hash(text: str, digits: int = DEFAULT_DIGITS) -> str:
    """Hex digest of a UTF-8 string (a proof state, a theorem name, a statement)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]


def json_hash(obj: Any, digits: int = DEFAULT_DIGITS) -> str:
    """Hex digest of a JSON-serializable object, independent of dict key order."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return text_hash(blob, digits)


def file_hash(*paths: str | Path | None, digits: int = DEFAULT_DIGITS) -> str:
    """Hex digest of the bytes of the given files in order (missing paths and ``None`` are skipped)."""
    h = hashlib.sha256()
    for p in paths:
        if p is not None and Path(p).is_file():
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:digits]


def state_hash(state: str) -> str:
    """The key of a proof state's text (goals as Lean prints them): embeddings, caches, dedupe."""
    return text_hash(state, DEFAULT_DIGITS)
