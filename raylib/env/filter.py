"""Tactic filter: refuse tactics that give up, run code or change options before any backend sees them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

# Words that end or cheat a proof: always refused, whatever the deny list says.
GIVE_UP = ("sorry", "admit", "sorryAx")
# Default deny list: code-running and option-changing commands.
DEFAULT_DENY = (
    "#eval", "#exit", "#print", "#check", "#reduce", "run_tac", "run_cmd", "run_elab", "run_meta",
    "set_option", "open private", "IO", "unsafe", "implemented_by", "extern", "native_decide",
    "decide!", "elab", "macro", "syntax", "axiom", "opaque", "import", "local instance",
)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    kind: str = ""  # "sorry" for give-up words, "denied" for the deny list, "empty"


def _pattern(word: str) -> re.Pattern:
    left = r"(?<![\w.#])" if (word[0].isalnum() or word[0] == "_") else r"(?<![\w])"
    right = r"(?![\w])" if (word[-1].isalnum() or word[-1] == "_") else ""
    return re.compile(left + re.escape(word) + right)


class TacticFilter:
    """Checks one tactic string. ``deny`` replaces the default deny list; give-up words are always refused."""

    def __init__(self, deny: Iterable[str] | None = None, max_chars: int = 2000):
        self.deny = tuple(DEFAULT_DENY if deny is None else deny)
        self.max_chars = max_chars
        self._give_up = [(w, _pattern(w)) for w in GIVE_UP]
        self._deny = [(w, _pattern(w)) for w in self.deny]

    def check(self, tactic: str) -> Verdict:
        text = _strip_comments(tactic)
        if not tactic.strip():
            return Verdict(False, "empty tactic", "empty")
        if len(tactic) > self.max_chars:
            return Verdict(False, f"tactic longer than {self.max_chars} characters", "denied")
        for word, pat in self._give_up:
            if pat.search(text):
                return Verdict(False, f"gives up the goal: contains {word!r}", "sorry")
        for word, pat in self._deny:
            if pat.search(text):
                return Verdict(False, f"denied by the tactic filter: contains {word!r}", "denied")
        return Verdict(True)

    def refusal(self, tactic: str):
        """The outcome of a refused tactic (``GivenUp`` for give-up words, else ``LeanError``); None if allowed."""
        from raylib.env.outcome import GivenUp, LeanError

        verdict = self.check(tactic)
        if verdict.ok:
            return None
        return GivenUp(verdict.reason) if verdict.kind == "sorry" else LeanError(verdict.reason)

    def script_refusal(self, tactics: Iterable[str]) -> str | None:
        """Why a whole tactic script is refused (its first refused tactic), or None."""
        for tac in tactics:
            verdict = self.check(tac)
            if not verdict.ok:
                return f"{tac!r}: {verdict.reason}"
        return None


def _strip_comments(text: str) -> str:
    text = re.sub(r"/-.*?-/", " ", text, flags=re.S)
    text = re.sub(r"--[^\n]*", " ", text)
    return text
