"""GeneratorActor: hosts the tactic generator (vLLM or HF) for many concurrent searches.

With vLLM, requests are forwarded concurrently and the engine batches them (each fails alone). With HF, concurrent
requests are coalesced into one batched ``generate`` call (a short linger; the backend then chunks by
its prompt/token budget): one decode step costs about the same for 8 or 64 prompts on a GPU. A batch
that raises is split so one bad request fails only its caller, and a request cancelled while it waits
(``ray.cancel`` on the task, a search past its deadline) is never generated.
A new LoRA adapter version is hot-loaded without restarting the actor.
"""

from __future__ import annotations

import logging
import threading

from raylib.batching import AsyncBatcher
from raylib.config import Config
from raylib.env import make_filter
from raylib.models.generator import Candidate, make_generator

log = logging.getLogger(__name__)


class GeneratorActor:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.backend = make_generator(cfg.model, cfg.generation, make_filter(cfg.env))
        self._lock = threading.Lock()  # an adapter swap never overlaps a generate call
        g = cfg.generation
        self.batcher = AsyncBatcher(self._generate_batch, linger_s=cfg.workers.linger_ms / 1000,
                                    max_items=4 * g.max_batch_prompts)
        self._engine_requests = 0  # vllm: requests forwarded to the engine (it batches them itself)

    def _generate_batch(self, key, states):
        n, temperature, max_tokens = key
        with self._lock:
            return self.backend.generate(states, n, temperature, max_tokens)

    async def propose(self, state: str, n: int, temperature: float, max_tokens: int) -> list[Candidate]:
        if self.cfg.model.backend == "vllm":
            self._engine_requests += 1
            return (await self.backend.agenerate([state], n, temperature, max_tokens))[0]
        return await self.batcher.submit(state, key=(n, temperature, max_tokens))

    async def load_adapter(self, path: str, version: int | str) -> str:
        """Serve the adapter in ``path`` from now on; returns the new fingerprint. An adapter the backend
        cannot load raises here and the one served before stays (vLLM loads it into the engine at once)."""
        import asyncio

        def swap():
            with self._lock:
                self.backend.load_adapter(path, version)
        await asyncio.to_thread(swap)
        log.info("generator now serves adapter %s (version %s)", path, version)
        return self.backend.fingerprint()

    async def reseed(self, seed: int) -> bool:
        """Seed the backend's sampling (HF); False when the backend seeds only at start (vLLM: model.seed)."""
        fn = getattr(self.backend, "reseed", None)
        if fn is None:
            return False
        with self._lock:
            fn(seed)
        return True

    async def fingerprint(self) -> str:
        return self.backend.fingerprint()

    async def stats(self) -> dict:
        s = self.batcher.stats
        return {"backend": self.cfg.model.backend, "engine_requests": self._engine_requests,
                "batches": s.batches, "requests": s.items, "mean_batch": s.mean_batch, "max_batch": s.max_batch,
                "failed_batches": s.failed_batches, "failed_requests": s.failed_items, "dropped": s.dropped}
