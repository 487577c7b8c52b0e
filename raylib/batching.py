"""Coalesce concurrent async requests into batched calls (``@serve.batch`` does not work in plain actors).

Callers ``await batcher.submit(item, key=..., cost=...)``; a background task collects requests with the
same ``key`` for up to ``linger_s`` or until ``max_items`` / ``max_cost`` is reached, runs the blocking
batch function in a thread (the event loop keeps accepting requests meanwhile) and resolves every caller.
Items of a batch are sorted by cost, so similar lengths travel together.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

log = logging.getLogger(__name__)


@dataclass
class _Request:
    item: Any
    cost: int
    future: asyncio.Future = field(repr=False)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    max_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class AsyncBatcher:
    def __init__(self, fn: Callable[[Hashable, Sequence[Any]], Sequence[Any]], linger_s: float = 0.005,
                 max_items: int = 64, max_cost: int | None = None, max_concurrent_batches: int = 1):
        """``fn(key, items) -> results`` (same length, same order) runs in a worker thread."""
        self.fn = fn
        self.linger_s = linger_s
        self.max_items = max_items
        self.max_cost = max_cost
        self.stats = BatchStats()
        self._queues: dict[Hashable, list[_Request]] = defaultdict(list)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None
        self._max_concurrent = max_concurrent_batches

    async def submit(self, item: Any, key: Hashable = None, cost: int = 1) -> Any:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(self._max_concurrent)
            self._task = loop.create_task(self._run())
        fut = loop.create_future()
        self._queues[key].append(_Request(item, cost, fut))
        self._wake.set()
        return await fut

    def _full(self, queue: list[_Request]) -> bool:
        return len(queue) >= self.max_items or (
            self.max_cost is not None and sum(r.cost for r in queue) >= self.max_cost)

    def _take(self, key: Hashable) -> list[_Request]:
        queue = sorted(self._queues.pop(key), key=lambda r: r.cost)
        batch, cost = [], 0
        for r in queue:
            if batch and (len(batch) >= self.max_items or
                          (self.max_cost is not None and cost + r.cost > self.max_cost)):
                break
            batch.append(r)
            cost += r.cost
        rest = queue[len(batch):]
        if rest:
            self._queues[key] = rest
        return batch

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not any(self._full(q) for q in self._queues.values()):
                await asyncio.sleep(self.linger_s)  # let concurrent callers join the batch
            while self._queues:
                key = next(iter(self._queues))
                batch = self._take(key)
                await self._slots.acquire()
                asyncio.get_running_loop().create_task(self._dispatch(key, batch))

    async def _dispatch(self, key: Hashable, batch: list[_Request]) -> None:
        try:
            results = await asyncio.to_thread(self.fn, key, [r.item for r in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.max_batch = max(self.stats.max_batch, len(batch))
            for r, res in zip(batch, results):
                if not r.future.done():
                    r.future.set_result(res)
        except Exception as e:  # every caller of the batch sees the failure
            log.warning("batch of %d failed: %s", len(batch), e)
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(e)
        finally:
            self._slots.release()
