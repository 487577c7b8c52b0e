"""EncoderActor: encodes proof states and, once an EBM is loaded, returns their energies.

Concurrent requests are coalesced with an asyncio queue (a few ms linger, a token budget per batch);
the encoder itself sorts by length and splits under its token budget.
"""

from __future__ import annotations

import logging

from raylib.batching import AsyncBatcher
from raylib.config import Config

log = logging.getLogger(__name__)


class EncoderActor:
    def __init__(self, cfg: Config):
        from raylib.models.encoder import state_encoder_from_config

        v = cfg.value
        self.encoder = state_encoder_from_config(cfg)
        self.ebm = None
        if v.ebm_path:
            self.load_ebm_sync(v.ebm_path)
        self.batcher = AsyncBatcher(self._encode_batch, linger_s=cfg.workers.linger_ms / 1000,
                                    max_items=1024, max_cost=v.max_batch_tokens)

    def load_ebm_sync(self, path: str) -> None:
        from raylib.models.ebm import EBM

        ebm = EBM.load(path, device=self.encoder.device)
        if ebm.encoder_fingerprint != self.encoder.fingerprint():
            from raylib.models.ebm import FingerprintMismatch
            raise FingerprintMismatch(f"EBM {path} was trained on embeddings {ebm.encoder_fingerprint!r}, this "
                                      f"encoder makes {self.encoder.fingerprint()!r}")
        self.ebm = ebm

    async def load_ebm(self, path: str) -> None:
        self.load_ebm_sync(path)

    def _encode_batch(self, _key, states):
        return list(self.encoder.encode(states))

    async def encode(self, states: list[str]) -> list:
        import asyncio

        cost = [max(1, len(s) // 3) for s in states]
        return list(await asyncio.gather(*[self.batcher.submit(s, cost=c) for s, c in zip(states, cost)]))

    async def energies(self, states: list[str]) -> list[float]:
        if self.ebm is None:
            raise RuntimeError("no EBM loaded: set value.ebm_path or call load_ebm first")
        if not states:
            return []
        import numpy as np

        return self.ebm.energies(np.stack(await self.encode(states)), self.encoder.fingerprint())

    async def fingerprint(self) -> str:
        return self.encoder.fingerprint()

    async def stats(self) -> dict:
        s = self.batcher.stats
        return {"batches": s.batches, "requests": s.items, "mean_batch": s.mean_batch, "max_batch": s.max_batch}
