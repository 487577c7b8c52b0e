"""Adapters that let the search (pure asyncio, raylib.search) talk to Ray actors.

- ``RayEnvPool``: the ``AsyncEnv`` protocol over a pool of LeanWorker handles. ``session(theorem)`` leases
  one worker for a search (mode ``lease``): the least-loaded worker under its lease cap; when all are full
  the search waits (reported as queue time, not search time). Its tactics go there, a node's tactics in one
  call. When the worker dies under a call, the lease moves to the least-loaded live worker and the call
  is sent again: the new worker rebuilds the state from the longest prefix of its path it holds.
  Mode ``spread`` is the old dealing kept for comparison (bench/lean_affinity.py): a node's tactics are
  dealt over all workers, and each worker that has not seen the state rebuilds it.
- ``RayGenerator``: ``AsyncTacticGenerator`` over a GeneratorActor handle; a cancelled request is
  cancelled on the actor too.
- ``RayValue``: the value-function protocol over an EncoderActor handle.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from typing import Sequence

from raylib.env import Outcome, State, Theorem, Verification
from raylib.models.generator import Candidate

log = logging.getLogger(__name__)


def _actor_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    return (RayActorError, ActorDiedError, ActorUnavailableError)


class WorkerUnavailable(RuntimeError):
    """No Lean worker could serve a call (an infrastructure failure: the theorem is retried)."""


class LeaseCancelled(RuntimeError):
    pass


async def _await(ref):
    return await ref


async def _cancellable(ref):
    """Await a Ray task; if the awaiting coroutine is cancelled, cancel the task on its actor too."""
    import ray

    try:
        return await ref
    except asyncio.CancelledError:
        ray.cancel(ref)
        raise


class RayEnvPool:
    def __init__(self, workers: Sequence, max_attempts: int = 3, retry_delay_s: float = 0.2,
                 mode: str = "lease"):
        if not workers:
            raise ValueError("RayEnvPool needs at least one LeanWorker")
        if mode not in ("lease", "spread"):
            raise ValueError(f"mode must be 'lease' or 'spread', got {mode!r}")
        self.workers = list(workers)
        self.max_attempts = max_attempts
        self.retry_delay_s = retry_delay_s
        self.mode = mode
        self.load = [0] * len(self.workers)
        self.failovers = 0
        self.lease_moves = 0
        self._rr = itertools.count()

    # -- leases ------------------------------------------------------------------------------------
    async def session(self, theorem: Theorem):
        """The environment one search uses: a ``Lease`` (mode lease) or the whole pool (mode spread)."""
        if self.mode == "spread":
            return _SpreadSession(self)
        lease_id = uuid.uuid4().hex
        i, waited = await self._acquire(lease_id, theorem.name, avoid=None)
        return Lease(self, theorem, lease_id, i, waited)

    async def _counts(self) -> list[float]:
        """Leases held per worker (a dead or restarting worker counts as infinitely loaded)."""
        errors = _actor_errors()

        async def one(w):
            try:
                return await asyncio.wait_for(_await(w.lease_count.remote()), 30)
            except (*errors, asyncio.TimeoutError):
                return float("inf")
        return list(await asyncio.gather(*[one(w) for w in self.workers]))

    async def _acquire(self, lease_id: str, name: str, avoid: int | None,
                       dead_limit_s: float = 120.0) -> tuple[int, float]:
        """Lease the least-loaded live worker under its cap; wait while all are full. Returns (index, wait s).
        ``avoid`` (a failover): that worker is skipped unless it is the only live one, and the cap is waived."""
        errors = _actor_errors()
        t0 = time.perf_counter()
        delay, dead_since = 0.02, None
        while True:
            counts = await self._counts()
            live = [i for i in range(len(self.workers)) if counts[i] != float("inf")]
            for i in sorted([i for i in live if i != avoid] or live, key=lambda i: (counts[i], i)):
                try:
                    if await self.workers[i].acquire.remote(lease_id, name, avoid is not None):
                        return i, time.perf_counter() - t0
                except errors:
                    continue
            if not live:
                dead_since = dead_since or time.perf_counter()
                if time.perf_counter() - dead_since > dead_limit_s:
                    raise WorkerUnavailable(f"no Lean worker alive for {dead_limit_s:.0f}s to lease {name}")
            else:
                dead_since = None
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 2)

    # -- the old dealing (mode spread) and lease-free calls ------------------------------------------
    def _pick(self, avoid: set[int]) -> int:
        n = len(self.workers)
        start = next(self._rr) % n
        order = [(start + k) % n for k in range(n)]
        free = [i for i in order if i not in avoid] or order
        return min(free, key=lambda i: self.load[i])

    async def _call(self, method: str, *args):
        errors = _actor_errors()
        tried: set[int] = set()
        last: BaseException | None = None
        for attempt in range(self.max_attempts):
            i = self._pick(tried)
            tried.add(i)
            self.load[i] += 1
            try:
                return await _cancellable(getattr(self.workers[i], method).remote(*args))
            except errors as e:
                last = e
                self.failovers += 1
                log.warning("LeanWorker %d failed during %s (attempt %d/%d): %s", i, method, attempt + 1,
                            self.max_attempts, type(e).__name__)
                await asyncio.sleep(self.retry_delay_s * 2 ** attempt)
            finally:
                self.load[i] -= 1
        raise WorkerUnavailable(f"{method} failed on {self.max_attempts} Lean workers: {last}")

    async def start(self, theorem: Theorem) -> Outcome:
        return await self._call("start", theorem)

    async def run_tac(self, state: State, tactic: str) -> Outcome:
        return await self._call("run_tac", state, tactic)

    async def run_tacs(self, state: State, tactics: Sequence[str]) -> list[Outcome]:
        """Mode spread: the tactics are dealt round-robin over at most ``len(workers)`` calls."""
        k = max(1, min(len(self.workers), len(tactics)))
        shares = [list(range(i, len(tactics), k)) for i in range(k)]
        answers = await asyncio.gather(*[self._call("run_tacs", state, [tactics[j] for j in share])
                                         for share in shares])
        out: list[Outcome] = [None] * len(tactics)  # type: ignore[list-item]
        for share, outcomes in zip(shares, answers):
            for j, o in zip(share, outcomes):
                out[j] = o
        return out

    async def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        return await self._call("verify", theorem, list(tactics))


class _SpreadSession:
    """Mode spread: every call goes to the pool (no lease, nothing to release)."""

    def __init__(self, pool: RayEnvPool):
        self.pool, self.queue_waits, self.wait_s = pool, [], 0.0

    def __getattr__(self, name):
        return getattr(self.pool, name)

    async def close(self, cancelled: bool = False) -> None:
        return None


class Lease:
    """One search's Lean worker: every call of the search goes to ``worker`` until it dies.

    ``wait_s`` is the time spent waiting for the lease; ``queue_waits`` the time each call waited behind
    other leases' work in the worker's queue (neither counts against the search's deadline).
    """

    def __init__(self, pool: RayEnvPool, theorem: Theorem, lease_id: str, index: int, wait_s: float):
        self.pool, self.theorem, self.lease_id, self.index = pool, theorem, lease_id, index
        self.wait_s = wait_s
        self.queue_waits: list[float] = []
        self.moves = 0
        self.inflight: set = set()
        self.closed = False

    @property
    def worker(self):
        return self.pool.workers[self.index]

    async def _call(self, method: str, *args):
        import ray

        errors = _actor_errors()
        last: BaseException | None = None
        for attempt in range(self.pool.max_attempts):
            if self.closed:
                raise LeaseCancelled(f"lease of {self.theorem.name} was released")
            ref = getattr(self.worker, method).remote(self.lease_id, time.time(), *args)
            self.inflight.add(ref)
            try:
                answer, queued = await ref
            except asyncio.CancelledError:
                ray.cancel(ref)
                raise
            except errors as e:
                last = e
                await self._move(e, attempt)
                continue
            finally:
                self.inflight.discard(ref)
            if isinstance(answer, str) and answer == "cancelled":
                raise LeaseCancelled(f"lease of {self.theorem.name} was cancelled on its worker")
            self.queue_waits.append(queued)
            return answer
        raise WorkerUnavailable(f"{method} of {self.theorem.name} failed on {self.pool.max_attempts} "
                                f"Lean workers: {last}")

    async def _move(self, error: BaseException, attempt: int) -> None:
        """The leased worker died: lease the least-loaded other worker (cap waived)."""
        old = self.index
        self.pool.failovers += 1
        await asyncio.sleep(self.pool.retry_delay_s * 2 ** attempt)
        self.index, waited = await self.pool._acquire(self.lease_id, self.theorem.name, avoid=old)
        self.moves += 1
        self.pool.lease_moves += 1
        log.warning("LeanWorker %d died under %s (%s); lease moved to worker %d", old, self.theorem.name,
                    type(error).__name__, self.index)

    async def start(self, theorem: Theorem) -> Outcome:
        return await self._call("lease_start", theorem)

    async def run_tacs(self, state: State, tactics: Sequence[str]) -> list[Outcome]:
        """A node's tactics in one call, run one after another on the leased worker."""
        return list(await self._call("lease_run_tacs", state, list(tactics)))

    async def run_tac(self, state: State, tactic: str) -> Outcome:
        return (await self.run_tacs(state, [tactic]))[0]

    async def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        return await self._call("lease_verify", theorem, list(tactics))

    async def close(self, cancelled: bool = False) -> None:
        """End the lease: cancel what is still queued, then release (the worker drops the theorem's states)."""
        import ray

        if self.closed:
            return
        self.closed = True
        errors = _actor_errors()
        try:
            if cancelled or self.inflight:
                for ref in list(self.inflight):
                    ray.cancel(ref)
                await self.worker.cancel.remote(self.lease_id)
            await self.worker.release.remote(self.lease_id, self.theorem)
        except errors as e:  # the worker is gone, and its states with it
            log.info("releasing the lease of %s: worker gone (%s)", self.theorem.name, type(e).__name__)


class RayGenerator:
    def __init__(self, handle):
        self.handle = handle

    async def propose(self, state: str, n: int, temperature: float, max_tokens: int) -> list[Candidate]:
        return await _cancellable(self.handle.propose.remote(state, n, temperature, max_tokens))


class RayValue:
    def __init__(self, handle):
        self.handle = handle

    async def energies(self, states: list[str]) -> list[float]:
        return await _cancellable(self.handle.energies.remote(states))
