"""Where a Ray Train worker computes, and the torch process-group backend its trainer sets up.

A worker that Ray gave a GPU computes on it (``ray.train.torch.get_device()``). Where the GPU is only
declared (a test cluster whose node says ``num_gpus=1`` on a CPU machine, as the placement tests use)
torch sees no CUDA: the worker computes on the CPU instead, and says so in its log. A one-worker run
sets up its process group with gloo: no collective runs between ranks then (the loops wrap the model
for DDP only with more workers), and NCCL, Ray's choice for GPU workers, does not exist in a CPU build
of torch. More workers keep Ray's choice (NCCL with GPUs, else gloo).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

__all__ = ["torch_config", "worker_device"]


def worker_device():
    """This training worker's torch device: its GPU, or the CPU where the GPU Ray granted has no CUDA."""
    import ray.train.torch
    import torch

    device = ray.train.torch.get_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("Ray granted this worker a GPU but torch sees no CUDA (a declared GPU): training on the CPU")
        return torch.device("cpu")
    return device


def torch_config(num_workers: int):
    """The ``TorchConfig`` of a trainer with ``num_workers`` workers (see the module docstring)."""
    from ray.train.torch import TorchConfig

    return TorchConfig(backend="gloo") if num_workers == 1 else TorchConfig()
