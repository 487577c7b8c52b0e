"""The output folder of a training job (SFT, EBM): one policy for "already done" and stale checkpoints.

``<out>/COMPLETE`` names the job id that finished there; ``<out>/train/<run>`` holds the checkpoints of one
resume key. A rerun of the same job does nothing; a run with another resume key starts afresh, and
checkpoints of other keys are removed so they are never resumed by mistake.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def complete_marker(out: Path) -> Path:
    return out / "COMPLETE"


def open_job_dir(out: Path, run_name: str, job_id: str, what: str, require: Path | None = None) -> bool:
    """True when ``out`` already holds this finished job (and ``require`` exists, when given).

    Otherwise makes ``out``, removes its COMPLETE marker and every checkpoint folder under ``out/train``
    other than ``run_name``, and returns False: the caller trains (resuming ``out/train/run_name``).
    """
    done = complete_marker(out)
    if done.is_file() and json.loads(done.read_text()).get("job") == job_id and (require is None or require.exists()):
        log.info("%s job %s already complete in %s: nothing to do", what, job_id, out)
        return True
    out.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    storage = out / "train"
    if storage.is_dir():
        for stale in storage.iterdir():
            if stale.name != run_name:
                log.warning("%s holds checkpoints of other data or settings: removed, training %s afresh", stale,
                            run_name)
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return False
