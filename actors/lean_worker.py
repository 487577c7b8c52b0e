"""LeanWorker: a CPU actor hosting one proof environment process (Lean REPL, built-in, or LeanDojo).

Searches lease a worker for their whole life (``acquire`` / ``release``; at most
``workers.leases_per_worker`` at once): the worker keeps that theorem's proof states, and the lease's
calls (``lease_start``, ``lease_run_tacs``, ``lease_verify``) run one after another in its process.
Releasing drops the theorem's proof states (``ProofEnv.release``). ``cancel`` marks a lease cancelled:
calls of it still queued are skipped when their turn comes (callers also ``ray.cancel`` them).

Control calls (leases, cancel, stats, pids) run in their own concurrency group, so they are answered
while a long tactic call runs. Ray restarts the actor if it dies (``max_restarts``); the environment
inside restarts its own process on timeouts and crashes and rebuilds a state from the longest prefix
of its tactic path it holds, so any worker can serve any ``State`` (after a failover, say).

The lease calls return ``(answer, queued_s)``: ``queued_s`` is how long the call waited behind other
leases' work in this actor's queue (its wait behind its own lease's calls is the search's own time).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from typing import Callable, Optional, Sequence

import ray

from raylib.config import Config
from raylib.env import Outcome, ProofEnv, State, Theorem, Verification, make_env
from raylib.placement import role_options

CONTROL = "control"
CANCELLED = "cancelled"   # what a skipped call of a cancelled lease answers


class LeanWorker:
    def __init__(self, cfg: Config, env_factory: Optional[Callable[[], ProofEnv]] = None):
        self.env = env_factory() if env_factory is not None else make_env(cfg.env)
        self.cap = cfg.workers.leases_per_worker
        self._lock = threading.Lock()
        self.leases: dict[str, str] = {}          # lease id -> theorem name
        self.cancelled: set[str] = set()
        self.recent: deque = deque(maxlen=512)    # (lease id, start, end) of executed lease calls
        self.counts: Counter = Counter()          # executed / skipped lease calls, leases granted / released
        self.busy_s = 0.0                         # seconds spent inside the environment (Lean time)

    # -- control group: answered while the environment is busy ----------------------------------------
    @ray.method(concurrency_group=CONTROL)
    def lease_count(self) -> int:
        return len(self.leases)

    @ray.method(concurrency_group=CONTROL)
    def acquire(self, lease_id: str, theorem_name: str, force: bool = False) -> bool:
        """Grant a lease unless ``leases_per_worker`` are held (``force``: failover, granted anyway)."""
        with self._lock:
            if lease_id in self.leases:
                return True
            if len(self.leases) >= self.cap and not force:
                return False
            self.leases[lease_id] = theorem_name
            self.counts["granted"] += 1
            return True

    @ray.method(concurrency_group=CONTROL)
    def cancel(self, lease_id: str) -> None:
        """Skip every call of this lease still queued (``release`` follows and frees its states)."""
        with self._lock:
            self.cancelled.add(lease_id)

    @ray.method(concurrency_group=CONTROL)
    def stats(self) -> dict:
        env_stats = dict(getattr(self.env, "stats", {}) or {})
        return {"leases": dict(self.leases), "executed": self.counts["executed"], "busy_s": self.busy_s,
                "skipped": self.counts["skipped"], "granted": self.counts["granted"],
                "released": self.counts["released"], "env": env_stats,
                "held_states": _held_states(self.env)}

    @ray.method(concurrency_group=CONTROL)
    def actor_pid(self) -> int:
        """PID of this actor's own process (changes when Ray restarts it)."""
        return os.getpid()

    @ray.method(concurrency_group=CONTROL)
    def process_pid(self) -> int | None:
        """PID of the environment process (for fault-injection tests)."""
        proc = getattr(self.env, "proc", None)
        return proc.pid if proc is not None and proc.alive else None

    # -- lease calls (one at a time, in the environment's thread) --------------------------------------
    def _lease_call(self, lease_id: str, submitted: float, fn: Callable):
        start = time.time()
        if lease_id in self.cancelled:
            self.counts["skipped"] += 1
            return CANCELLED, 0.0
        with self._lock:
            self.leases.setdefault(lease_id, "?")  # a restarted actor learns its leases again
        own = sum(max(0.0, min(end, start) - max(t0, submitted))
                  for lid, t0, end in self.recent if lid == lease_id and end > submitted)
        queued = max(0.0, start - submitted - own)
        try:
            return self._env(fn), queued
        finally:
            self.counts["executed"] += 1
            self.recent.append((lease_id, start, time.time()))

    def _env(self, fn: Callable):
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.busy_s += time.perf_counter() - t

    def lease_start(self, lease_id: str, submitted: float, theorem: Theorem):
        return self._lease_call(lease_id, submitted, lambda: self.env.start(theorem))

    def lease_run_tacs(self, lease_id: str, submitted: float, state: State, tactics: Sequence[str]):
        return self._lease_call(lease_id, submitted, lambda: [self.env.run_tac(state, t) for t in tactics])

    def lease_verify(self, lease_id: str, submitted: float, theorem: Theorem, tactics: Sequence[str]):
        return self._lease_call(lease_id, submitted, lambda: self.env.verify(theorem, tactics))

    def release(self, lease_id: str, theorem: Theorem) -> None:
        """End a lease: drop the theorem's proof states from the process."""
        with self._lock:
            held = self.leases.pop(lease_id, None)
            self.cancelled.discard(lease_id)
            still_open = theorem.name in self.leases.values()
        if held is not None:
            self.counts["released"] += 1
        release = getattr(self.env, "release", None)
        if release is not None and not still_open:
            release(theorem)

    def ping(self) -> bool:
        """Answers once every call queued before it has run or been cancelled."""
        return True

    # -- lease-free calls (env checks, the old replay-everywhere dealing) -------------------------------
    def start(self, theorem: Theorem) -> Outcome:
        return self._env(lambda: self.env.start(theorem))

    def run_tac(self, state: State, tactic: str) -> Outcome:
        return self._env(lambda: self.env.run_tac(state, tactic))

    def run_tacs(self, state: State, tactics: Sequence[str]) -> list[Outcome]:
        """Several tactics on one state in one round trip (run one after another in this process)."""
        return self._env(lambda: [self.env.run_tac(state, t) for t in tactics])

    def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        return self._env(lambda: self.env.verify(theorem, tactics))

    def replay(self, theorem: Theorem, tactics: Sequence[str]) -> tuple[list[Outcome], Verification | None]:
        """Run a tactic script step by step, then check it whole when it finished."""
        outcomes: list[Outcome] = []
        out = self.env.start(theorem)
        outcomes.append(out)
        for tac in tactics:
            if not isinstance(out, State):
                break
            out = self.env.run_tac(out, tac)
            outcomes.append(out)
        verification = self.env.verify(theorem, tactics) if out.kind == "finished" else None
        return outcomes, verification

    def versions(self) -> dict:
        """What the environment reports of itself (backend, Lean / REPL / Mathlib versions)."""
        fn = getattr(self.env, "versions", None)
        return fn() if fn is not None else {"backend": type(self.env).__name__}

    def close(self) -> None:
        """Stop the environment process (it also exits by itself when this actor dies: its stdin closes)."""
        self.env.close()


def _held_states(env) -> Optional[int]:
    """How many proof states the environment holds (None when it does not say)."""
    stats = getattr(env, "stats", None) or {}
    if "states" in stats:
        return stats["states"]
    handles = getattr(env, "_handles", None)
    return len(handles) if handles is not None else None


def lean_worker_pool(cfg: Config, n: int | None = None, names: Sequence[str] | None = None,
                     env_factory: Optional[Callable[[], ProofEnv]] = None) -> list:
    """Create ``n`` (default ``workers.lean``, or one per name) LeanWorker actors, placed by the configured
    resources; ``names`` makes them named actors (drivers look them up by name)."""
    w = cfg.workers
    options = {**role_options(cfg, "lean"), "max_restarts": -1, "max_task_retries": 0}
    cls = ray.remote(concurrency_groups={CONTROL: 2})(LeanWorker)
    names = list(names) if names is not None else [None] * (n or w.lean)
    return [cls.options(**options, **({"name": name} if name else {})).remote(cfg, env_factory) for name in names]
