"""Strict bidirectional checking of proof terms against propositions (``¬a`` is ``a → False``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from .formula import And, Atom, Bot, Formula, Iff, Imp, Not, Or, Top
from .kernel import Ctx, Goal, Hyp, LeanError, _src, as_imp, defeq, fresh_uid, lookup, show_in, to_formula
from .syntax import Anon, App, Ascribe, ByTac, Conn, Fun, Hole, Proj, Sorry, Term, Var


# ---------------------------------------------------------------------------
# proof terms

CLASSICAL_AXIOMS = ("propext", "Classical.choice", "Quot.sound")  # what Lean's Classical.em rests on


@dataclass
class Elab:
    """Per-elaboration state: the source text, the sorries met, classical steps used, and the `by` hook."""
    src: str = ""
    sorries: list = field(default_factory=list)  # (Goal, span)
    run_by: Optional[Callable[["Elab", Goal, ByTac], None]] = None
    classical: bool = False  # a step used excluded middle (Classical.em, by_contra, by_cases, ...)

    def axioms(self) -> tuple[str, ...]:
        """The axioms the proof depends on, in the order Lean prints them."""
        out = CLASSICAL_AXIOMS if self.classical else ()
        if self.sorries:
            out = out[:1] + ("sorryAx",) + out[1:]
        return out


def _mismatch(el: Elab, ctx: Ctx, t: Term, got: Formula, want: Formula) -> LeanError:
    return LeanError(
        f"type mismatch\n  {_src(el.src, t)}\nhas type\n  {show_in(ctx, got)} : Prop\n"
        f"but is expected to have type\n  {show_in(ctx, want)} : Prop", t.span)


def _need_expected(el: Elab, t: Term) -> LeanError:
    return LeanError(f"don't know how to synthesize implicit argument\n  {_src(el.src, t)}", t.span)


def check(el: Elab, ctx: Ctx, t: Term, want: Formula) -> None:
    """Check that term ``t`` proves ``want`` in ``ctx``; raise LeanError otherwise."""
    if isinstance(t, Sorry):
        el.sorries.append((Goal(ctx, want), t.span))
        return
    if isinstance(t, ByTac):
        if el.run_by is None:
            raise LeanError("tactic blocks are not supported here", t.span)
        el.run_by(el, Goal(ctx, want), t)
        return
    if isinstance(t, Fun):
        cur = want
        for i, (pat, ty) in enumerate(t.binders):
            ab = as_imp(cur)
            if ab is None:
                raise LeanError(f"type mismatch\n  {_src(el.src, t)}\nhas type\n  a function "
                                f"but is expected to have type\n  {show_in(ctx, cur)} : Prop", t.span)
            dom, cur = ab
            if ty is not None:
                given = to_formula(ctx, ty, el.src)
                if not defeq(given, dom):
                    raise LeanError(f"type mismatch\n  {show_in(ctx, given)}\nis not definitionally "
                                    f"equal to\n  {show_in(ctx, dom)}", ty.span)
            ctx, closed = bind_pattern(ctx, pat, dom, t.span)
            if closed:
                return
        check(el, ctx, t.body, cur)
        return
    if isinstance(t, Anon):
        check_anon(el, ctx, t, list(t.items), want)
        return
    if isinstance(t, App) and isinstance(t.fn, Var) and lookup(ctx, t.fn.name) is None:
        if _check_const_app(el, ctx, t, t.fn.name, list(t.args), want):
            return
    if isinstance(t, Var) and lookup(ctx, t.name) is None and t.name in _EXPECTING:
        _check_const_app(el, ctx, t, t.name, [], want)
        return
    got = infer(el, ctx, t)
    if not defeq(got, want):
        raise _mismatch(el, ctx, t, got, want)


def check_anon(el: Elab, ctx: Ctx, t: Anon, items: list[Term], want: Formula) -> None:
    if isinstance(want, And) and len(items) >= 2:
        check(el, ctx, items[0], want.a)
        if len(items) == 2:
            check(el, ctx, items[1], want.b)
        else:
            check_anon(el, ctx, t, items[1:], want.b)
        return
    if isinstance(want, Iff) and len(items) == 2:
        check(el, ctx, items[0], Imp(want.a, want.b))
        check(el, ctx, items[1], Imp(want.b, want.a))
        return
    if isinstance(want, Top) and not items:
        return
    if isinstance(want, (And, Iff, Top)):
        raise LeanError(f"invalid constructor ⟨...⟩, insufficient number of arguments, "
                        f"constructs '{_ctor(want)}' has #{0 if isinstance(want, Top) else 2} explicit fields, "
                        f"but only #{len(items)} provided", t.span)
    raise LeanError(f"invalid constructor ⟨...⟩, expected type must be an inductive type \n  "
                    f"{show_in(ctx, want)}", t.span)


def _ctor(f: Formula) -> str:
    return {And: "And.intro", Iff: "Iff.intro", Top: "True.intro"}.get(type(f), "?")


def bind_pattern(ctx: Ctx, pat: tuple, ty: Formula, span) -> tuple[Ctx, bool]:
    """Add hypotheses for a `fun` binder pattern; returns (ctx, goal closed by False)."""
    kind = pat[0]
    if kind == "name":
        return ctx + (Hyp(fresh_uid(pat[1]), pat[1], ty),), False
    if kind == "_":
        return ctx + (Hyp(fresh_uid("x"), "x", ty, False),), False
    if kind == "tuple":
        items = pat[1]
        if isinstance(ty, Bot):
            return ctx, True
        if len(items) == 1:
            return bind_pattern(ctx, items[0], ty, span)
        if isinstance(ty, And) and len(items) >= 2:
            ctx, c = bind_pattern(ctx, items[0], ty.a, span)
            rest = items[1] if len(items) == 2 else ("tuple", items[1:])
            ctx2, c2 = bind_pattern(ctx, rest, ty.b, span)
            return ctx2, c or c2
        if isinstance(ty, Iff) and len(items) == 2:
            ctx, _ = bind_pattern(ctx, items[0], Imp(ty.a, ty.b), span)
            return bind_pattern(ctx, items[1], Imp(ty.b, ty.a), span)
        if isinstance(ty, Top) and not items:
            return ctx, False
    raise LeanError("invalid pattern", span)


_EXPECTING = {"Or.inl", "Or.inr", "absurd", "False.elim", "Or.elim", "Classical.byContradiction",
              "And.intro", "Iff.intro", "id", "Not.elim"}


def _check_const_app(el: Elab, ctx: Ctx, t: Term, name: str, args: list[Term], want: Formula) -> bool:
    """Constants whose type needs the expected type. Returns False if not handled here."""
    if name in ("Or.inl", "Or.inr") and len(args) == 1:
        if not isinstance(want, Or):
            raise LeanError(f"type mismatch\n  {_src(el.src, t)}\nhas type\n  ?a ∨ ?b : Prop\n"
                            f"but is expected to have type\n  {show_in(ctx, want)} : Prop", t.span)
        check(el, ctx, args[0], want.a if name == "Or.inl" else want.b)
        return True
    if name in ("False.elim", "Classical.byContradiction", "id") and len(args) == 1:
        el.classical = el.classical or name == "Classical.byContradiction"
        sub = {"False.elim": Bot(), "Classical.byContradiction": Imp(Not(want), Bot()), "id": want}[name]
        check(el, ctx, args[0], sub)
        return True
    if name in ("absurd", "Not.elim") and len(args) == 2:
        a = infer(el, ctx, args[0] if name == "absurd" else args[1])
        if name == "absurd":
            check(el, ctx, args[1], Not(a))
        else:
            check(el, ctx, args[0], Not(a))
        return True
    if name == "Or.elim" and len(args) == 3:
        ab = infer(el, ctx, args[0])
        if not isinstance(ab, Or):
            raise _mismatch(el, ctx, args[0], ab, Or(Atom("?a"), Atom("?b")))
        check(el, ctx, args[1], Imp(ab.a, want))
        check(el, ctx, args[2], Imp(ab.b, want))
        return True
    if name in ("And.intro", "Iff.intro") and len(args) == 2:
        cls = And if name == "And.intro" else Iff
        if not isinstance(want, cls):
            got = infer(el, ctx, t)
            raise _mismatch(el, ctx, t, got, want)
        if cls is And:
            check(el, ctx, args[0], want.a)
            check(el, ctx, args[1], want.b)
        else:
            check(el, ctx, args[0], Imp(want.a, want.b))
            check(el, ctx, args[1], Imp(want.b, want.a))
        return True
    if name in _EXPECTING and not args:
        raise LeanError(f"type mismatch\n  {name}\nis a function, but is expected to have type\n  "
                        f"{show_in(ctx, want)} : Prop", t.span)
    return False


def infer(el: Elab, ctx: Ctx, t: Term) -> Formula:
    """Infer the proposition proved by ``t``; raise LeanError if it cannot."""
    if isinstance(t, Var):
        return _infer_name(el, ctx, t)
    if isinstance(t, Proj):
        return _project(el, ctx, t, infer(el, ctx, t.term), t.field)
    if isinstance(t, Ascribe):
        f = to_formula(ctx, t.type, el.src)
        check(el, ctx, t.term, f)
        return f
    if isinstance(t, App):
        return _infer_app(el, ctx, t)
    if isinstance(t, Fun):
        if all(ty is not None and p[0] in ("name", "_") for p, ty in t.binders):
            doms = [to_formula(ctx, ty, el.src) for _, ty in t.binders]
            inner = ctx
            for (p, _), d in zip(t.binders, doms):
                inner, _ = bind_pattern(inner, p, d, t.span)
            res = infer(el, inner, t.body)
            for d in reversed(doms):
                res = Imp(d, res)
            return res
        raise LeanError("failed to infer binder type", t.span)
    if isinstance(t, Conn):
        raise LeanError(f"type mismatch\n  {_src(el.src, t)}\nhas type\n  Prop : Type\n"
                        "but is expected to have type a proof", t.span)
    if isinstance(t, Anon):
        raise LeanError("invalid constructor ⟨...⟩, expected type must be known", t.span)
    if isinstance(t, (Sorry, ByTac, Hole)):
        raise LeanError("don't know how to synthesize placeholder\ncontext:\n" if isinstance(t, Hole)
                        else "failed to infer the type of this term; expected type must be known", t.span)
    raise LeanError("unsupported term", getattr(t, "span", None))


_CONST_TYPES = {"trivial": Top(), "True.intro": Top()}


def _infer_name(el: Elab, ctx: Ctx, t: Var) -> Formula:
    name = t.name
    h = lookup(ctx, name)
    if h is not None:
        if h.type is None:
            raise LeanError(f"type mismatch\n  {name}\nhas type\n  Prop : Type\n"
                            "but is expected to have type a proof", t.span)
        return h.type
    if name in _CONST_TYPES:
        return _CONST_TYPES[name]
    parts = name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        head = lookup(ctx, ".".join(parts[:k]))
        if head is not None:
            f = _infer_name(el, ctx, Var(".".join(parts[:k]), t.span))
            for fld in parts[k:]:
                f = _project(el, ctx, t, f, fld)
            return f
    if name in _EXPECTING or name in _UNARY or name == "Classical.em":
        raise _need_expected(el, t)
    raise LeanError(f"unknown identifier '{name}'", t.span)


def _project(el: Elab, ctx: Ctx, t: Term, f: Formula, fld: str) -> Formula:
    if isinstance(f, And) and fld in ("1", "left"):
        return f.a
    if isinstance(f, And) and fld in ("2", "right"):
        return f.b
    if isinstance(f, Iff) and fld in ("1", "mp"):
        return Imp(f.a, f.b)
    if isinstance(f, Iff) and fld in ("2", "mpr"):
        return Imp(f.b, f.a)
    if isinstance(f, And) and fld == "symm":
        return And(f.b, f.a)
    if isinstance(f, Or) and fld == "symm":
        return Or(f.b, f.a)
    if isinstance(f, Iff) and fld == "symm":
        return Iff(f.b, f.a)
    raise LeanError(f"invalid field '{fld}', the environment does not contain "
                    f"'{_head_const(f)}.{fld}'\n  {_src(el.src, t)}\nhas type\n  {show_in(ctx, f)}", t.span)


def _head_const(f: Formula) -> str:
    return {And: "And", Or: "Or", Iff: "Iff", Not: "Not", Top: "True", Bot: "False"}.get(type(f), "Prop")


_UNARY = {"And.left": ("left", And), "And.right": ("right", And), "Iff.mp": ("mp", Iff),
          "Iff.mpr": ("mpr", Iff), "And.symm": ("symm", And), "Or.symm": ("symm", Or),
          "Iff.symm": ("symm", Iff)}


def _infer_app(el: Elab, ctx: Ctx, t: App) -> Formula:
    args = list(t.args)
    fn = t.fn
    if isinstance(fn, Var) and lookup(ctx, fn.name) is None:
        name = fn.name
        if name == "Classical.em" and len(args) >= 1:
            el.classical = True
            p = to_formula(ctx, args[0], el.src)
            return _apply_args(el, ctx, t, Or(p, Not(p)), args[1:])
        if name in _UNARY and args:
            fld, cls = _UNARY[name]
            f = infer(el, ctx, args[0])
            if not isinstance(f, cls):
                raise _mismatch(el, ctx, args[0], f, cls(Atom("?a"), Atom("?b")))
            return _apply_args(el, ctx, t, _project(el, ctx, args[0], f, fld), args[1:])
        if name in ("And.intro",) and len(args) == 2:
            return And(infer(el, ctx, args[0]), infer(el, ctx, args[1]))
        if name == "Iff.intro" and len(args) == 2:
            f = infer(el, ctx, args[0])
            ab = as_imp(f)
            if ab is None:
                raise _mismatch(el, ctx, args[0], f, Imp(Atom("?a"), Atom("?b")))
            check(el, ctx, args[1], Imp(ab[1], ab[0]))
            return Iff(ab[0], ab[1])
        if name in _EXPECTING:
            raise _need_expected(el, t)
    return _apply_args(el, ctx, t, infer(el, ctx, fn), args)


def _apply_args(el: Elab, ctx: Ctx, t: App, f: Formula, args: list[Term]) -> Formula:
    for a in args:
        ab = as_imp(f)
        if ab is None:
            raise LeanError(f"function expected\n  {_src(el.src, t)}\nterm has type\n  {show_in(ctx, f)}", t.span)
        dom, f = ab
        try:
            check(el, ctx, a, dom)
        except LeanError as e:
            if e.message.startswith("type mismatch\n") and e.span == a.span:
                got = e.message.split("has type\n  ", 1)[1].split(" : Prop", 1)[0]
                raise LeanError(f"application type mismatch\n  {_src(el.src, t)}\nargument\n  {_src(el.src, a)}\n"
                                f"has type\n  {got} : Prop\nbut is expected to have type\n  "
                                f"{show_in(ctx, dom)} : Prop", a.span) from None
            raise
    return f
