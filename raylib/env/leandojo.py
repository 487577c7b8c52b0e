"""LeanDojo backend: the ``ProofEnv`` interface over ``lean_dojo.Dojo`` for traced repositories.

``lean_dojo`` is imported lazily, so this module loads (and the rest of rayprover runs) without it.
A theorem needs ``file_path`` (its file in the traced repo) and ``name`` (its full Lean name).
"""

from __future__ import annotations

import logging
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


class LeanDojoEnv:
    def __init__(self, repo: str, commit: str, timeout_s: int = 600, tactic_filter: TacticFilter | None = None):
        if not repo or not commit:
            raise ValueError("env.leandojo.repo and env.leandojo.commit must name a traced repository")
        self.ld = import_lean_dojo()
        self.repo = self.ld.LeanGitRepo(repo, commit)
        self.timeout_s = timeout_s
        self.filter = tactic_filter or TacticFilter()
        self._open: dict[Theorem, tuple[Any, Any]] = {}  # theorem -> (context manager, dojo)

    def _errors(self) -> tuple[type, ...]:
        names = ("DojoInitError", "DojoCrashError", "DojoTacticTimeoutError", "DojoHardTimeoutError")
        return tuple(getattr(self.ld, n) for n in names if hasattr(self.ld, n))

    def _enter(self, theorem: Theorem) -> tuple[Any, Any]:
        if not theorem.file_path:
            raise ValueError(f"{theorem.name}: LeanDojo theorems need 'file_path' in the theorem file")
        self._leave(theorem)
        ctx = self.ld.Dojo(self.ld.Theorem(self.repo, theorem.file_path, theorem.name), timeout=self.timeout_s)
        dojo, init = ctx.__enter__()
        self._open[theorem] = (ctx, dojo)
        return dojo, init

    def _leave(self, theorem: Theorem) -> None:
        entry = self._open.pop(theorem, None)
        if entry is not None:
            try:
                entry[0].__exit__(None, None, None)
            except Exception as e:  # noqa: BLE001 - a dying Dojo must not take the worker down
                log.warning("closing LeanDojo for %s: %s", theorem.name, e)

    def start(self, theorem: Theorem) -> Outcome:
        try:
            _, init = self._enter(theorem)
        except ValueError as e:
            return LeanError(str(e))
        except self._errors() as e:
            return self._failure(e)
        return State(theorem, _goals(init.pp), (), init)

    def run_tac(self, state: State, tactic: str) -> Outcome:
        refused = self.filter.refusal(tactic)
        if refused is not None:
            return refused
        entry = self._open.get(state.theorem)
        try:
            if entry is None:  # crashed or closed: rebuild by replaying the path
                dojo, handle = self._replay(state)
            else:
                dojo, handle = entry[1], state.handle
            return self._convert(state, tactic, dojo.run_tac(handle, tactic))
        except self._errors() as e:
            self._leave(state.theorem)
            return self._failure(e)

    def _replay(self, state: State) -> tuple[Any, Any]:
        dojo, cur = self._enter(state.theorem)
        for tac in state.path:
            cur = dojo.run_tac(cur, tac)
            if not isinstance(cur, self.ld.TacticState):
                raise RuntimeError(f"replaying {tac!r} of {state.theorem.name} gave {type(cur).__name__}")
        return dojo, cur

    def _convert(self, state: State, tactic: str, res: Any) -> Outcome:
        path = state.path + (tactic,)
        if isinstance(res, self.ld.TacticState):
            return State(state.theorem, _goals(res.pp), path, res)
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
        """Replay the whole proof in a fresh Dojo; only ProofFinished with no sorry passes."""
        proof = proof_text(tactics)
        refused = self.filter.script_refusal(tactics)
        if refused is not None:
            return Verification(False, (refused,), proof)
        state = self.start(theorem)
        for tac in tactics:
            if not isinstance(state, State):
                break
            state = self.run_tac(state, tac)
        self._leave(theorem)
        if isinstance(state, Finished):
            return Verification(True, (), proof)
        return Verification(False, (getattr(state, "message", f"proof left goals open: {state}"),), proof)

    def close(self) -> None:
        for thm in list(self._open):
            self._leave(thm)


def _goals(pp: str) -> tuple[str, ...]:
    return tuple(g for g in pp.split("\n\n") if g.strip())
