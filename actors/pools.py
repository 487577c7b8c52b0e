"""Adapters that let the search (pure asyncio, raylib.search) talk to Ray actors.

- ``RayEnvPool``: the ``AsyncEnv`` protocol over a pool of LeanWorker handles. Each call goes to the
  least-loaded worker; when a worker dies under a call (``RayActorError``) or is restarting
  (``ActorUnavailableError``), the call is retried on another one. States carry their tactic path, so any
  worker can rebuild any state.
- ``RayGenerator``: ``AsyncTacticGenerator`` over a GeneratorActor handle.
- ``RayValue``: the value-function protocol over an EncoderActor handle.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Sequence

from raylib.env import Outcome, State, Theorem, Verification
from raylib.models.generator import Candidate

log = logging.getLogger(__name__)


def _actor_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    return (RayActorError, ActorDiedError, ActorUnavailableError)


class WorkerUnavailable(RuntimeError):
    pass


class RayEnvPool:
    def __init__(self, workers: Sequence, max_attempts: int = 3, retry_delay_s: float = 0.2):
        if not workers:
            raise ValueError("RayEnvPool needs at least one LeanWorker")
        self.workers = list(workers)
        self.max_attempts = max_attempts
        self.retry_delay_s = retry_delay_s
        self.load = [0] * len(self.workers)
        self.failovers = 0
        self._rr = itertools.count()

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
                return await getattr(self.workers[i], method).remote(*args)
            except errors as e:
                last = e
                self.failovers += 1
                log.warning("LeanWorker %d failed during %s (attempt %d/%d): %s", i, method, attempt + 1,
                            self.max_attempts, type(e).__name__)
                await asyncio.sleep(self.retry_delay_s * (attempt + 1))
            finally:
                self.load[i] -= 1
        raise WorkerUnavailable(f"{method} failed on {self.max_attempts} Lean workers: {last}")

    async def start(self, theorem: Theorem) -> Outcome:
        return await self._call("start", theorem)

    async def run_tac(self, state: State, tactic: str) -> Outcome:
        return await self._call("run_tac", state, tactic)

    async def run_tacs(self, state: State, tactics: Sequence[str]) -> list[Outcome]:
        """One call per worker instead of one per tactic: the tactics are dealt round-robin over at most
        ``len(workers)`` calls (each worker runs its share one after another), outcomes in order."""
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


class RayGenerator:
    def __init__(self, handle):
        self.handle = handle

    async def propose(self, state: str, n: int, temperature: float, max_tokens: int) -> list[Candidate]:
        return await self.handle.propose.remote(state, n, temperature, max_tokens)


class RayValue:
    def __init__(self, handle):
        self.handle = handle

    async def energies(self, states: list[str]) -> list[float]:
        return await self.handle.energies.remote(states)
