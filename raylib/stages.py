"""Stage folders and stage records: what makes a long run resumable and its outputs trustworthy.

A run lives in ``<run.root>/<run.name>/``. Each stage of iteration ``k`` writes under
``iter_<k>/<stage>/`` and, last, ``stage.json``: the record of what it consumed and made::

    {"stage", "iteration", "key", "config_hash", "fingerprints": {...}, "inputs": {path: hash},
     "params": {...}, "outputs": {...}, "wall_s", "finished_at", "status": "complete"}

``key`` hashes everything that decides the stage's result (config hash, model/encoder fingerprints,
input files by content, parameters). A stage whose record is complete with the same key is skipped and
its recorded outputs reused. A stage started but not finished (``started.json`` written, no complete
record) is resumed in place when its key is unchanged (the stage functions resume from their own
partial files: per-theorem results, training checkpoints); when the key changed, or a complete record
has another key, the folder is cleared and the stage runs afresh. Records are written atomically (a
temporary file renamed), the complete record last, so a kill at any moment leaves either no record or a
whole one.

``run.json`` pins the run to the config and model it was started with: ``check_run`` refuses a run
folder made by another config or model and names the difference, unless the caller says from which
stage to restart (``--from-stage``); ``invalidate_from`` then drops the records from that stage on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from raylib.hashing import file_hash, json_hash

log = logging.getLogger(__name__)

__all__ = ["MissingInputError", "RunMismatchError", "Stage", "StageRef", "atomic_write_json", "check_run",
           "config_diff", "hash_inputs", "invalidate_from", "parse_stage_ref", "read_json", "write_run_record"]

RECORD = "stage.json"
STARTED = "started.json"
RUN_RECORD = "run.json"


class RunMismatchError(RuntimeError):
    """The run folder was made by another config or model; the message names the difference and the fix."""


class MissingInputError(RuntimeError):
    """A stage's input is missing; the message names the stage that makes it."""


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Write JSON to ``path`` through a temporary file, fsynced and renamed (never a torn file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_json(path: Path) -> dict | None:
    """The JSON object at ``path``; None when missing or unreadable (a torn write counts as missing)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def hash_inputs(paths: Sequence[Path], root: Path | None = None) -> dict[str, str]:
    """``{path: content hash}`` for input files (folders: every file inside, sorted); paths shown relative
    to ``root`` when under it, so a moved run folder keeps its keys."""
    out: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(f"{f}: input file not found")
            name = str(f.relative_to(root)) if root is not None and f.is_relative_to(root) else str(f)
            out[name] = file_hash(f)
    return out


@dataclass
class Stage:
    """One stage of one iteration: its folder, its record, and the skip/resume decision."""

    run_dir: Path
    iteration: int
    name: str

    @property
    def dir(self) -> Path:
        return Path(self.run_dir) / f"iter_{self.iteration}" / self.name

    @property
    def label(self) -> str:
        return f"iter_{self.iteration}/{self.name}"

    def record(self) -> dict | None:
        rec = read_json(self.dir / RECORD)
        return rec if rec and rec.get("status") == "complete" else None

    def outputs(self, maker: str | None = None) -> dict:
        """The outputs of the complete record; MissingInputError naming the stage when there is none."""
        rec = self.record()
        if rec is None:
            raise MissingInputError(f"{self.dir}: no complete record of stage {self.label}; it is made by the "
                                    f"{maker or self.name} stage of iteration {self.iteration}: run the iterate "
                                    f"job without --from-stage past it")
        return rec["outputs"]

    @staticmethod
    def make_key(config_hash: str, fingerprints: dict, inputs: dict, params: dict) -> str:
        return json_hash({"config_hash": config_hash, "fingerprints": fingerprints, "inputs": inputs,
                          "params": params})

    def run(self, fn: Callable[[Path], dict], *, config_hash: str, fingerprints: dict | None = None,
            inputs: Sequence[Path] = (), params: dict | None = None, root: Path | None = None,
            adopt: bool = False) -> tuple[dict, bool]:
        """Run ``fn(stage_dir) -> outputs`` unless complete with the same key; return (outputs, skipped).

        ``inputs`` must exist (MissingInputError otherwise, from the caller's check); their content
        hashes enter the key, with the config hash, fingerprints and params. ``adopt`` (a stage before
        ``--from-stage``): a complete record is kept whatever its key and re-stamped with the new key, so
        later reruns of the same command skip it too.
        """
        fingerprints, params = fingerprints or {}, params or {}
        hashes = hash_inputs(inputs, root)
        key = self.make_key(config_hash, fingerprints, hashes, params)
        rec = read_json(self.dir / RECORD)
        if rec and rec.get("status") == "complete":
            if rec.get("key") == key:
                log.info("%s complete with the same inputs: skipped", self.label)
                return rec["outputs"], True
            if adopt:
                log.info("%s kept as it is (before --from-stage), though made from other inputs", self.label)
                atomic_write_json(self.dir / RECORD, dict(rec, key=key, adopted_from=rec.get("key")))
                return rec["outputs"], True
            log.info("%s was made from other inputs (key %s, now %s): redone", self.label, rec.get("key"), key)
            self.clear()
        else:
            started = read_json(self.dir / STARTED)
            if started and started.get("key") != key:
                log.info("%s was started from other inputs: cleared and redone", self.label)
                self.clear()
            elif started:
                log.info("%s was interrupted: resuming", self.label)
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / STARTED, {"key": key, "started_at": time.time()})
        t0 = time.perf_counter()
        outputs = fn(self.dir)
        record = {"stage": self.name, "iteration": self.iteration, "key": key, "config_hash": config_hash,
                  "fingerprints": fingerprints, "inputs": hashes, "params": params, "outputs": outputs,
                  "wall_s": round(time.perf_counter() - t0, 2), "finished_at": time.time(), "status": "complete"}
        atomic_write_json(self.dir / RECORD, record)
        return outputs, False

    def clear(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)


# -- run-level pinning ----------------------------------------------------------------------------

def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def config_diff(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two config dumps, one ``key: old -> new`` per changed setting."""
    a, b = _flatten(old), _flatten(new)
    return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


def write_run_record(run_dir: Path, config: dict, config_hash: str, model_fingerprint: str) -> None:
    atomic_write_json(Path(run_dir) / RUN_RECORD, {"config": config, "config_hash": config_hash,
                                                    "model_fingerprint": model_fingerprint})


def check_run(run_dir: Path, config: dict, config_hash: str, model_fingerprint: str,
              from_stage: str | None, ignore: Sequence[str] = ()) -> list[str]:
    """Refuse (RunMismatchError) a run folder made by another config or model unless ``from_stage``.

    Returns the differences found (empty for a new or identical run). Keys under ``ignore`` (settings
    that do not change results, e.g. the iteration count) are not differences.
    """
    rec = read_json(Path(run_dir) / RUN_RECORD)
    if rec is None:
        return []
    diffs = [d for d in config_diff(rec.get("config", {}), config)
             if not any(d.startswith(i + ".") or d.startswith(i + ":") for i in ignore)]
    if rec.get("model_fingerprint") != model_fingerprint:
        diffs.append(f"model fingerprint: {rec.get('model_fingerprint')!r} -> {model_fingerprint!r}")
    if diffs and not from_stage:
        shown = "\n  ".join(diffs[:20]) + (f"\n  ... and {len(diffs) - 20} more" if len(diffs) > 20 else "")
        raise RunMismatchError(
            f"{run_dir} was made by another config or model:\n  {shown}\nUse another run.name, or say where "
            "to restart with --from-stage STAGE (or iter_K/STAGE): the stages before it are kept as they are.")
    return diffs


@dataclass(frozen=True)
class StageRef:
    iteration: int | None
    stage: str


def parse_stage_ref(text: str, stages: Sequence[str]) -> StageRef:
    """``STAGE`` or ``iter_K/STAGE``; ValueError naming the known stages for anything else."""
    it: int | None = None
    name = text.strip()
    if "/" in name:
        head, name = name.split("/", 1)
        if not head.startswith("iter_") or not head[5:].isdigit():
            raise ValueError(f"--from-stage {text!r}: expected STAGE or iter_K/STAGE, e.g. iter_2/sft")
        it = int(head[5:])
    if name not in stages:
        raise ValueError(f"--from-stage {text!r}: unknown stage {name!r}; stages are {', '.join(stages)}")
    return StageRef(it, name)


def invalidate_from(run_dir: Path, ref: StageRef, stages: Sequence[str]) -> int:
    """Drop the complete records of ``ref.stage`` of iteration ``ref.iteration`` and of every later stage
    (later in the same iteration, then every later iteration) so they run again; returns how many.

    ``ref.iteration`` None: the latest iteration that has a folder (the one the run stopped in).
    """
    run_dir = Path(run_dir)
    iters = iteration_dirs(run_dir)
    if not iters:
        return 0
    k = ref.iteration if ref.iteration is not None else iters[-1]
    dropped = 0
    for it in iters:
        for i, name in enumerate(stages):
            if it > k or (it == k and i >= stages.index(ref.stage)):
                st = Stage(run_dir, it, name)
                if st.dir.exists():
                    st.clear()
                    dropped += 1
    log.info("--from-stage iter_%d/%s: %d stage folders cleared to run again", k, ref.stage, dropped)
    return dropped


# -- the run summary ------------------------------------------------------------------------------

def iteration_dirs(run_dir: Path) -> list[int]:
    """Iterations that hold at least one stage folder, in order."""
    return sorted(int(p.name[5:]) for p in Path(run_dir).glob("iter_*")
                  if p.name[5:].isdigit() and any(x.is_dir() for x in p.iterdir()))


def run_summary(run_dir: Path) -> dict:
    """``summary.json`` content from the stage records alone: the baseline (iteration 0), one entry per
    finished iteration (its gate record complete) and the stage wall times, including unfinished ones."""
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"iterations": [], "baseline": None, "in_progress": None}
    for k in iteration_dirs(run_dir):
        walls, recs = {}, {}
        for d in sorted((run_dir / f"iter_{k}").iterdir()):
            rec = Stage(run_dir, k, d.name).record() if d.is_dir() else None
            if rec:
                recs[d.name], walls[d.name] = rec, rec.get("wall_s")
        ev = recs.get("evaluate", {}).get("outputs", {})
        if k == 0:
            if ev:
                out["baseline"] = {"iteration": 0, "proof_rate_llm": ev.get("proof_rate_llm"),
                                   "proof_rate_ebm": ev.get("proof_rate_ebm"), "stage_wall_s": walls,
                                   "attempts": ev.get("attempts"), "noise": recs.get("noise", {}).get("outputs")}
            continue
        gate = recs.get("gate", {}).get("outputs")
        if gate is None:
            out["in_progress"] = {"iteration": k, "stages_complete": sorted(recs), "stage_wall_s": walls}
            continue
        prove = recs.get("prove", {}).get("outputs", {})
        out["iterations"].append({
            "iteration": k, "proof_rate_llm": ev.get("proof_rate_llm"), "proof_rate_ebm": ev.get("proof_rate_ebm"),
            "promoted": gate.get("promote"), "reason": gate.get("reason"),
            "current_proof_rate": (gate.get("current") or {}).get("proof_rate"),
            "current_proof_rate_llm": (gate.get("current") or {}).get("proof_rate_llm"),
            "train_proof_rate": prove.get("proof_rate"), "stage_wall_s": walls,
            "wall_s": round(sum(v for v in walls.values() if v), 2)})
    out["progress"] = progress(out)
    return out


def progress(summary: dict) -> dict | None:
    """The rise of the held-out proof rate: the model in use after the last iteration against the starting
    model (iteration 0, default seed), beside the evaluation's own noise (the starting model on two seeds).
    Also: the same for the LLM-only column of the model in use, and the rise since iteration 1."""
    its = summary["iterations"]
    if not its:
        return None
    noise = ((summary.get("baseline") or {}).get("noise") or {}).get("spread")
    start = (summary.get("baseline") or {}).get("proof_rate_llm")
    first, last = its[0].get("current_proof_rate"), its[-1].get("current_proof_rate")
    last_llm = its[-1].get("current_proof_rate_llm")

    def diff(a, b):
        return round(a - b, 4) if None not in (a, b) else None

    gain = diff(last, start)
    return {"baseline": start, "last": last, "gain": gain, "last_llm": last_llm, "gain_llm": diff(last_llm, start),
            "first": first, "gain_over_first": diff(last, first),
            "noise": noise, "above_noise": gain > noise if None not in (gain, noise) else None}
