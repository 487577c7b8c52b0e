"""GPU and memory options of the SFT loop: precision, refusals, early stopping and the RNG record.

* ``train_autocast``: the autocast context for ``sft.dtype`` (bfloat16 → ``torch.autocast`` over float32
  master weights; float32 → no autocast).
* ``runtime_refusal``: what this worker cannot run (quantization without CUDA or without bitsandbytes),
  as a message naming the setting and what to change; the worker raises it as ``SettingRefused`` before
  any work, and the driver re-raises it (a refusal is no worker failure, so it is never retried).
* ``EarlyStopping``: stops when the eval loss has not improved by more than ``min_delta`` for
  ``patience`` evaluations in a row; its state travels in the checkpoint so a resume keeps counting.
* ``rng_state`` / ``restore_rng``: torch CPU, CUDA (every device, when CUDA is available), Python and
  NumPy generators, saved in each checkpoint so a resumed run draws what the uninterrupted run drew.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import random

__all__ = ["EarlyStopping", "SettingRefused", "restore_rng", "rng_state", "runtime_refusal", "train_autocast"]


class SettingRefused(ValueError):
    """A training setting this machine cannot run; the message names it and what to change."""

    def __reduce__(self):  # crosses process boundaries (Ray workers → driver) intact
        return (SettingRefused, self.args)


def train_autocast(dtype: str, device_type: str):
    """``torch.autocast`` to ``dtype`` on ``device_type`` for a low-precision ``dtype``; else a no-op."""
    import torch

    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def runtime_refusal(sft) -> str | None:
    """Why this process cannot train with ``sft`` (an ``SFTSection``), or None when it can."""
    if sft.quantization is None:
        return None
    q = f"sft.quantization={sft.quantization}"
    if not _cuda_available():
        return (f"{q} needs a CUDA GPU in every training worker and this worker sees none: run on GPU "
                "workers (sft.use_gpu: true) or set sft.quantization: null")
    if importlib.util.find_spec("bitsandbytes") is None:
        return (f"{q} needs the bitsandbytes package, which is not installed here: "
                "pip install -e '.[gpu]' on the GPU workers, or set sft.quantization: null")
    return None


class EarlyStopping:
    """Counts evaluations without an eval-loss improvement of more than ``min_delta`` over the best."""

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.best_step = 0
        self.bad = 0

    def update(self, step: int, eval_loss: float | None) -> dict:
        """Record the evaluation at ``step``; the metrics say whether to stop (``early_stop`` 1)."""
        if eval_loss is not None and math.isfinite(eval_loss):
            if self.best is None or eval_loss < self.best - self.min_delta:
                self.best, self.best_step, self.bad = eval_loss, step, 0
            else:
                self.bad += 1
        else:
            self.bad += 1
        m = {"early_stop_bad_evals": self.bad, "early_stop_best_step": self.best_step,
             "early_stop_best_eval_loss": self.best if self.best is not None else float("nan"),
             "early_stop": int(self.stopped)}
        if self.stopped:
            m.update({"stop_reason": f"early stopping: eval loss did not improve by more than {self.min_delta} "
                                     f"for {self.bad} evaluations (best {self.best} at step {self.best_step})",
                      "stop_step": step})
        return m

    @property
    def stopped(self) -> bool:
        return self.bad >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "bad": self.bad}

    def load_state(self, state: dict | None) -> None:
        if state:
            self.best, self.best_step, self.bad = state["best"], state["best_step"], state["bad"]


def rng_state() -> dict:
    """Every generator a training step may draw from; ``cuda_rng`` is None where CUDA is not available."""
    import numpy as np
    import torch

    return {"rng": torch.get_rng_state(), "python_rng": random.getstate(), "numpy_rng": np.random.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if _cuda_available() else None}


def restore_rng(state: dict) -> None:
    """Put back what ``rng_state`` saved (older checkpoints carry only ``rng``); CUDA only where available."""
    import numpy as np
    import torch

    torch.set_rng_state(state["rng"])
    if state.get("python_rng") is not None:
        random.setstate(state["python_rng"])
    if state.get("numpy_rng") is not None:
        np.random.set_state(state["numpy_rng"])
    if state.get("cuda_rng") is not None and _cuda_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
