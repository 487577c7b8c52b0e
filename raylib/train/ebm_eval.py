"""Score trajectory states with a trained EBM from an embeddings folder (no encoder, no search).

``score_rows`` gives the trajectory rows of one split (the theorems the EBM held out, by the split it was
trained with) with ``energy`` filled from the EBM for every non-terminal state; terminal and failed
rows keep ``energy`` None (they never go through the EBM). ``evaluate_ebm`` runs the sibling accuracy
(``raylib.eval.value_stats.sibling_accuracy``: did the EBM rank the proof-path child first among its
siblings, against the chance baseline of mean 1 / siblings) on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["evaluate_ebm", "score_rows"]


def score_rows(ebm_dir: str | Path, trajectory_files: str | Path | Sequence[str | Path], embeddings_dir: str | Path,
               split: str = "val") -> list[dict]:
    """Rows of ``split`` ("val", "train" or "all") with the EBM's energies; refuses embeddings of another
    fingerprint (EmbeddingsError) and states missing from the folder (EmbeddingsError naming it)."""
    from raylib.data.embeddings import EmbeddingsError, read_embeddings
    from raylib.data.sampler import theorem_split
    from raylib.data.trajectory import read_trajectories
    from raylib.hashing import state_hash
    from raylib.models.ebm import EBM

    ebm = EBM.load(ebm_dir)
    fraction, seed = float(ebm.meta.get("valid_fraction", 0.0)), int(ebm.meta.get("split_seed", 0))
    table = read_trajectories(trajectory_files)
    rows = [r for r in table.to_pylist()
            if split == "all" or theorem_split(r["theorem"], fraction, seed) == split]
    hashes, array, _ = read_embeddings(embeddings_dir, ebm.encoder_fingerprint)
    index = {h: i for i, h in enumerate(hashes)}
    scored = [r for r in rows if r["outcome"] == "state" and r["state"]]
    keys = [state_hash(r["state"]) for r in scored]
    missing = [k for k in keys if k not in index]
    if missing:
        raise EmbeddingsError(f"{embeddings_dir}: {len(missing)} states of the trajectories have no embedding "
                              f"(e.g. {missing[0]}); encode them first (python -m jobs.encode)")
    energies = ebm.energies(array[[index[k] for k in keys]], ebm.encoder_fingerprint) if keys else []
    for r in rows:
        r["energy"] = None
    for r, e in zip(scored, energies):
        r["energy"] = float(e)
    log.info("scored %d states of %d %s rows", len(scored), len(rows), split)
    return rows


def evaluate_ebm(ebm_dir, trajectory_files, embeddings_dir, split: str = "val") -> dict:
    """Sibling accuracy of the EBM on ``split`` with its chance baseline, plus the rows' counts."""
    from raylib.eval.value_stats import sibling_accuracy

    rows = score_rows(ebm_dir, trajectory_files, embeddings_dir, split)
    out = sibling_accuracy(rows)
    energies = [r["energy"] for r in rows if r["energy"] is not None]
    on = [r["energy"] for r in rows if r["energy"] is not None and r["on_proof_path"]]
    off = [r["energy"] for r in rows if r["energy"] is not None and not r["on_proof_path"]]
    return {"split": split, "theorems": len({r["theorem"] for r in rows}), "scored_states": len(energies),
            "mean_energy_on_path": float(np.mean(on)) if on else None,
            "mean_energy_off_path": float(np.mean(off)) if off else None, "sibling_accuracy": out}
