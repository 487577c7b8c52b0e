"""LeanDojo backend: the ``ProofEnv`` interface over ``lean_dojo.Dojo`` for traced repositories.

``lean_dojo`` is imported lazily, so this module loads (and the rest of rayprover runs) without it.
A theorem needs ``file_path`` (its file in the traced repo) and ``name`` (its full Lean name).

A Dojo numbers its tactic states 0, 1, 2, ... on its own, so a state id means something only in the Dojo
that made it: every ``State`` carries which Dojo (this process, that Dojo's serial) made it, and a state
from anywhere else is rebuilt here by replaying its path from the longest prefix this Dojo holds.
``release(theorem)`` closes the theorem's Dojo when its search ends, so no Lean process is left behind.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from raylib.env.filter import TacticFilter
from raylib.env.outcome import Finished, GivenUp, LeanError, Outcome, State, Timeout, Verification, proof_text
from raylib.env.theorems import Theorem

log = logging.getLogger(__name__)


def import_lean_dojo() -> Any:
    try:
        import lean_dojo
    except ImportError as e:  # pragma: no cover - lean-dojo is a declared dependency
        raise RuntimeError("env.backend=leandojo needs the lean-dojo package: pip install lean-dojo") from e
    return lean_dojo


@dataclass(frozen=True)
class _DojoHandle:
    """A LeanDojo tactic state together with the Dojo that made it (this env's token + Dojo serial)."""

    token: str
    dojo: int
    state: Any


@dataclass
class _OpenDojo:
    ctx: Any
    dojo: Any
    serial: int
    states: dict  # tactic path -> TacticState made by this Dojo


class _ReplayFailed(RuntimeError):
    pass


class LeanDojoEnv:
    def __init__(self, repo: str, commit: str, timeout_s: int = 600, tactic_filter: TacticFilter | None = None):
        if not repo or not commit:
            raise ValueError("env.leandojo.repo and env.leandojo.commit must name a traced repository")
        self.ld = import_lean_dojo()
        self.repo_url, self.commit = repo, commit
        self.repo = self.ld.LeanGitRepo(repo, commit)
        self.timeout_s = timeout_s
        self.filter = tactic_filter or TacticFilter()
        self.token = uuid.uuid4().hex
        self._serials = itertools.count(1)
        self._open: dict[Theorem, _OpenDojo] = {}
        self.stats = {"opens": 0, "replays": 0, "replayed_tactics": 0, "requests": 0, "restarts": 0,
                      "closed": 0}

    def _errors(self) -> tuple[type, ...]:
        names = ("DojoInitError", "DojoCrashError", "DojoTacticTimeoutError", "DojoHardTimeoutError")
        return tuple(getattr(self.ld, n) for n in names if hasattr(self.ld, n))

    def _new_dojo(self, theorem: Theorem) -> tuple[Any, Any, Any]:
        if not theorem.file_path:
            raise ValueError(f"{theorem.name}: LeanDojo theorems need 'file_path' in the theorem file")
        self.stats["opens"] += 1
        ctx = self.ld.Dojo(self.ld.Theorem(self.repo, theorem.file_path, theorem.name), timeout=self.timeout_s)
        dojo, init = ctx.__enter__()
        return ctx, dojo, init

    def _enter(self, theorem: Theorem) -> _OpenDojo:
        self._leave(theorem)
        ctx, dojo, init = self._new_dojo(theorem)
        entry = _OpenDojo(ctx, dojo, next(self._serials), {(): init})
        self._open[theorem] = entry
        return entry

    def _leave(self, theorem: Theorem) -> None:
        entry = self._open.pop(theorem, None)
        if entry is not None:
            self.stats["closed"] += 1
            _exit(entry.ctx, theorem)

    def _state(self, theorem: Theorem, entry: _OpenDojo, path: tuple[str, ...], goals) -> State:
        return State(theorem, goals, path, _DojoHandle(self.token, entry.serial, entry.states[path]))

    def start(self, theorem: Theorem) -> Outcome:
        try:
            entry = self._open.get(theorem) or self._enter(theorem)
        except ValueError as e:
            return LeanError(str(e))
        except self._errors() as e:
            return self._failure(e)
        return self._state(theorem, entry, (), _goals(entry.states[()].pp))

    def run_tac(self, state: State, tactic: str) -> Outcome:
        refused = self.filter.refusal(tactic)
        if refused is not None:
            return refused
        try:
            entry, handle = self._locate(state)
        except _ReplayFailed as e:
            return LeanError(f"replay failed: {e}", infra=True)
        except ValueError as e:
            return LeanError(str(e))
        except self._errors() as e:
            self._leave(state.theorem)
            return LeanError(f"replay failed: LeanDojo {type(e).__name__}: {e}", infra=True)
        try:
            self.stats["requests"] += 1
            res = entry.dojo.run_tac(handle, tactic)
        except self._errors() as e:
            self._leave(state.theorem)
            return self._failure(e)
        return self._convert(state, tactic, res, entry)

    def _locate(self, state: State) -> tuple[_OpenDojo, Any]:
        """The theorem's open Dojo (opened if needed) and ``state``'s tactic state in it."""
        entry = self._open.get(state.theorem)
        if entry is None:
            self.stats["restarts"] += 1 if state.path else 0
            entry = self._enter(state.theorem)
        h = state.handle
        if isinstance(h, _DojoHandle) and h.token == self.token and h.dojo == entry.serial:
            return entry, h.state
        path = state.path
        start = next(i for i in range(len(path), -1, -1) if path[:i] in entry.states)
        cur = entry.states[path[:start]]
        if start < len(path):
            self.stats["replays"] += 1
        for i in range(start, len(path)):
            self.stats["replayed_tactics"] += 1
            self.stats["requests"] += 1
            cur = entry.dojo.run_tac(cur, path[i])
            if not isinstance(cur, self.ld.TacticState):
                raise _ReplayFailed(f"replaying {path[i]!r} of {state.theorem.name} gave {type(cur).__name__}")
            entry.states[path[:i + 1]] = cur
        return entry, cur

    def _convert(self, state: State, tactic: str, res: Any, entry: _OpenDojo) -> Outcome:
        path = state.path + (tactic,)
        if isinstance(res, self.ld.TacticState):
            entry.states[path] = res
            return self._state(state.theorem, entry, path, _goals(res.pp))
        if isinstance(res, self.ld.ProofFinished):
            return Finished(state.theorem, path)
        if isinstance(res, self.ld.ProofGivenUp):
            return GivenUp()
        if isinstance(res, self.ld.LeanError):
            return LeanError(res.error)
        return LeanError(f"unexpected LeanDojo result {type(res).__name__}")

    def _failure(self, e: Exception) -> Outcome:
        if "Timeout" in type(e).__name__:
            return Timeout(f"LeanDojo: {e}")
        return LeanError(f"LeanDojo {type(e).__name__}: {e}")

    def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        """Replay the whole proof in a fresh Dojo of its own (the search's Dojo is left alone);
        only ProofFinished passes. LeanDojo offers no ``#print axioms``: the tactic filter is the guard."""
        proof = proof_text(tactics)
        refused = self.filter.script_refusal(tactics)
        if refused is not None:
            return Verification(False, (refused,), proof)
        ctx = None
        try:
            ctx, dojo, cur = self._new_dojo(theorem)
            for i, tac in enumerate(tactics):
                if not isinstance(cur, self.ld.TacticState):
                    return Verification(False, (f"step {i + 1} {tac!r} follows a finished or failed step",), proof)
                self.stats["requests"] += 1
                cur = dojo.run_tac(cur, tac)
        except ValueError as e:
            return Verification(False, (str(e),), proof)
        except self._errors() as e:
            return Verification(False, (f"LeanDojo {type(e).__name__}: {e}",), proof)
        finally:
            if ctx is not None:
                _exit(ctx, theorem)
        if isinstance(cur, self.ld.ProofFinished):
            return Verification(True, (), proof)
        if isinstance(cur, self.ld.TacticState):
            return Verification(False, (f"proof left goals open: {cur.pp}",), proof)
        return Verification(False, (getattr(cur, "error", None) or f"proof not finished: {type(cur).__name__}",),
                            proof)

    def release(self, theorem: Theorem) -> None:
        """The search on ``theorem`` ended: close its Dojo (its Lean process exits)."""
        self._leave(theorem)

    def versions(self) -> dict:
        try:
            from importlib.metadata import version
            ld_version = version("lean-dojo")
        except Exception:  # noqa: BLE001
            ld_version = getattr(self.ld, "__version__", None)
        lean = getattr(self.repo, "lean_version", None)
        return {"backend": "leandojo", "lean_dojo": ld_version, "lean": None if lean is None else str(lean),
                "repo": self.repo_url, "repo_commit": self.commit}

    def close(self) -> None:
        for thm in list(self._open):
            self._leave(thm)


def _exit(ctx: Any, theorem: Theorem) -> None:
    try:
        ctx.__exit__(None, None, None)
    except Exception as e:  # noqa: BLE001 - a dying Dojo must not take the worker down
        log.warning("closing LeanDojo for %s: %s", theorem.name, e)


def _goals(pp: str) -> tuple[str, ...]:
    return tuple(g for g in pp.split("\n\n") if g.strip())
