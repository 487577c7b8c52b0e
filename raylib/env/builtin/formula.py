"""Propositional formulas in Lean 4 syntax: AST, parser, pretty printer, truth tables.

Precedences follow Lean 4 core:
``¬`` is ``notation:max "¬" p:40``, ``∧`` infixr:35, ``∨`` infixr:30, ``→`` infixr:25,
``↔`` infix:20 (non-associative).  ASCII ``->``, ``<->``, ``/\\``, ``\\/`` are accepted on
input; printing always uses Unicode with minimal parentheses, as Lean's pretty printer does.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Union

__all__ = [
    "Atom", "Top", "Bot", "Not", "And", "Or", "Imp", "Iff", "Formula",
    "FormulaSyntaxError", "parse_formula", "show", "atoms", "evaluate", "is_tautology",
    "is_ident_start", "is_ident_char", "KEYWORDS",
]


@dataclass(frozen=True)
class Atom:
    name: str


@dataclass(frozen=True)
class Top:
    pass


@dataclass(frozen=True)
class Bot:
    pass


@dataclass(frozen=True)
class Not:
    a: "Formula"


@dataclass(frozen=True)
class And:
    a: "Formula"
    b: "Formula"


@dataclass(frozen=True)
class Or:
    a: "Formula"
    b: "Formula"


@dataclass(frozen=True)
class Imp:
    a: "Formula"
    b: "Formula"


@dataclass(frozen=True)
class Iff:
    a: "Formula"
    b: "Formula"


Formula = Union[Atom, Top, Bot, Not, And, Or, Imp, Iff]


class FormulaSyntaxError(ValueError):
    """Raised on text that is not a formula; the message reads like Lean's."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.offset = offset


# Lean keywords that can never be identifiers in term position.
KEYWORDS = frozenset({
    "fun", "by", "have", "show", "from", "at", "with", "if", "then", "else", "let", "in",
    "do", "match", "theorem", "example", "lemma", "def", "Prop", "Type", "Sort", "λ",
    "import", "open", "namespace", "end", "section", "variable", "where", "calc", "forall",
    "exists", "sorry", "using", "suffices", "obtain",
})

_SUBSCRIPTS = set("₀₁₂₃₄₅₆₇₈₉ₐₑₒₓₔₕₖₗₘₙₚₛₜᵢᵣᵤᵥⱼ")


def is_ident_start(c: str) -> bool:
    if c == "_":
        return True
    if c in "λΠΣ":
        return False
    return c.isalpha()


def is_ident_char(c: str) -> bool:
    return is_ident_start(c) or c.isdigit() or c in "'!?" or c in _SUBSCRIPTS


# ---------------------------------------------------------------------------
# tokenizer

_SYMBOLS = [
    ("<->", "↔"), ("->", "→"), ("/\\", "∧"), ("\\/", "∨"),
    ("↔", "↔"), ("→", "→"), ("∧", "∧"), ("∨", "∨"), ("¬", "¬"), ("(", "("), (")", ")"),
]


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    """Tokens as (kind, value, offset); kind is 'sym' or 'id'; ends with ('eof','',len)."""
    toks: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        for src, sym in _SYMBOLS:
            if text.startswith(src, i):
                toks.append(("sym", sym, i))
                i += len(src)
                break
        else:
            if is_ident_start(c):
                j = i + 1
                while j < n and is_ident_char(text[j]):
                    j += 1
                toks.append(("id", text[i:j], i))
                i = j
            else:
                raise FormulaSyntaxError(f"unexpected token '{c}'; expected term", i)
    toks.append(("eof", "", n))
    return toks


