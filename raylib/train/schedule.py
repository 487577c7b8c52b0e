"""Learning-rate schedules (linear warmup, then cosine / linear decay to a floor, or constant) and the
training plan: total optimizer steps from epochs or max_steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TrainPlan", "lr_at", "lr_factor", "make_scheduler", "plan_steps", "warmup_steps_for"]


def warmup_steps_for(total_steps: int, warmup_steps: int | None, warmup_ratio: float) -> int:
    if warmup_steps is not None:
        return min(warmup_steps, total_steps)
    return int(round(warmup_ratio * total_steps))


def lr_factor(step: int, total_steps: int, warmup: int, schedule: str = "cosine",
              min_ratio: float = 0.0) -> float:
    """Multiplier of the peak LR for optimizer step ``step`` (0-based) of ``total_steps``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    if schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        decay = 1.0 - progress
    else:
        raise ValueError(f"unknown LR schedule {schedule!r}; choose cosine, linear or constant")
    return min_ratio + (1.0 - min_ratio) * decay


def lr_at(step: int, total_steps: int, peak: float, sft) -> float:
    """LR at ``step`` for an ``SFTSection``-like object (lr, warmup_steps, warmup_ratio, schedule, min_lr_ratio)."""
    warm = warmup_steps_for(total_steps, sft.warmup_steps, sft.warmup_ratio)
    return peak * lr_factor(step, total_steps, warm, sft.schedule, sft.min_lr_ratio)


def make_scheduler(optimizer, total_steps: int, sft):
    """A ``LambdaLR`` following ``lr_factor``; its state dict restores with the optimizer's."""
    from torch.optim.lr_scheduler import LambdaLR

    warm = warmup_steps_for(total_steps, sft.warmup_steps, sft.warmup_ratio)
    return LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warm, sft.schedule, sft.min_lr_ratio))


@dataclass(frozen=True)
class TrainPlan:
    dataset_size: int
    global_batch: int          # examples per optimizer step, all workers and accumulation together
    total_steps: int
    steps_per_epoch: float

    @property
    def samples_seen(self) -> int:
        return self.total_steps * self.global_batch

    @property
    def coverage(self) -> float:
        return self.samples_seen / max(1, self.dataset_size)


def plan_steps(dataset_size: int, sft, num_workers: int | None = None) -> TrainPlan:
    """Total optimizer steps: ``max_steps`` when set, else ceil(epochs × dataset / global batch)."""
    workers = num_workers if num_workers is not None else sft.num_workers
    global_batch = sft.batch_size * sft.grad_accum * workers
    per_epoch = dataset_size / global_batch
    total = sft.max_steps if sft.max_steps is not None else max(1, math.ceil(sft.epochs * per_epoch))
    return TrainPlan(dataset_size, global_batch, total, per_epoch)
