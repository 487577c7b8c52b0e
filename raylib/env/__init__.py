"""Proof environments: one interface (``ProofEnv``) over the Lean REPL, the built-in logic and LeanDojo."""

from __future__ import annotations

import sys

from raylib.env.filter import TacticFilter
from raylib.env.outcome import (OUTCOME_KINDS, Finished, GivenUp, LeanError, Outcome, ProofEnv, State,
                                Timeout, Verification)
from raylib.env.theorems import Theorem, TheoremFileError, load_theorems

__all__ = ["OUTCOME_KINDS", "Finished", "GivenUp", "LeanError", "Outcome", "ProofEnv", "State", "Timeout",
           "Verification", "Theorem", "TheoremFileError", "load_theorems", "make_env", "make_filter",
           "builtin_command"]


def make_filter(env_cfg) -> TacticFilter:
    f = env_cfg.filter
    deny = list(f.deny) if f.deny is not None else None
    if f.extra_deny:
        from raylib.env.filter import DEFAULT_DENY
        deny = (deny if deny is not None else list(DEFAULT_DENY)) + list(f.extra_deny)
    return TacticFilter(deny=deny, max_chars=f.max_chars)


def builtin_command(faults: bool = False) -> tuple[str, ...]:
    """The command that serves the built-in logic over the REPL protocol."""
    return (sys.executable, "-m", "raylib.env.builtin") + (("--faults",) if faults else ())


def make_env(env_cfg) -> ProofEnv:
    """Build the configured environment from an ``EnvSection`` (``config.env``)."""
    from raylib.config import REPO_ROOT

    tactic_filter = make_filter(env_cfg)
    if env_cfg.backend == "leandojo":
        from raylib.env.leandojo import LeanDojoEnv
        d = env_cfg.leandojo
        return LeanDojoEnv(d.repo, d.commit, d.timeout_s, tactic_filter)

    from raylib.env.repl import LeanReplEnv, ReplSettings
    if env_cfg.backend == "builtin":
        import os
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        command, cwd, header = builtin_command(env_cfg.builtin.faults), None, ""
        extra_env = (("PYTHONPATH", pythonpath),)
    else:
        r = env_cfg.lean_repl
        command, cwd, header, extra_env = tuple(r.command), r.cwd, r.header, ()
    settings = ReplSettings(command=command, cwd=cwd, header=header, timeout_s=env_cfg.timeout_s,
                            startup_timeout_s=env_cfg.startup_timeout_s, verify_timeout_s=env_cfg.verify_timeout_s,
                            memory_limit_gb=env_cfg.memory_limit_gb, max_requests=env_cfg.max_requests,
                            extra_env=extra_env, recycle_states=env_cfg.recycle_states,
                            allowed_axioms=tuple(env_cfg.allowed_axioms), backend=env_cfg.backend)
    return LeanReplEnv(settings, tactic_filter)