_BINARY = {"∧": (35, "r", And), "∨": (30, "r", Or), "→": (25, "r", Imp), "↔": (20, "n", Iff)}


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def next(self) -> tuple[str, str, int]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def leading(self) -> Formula:
        kind, val, off = self.next()
        if kind == "id":
            if val in KEYWORDS:
                raise FormulaSyntaxError(f"unexpected token '{val}'; expected term", off)
            if val == "True":
                return Top()
            if val == "False":
                return Bot()
            return Atom(val)
        if val == "¬":
            return Not(self.expr(40))
        if val == "(":
            inner = self.expr(0)
            k2, v2, o2 = self.next()
            if v2 != ")":
                raise FormulaSyntaxError(self._unexpected(k2, v2, "')'"), o2)
            return inner
        raise FormulaSyntaxError(self._unexpected(kind, val, "term"), off)

    @staticmethod
    def _unexpected(kind: str, val: str, expected: str) -> str:
        if kind == "eof":
            return f"unexpected end of input; expected {expected}"
        return f"unexpected token '{val}'; expected {expected}"

    def expr(self, min_prec: int) -> Formula:
        left = self.leading()
        left_prec = 1024  # leading forms are at max precedence
        while True:
            kind, val, off = self.peek()
            if kind != "sym" or val not in _BINARY:
                return left
            prec, assoc, ctor = _BINARY[val]
            if prec < min_prec:
                return left
            # lhs must be at least prec (infixr) or prec+1 (infix)
            need_lhs = prec if assoc == "r" else prec + 1
            if left_prec < need_lhs:
                raise FormulaSyntaxError(f"unexpected token '{val}'; expected command", off)
            self.next()
            rhs = self.expr(prec if assoc == "r" else prec + 1)
            left = ctor(left, rhs)
            left_prec = prec


def parse_formula(text: str) -> Formula:
    """Parse Lean 4 propositional syntax; raise FormulaSyntaxError when it is not a formula."""
    p = _Parser(text)
    f = p.expr(0)
    kind, val, off = p.peek()
    if kind != "eof":
        raise FormulaSyntaxError(f"unexpected token '{val}'; expected command", off)
    return f


# ---------------------------------------------------------------------------
# printing

def _prec(f: Formula) -> int:
    if isinstance(f, And):
        return 35
    if isinstance(f, Or):
        return 30
    if isinstance(f, Imp):
        return 25
    if isinstance(f, Iff):
        return 20
    return 1024


def _show(f: Formula, min_prec: int) -> str:
    if isinstance(f, Atom):
        s = f.name
    elif isinstance(f, Top):
        s = "True"
    elif isinstance(f, Bot):
        s = "False"
    elif isinstance(f, Not):
        s = "¬" + _show(f.a, 40)
    else:
        op = {And: "∧", Or: "∨", Imp: "→", Iff: "↔"}[type(f)]
        p = _prec(f)
        if isinstance(f, Iff):
            s = f"{_show(f.a, p + 1)} {op} {_show(f.b, p + 1)}"
        else:
            s = f"{_show(f.a, p + 1)} {op} {_show(f.b, p)}"
    if _prec(f) < min_prec:
        return "(" + s + ")"
    return s


def show(f: Formula) -> str:
    """Print as Lean 4 does: Unicode connectives, minimal parentheses."""
    return _show(f, 0)


# ---------------------------------------------------------------------------
# semantics

def atoms(f: Formula) -> list[str]:
    """Atom names in first-occurrence order (left to right)."""
    out: list[str] = []
    seen: set[str] = set()

    def go(g: Formula) -> None:
        if isinstance(g, Atom):
            if g.name not in seen:
                seen.add(g.name)
                out.append(g.name)
        elif isinstance(g, Not):
            go(g.a)
        elif isinstance(g, (And, Or, Imp, Iff)):
            go(g.a)
            go(g.b)

    go(f)
    return out


def evaluate(f: Formula, assignment: dict[str, bool]) -> bool:
    if isinstance(f, Atom):
        return assignment[f.name]
    if isinstance(f, Top):
        return True
    if isinstance(f, Bot):
        return False
    if isinstance(f, Not):
        return not evaluate(f.a, assignment)
    a = evaluate(f.a, assignment)
    b = evaluate(f.b, assignment)
    if isinstance(f, And):
        return a and b
    if isinstance(f, Or):
        return a or b
    if isinstance(f, Imp):
        return (not a) or b
    if isinstance(f, Iff):
        return a == b
    raise TypeError(f"not a formula: {f!r}")


def is_tautology(f: Formula) -> bool:
    names = atoms(f)
    for values in itertools.product((False, True), repeat=len(names)):
        if not evaluate(f, dict(zip(names, values))):
            return False
    return True
