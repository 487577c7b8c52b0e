"""The axiom check of a whole proof: ``#print axioms NAME`` after the theorem compiled, and an allow-list.

Lean answers ``#print axioms`` with one info message, ``'NAME' depends on axioms: [propext, ...]`` (the
list may wrap over lines) or ``'NAME' does not depend on any axioms``. A proof that elaborates with no
error can still rest on ``sorryAx`` (a hidden sorry), ``Lean.ofReduceBool`` (``native_decide``: trusts
compiled code), ``Lean.trustCompiler`` or an axiom declared on the way; only the allow-list passes.
"""

from __future__ import annotations

import re

from raylib.env.theorems import Theorem, name_of

DEFAULT_ALLOWED_AXIOMS = ("propext", "Classical.choice", "Quot.sound")
CHECK_NAME = "rayprover_checked_example"   # the name an ``example`` statement is checked under

_DEPENDS = re.compile(r"'(?P<name>[^']+)' depends on axioms:\s*\[(?P<axioms>[^\]]*)\]", re.S)
_NONE = re.compile(r"'(?P<name>[^']+)' does not depend on any axioms")
_WHY = {"sorryAx": "the proof uses sorry",
        "Lean.ofReduceBool": "the proof trusts compiled code (native_decide / Lean.ofReduceBool)",
        "Lean.trustCompiler": "the proof trusts the compiler (Lean.trustCompiler)"}


def check_command(theorem: Theorem, proof: str) -> tuple[str, str]:
    """The command that checks ``proof`` against the theorem's own statement, and the declared name."""
    statement = theorem.statement
    name = name_of(statement)
    if name is None:  # an ``example`` has no name to ask about: check it as a theorem
        statement = re.sub(r"^\s*example\b", f"theorem {CHECK_NAME}", statement, count=1)
        name = CHECK_NAME
    return f"{statement} := {proof}", name


def print_axioms_command(name: str) -> str:
    return f"#print axioms {name}"


def parse_axiom_reports(messages) -> dict[str, tuple[str, ...]]:
    """Every ``#print axioms`` report among a REPL answer's messages: name -> axioms."""
    out: dict[str, tuple[str, ...]] = {}
    for m in messages or ():
        data = m.get("data", "") if isinstance(m, dict) else str(m)
        for hit in _DEPENDS.finditer(data):
            out[hit["name"]] = tuple(a.strip() for a in hit["axioms"].split(",") if a.strip())
        for hit in _NONE.finditer(data):
            out[hit["name"]] = ()
    return out


def axiom_problems(ans: dict, name: str, allowed) -> tuple[list[str], tuple[str, ...] | None]:
    """Why the ``#print axioms`` answer ``ans`` refuses the proof (empty: accepted), and the axioms read."""
    errors = [m.get("data", "") for m in ans.get("messages") or [] if m.get("severity") == "error"]
    if errors or "env" not in ans:
        why = "; ".join(errors) or str(ans.get("message", ans))
        return [f"could not list the axioms of {name}: {why}"], None
    reports = parse_axiom_reports(ans.get("messages"))
    match = [n for n in reports if n == name or n.endswith("." + name)]
    if len(match) != 1:
        return [f"no '#print axioms' report for {name} in the REPL's answer: {ans!r}"[:600]], None
    axioms = reports[match[0]]
    allowed = set(allowed)
    problems = [f"depends on axiom {a}: {_WHY.get(a, 'an axiom outside the allowed list')} "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'})" for a in axioms if a not in allowed]
    return problems, axioms
