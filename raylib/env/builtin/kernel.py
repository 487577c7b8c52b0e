"""Local contexts, goals as Lean prints them, and a strict bidirectional proof-term checker.

Prop variables are context entries whose ``type`` is None; formulas refer to them by the
entry's unique ``uid`` (so shadowing can never confuse two different propositions).
``¬a`` is definitionally ``a → False``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Optional

from .formula import And, Atom, Bot, Formula, Iff, Imp, Not, Or, Top, show
from .syntax import App, Ascribe, Conn, Term, Var

_UIDS = itertools.count(1)
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


class LeanError(Exception):
    """An error Lean would report; ``span`` is a (start, end) offset pair when known."""

    def __init__(self, message: str, span: Optional[tuple[int, int]] = None):
        super().__init__(message)
        self.message = message
        self.span = span


@dataclass(frozen=True)
class Hyp:
    uid: str
    name: str
    type: Optional[Formula]  # None: a proposition variable `name : Prop`
    accessible: bool = True


Ctx = tuple[Hyp, ...]


def fresh_uid(name: str) -> str:
    return f"{name}#{next(_UIDS)}"


@dataclass(frozen=True)
class Goal:
    ctx: Ctx
    target: Formula
    tag: str = ""

    def with_target(self, target: Formula) -> "Goal":
        return replace(self, target=target)

    def add(self, name: str, ty: Formula, accessible: bool = True) -> "Goal":
        return replace(self, ctx=self.ctx + (Hyp(fresh_uid(name), name, ty, accessible),))


def lookup(ctx: Ctx, name: str) -> Optional[Hyp]:
    for h in reversed(ctx):
        if h.accessible and h.name == name:
            return h
    return None


def display_names(ctx: Ctx) -> dict[str, str]:
    """uid -> the name Lean shows (shadowed or inaccessible names get ✝, ✝¹, ...)."""
    hidden = []
    for i, h in enumerate(ctx):
        shadowed = any(l.accessible and l.name == h.name for l in ctx[i + 1:])
        hidden.append(not h.accessible or shadowed)
    out: dict[str, str] = {}
    counts: dict[str, int] = {}
    for h, hid in zip(reversed(ctx), reversed(hidden)):
        if hid:
            k = counts.get(h.name, 0)
            counts[h.name] = k + 1
            out[h.uid] = h.name + "✝" + (str(k).translate(_SUPERSCRIPT) if k else "")
        else:
            out[h.uid] = h.name
    return out


def rename(f: Formula, names: dict[str, str]) -> Formula:
    if isinstance(f, Atom):
        return Atom(names.get(f.name, f.name))
    if isinstance(f, Not):
        return Not(rename(f.a, names))
    if isinstance(f, (And, Or, Imp, Iff)):
        return type(f)(rename(f.a, names), rename(f.b, names))
    return f


def show_in(ctx: Ctx, f: Formula) -> str:
    return show(rename(f, display_names(ctx)))


def goal_text(g: Goal) -> str:
    names = display_names(g.ctx)
    lines = [f"case {g.tag}"] if g.tag else []
    group: list[str] = []
    gtype: object = object()
    for h in g.ctx:
        if group and h.type == gtype:
            group.append(names[h.uid])
            continue
        if group:
            lines.append(f"{' '.join(group)} : {_ty(gtype, names)}")
        group, gtype = [names[h.uid]], h.type
    if group:
        lines.append(f"{' '.join(group)} : {_ty(gtype, names)}")
    lines.append("⊢ " + show(rename(g.target, names)))
    return "\n".join(lines)


def _ty(t: object, names: dict[str, str]) -> str:
    return "Prop" if t is None else show(rename(t, names))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# definitional equality

@lru_cache(maxsize=65536)
def unfold(f: Formula) -> Formula:
    if isinstance(f, Not):
        return Imp(unfold(f.a), Bot())
    if isinstance(f, (And, Or, Imp, Iff)):
        return type(f)(unfold(f.a), unfold(f.b))
    return f


def defeq(a: Formula, b: Formula) -> bool:
    return a == b or unfold(a) == unfold(b)


def as_imp(f: Formula) -> Optional[tuple[Formula, Formula]]:
    if isinstance(f, Imp):
        return f.a, f.b
    if isinstance(f, Not):
        return f.a, Bot()
    return None


def arity(f: Formula) -> int:
    n = 0
    while (ab := as_imp(f)) is not None:
        n, f = n + 1, ab[1]
    return n


# ---------------------------------------------------------------------------
# elaboration of propositions (terms in type position)

def to_formula(ctx: Ctx, t: Term, src: str = "") -> Formula:
    if isinstance(t, Var):
        if t.name == "True":
            return Top()
        if t.name == "False":
            return Bot()
        h = lookup(ctx, t.name)
        if h is None:
            raise LeanError(f"unknown identifier '{t.name}'", t.span)
        if h.type is not None:
            raise LeanError(f"type expected, got\n  ({t.name} : {show_in(ctx, h.type)})", t.span)
        return Atom(h.uid)
    if isinstance(t, Conn):
        a = to_formula(ctx, t.a, src)
        if t.op == "¬":
            return Not(a)
        b = to_formula(ctx, t.b, src)  # type: ignore[arg-type]
        return {"∧": And, "∨": Or, "→": Imp, "↔": Iff}[t.op](a, b)
    if isinstance(t, Ascribe):
        return to_formula(ctx, t.term, src)
    if isinstance(t, App) and isinstance(t.fn, Var) and t.fn.name in _PREFIX_FORMERS \
            and lookup(ctx, t.fn.name) is None:   # `Not a`, `And a b`, ... as Lean writes ¬a, a ∧ b
        former, n = _PREFIX_FORMERS[t.fn.name]
        if len(t.args) != n:
            raise LeanError(f"type expected, got\n  {_src(src, t)}", t.span)
        return former(*(to_formula(ctx, a, src) for a in t.args))
    raise LeanError(f"type expected, got\n  {_src(src, t)}", t.span)


_PREFIX_FORMERS = {"Not": (Not, 1), "And": (And, 2), "Or": (Or, 2), "Iff": (Iff, 2)}


def _src(src: str, t: Term) -> str:
    s = src[t.span[0]:t.span[1]] if src else ""
    return " ".join(s.split()) or "term"
