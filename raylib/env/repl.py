"""Client for the Lean REPL protocol (leanprover-community/repl), used for real Lean and the built-in env.

- The header (imports) runs once per process; its ``env`` is reused for every theorem.
- Every request has a timeout; past it the process group is killed and restarted on the next request.
- The process runs under an address-space cap (set in the child before exec) and is restarted after
  ``max_requests`` requests, or recycled once it holds no live theorem and has made ``recycle_states``
  proof states (``release`` marks a theorem's search as ended and forgets its states).
- States carry their tactic path: a state this process does not hold is rebuilt by replaying its path
  from the longest prefix the process already holds (from the statement only when it holds none).
- A tactic's answer is classified by its messages, ``sorries`` and ``proofStatus`` as the real REPL
  gives them: any error is an error (even with no goals left), any sorry is giving up, and no goals
  left is a proof only when ``proofStatus`` is ``Completed`` (or absent, in REPLs that predate it).
- The whole-proof check compiles the theorem from its own statement, then asks ``#print axioms`` in the
  same environment and accepts only the allowed axioms (see ``raylib.env.axioms``).
- Malformed or truncated answers become a clear error and a restart, never a hang.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Sequence

from raylib.env.axioms import DEFAULT_ALLOWED_AXIOMS, axiom_problems, check_command, print_axioms_command
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
    recycle_states: int = 20000       # recycle once no theorem is live and this many states were made
    allowed_axioms: tuple[str, ...] = DEFAULT_ALLOWED_AXIOMS
    backend: str = "lean_repl"        # what versions() reports ("builtin" for the built-in server)


@dataclass(frozen=True)
class _Handle:
    """Which process (client token + generation) a REPL proof state id belongs to."""

    token: str
    generation: int
    proof_state: int


class _StateLost(Exception):
    """The REPL no longer knows the proof state (e.g. ``Unknown proof state.``)."""


def new_stats() -> dict:
    return {"opens": 0, "replays": 0, "replayed_tactics": 0, "requests": 0, "restarts": 0, "recycles": 0,
            "states_lost": 0}


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
        self.stats = new_stats()
        self._header_envs: dict[str, int | None] = {}
        self._handles: dict[tuple[Theorem, tuple[str, ...]], int] = {}
        self._live: set[Theorem] = set()   # theorems whose search has not been released
        self._made = 0                     # proof states this process has made
        self._versions: dict | None = None

    @property
    def restarts(self) -> int:
        return self.stats["restarts"]

    # -- process management ------------------------------------------------------------------------
    def _ensure(self) -> None:
        recycle = not self._live and self._made >= self.s.recycle_states
        if self.proc.alive and self.proc.requests < self.s.max_requests and not recycle:
            return
        if self.generation:
            why = ("recycled: no live theorem and %d states made" % self._made if recycle and self.proc.alive
                   else "request budget reached" if self.proc.alive else "process gone")
            log.info("restarting REPL (%s) after %d requests", why, self.proc.requests)
            self.stats["restarts"] += 1
            if recycle and self.proc.alive:
                self.stats["recycles"] += 1
        self.proc.start()
        self.generation += 1
        self._made = 0
        self._header_envs.clear()
        self._handles.clear()

    def _send(self, payload: dict, timeout: float) -> dict:
        """One request to the running process (no restart first)."""
        self.stats["requests"] += 1
        ans = self.proc.request(payload, timeout)
        self._made += len(ans.get("sorries") or ()) + ("proofState" in ans)
        return ans

    def _request(self, payload: dict, timeout: float) -> dict:
        self._ensure()
        return self._send(payload, timeout)

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

    def _cmd(self, theorem: Theorem, text: str, timeout: float, env: int | None = None) -> dict:
        """Run a command in the theorem's header env (or ``env``); retried once on a crash."""
        for attempt in (0, 1):
            try:
                if env is None:
                    env = self._header_env(theorem.header or self.s.header)
                payload = {"cmd": text} if env is None else {"cmd": text, "env": env}
                return self._request(payload, timeout)
            except ReplCrash:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # -- ProofEnv ----------------------------------------------------------------------------------
    def start(self, theorem: Theorem) -> Outcome:
        self._live.add(theorem)
        try:
            return self._open(theorem)
        except ReplTimeout as e:
            return Timeout(str(e))
        except (ReplFailure, HeaderError) as e:
            return LeanError(str(e))

    def _open(self, theorem: Theorem) -> Outcome:
        """Elaborate the statement with ``by sorry``: the root state of ``theorem`` in this process."""
        self.stats["opens"] += 1
        ans = self._cmd(theorem, theorem.command("by sorry"), self.s.timeout_s)
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
        self._live.add(state.theorem)
        trust_handle = True
        for attempt in (0, 1):
            try:
                ps = self._proof_state(state, trust_handle)  # restarts first if needed
            except ReplCrash as e:
                if attempt:
                    return LeanError(f"replay failed: could not rebuild the state ({e})", infra=True)
                continue
            except ReplFailure as e:  # a timeout or garbage while replaying is not this tactic's outcome
                return LeanError(f"replay failed: could not rebuild the state ({e})", infra=True)
            except (_ReplayError, HeaderError) as e:
                return LeanError(f"replay failed: {e}", infra=True)
            try:
                ans = self._send({"tactic": tactic, "proofState": ps}, self.s.timeout_s)
                return self._classify(state, tactic, ans)
            except ReplTimeout as e:
                return Timeout(str(e))
            except (ReplCrash, _StateLost) as e:
                if attempt:
                    return LeanError(f"tactic failed twice with the state rebuilt in between: {e}", infra=True)
                log.info("REPL lost the state (%s); rebuilding it from its path of %d tactics", e, len(state.path))
                if isinstance(e, _StateLost):
                    self.stats["states_lost"] += 1
                    self._forget(state.theorem)   # every handle of this theorem is suspect now
                    trust_handle = False
            except ReplFailure as e:
                return LeanError(str(e))
        raise AssertionError("unreachable")

    def _proof_state(self, state: State, trust_handle: bool = True) -> int:
        """This process's proof state id for ``state``, rebuilt by replaying its path if needed."""
        self._ensure()
        h = state.handle
        if (trust_handle and isinstance(h, _Handle) and h.token == self.token
                and h.generation == self.generation):
            return h.proof_state
        return self._rebuild(state.theorem, state.path)

    def _rebuild(self, theorem: Theorem, path: tuple[str, ...]) -> int:
        """Replay ``path`` from the longest prefix this process holds (the statement when none)."""
        start = next((i for i in range(len(path), -1, -1) if (theorem, path[:i]) in self._handles), None)
        if start is None:
            opened = self._open(theorem)
            if not isinstance(opened, State):
                raise _ReplayError(f"could not reopen {theorem.name}: {getattr(opened, 'message', '')}")
            start = 0
        ps = self._handles[(theorem, path[:start])]
        if start < len(path):
            self.stats["replays"] += 1
        for i in range(start, len(path)):
            tac = path[i]
            self.stats["replayed_tactics"] += 1
            ans = self._send({"tactic": tac, "proofState": ps}, self.s.timeout_s)
            if "proofState" not in ans or _errors(ans):
                raise _ReplayError(f"step {i + 1} {tac!r} of {theorem.name} failed: "
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
        outcome = classify_tactic_answer(ans)
        path = state.path + (tactic,)
        if outcome == "state":
            goals = tuple(ans.get("goals") or ())
            self._handles[(state.theorem, path)] = ans["proofState"]
            return State(state.theorem, goals, path, _Handle(self.token, self.generation, ans["proofState"]))
        if outcome == "finished":
            return Finished(state.theorem, path)
        kind, message = outcome
        return GivenUp(message) if kind == "sorry" else LeanError(message)

    def release(self, theorem: Theorem) -> None:
        """The search on ``theorem`` ended: forget its states; recycle the process if it is now idle and big."""
        self._live.discard(theorem)
        self._forget(theorem)
        if not self._live and self._made >= self.s.recycle_states and self.proc.alive:
            log.info("recycling REPL: no live theorem and %d states made", self._made)
            self.proc.kill()   # memory back now; the next request starts a fresh process
            self.stats["restarts"] += 1
            self.stats["recycles"] += 1
            self._made = 0

    def _forget(self, theorem: Theorem) -> None:
        for key in [k for k in self._handles if k[0] == theorem]:
            del self._handles[key]

    def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        proof = proof_text(tactics)
        refused = self.filter.script_refusal(tactics)
        if refused is not None:
            return Verification(False, (refused,), proof)
        command, name = check_command(theorem, proof)
        try:
            ans = self._cmd(theorem, command, self.s.verify_timeout_s)
            problems = _compile_problems(ans)
            axioms = None
            if not problems:
                report = self._cmd(theorem, print_axioms_command(name), self.s.verify_timeout_s, env=ans["env"])
                problems, axioms = axiom_problems(report, name, self.s.allowed_axioms)
        except (ReplFailure, HeaderError) as e:
            return Verification(False, (str(e),), proof)
        return Verification(not problems, tuple(problems), proof, axioms=axioms)

    def versions(self) -> dict:
        """What produced the results: Lean toolchain, REPL and Mathlib commits (or the built-in's version)."""
        if self._versions is None:
            from raylib.env.versions import repl_versions
            self._versions = repl_versions(self.s.backend, self.s.command, self.s.cwd)
        return dict(self._versions)

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


def _sorry_warnings(ans: dict) -> list[str]:
    return [m.get("data", "") for m in ans.get("messages") or []
            if m.get("severity") == "warning" and "sorry" in m.get("data", "")]


def classify_tactic_answer(ans: dict):
    """``"state"``, ``"finished"``, or ``(kind, message)`` with kind ``error``/``sorry`` for a tactic answer.

    Order matters: an error message wins even when no goal is left; a sorry (``sorries`` field, a
    ``declaration uses 'sorry'`` warning or an ``Incomplete: contains sorry`` status) is giving up;
    a ``proofStatus`` starting with ``Error`` is an error; no goals left is a proof only when the
    status is ``Completed`` (or absent: REPL versions before ``proofStatus`` existed).
    """
    errors = _errors(ans)
    if errors:
        return ("error", "\n".join(errors))
    status = ans.get("proofStatus")
    if ans.get("sorries") or _sorry_warnings(ans) or (isinstance(status, str) and "sorry" in status):
        return ("sorry", status if isinstance(status, str) and "sorry" in status else "the tactic used sorry")
    if isinstance(status, str) and status.startswith("Error"):
        return ("error", status)
    if ans.get("goals"):
        return "state"
    if status is None or status == "Completed":
        return "finished"
    return ("error", f"no goals left but the REPL reports: {status}")


def _compile_problems(ans: dict) -> list[str]:
    problems = _errors(ans) + _sorry_warnings(ans)
    if ans.get("sorries"):
        problems.append("proof contains sorry")
    if "env" not in ans:
        problems.append(str(ans.get("message", "no env in the REPL's answer")))
    return problems
