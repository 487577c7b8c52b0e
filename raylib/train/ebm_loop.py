"""EBM losses, metrics and the per-worker loop run by ``TorchTrainer`` (see ``raylib.train.ebm.train_ebm``).

A group is one positive and K negatives, given as rows of an embedding matrix: ``idx[:, 0]`` the
positive, ``idx[:, 1:]`` the negatives. Energies are ``head(embedding)``; lower means more provable.

* ``info_nce``: cross-entropy of the positive among its group with logits ``-energy / temperature``.
* ``margin_ranking``: mean over negatives of ``max(0, margin + E_pos - E_neg)``.
* Metrics: ``loss``; ``gap`` = mean over groups of (mean negative energy - positive energy); ``rank`` =
  share of groups where the positive has the strictly lowest energy (chance 1 / (K + 1)).

The embedding matrix reaches the workers once, through the object store (zero-copy on a node); the Ray
Dataset carries only the small index rows, so a step gathers ``[batch, 1 + K, dim]`` from memory.

Checkpoint layout (``checkpoint_<step>``): ``head.pt`` (state dict), ``trainer_state.pt`` (optimizer,
RNG) and ``history.json`` (step, per-step history with evaluation metrics, resumed_from).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import warnings
from pathlib import Path

from raylib.train.config import EBMSection

log = logging.getLogger(__name__)

__all__ = ["ebm_step", "ebm_worker_loop", "evaluate_groups", "group_energies", "group_loss", "group_metrics",
           "make_head"]


def make_head(ebm: EBMSection, dim: int):
    from raylib.models.ebm import build_head

    return build_head(dim, hidden_sizes=ebm.hidden_sizes, dropout=ebm.dropout)


def group_energies(head, emb, idx):
    """Energies ``[B, 1 + K]`` of the groups ``idx`` (int tensor ``[B, 1 + K]`` of rows of ``emb``)."""
    return head(emb[idx]).squeeze(-1)


def group_loss(energies, loss: str, margin: float = 1.0, temperature: float = 1.0):
    import torch
    import torch.nn.functional as F

    if loss == "info_nce":
        target = torch.zeros(energies.shape[0], dtype=torch.long, device=energies.device)
        return F.cross_entropy(-energies / temperature, target)
    if loss == "margin_ranking":
        return F.relu(margin + energies[:, :1] - energies[:, 1:]).mean()
    raise ValueError(f"unknown EBM loss {loss!r} (info_nce or margin_ranking)")


def group_metrics(energies) -> dict:
    """``gap`` (mean negative minus positive energy) and ``rank`` (positive strictly lowest) of a batch."""
    e = energies.detach().float()
    gap = float((e[:, 1:].mean(1) - e[:, 0]).mean())
    rank = float((e[:, 0] < e[:, 1:].min(1).values).float().mean())
    return {"gap": gap, "rank": rank}


def ebm_step(head, optim, emb, idx, ebm: EBMSection) -> dict:
    """One optimizer step on the groups ``idx``; returns loss, gap, rank and the grad norm before clipping."""
    import torch

    energies = group_energies(head, emb, idx)
    loss = group_loss(energies, ebm.loss, ebm.margin, ebm.temperature)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    limit = ebm.max_grad_norm if ebm.max_grad_norm > 0 else float("inf")
    norm = float(torch.nn.utils.clip_grad_norm_(head.parameters(), limit))
    if math.isfinite(norm):
        optim.step()
    return {"loss": float(loss.detach()), "grad_norm": norm, **group_metrics(energies)}


def evaluate_groups(head, emb, idx, ebm: EBMSection, batch: int = 1024) -> dict:
    """Mean loss, gap and rank over groups (eval mode, no gradient); empty dict for no groups."""
    import torch

    if len(idx) == 0:
        return {}
    was = head.training
    head.eval()
    sums = {"loss": 0.0, "gap": 0.0, "rank": 0.0}
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            part = idx[i:i + batch]
            e = group_energies(head, emb, part)
            m = group_metrics(e)
            sums["loss"] += float(group_loss(e, ebm.loss, ebm.margin, ebm.temperature)) * len(part)
            sums["gap"] += m["gap"] * len(part)
            sums["rank"] += m["rank"] * len(part)
    head.train(was)
    return {k: v / len(idx) for k, v in sums.items()}


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _as_tensor(array, device):
    import torch

    with warnings.catch_warnings():  # the object store's arrays are read-only; they are never written
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array).to(device)


def ebm_worker_loop(cfg: dict) -> None:
    import numpy as np
    import ray
    import ray.train
    import ray.train.torch
    import torch

    ebm = EBMSection.model_validate(cfg["ebm"])
    total = int(cfg["total_steps"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    from raylib.train.devices import worker_device

    device = worker_device()
    emb = _as_tensor(ray.get(cfg["embeddings"]), device)
    eval_sets = {k: torch.as_tensor(np.asarray(v), dtype=torch.long, device=device)
                 for k, v in ray.get(cfg["eval_groups"]).items()}
    torch.manual_seed(ebm.seed)
    head = make_head(ebm, emb.shape[1]).to(device)
    optim = torch.optim.AdamW(head.parameters(), lr=ebm.lr, weight_decay=ebm.weight_decay)
    history, step, resumed_from = [], 0, 0
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            d = Path(d)
            head.load_state_dict(torch.load(d / "head.pt", map_location=device, weights_only=True))
            state = torch.load(d / "trainer_state.pt", map_location="cpu", weights_only=False)
            meta = json.loads((d / "history.json").read_text())
        optim.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        history, step = meta["history"], meta["step"]
        resumed_from = step
        log.info("rank %d: resuming from checkpoint at step %d", rank, step)
    raw = head
    model = ray.train.torch.prepare_model(head) if world > 1 else head
    model.train()

    def evaluate() -> dict:
        m: dict = {}
        if rank == 0:
            for split, idx in eval_sets.items():
                m.update({f"{split}_{k}": v for k, v in evaluate_groups(raw, emb, idx, ebm).items()})
        return m

    def save(at: int, metrics: dict) -> None:
        name = f"checkpoint_{at:06d}"
        with tempfile.TemporaryDirectory() as tmp:
            ck = None
            if rank == 0:
                t = Path(tmp)
                torch.save(raw.state_dict(), t / "head.pt")
                torch.save({"optimizer": optim.state_dict(), "rng": torch.get_rng_state()}, t / "trainer_state.pt")
                (t / "history.json").write_text(json.dumps({"step": at, "history": history,
                                                            "resumed_from": resumed_from}))
                ck = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ck, checkpoint_dir_name=name)

    shard = ray.train.get_dataset_shard("train")
    per_worker = ebm.batch_size // world
    skip = step  # one batch per step on every worker: the first ``step`` batches were trained on
    timed_from, timed_steps, t0 = None, 0, time.perf_counter()
    wait_s = compute_s = 0.0  # after the first step: time blocked on the data iterator, time in steps
    batches = iter(shard.iter_batches(batch_size=per_worker, batch_format="numpy", prefetch_batches=4))
    while True:
        t_wait = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        if skip:
            skip -= 1
            continue
        t_step = time.perf_counter()
        idx = torch.as_tensor(batch["idx"], dtype=torch.long, device=device)
        m = ebm_step(model, optim, emb, idx, ebm)
        step += 1
        now = time.perf_counter()
        if timed_from is None:
            timed_from, t0 = step, now  # steady-state rate: from the end of the first step on
        else:
            timed_steps = step - timed_from
            wait_s += t_step - t_wait
            compute_s += now - t_step
        history.append({"step": step, **m})
        metrics = dict(m, step=step, resumed_from=resumed_from,
                       steps_per_s=timed_steps / (now - t0) if timed_steps else 0.0)
        final = step >= total
        if final:  # for the benchmark: this worker's threads and peak memory
            metrics.update(torch_threads=torch.get_num_threads(), peak_rss_mb=_peak_rss_mb(), data_wait_s=wait_s,
                           step_compute_s=compute_s)
        if final or (ebm.eval_every and step % ebm.eval_every == 0):
            found = evaluate()
            metrics.update(found)
            history[-1].update(found)
        if final or (ebm.checkpoint_every and step % ebm.checkpoint_every == 0):
            save(step, metrics)
            if cfg.get("interrupt_after_step") == step:
                raise RuntimeError(f"interrupted after the checkpoint of step {step} (test hook)")
        elif step % ebm.log_every == 0:
            ray.train.report(metrics)
        if final:
            break
    if step < total:
        raise RuntimeError(f"rank {rank}: the training shard ran out at step {step} of {total}")


def train_in_memory(ebm: EBMSection, train_rows, embeddings, steps: int | None = None) -> tuple[object, list[dict]]:
    """The same steps as ``ebm_worker_loop`` on one process, over tensors already in memory (no Ray).

    The reference the Ray Train path is checked against (same seed, same rows: same losses) and
    timed against (``bench/_ebm_bench.py``). Returns (head, per-step history).
    """
    import torch

    emb = _as_tensor(embeddings, "cpu")
    rows = torch.as_tensor(train_rows, dtype=torch.long)
    torch.manual_seed(ebm.seed)
    head = make_head(ebm, emb.shape[1])
    optim = torch.optim.AdamW(head.parameters(), lr=ebm.lr, weight_decay=ebm.weight_decay)
    head.train()
    steps = steps if steps is not None else math.ceil(len(rows) / ebm.batch_size)
    history = []
    for step in range(steps):
        idx = rows[step * ebm.batch_size:(step + 1) * ebm.batch_size]
        history.append({"step": step + 1, **ebm_step(head, optim, emb, idx, ebm)})
    return head, history
