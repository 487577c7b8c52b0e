"""The tactic engine: each tactic maps a tuple of goals to a new tuple of goals, or raises
LeanError.  Every rule is a sound step of classical propositional logic."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .formula import And, Bot, Formula, Iff, Imp, Not, Or, Top, atoms, evaluate
from .terms import Elab, check, infer
from .kernel import (Goal, LeanError, arity, as_imp, defeq, goal_text, lookup, show_in, to_formula)
from .syntax import App, ByTac, Tactic, Var

Goals = tuple[Goal, ...]


def subtag(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def unsolved(goals: Goals) -> str:
    return "unsolved goals\n" + "\n\n".join(goal_text(g) for g in goals)


def run_seq(el: Elab, goals: Goals, tacs) -> Goals:
    for tac in tacs:
        goals = run(el, goals, tac)
    return goals


def run_by(el: Elab, goal: Goal, t: ByTac) -> None:
    """Hook for `by` blocks inside terms: the block must close its goal."""
    rest = run_seq(el, (goal,), t.tactics)
    if rest:
        raise LeanError(unsolved(rest), (t.span[0], t.span[0] + 2))


def run(el: Elab, goals: Goals, tac: Tactic) -> Goals:
    el.run_by = run_by
    try:
        return _run(el, goals, tac)
    except LeanError as e:
        if e.span is None:
            e.span = tac.span
        raise
    except RecursionError:
        raise LeanError("maximum recursion depth has been reached", tac.span) from None


def _run(el: Elab, goals: Goals, tac: Tactic) -> Goals:
    name, args = tac.name, tac.args
    if name == "skip":
        return goals
    if name == "done":
        if goals:
            raise LeanError(unsolved(goals))
        return goals
    if name == "(":
        return run_seq(el, goals, args[0])
    if name == "all_goals":
        out: list[Goal] = []
        for g in goals:
            out.extend(run_seq(el, (g,), args[0]))
        return tuple(out)
    if name == "any_goals":
        out, ok, err = [], False, None
        for g in goals:
            try:
                out.extend(run_seq(el, (g,), args[0]))
                ok = True
            except LeanError as e:
                out.append(g)
                err = err or e
        if not ok:
            raise err or LeanError("no goals to be proved")
        return tuple(out)
    if name == "first":
        last: Optional[LeanError] = None
        for alt in args[0]:
            try:
                return run_seq(el, goals, alt)
            except LeanError as e:
                last = e
        raise last  # type: ignore[misc]
    if not goals:
        raise LeanError("no goals to be proved")
    main, rest = goals[0], goals[1:]
    if name in ("·", "focus"):
        left = run_seq(el, (main,), args[0])
        if left:
            raise LeanError(unsolved(left), (tac.span[0], tac.span[0] + 1))
        return rest
    if name in ("case", "next"):
        tag, names, body = args
        idx = 0
        if tag is not None:
            matches = [i for i, g in enumerate(goals) if g.tag == tag or g.tag.endswith("." + tag)]
            if not matches:
                raise LeanError(f"Case tag '{tag}' not found.\n\nThere are no cases to select.")
            idx = matches[0]
        g = _rename_inaccessible(replace(goals[idx], tag=""), names)
        left = run_seq(el, (g,), body)
        if left:
            raise LeanError(unsolved(left))
        return goals[:idx] + goals[idx + 1:]
    if name == "<;>":
        first_goals = run(el, (main,), args[0])
        out = []
        for g in first_goals:
            out.extend(run(el, (g,), args[1]))
        return tuple(out) + rest
    return tuple(_one(el, main, tac)) + rest


def _rename_inaccessible(g: Goal, names) -> Goal:
    if not names:
        return g
    idxs = [i for i, h in enumerate(g.ctx) if not h.accessible][-len(names):]
    ctx = list(g.ctx)
    for i, n in zip(idxs, names):
        ctx[i] = replace(ctx[i], name=n, accessible=n != "_")
    return replace(g, ctx=tuple(ctx))


def _fail(tactic: str, g: Goal, extra: str = "") -> LeanError:
    sep = f", {extra}" if extra else ""
    return LeanError(f"tactic '{tactic}' failed{sep}\n{goal_text(g)}")


def _intro(g: Goal, name: Optional[str]) -> Goal:
    ab = as_imp(g.target)
    if ab is None:
        raise LeanError("tactic 'introN' failed, insufficient number of binders")
    hyp_name = name if name not in (None, "_") else "a"
    return replace(g.add(hyp_name, ab[0], accessible=name not in (None, "_")), target=ab[1])


def _one(el: Elab, g: Goal, tac: Tactic) -> list[Goal]:
    name, args = tac.name, tac.args
    t = g.target
    if name == "intro":
        if not args:
            return [_intro(g, None)]
        for n in args:
            g = _intro(g, n)
        return [g]
    if name == "intros":
        if args:
            for n in args:
                g = _intro(g, n)
            return [g]
        while isinstance(g.target, Imp):
            g = _intro(g, None)
        return [g]
    if name in ("exact", "refine"):
        check(el, g.ctx, args[0], t)
        return []
    if name == "apply":
        return _apply(el, g, args[0])
    if name == "constructor":
        if isinstance(t, And):
            return [Goal(g.ctx, t.a, subtag(g.tag, "left")), Goal(g.ctx, t.b, subtag(g.tag, "right"))]
        if isinstance(t, Iff):
            return [Goal(g.ctx, Imp(t.a, t.b), subtag(g.tag, "mp")),
                    Goal(g.ctx, Imp(t.b, t.a), subtag(g.tag, "mpr"))]
        if isinstance(t, Top):
            return []
        if isinstance(t, Or):
            return [g.with_target(t.a)]
        raise _fail("constructor", g, "target is not an inductive datatype")
    if name in ("left", "right"):
        if not isinstance(t, Or):
            raise LeanError(f"{name} tactic works for inductive types with exactly 2 constructors\n{goal_text(g)}")
        return [g.with_target(t.a if name == "left" else t.b)]
    if name == "exfalso":
        return [g.with_target(Bot())]
    if name in ("sorry", "admit"):
        el.sorries.append((g, tac.span))
        return []
    if name == "assumption":
        if _assumption(g):
            return []
        raise _fail("assumption", g)
    if name == "contradiction":
        if _contradiction(g):
            return []
        raise _fail("contradiction", g)
    if name == "trivial":
        if _trivial(g, 8):
            return []
        raise LeanError(f"tactic 'trivial' failed\n{goal_text(g)}")
    if name == "rfl":
        if isinstance(t, Iff) and defeq(t.a, t.b):
            return []
        raise LeanError(f"The rfl tactic failed. Possible reasons:\n- The goal is not a reflexive relation "
                        f"(neither `=` nor a relation with a @[refl] lemma).\n- The arguments of the relation "
                        f"are not equal.\nTry using the reflexivity lemma for your relation explicitly, "
                        f"e.g. `exact Eq.refl _` or\n`exact HEq.rfl` etc.\n{goal_text(g)}")
    if name == "exfalso":
        return [g.with_target(Bot())]
    if name == "by_cases":
        el.classical = True
        hname, term = args
        f = to_formula(g.ctx, term, el.src)
        n = hname or "h"
        acc = hname is not None
        return [replace(g.add(n, f, acc), tag="pos"), replace(g.add(n, Not(f), acc), tag="neg")]
    if name == "by_contra":
        el.classical = True
        n = args[0]
        return [replace(g.add(n or "x", Not(t), n not in (None, "_")), target=Bot())]
    if name == "have":
        hname, ty, proof = args
        n = hname or "this"
        if ty is not None:
            f = to_formula(g.ctx, ty, el.src)
            if proof is None:
                return [Goal(g.ctx, f), g.add(n, f)]
            check(el, g.ctx, proof, f)
        else:
            f = infer(el, g.ctx, proof)
        return [g.add(n, f)]
    if name == "show":
        f = to_formula(g.ctx, args[0], el.src)
        if not defeq(f, t):
            raise LeanError(f"type mismatch\n  {show_in(g.ctx, f)}\nis not definitionally equal to\n  "
                            f"{show_in(g.ctx, t)}")
        return [g.with_target(f)]
    if name == "cases":
        return _cases(el, g, args[0])
    if name == "rcases":
        term, pat = args
        g2, ty = _take(el, g, term, None)
        return _destruct(g2, ty, pat, "h")
    if name == "obtain":
        pat, ty_term, term = args
        g2, ty = _take(el, g, term, ty_term)
        return _destruct(g2, ty, pat, "h")
    raise LeanError(f"unknown tactic '{name}'")


def _assumption(g: Goal) -> bool:
    return any(h.type is not None and defeq(h.type, g.target) for h in g.ctx)


def _contradiction(g: Goal) -> bool:
    hyps = [h.type for h in g.ctx if h.type is not None]
    for h in hyps:
        if isinstance(h, Bot) or isinstance(h, Not) and isinstance(h.a, Top):
            return True
        ab = as_imp(h)
        if ab is not None and isinstance(ab[1], Bot) and any(defeq(x, ab[0]) for x in hyps):
            return True
    return False


def _trivial(g: Goal, depth: int) -> bool:
    t = g.target
    if depth <= 0:
        return False
    if isinstance(t, Top) or _assumption(g):
        return True
    if isinstance(t, Iff) and defeq(t.a, t.b):
        return True
    if isinstance(t, And):
        return _trivial(g.with_target(t.a), depth - 1) and _trivial(g.with_target(t.b), depth - 1)
    # `decide` on a closed proposition (no proposition variables): a truth-table check
    return not atoms(t) and evaluate(t, {})


def _apply(el: Elab, g: Goal, term) -> list[Goal]:
    t = g.target
    if isinstance(term, Var) and lookup(g.ctx, term.name) is None:
        c = term.name
        if c == "And.intro" and isinstance(t, And):
            return [Goal(g.ctx, t.a, subtag(g.tag, "left")), Goal(g.ctx, t.b, subtag(g.tag, "right"))]
        if c == "Iff.intro" and isinstance(t, Iff):
            return [Goal(g.ctx, Imp(t.a, t.b), subtag(g.tag, "mp")),
                    Goal(g.ctx, Imp(t.b, t.a), subtag(g.tag, "mpr"))]
        if c in ("Or.inl", "Or.inr") and isinstance(t, Or):
            return [g.with_target(t.a if c == "Or.inl" else t.b)]
        if c == "False.elim":
            return [g.with_target(Bot())]
        if c == "Classical.byContradiction":
            el.classical = True
            return [g.with_target(Imp(Not(t), Bot()))]
        if c in ("trivial", "True.intro") and isinstance(t, Top):
            return []
        if c in ("And.intro", "Iff.intro", "Or.inl", "Or.inr", "absurd", "Or.elim", "Not.elim", "id"):
            raise LeanError(f"tactic 'apply' failed, could not unify the conclusion of `@{c}`\n  "
                            f"with the goal\n  {show_in(g.ctx, t)}\n{goal_text(g)}")
    if isinstance(term, App) and isinstance(term.fn, Var) and lookup(g.ctx, term.fn.name) is None \
            and term.fn.name in ("Or.inl", "Or.inr", "absurd", "False.elim", "Or.elim",
                                 "Classical.byContradiction", "And.intro", "Iff.intro", "id", "Not.elim"):
        check(el, g.ctx, term, t)
        return []
    if not isinstance(term, (Var, App)) or isinstance(term, App) and not isinstance(term.fn, Var):
        try:
            ty = infer(el, g.ctx, term)
        except LeanError:
            check(el, g.ctx, term, t)
            return []
    else:
        ty = infer(el, g.ctx, term)
    n_all = arity(ty)
    first = n_all - arity(t)
    order = ([first] if 0 <= first <= n_all else []) + [k for k in range(n_all + 1) if k != first]
    for k in order:
        prems, concl = [], ty
        for _ in range(k):
            ab = as_imp(concl)
            assert ab is not None
            prems.append(ab[0])
            concl = ab[1]
        if defeq(concl, t):
            if len(prems) == 1:
                return [g.with_target(prems[0])]
            return [Goal(g.ctx, p, subtag(g.tag, "a")) for p in prems]
    raise LeanError(f"tactic 'apply' failed, could not unify the conclusion of\n  {show_in(g.ctx, ty)}\n"
                    f"with the goal\n  {show_in(g.ctx, t)}\n{goal_text(g)}")


def _take(el: Elab, g: Goal, term, ty_term) -> tuple[Goal, Formula]:
    """The proposition to destruct; a local hypothesis named directly is cleared."""
    if ty_term is not None:
        f = to_formula(g.ctx, ty_term, el.src)
        check(el, g.ctx, term, f)
        return g, f
    if isinstance(term, Var):
        h = lookup(g.ctx, term.name)
        if h is not None and h.type is not None:
            return replace(g, ctx=tuple(x for x in g.ctx if x.uid != h.uid)), h.type
    return g, infer(el, g.ctx, term)


def _cases(el: Elab, g: Goal, term) -> list[Goal]:
    g2, ty = _take(el, g, term, None)
    if isinstance(ty, Or):
        return [replace(g2.add("h", ty.a, False), tag=subtag(g.tag, "inl")),
                replace(g2.add("h", ty.b, False), tag=subtag(g.tag, "inr"))]
    if isinstance(ty, And):
        return [replace(g2.add("left", ty.a, False).add("right", ty.b, False), tag=subtag(g.tag, "intro"))]
    if isinstance(ty, Iff):
        return [replace(g2.add("mp", Imp(ty.a, ty.b), False).add("mpr", Imp(ty.b, ty.a), False),
                        tag=subtag(g.tag, "intro"))]
    if isinstance(ty, Top):
        return [replace(g2, tag=subtag(g.tag, "intro"))]
    if isinstance(ty, Bot):
        return []
    raise LeanError(f"tactic 'induction' failed, major premise type is not an inductive type \n  "
                    f"{show_in(g.ctx, ty)}\n{goal_text(g)}")


def _destruct(g: Goal, ty: Formula, pat: tuple, base: str) -> list[Goal]:
    kind = pat[0]
    if kind == "name":
        return [g.add(pat[1], ty)]
    if kind == "_":
        return [g.add(base, ty, False)]
    if kind == "-":
        return [g]
    if isinstance(ty, Bot):
        return []
    if kind == "tuple":
        items = pat[1]
        if len(items) == 1:
            return _destruct(g, ty, items[0], base)
        if not items:
            if isinstance(ty, Top):
                return [replace(g, tag=subtag(g.tag, "intro"))]
            return _destruct(g, ty, ("_",), base)
        if isinstance(ty, And):
            g = replace(g, tag=subtag(g.tag, "intro"))
            rest = items[1] if len(items) == 2 else ("tuple", items[1:])
            out = []
            for g1 in _destruct(g, ty.a, items[0], "left"):
                out.extend(_destruct(g1, ty.b, rest, "right"))
            return out
        if isinstance(ty, Iff) and len(items) == 2:
            g = replace(g, tag=subtag(g.tag, "intro"))
            out = []
            for g1 in _destruct(g, Imp(ty.a, ty.b), items[0], "mp"):
                out.extend(_destruct(g1, Imp(ty.b, ty.a), items[1], "mpr"))
            return out
        if isinstance(ty, Or):
            return _destruct(g, ty, ("alts", items), base)
    if kind == "alts":
        alts = pat[1]
        if isinstance(ty, Or):
            rest = alts[1] if len(alts) == 2 else ("alts", alts[1:])
            if len(alts) == 1:
                rest = ("_",)
            return (_destruct(replace(g, tag=subtag(g.tag, "inl")), ty.a, alts[0], "h")
                    + _destruct(replace(g, tag=subtag(g.tag, "inr")), ty.b, rest, "h"))
        return _destruct(g, ty, alts[0], base)
    raise LeanError(f"rcases: the pattern does not match the type\n  {show_in(g.ctx, ty)}")
