"""LeanWorker: a CPU actor hosting one proof environment process (Lean REPL, built-in, or LeanDojo).

Ray restarts the actor if it dies (``max_restarts``); the environment inside restarts its own process on
timeouts and crashes, and rebuilds states by replaying their tactic paths, so a caller can send any
``State`` to any worker of the pool.
"""

from __future__ import annotations

from typing import Sequence

from raylib.config import Config
from raylib.env import Outcome, State, Theorem, Verification, make_env


class LeanWorker:
    def __init__(self, cfg: Config):
        self.env = make_env(cfg.env)

    def start(self, theorem: Theorem) -> Outcome:
        return self.env.start(theorem)

    def run_tac(self, state: State, tactic: str) -> Outcome:
        return self.env.run_tac(state, tactic)

    def run_tacs(self, state: State, tactics: Sequence[str]) -> list[Outcome]:
        """Several tactics on one state in one round trip (run one after another in this process)."""
        return [self.env.run_tac(state, t) for t in tactics]

    def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        return self.env.verify(theorem, tactics)

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

    def actor_pid(self) -> int:
        """PID of this actor's own process (changes when Ray restarts it)."""
        import os

        return os.getpid()

    def process_pid(self) -> int | None:
        """PID of the environment process (for fault-injection tests)."""
        proc = getattr(self.env, "proc", None)
        return proc.pid if proc is not None and proc.alive else None

    def close(self) -> None:
        """Stop the environment process (it also exits by itself when this actor dies: its stdin closes)."""
        self.env.close()


def lean_worker_pool(cfg: Config, n: int | None = None) -> list:
    """Create ``n`` (default ``workers.lean``) LeanWorker actors, placed by the configured resources."""
    import ray

    w = cfg.workers
    options = {"num_cpus": w.lean_cpus, "max_restarts": -1, "max_task_retries": 0}
    if w.lean_resource:
        options["resources"] = {w.lean_resource: 1}
    cls = ray.remote(LeanWorker).options(**options)
    return [cls.remote(cfg) for _ in range(n or w.lean)]
