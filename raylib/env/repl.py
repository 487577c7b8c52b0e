"""Client for the Lean REPL protocol (leanprover-community/repl), used for real Lean and the built-in env.

- The header (imports) runs once per process; its ``env`` is reused for every theorem.
- Every request has a timeout; past it the process group is killed and restarted on the next request.
- The process runs under an address-space cap and is restarted after ``max_requests`` requests.
- States carry their tactic path: after a restart a live state is rebuilt by replaying that path.
- ``proofStatus: "Completed"`` is required for a finished proof when the REPL reports one.
- Malformed or truncated answers become a clear error and a restart, never a hang.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Sequence

from raylib.env.filter import TacticFilter
from raylib.env.outcome import (Finished, GivenUp, LeanError, Outcome, State, Timeout, Verification,
                                proof_text)
from raylib.env.repl_process import ReplCrash, ReplFailure, ReplProcess, ReplTimeout
from raylib.env.theorems import Theorem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplSettings:
    command: tuple[str, ...]
    cwd: str | None = None
    header: str = ""                  # default header for theorems that carry none
    timeout_s: float = 10.0
    startup_timeout_s: float = 600.0
    verify_timeout_s: float = 120.0
    memory_limit_gb: float | None = 8.0
    max_requests: int = 2000
    extra_env: tuple[tuple[str, str], ...] = ()   # environment variables added for the process


@dataclass(frozen=True)
class _Handle:
    """Which process (client token + generation) a REPL proof state id belongs to."""

    token: str
    generation: int
    proof_state: int


class _StateLost(Exception):
    """The REPL no longer knows the proof state (e.g. ``Unknown proof state.``)."""


class LeanReplEnv:
    """A ``ProofEnv`` over one REPL process."""

    def __init__(self, settings: ReplSettings, tactic_filter: TacticFilter | None = None):
        self.s = settings
        self.filter = tactic_filter or TacticFilter()
        limit = int(settings.memory_limit_gb * 2**30) if settings.memory_limit_gb else None
        env = {**os.environ, **dict(settings.extra_env)} if settings.extra_env else None
        self.proc = ReplProcess(settings.command, cwd=settings.cwd, memory_limit_bytes=limit, env=env)
        self.token = uuid.uuid4().hex
        self.generation = 0
        self.restarts = 0
        self._header_envs: dict[str, int | None] = {}
        self._handles: dict[tuple[Theorem, tuple[str, ...]], int] = {}

    # -- process management ------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self.proc.alive and self.proc.requests < self.s.max_requests:
            return
        if self.generation:
            why = "request budget reached" if self.proc.alive else "process gone"
            log.info("restarting REPL (%s) after %d requests", why, self.proc.requests)
            self.restarts += 1
        self.proc.start()
        self.generation += 1
        self._header_envs.clear()
        self._handles.clear()

    def _request(self, payload: dict, timeout: float) -> dict:
        self._ensure()
        return self.proc.request(payload, timeout)

    def _header_env(self, header: str) -> int | None:
        """The env id of ``header`` in this process (None when the header is empty)."""
        if not header.strip():
            return None
        if header not in self._header_envs:
            ans = self._request({"cmd": header}, self.s.startup_timeout_s)
            errors = _errors(ans)
            if errors or "env" not in ans:
                raise HeaderError("the header failed: " + ("; ".join(errors) or ans.get("message", repr(ans))))
            self._header_envs[header] = ans["env"]
        return self._header_envs[header]

    def _cmd(self, theorem: Theorem, text: str, timeout: float) -> dict:
        """Run a command in the theorem's header env; retried once on a crash (a restart in between)."""
        for attempt in (0, 1):
            try:
                env = self._header_env(theorem.header or self.s.header)
                payload = {"cmd": text} if env is None else {"cmd": text, "env": env}
                return self._request(payload, timeout)
            except ReplCrash:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # -- ProofEnv ----------------------------------------------------------------------------------
    def start(self, theorem: Theorem) -> Outcome:
        try:
            ans = self._cmd(theorem, theorem.command("by sorry"), self.s.timeout_s)
        except ReplTimeout as e:
            return Timeout(str(e))
        except (ReplFailure, HeaderError) as e:
            return LeanError(str(e))
        return self._opened(theorem, ans)

    def _opened(self, theorem: Theorem, ans: dict) -> Outcome:
        errors = _errors(ans)
        if errors:
            return LeanError("\n".join(errors))
        if "message" in ans and "env" not in ans:
            return LeanError(str(ans["message"]))
        sorries = ans.get("sorries") or []
        if len(sorries) != 1 or "proofState" not in sorries[0]:
            return LeanError(f"expected one sorry with a proof state from the statement, got {len(sorries)}")
        ps = sorries[0]["proofState"]
        self._handles[(theorem, ())] = ps
        return State(theorem, (sorries[0].get("goal", ""),), (), _Handle(self.token, self.generation, ps))

    def run_tac(self, state: State, tactic: str) -> Outcome:
        refused = self.filter.refusal(tactic)
        if refused is not None:
            return refused
        for attempt in (0, 1):
            try:
                ps = self._proof_state(state)  # restarts first if needed; then no restart in between
                ans = self.proc.request({"tactic": tactic, "proofState": ps}, self.s.timeout_s)
                return self._classify(state, tactic, ans)
            except ReplTimeout as e:
                return Timeout(str(e))
            except (ReplCrash, _StateLost) as e:
                if attempt:
                    return LeanError(f"tactic failed twice with the REPL restarted in between: {e}")
                log.info("REPL lost the state (%s); restarting and replaying %d tactics", e, len(state.path))
                if isinstance(e, _StateLost):
                    self._handles.pop((state.theorem, state.path), None)
            except ReplFailure as e:
                return LeanError(str(e))
            except (_ReplayError, HeaderError) as e:
                return LeanError(str(e))
        raise AssertionError("unreachable")

    def _proof_state(self, state: State) -> int:
        """This process's proof state id for ``state``, rebuilt by replaying its path if needed."""
        self._ensure()
        h = state.handle
        if isinstance(h, _Handle) and h.token == self.token and h.generation == self.generation:
            return h.proof_state
        key = (state.theorem, state.path)
        if key in self._handles:
            return self._handles[key]
        return self._replay(state.theorem, state.path)

    def _replay(self, theorem: Theorem, path: tuple[str, ...]) -> int:
        ans = self._cmd(theorem, theorem.command("by sorry"), self.s.timeout_s)
        opened = self._opened(theorem, ans)
        if not isinstance(opened, State):
            raise _ReplayError(f"could not reopen {theorem.name} to rebuild a state: {getattr(opened, 'message', '')}")
        ps = opened.handle.proof_state
        for i, tac in enumerate(path):
            ans = self.proc.request({"tactic": tac, "proofState": ps}, self.s.timeout_s)
            if "proofState" not in ans or _errors(ans):
                raise _ReplayError(f"replaying step {i + 1} {tac!r} of {theorem.name} failed: "
                                   f"{'; '.join(_errors(ans)) or ans.get('message', '')}")
            ps = ans["proofState"]
            self._handles[(theorem, path[:i + 1])] = ps
        return ps

    def _classify(self, state: State, tactic: str, ans: dict) -> Outcome:
        if "proofState" not in ans:
            msg = str(ans.get("message", ans))
            if "Unknown proof state" in msg:
                raise _StateLost(msg)
            return LeanError(msg)
        errors = _errors(ans)
        if errors:
            return LeanError("\n".join(errors))
        goals = tuple(ans.get("goals") or ())
        status = ans.get("proofStatus")
        path = state.path + (tactic,)
        if goals:
            self._handles[(state.theorem, path)] = ans["proofState"]
            return State(state.theorem, goals, path, _Handle(self.token, self.generation, ans["proofState"]))
        if status is None or status == "Completed":
            return Finished(state.theorem, path)
        if "sorry" in status:
            return GivenUp(status)
        return LeanError(f"no goals left but the REPL reports: {status}")

    def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        proof = proof_text(tactics)
        refused = self.filter.script_refusal(tactics)
        if refused is not None:
            return Verification(False, (refused,), proof)
        try:
            ans = self._cmd(theorem, theorem.command(proof), self.s.verify_timeout_s)
        except (ReplFailure, HeaderError) as e:
            return Verification(False, (str(e),), proof)
        problems = _errors(ans)
        problems += [m.get("data", "") for m in ans.get("messages") or []
                     if m.get("severity") == "warning" and "sorry" in m.get("data", "")]
        if ans.get("sorries"):
            problems.append("proof contains sorry")
        if "env" not in ans:
            problems.append(str(ans.get("message", "no env in the REPL's answer")))
        return Verification(not problems, tuple(problems), proof)

    def close(self) -> None:
        self.proc.kill()

    def __enter__(self) -> "LeanReplEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HeaderError(RuntimeError):
    pass


class _ReplayError(RuntimeError):
    pass


def _errors(ans: dict) -> list[str]:
    return [m.get("data", "") for m in ans.get("messages") or [] if m.get("severity") == "error"]
