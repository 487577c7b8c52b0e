"""What the search awaits: an async proof environment and an optional value function.

``AsyncEnv`` mirrors the sync ``ProofEnv`` (start, run_tac, verify) with coroutines. Two implementations:

- ``ThreadedEnv`` (here): a small pool of sync ``ProofEnv`` instances, each used by one thread at a time.
  One REPL process answers one request at a time, so concurrency comes from several instances; a state
  opened by one member can be run on another because the REPL client rebuilds it by replaying its path.
- the Ray actor pool adapter (``actors/``), which implements the same protocol over LeanWorker actors.

``ValueFunction`` gives energies of open states (lower = more provable); without one the search's
``beta`` term is 0.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Protocol, Sequence, TypeVar

from raylib.env.outcome import Outcome, ProofEnv, State, Verification
from raylib.env.theorems import Theorem

log = logging.getLogger(__name__)
T = TypeVar("T")


class AsyncEnv(Protocol):
    """Async proof environment: the same three calls as ``ProofEnv``, safe to await concurrently."""

    async def start(self, theorem: Theorem) -> Outcome:
        """The theorem's initial ``State`` (or an error/timeout outcome)."""

    async def run_tac(self, state: State, tactic: str) -> Outcome:
        """One tactic on one state; states are immutable and may be branched from many times."""

    async def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        """The whole proof checked again as one theorem from a fresh environment."""

    # Optional: ``async run_tacs(state, tactics) -> list[Outcome]`` runs several tactics on one state in
    # fewer round trips (the Ray pool sends one call per worker instead of one per tactic); the search
    # uses it when present (``run_tacs`` below), else one ``run_tac`` per tactic.


async def run_tacs(env: AsyncEnv, state: State, tactics: Sequence[str]) -> list[Outcome]:
    """Several tactics on one state, batched when ``env`` offers ``run_tacs``; outcomes in order."""
    batched = getattr(env, "run_tacs", None)
    if batched is not None:
        return list(await batched(state, list(tactics)))
    return list(await asyncio.gather(*[env.run_tac(state, t) for t in tactics]))


class ValueFunction(Protocol):
    """Energies of open proof states (goal text), lower = more provable; one float per state, in order.

    The search never sends finished (proof-completing) states here.
    """

    async def energies(self, states: list[str]) -> list[float]:
        ...


class ThreadedEnv:
    """An ``AsyncEnv`` over a pool of sync ``ProofEnv`` instances run in worker threads.

    Each call takes a free member, runs on it in a thread and gives it back when the call returns, even
    if the awaiting coroutine was cancelled meanwhile (a thread cannot be interrupted; the member's own
    request timeout bounds the call). At most ``len(pool)`` calls run at once; the rest wait their turn.
    """

    def __init__(self, env: ProofEnv | Sequence[ProofEnv], max_workers: int | None = None):
        members = [env] if not isinstance(env, Sequence) else list(env)
        if not members:
            raise ValueError("ThreadedEnv needs at least one ProofEnv")
        if max_workers is not None and max_workers != len(members):
            if len(members) != 1 or max_workers < 1:
                raise ValueError(f"max_workers={max_workers} does not match the {len(members)} environments given; "
                                 "use ThreadedEnv.from_factory to build a pool")
            log.warning("ThreadedEnv: one ProofEnv serves one request at a time; max_workers=%d ignored "
                        "(use ThreadedEnv.from_factory for a pool)", max_workers)
        self.members: list[ProofEnv] = members
        self._free: queue.Queue[ProofEnv] = queue.Queue()
        for m in members:
            self._free.put(m)
        self._pool = ThreadPoolExecutor(max_workers=len(members), thread_name_prefix="proofenv")
        self._closed = False

    @classmethod
    def from_factory(cls, factory: Callable[[], ProofEnv], max_workers: int = 1) -> "ThreadedEnv":
        """A pool of ``max_workers`` environments, each made by ``factory()`` (e.g. ``lambda: make_env(cfg.env)``)."""
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        return cls([factory() for _ in range(max_workers)])

    @property
    def size(self) -> int:
        return len(self.members)

    def _on_member(self, call: Callable[[ProofEnv], T]) -> T:
        member = self._free.get()  # never blocks long: the executor runs at most len(members) calls
        try:
            return call(member)
        finally:
            self._free.put(member)

    async def _run(self, call: Callable[[ProofEnv], T]) -> T:
        if self._closed:
            raise RuntimeError("ThreadedEnv is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._on_member, call)

    async def start(self, theorem: Theorem) -> Outcome:
        return await self._run(lambda env: env.start(theorem))

    async def run_tac(self, state: State, tactic: str) -> Outcome:
        return await self._run(lambda env: env.run_tac(state, tactic))

    async def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        tactics = tuple(tactics)
        return await self._run(lambda env: env.verify(theorem, tactics))

    def close(self) -> None:
        """Wait for running calls, then close every member (stops their processes)."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        for m in self.members:
            try:
                m.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                log.exception("closing a pooled environment failed")

    def __enter__(self) -> "ThreadedEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
