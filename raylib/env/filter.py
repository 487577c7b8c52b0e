"""Tactic filter: refuse tactics that give up, run code, change the environment or start a new command.

Everything here is refused before any backend sees the tactic, and again for every tactic of a proof
checked whole, so a checker cannot be fooled by text that elaborates cleanly but cheats:

- give-up words (``sorry``, ``admit``, ``sorryAx``): always refused, whatever the deny list says;
- the deny list (configurable): code-running and option-changing commands, ``native_decide``,
  ``macro_rules``/``notation``/``infix``, ``instance``/``attribute`` changes, ``debug.*`` options,
  ``@[implemented_by]``/``@[extern]``/``@[csimp]``, ``unsafe``/``partial``, ``Lean.Elab``/``Lean.Meta``
  metaprograms;
- text that ends the ``by`` block and starts a new command (a declaration or command keyword anywhere
  in the text, a ``#command``, a line starting with a command word): always refused;
- non-printable characters (control, format, separator characters; only ``\\n`` and spaces allowed), which
  different readers split differently (``str.splitlines`` splits on ``\\x1c``, Lean does not).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

# Words that end or cheat a proof: always refused, whatever the deny list says.
GIVE_UP = ("sorry", "admit", "sorryAx")
# Default deny list: code-running, option-changing and environment-changing words.
DEFAULT_DENY = (
    "#eval", "#exit", "#print", "#check", "#reduce", "run_tac", "run_cmd", "run_elab", "run_meta", "by_elab",
    "set_option", "open private", "IO", "unsafe", "partial", "implemented_by", "extern", "csimp",
    "native_decide", "decide!", "ofReduceBool", "reduceBool", "trustCompiler", "Lean.ofReduceBool",
    "Lean.reduceBool", "Lean.trustCompiler", "elab", "elab_rules",
    "macro", "macro_rules", "syntax", "notation", "infix", "infixl", "infixr", "prefix", "postfix",
    "axiom", "opaque", "import", "local instance", "instance", "attribute", "debug.",
    "Lean.Elab", "Lean.Meta", "Lean.Parser", "Lean.Compiler", "Lean.Environment", "Lean.Kernel",
    "Elab.", "Meta.", "MetaM", "TacticM", "TermElabM", "CommandElabM", "CoreM",
)
# Keywords that start a new command or declaration: they end the ``by`` block wherever they stand.
COMMAND_WORDS = (
    "theorem", "lemma", "def", "example", "abbrev", "structure", "inductive", "class", "instance", "axiom",
    "opaque", "namespace", "section", "variable", "universe", "mutual", "deriving", "noncomputable",
    "private", "protected", "initialize", "builtin_initialize", "declare_syntax_cat", "termination_by",
    "decreasing_by", "where", "export",
)
# Words that start a command when they begin a line: ``open``/``set_option`` only when no ``in`` follows
# on that line (``open Classical in exact em p`` is a tactic).
LINE_START_WORDS = ("end", "local", "scoped", "attribute", "@[")
SCOPED_WORDS = ("open", "set_option")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    kind: str = ""  # "sorry" for give-up words, "denied" for the deny list, "command", "unprintable", "empty"


def _pattern(word: str) -> re.Pattern:
    left = r"(?<![\w.#])" if (word[0].isalnum() or word[0] == "_") else r"(?<![\w])"
    right = r"(?![\w])" if (word[-1].isalnum() or word[-1] == "_") else ""
    return re.compile(left + re.escape(word) + right)


_HASH_COMMAND = re.compile(r"(?<![\w])#[A-Za-z_]")
_ATTRIBUTE = re.compile(r"@\[")
_LINE_START = re.compile(r"(?m)^[ \t]*(" + "|".join(re.escape(w) for w in LINE_START_WORDS) + r")(?![\w])"
                         r"|^[ \t]*(" + "|".join(SCOPED_WORDS) + r")(?![\w])(?![^\n]*(?<![\w.])in(?![\w]))")


def unprintable(text: str) -> str | None:
    """The first character Lean and Python might read differently (control/format/separator), or None."""
    for c in text:
        if c == "\n" or c == " ":
            continue
        cat = unicodedata.category(c)
        if cat[0] in ("C", "Z") and cat != "Zs" or c == "\t":
            return c
        if cat == "Zs" and c != " ":
            return c
    return None


class TacticFilter:
    """Checks one tactic string. ``deny`` replaces the default deny list; give-up words, new commands and
    non-printable characters are always refused."""

    def __init__(self, deny: Iterable[str] | None = None, max_chars: int = 2000):
        self.deny = tuple(DEFAULT_DENY if deny is None else deny)
        self.max_chars = max_chars
        self._give_up = [(w, _pattern(w)) for w in GIVE_UP]
        self._deny = [(w, _pattern(w)) for w in self.deny]
        self._commands = [(w, _pattern(w)) for w in COMMAND_WORDS]

    def check(self, tactic: str) -> Verdict:
        if not tactic.strip():
            return Verdict(False, "empty tactic", "empty")
        if len(tactic) > self.max_chars:
            return Verdict(False, f"tactic longer than {self.max_chars} characters", "denied")
        bad = unprintable(tactic)
        if bad is not None:
            return Verdict(False, f"non-printable character {bad!r} (U+{ord(bad):04X}) in the tactic", "unprintable")
        text = _strip_comments(tactic)
        if "/-" in text or text.count('"') % 2:
            return Verdict(False, "unterminated comment or string: it would swallow the tactics after it",
                           "command")
        for word, pat in self._give_up:
            if pat.search(text):
                return Verdict(False, f"gives up the goal: contains {word!r}", "sorry")
        for word, pat in self._commands:
            if pat.search(text):
                return Verdict(False, f"starts a new command: contains {word!r}", "command")
        m = _LINE_START.search(text) or _HASH_COMMAND.search(text) or _ATTRIBUTE.search(text)
        if m is not None:
            return Verdict(False, f"starts a new command: {m.group(0).strip()!r}", "command")
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
