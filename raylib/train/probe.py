"""Separation probe: how far apart a model's embeddings put provable and unprovable states.

``separation_probe(pos, neg)`` takes embeddings of positive states (on a proof path) and negative
states (off every proof path) and gives the distance of the class centroids, the accuracy of a linear
probe (L2-regularised logistic regression fit on one half of each class, scored on the other half;
balanced accuracy, so chance is 0.5 whatever the class sizes), the mean norm of each side and their
gap. A fine-tune that collapses the embedding space shows as a falling centroid distance and probe
accuracy (seen in the field: centroid L2 6.40 -> 1.33, probe accuracy 0.83 -> 0.68 after a bad LoRA).

``probe_model(cfg, trajectory_files, adapter)`` encodes held-out states of trajectory files with the
configured ``StateEncoder`` (``value`` section; ``adapter`` replaces ``value.encoder_adapter``) and
runs the probe. ``jobs.probe`` is its command line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["ProbeError", "logistic_probe", "probe_model", "probe_states", "separation_probe"]


class ProbeError(ValueError):
    """Inputs the probe cannot use; the message says which and what to do."""


def _halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    cut = (n + 1) // 2
    return order[:cut], order[cut:]


def logistic_probe(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                   l2: float = 1e-2, iters: int = 200) -> float:
    """Balanced accuracy on the test half of an L2 logistic regression fit (LBFGS, float64) on the fit half.

    Features are standardised with the fit half's mean and std; classes are weighted to equal total weight.
    """
    import torch

    mu, sd = x_fit.mean(0), x_fit.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    xf = torch.as_tensor((x_fit - mu) / sd, dtype=torch.float64)
    xt = torch.as_tensor((x_test - mu) / sd, dtype=torch.float64)
    yf = torch.as_tensor(y_fit, dtype=torch.float64)
    n_pos = float(yf.sum())
    weights = torch.where(yf > 0, 0.5 / n_pos, 0.5 / (len(yf) - n_pos))
    w = torch.zeros(xf.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = xf @ w + b
        loss = (weights * torch.nn.functional.binary_cross_entropy_with_logits(logits, yf, reduction="none")).sum()
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = ((xt @ w + b) > 0).numpy()
    y = np.asarray(y_test).astype(bool)
    return float(0.5 * (pred[y].mean() + (~pred[~y]).mean()))


def separation_probe(pos: np.ndarray, neg: np.ndarray, seed: int = 0, l2: float = 1e-2,
                     min_accuracy: float = 0.6) -> dict:
    """Centroid L2, linear-probe (balanced) accuracy, norm gap and mean norms of positive vs negative embeddings.

    ``collapsed`` is true when the probe accuracy is at most ``min_accuracy`` (chance is 0.5): a model
    that cannot tell the two sides apart linearly. ``centroid_l2_rel`` is the centroid distance over the
    mean norm (scale-free, comparable across models). Needs at least 2 states of each side.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape[1] != neg.shape[1]:
        raise ProbeError(f"separation_probe: need two [n, dim] arrays of one dim, got {pos.shape} and {neg.shape}")
    if len(pos) < 2 or len(neg) < 2:
        raise ProbeError(f"separation_probe: need at least 2 positive and 2 negative states, got {len(pos)} and "
                         f"{len(neg)} (use trajectories with more proofs and failed branches)")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ProbeError("separation_probe: NaN or Inf in the embeddings")
    rng = np.random.default_rng(seed)
    pf, pt = _halves(len(pos), rng)
    nf, nt = _halves(len(neg), rng)
    x_fit = np.concatenate([pos[pf], neg[nf]])
    y_fit = np.concatenate([np.ones(len(pf)), np.zeros(len(nf))])
    x_test = np.concatenate([pos[pt], neg[nt]])
    y_test = np.concatenate([np.ones(len(pt)), np.zeros(len(nt))])
    acc = logistic_probe(x_fit, y_fit, x_test, y_test, l2=l2)
    norm_pos = float(np.linalg.norm(pos, axis=1).mean())
    norm_neg = float(np.linalg.norm(neg, axis=1).mean())
    centroid = float(np.linalg.norm(pos.mean(0) - neg.mean(0)))
    mean_norm = 0.5 * (norm_pos + norm_neg)
    return {"centroid_l2": centroid, "centroid_l2_rel": centroid / mean_norm if mean_norm > 0 else 0.0,
            "probe_accuracy": acc, "chance": 0.5, "norm_gap": norm_pos - norm_neg,
            "mean_norm_pos": norm_pos, "mean_norm_neg": norm_neg, "n_pos": int(len(pos)), "n_neg": int(len(neg)),
            "collapsed": bool(acc <= min_accuracy)}


def probe_states(table, split: str = "val", valid_fraction: float = 0.2, seed: int = 0,
                 max_states: int = 512) -> tuple[list[str], list[str]]:
    """Texts of positive (proof-path) and negative (off-path) states of one split ("train", "val" or "all"),
    at most ``max_states`` of each side, drawn with ``seed``; states as in ``raylib.data.sampler``."""
    from raylib.data.sampler import build_index
    from raylib.hashing import state_hash

    texts = {state_hash(s): s for s, o in zip(table.column("state").to_pylist(), table.column("outcome").to_pylist())
             if o == "state" and s}
    splits = build_index(table, 0.0 if split == "all" else valid_fraction, seed)
    chosen = splits["train"] if split in ("all", "train") else splits["val"]
    pos = list(dict.fromkeys(h for t in chosen.theorems.values() for h in t.positives))
    neg = [h for h in chosen.off_path if h not in set(pos)]
    rng = np.random.default_rng(seed)
    pick = (lambda xs: [xs[i] for i in sorted(rng.choice(len(xs), max_states, replace=False))]
            if len(xs) > max_states else xs)
    return [texts[h] for h in pick(pos)], [texts[h] for h in pick(neg)]


def probe_model(cfg, trajectory_files: Sequence[str | Path] | str | Path, adapter: str | Path | None = None,
                split: str = "val", max_states: int = 512) -> dict:
    """Encode held-out positive and negative states with the configured encoder and run ``separation_probe``.

    ``split``: "val" (theorems held out by ``ebm.valid_fraction``, as the EBM's validation), "train" or
    "all" (every theorem: for trajectories of theorems held out of training, e.g. the valid split).
    """
    from raylib.data.trajectory import read_trajectories
    from raylib.models.encoder import StateEncoder

    if split not in ("val", "train", "all"):
        raise ProbeError(f"split must be val, train or all, got {split!r}")
    table = read_trajectories(trajectory_files)
    pos, neg = probe_states(table, split, cfg.ebm.valid_fraction, cfg.ebm.seed, max_states)
    if len(pos) < 2 or len(neg) < 2:
        raise ProbeError(f"{trajectory_files}: the {split} split has {len(pos)} proof-path and {len(neg)} off-path "
                         "states; the probe needs 2 of each (pass trajectories with proofs, or --split all)")
    v = cfg.value
    adapter = adapter if adapter is not None else v.encoder_adapter
    enc = StateEncoder(v.encoder_path or cfg.model.path, adapter=adapter, dtype=v.dtype, device=cfg.model.device,
                       pooling=v.pooling, max_length=v.max_length, max_batch_tokens=v.max_batch_tokens)
    log.info("probe: encoding %d positive and %d negative states (%s split) with %s", len(pos), len(neg), split,
             enc.fingerprint())
    out = separation_probe(enc.encode(pos), enc.encode(neg), seed=cfg.ebm.seed)
    return {**out, "fingerprint": enc.fingerprint(), "adapter": str(adapter) if adapter else None, "split": split}
