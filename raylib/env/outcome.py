"""What a proof environment answers, for every backend alike.

An outcome is one of: a new state (goals as the backend printed them), proof finished, a Lean error,
a timeout, or given up (sorry). ``State`` carries the tactic path from the theorem's start, so any
backend can rebuild it in a fresh process by replaying that path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union

from raylib.env.theorems import Theorem


@dataclass(frozen=True)
class State:
    """An open proof state. ``text`` is the goals exactly as printed, joined by blank lines."""

    theorem: Theorem
    goals: tuple[str, ...]
    path: tuple[str, ...] = ()
    handle: object = field(default=None, compare=False, repr=False)  # backend's own reference
    kind: str = field(default="state", init=False)

    @property
    def text(self) -> str:
        return "\n\n".join(self.goals)


@dataclass(frozen=True)
class Finished:
    """No goals remain and the backend confirmed the proof (``proofStatus: Completed`` where reported)."""

    theorem: Theorem
    path: tuple[str, ...]
    kind: str = field(default="finished", init=False)


@dataclass(frozen=True)
class LeanError:
    """The tactic failed. ``infra`` marks a failure that is not the tactic's own (the state could not be
    rebuilt, or the process died twice): a caller may retry it elsewhere instead of recording it."""

    message: str
    infra: bool = False
    kind: str = field(default="error", init=False)


@dataclass(frozen=True)
class Timeout:
    message: str
    kind: str = field(default="timeout", init=False)


@dataclass(frozen=True)
class GivenUp:
    """The step closed goals with ``sorry`` (or an equivalent escape); never a proof."""

    message: str = "proof uses sorry"
    kind: str = field(default="sorry", init=False)


Outcome = Union[State, Finished, LeanError, Timeout, GivenUp]
OUTCOME_KINDS = ("state", "finished", "error", "timeout", "sorry")


@dataclass(frozen=True)
class Verification:
    """Whole-proof check from the theorem's own statement: ``ok`` only with no error, no sorry and only
    allowed axioms; ``messages`` holds every reason for a refusal."""

    ok: bool
    messages: tuple[str, ...] = ()
    proof: str = ""
    axioms: tuple[str, ...] | None = None  # what ``#print axioms`` reported (None: not asked)


class ProofEnv(Protocol):
    """One interface for every backend (Lean REPL, built-in, LeanDojo)."""

    def start(self, theorem: Theorem) -> Outcome:
        """Open a theorem: its initial ``State``, or an error/timeout if the statement fails."""

    def run_tac(self, state: State, tactic: str) -> Outcome:
        """Run one tactic on a state. States are immutable: a state can be branched from many times."""

    def verify(self, theorem: Theorem, tactics: Sequence[str]) -> Verification:
        """Check the whole proof again, as one theorem, in a fresh environment."""

    def release(self, theorem: Theorem) -> None:
        """The search on ``theorem`` ended: drop every proof state held for it (close its Dojo)."""

    def versions(self) -> dict:
        """What produced the results, e.g. ``{"backend": "lean_repl", "lean": ..., "repl_commit": ...,
        "mathlib_commit": ...}``."""

    stats: dict  # at least opens, replayed_tactics, requests, restarts

    def close(self) -> None:
        """Stop any process the backend runs."""


def proof_text(tactics: Sequence[str], indent: str = "  ") -> str:
    """The ``by`` block for a tactic path: one tactic per line, each line of a tactic indented.

    Lines are split on ``\n`` only (never ``str.splitlines``, which also splits on control characters
    such as ``\x1c`` that the tactic filter refuses), so the block holds exactly the checked tactics.
    """
    lines = []
    for tac in tactics:
        for line in tac.split("\n"):
            lines.append(indent + line)
    return "by\n" + "\n".join(lines)
