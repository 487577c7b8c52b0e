"""Coalesce concurrent async requests into batched calls (``@serve.batch`` does not work in plain actors).

Callers ``await batcher.submit(item, key=..., cost=...)``; a background task collects requests with the
same ``key`` for up to ``linger_s`` or until ``max_items`` / ``max_cost`` is reached, runs the blocking
batch function in a thread (the event loop keeps accepting requests meanwhile) and resolves every caller.
Items of a batch are sorted by cost, so similar lengths travel together.

A caller that is cancelled while its request waits (a search past its deadline, ``ray.cancel`` on the
actor task) leaves the queue: its item is never batched. When the batch function raises, each item of
the batch is run again alone, so one bad item (an over-long prompt, an engine error on one request)
fails only its own caller.
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
    failed_batches: int = 0   # batches that raised and were split into single items
    failed_items: int = 0     # items that raised alone
    dropped: int = 0          # requests whose caller was cancelled before they were batched

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
        queue = self._queues.pop(key)
        live = [r for r in queue if not r.future.done()]
        self.stats.dropped += len(queue) - len(live)
        queue = sorted(live, key=lambda r: r.cost)
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
            batch = [r for r in batch if not r.future.done()]  # cancelled while the batch was forming
            if not batch:
                return
            try:
                results = await asyncio.to_thread(self._call, key, batch)
            except Exception as e:  # noqa: BLE001 - split: each item alone, so one bad item fails alone
                if len(batch) == 1:
                    self._fail(batch[0], e)
                    return
                self.stats.failed_batches += 1
                log.warning("batch of %d failed (%s: %s); running its items one by one", len(batch),
                            type(e).__name__, e)
                for r in batch:
                    if r.future.done():
                        continue
                    try:
                        [res] = await asyncio.to_thread(self._call, key, [r])
                    except Exception as e1:  # noqa: BLE001 - this item's own failure
                        self._fail(r, e1)
                    else:
                        if not r.future.done():
                            r.future.set_result(res)
                return
            for r, res in zip(batch, results):
                if not r.future.done():
                    r.future.set_result(res)
        finally:
            self._slots.release()

    def _call(self, key: Hashable, batch: list[_Request]) -> Sequence[Any]:
        results = self.fn(key, [r.item for r in batch])
        if len(results) != len(batch):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.max_batch = max(self.stats.max_batch, len(batch))
        return results

    def _fail(self, r: _Request, e: BaseException) -> None:
        self.stats.failed_items += 1
        if not r.future.done():
            r.future.set_exception(e)
