"""What produced a result: the Lean toolchain, the REPL commit and the Mathlib commit (or the built-in's version).

Every value is a string or None (None: could not be read); reading never raises.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)


def rayprover_version() -> str:
    try:
        from importlib.metadata import version
        return version("rayprover")
    except Exception:  # noqa: BLE001 - not installed as a package
        return "unknown"


def builtin_versions() -> dict:
    return {"backend": "builtin", "version": rayprover_version()}


def _run(cmd: Sequence[str], cwd: str | None) -> str | None:
    try:
        out = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        log.info("version query %s failed: %s", " ".join(cmd), e)
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def manifest_revs(project: Path) -> dict[str, str]:
    """Package name (lower case) -> git rev from ``lake-manifest.json`` (every manifest version)."""
    path = project / "lake-manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for pkg in data.get("packages") or []:
        entry = pkg.get("git", pkg) if isinstance(pkg, dict) else {}   # old manifests: {"git": {...}}
        if isinstance(entry, dict) and entry.get("name") and entry.get("rev"):
            out[str(entry["name"]).lower()] = str(entry["rev"])
    return out


def repl_versions(backend: str, command: Sequence[str], cwd: str | None) -> dict:
    """Versions for a REPL backend; ``cwd`` is the Lean project the REPL runs in."""
    if backend == "builtin":
        return builtin_versions()
    project = Path(cwd or ".")
    revs = manifest_revs(project)
    lean = _run(["lean", "--version"], cwd)
    repl_commit = revs.get("repl")
    if repl_commit is None and cwd:  # the project is the REPL's own checkout
        repl_commit = _run(["git", "rev-parse", "HEAD"], cwd)
    return {"backend": backend, "lean": lean, "repl_commit": repl_commit, "mathlib_commit": revs.get("mathlib"),
            "command": " ".join(command)}
