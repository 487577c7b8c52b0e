"""Proof attempts for the built-in logic's soundness tests: the oracle's own proofs, rendered in many
syntaxes (tactic, term, mixed) and mutated, tried on true statements and on falsified copies of them.

- ``valid_sequents(rng)``: random classical tautologies with hypotheses over p, q, r (seeded).
- ``falsified(seq, rng)``: the same hypothesis names with a dropped hypothesis or a changed goal or
  hypothesis, kept only when a truth table refutes it.
- ``proof_tree(seq)``: the oracle's flat tactic lines parsed back into a tree whose nodes know their
  goal and context (``intro``, ``constructor``, ``obtain``, ``rcases``, ``by_cases``, leaves ...).
- ``render(tree, rng)`` (``tests/proof_render.py``): one proof text for the tree, in random syntax.
- ``mutate(tree, rng)``: swapped hypotheses, a wrong branch, a dropped or duplicated case, a term former
  applied to the wrong argument, a subproof replaced by ``sorry``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Optional

from raylib.env.builtin.formula import And, Atom, Bot, Formula, Iff, Imp, Not, Or, Top, parse_formula, show
from raylib.env.builtin.oracle import TruthTables, oracle_proof

PROPS = ("p", "q", "r")
TT = TruthTables(list(PROPS))


@dataclass(frozen=True)
class Sequent:
    hyps: tuple[tuple[str, Formula], ...]
    goal: Formula

    def statement(self) -> str:
        binders = "".join(f" ({n} : {show(f)})" for n, f in self.hyps)
        return f"theorem t (p q r : Prop){binders} : {show(self.goal)}"

    def valid(self) -> bool:
        return TT.entails([f for _, f in self.hyps], self.goal)


# -- statements ---------------------------------------------------------------------------------

def random_formula(rng: random.Random, depth: int) -> Formula:
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice([Atom("p"), Atom("q"), Atom("r"), Atom("p"), Atom("q")] if rng.random() < 0.9
                          else [Top(), Bot()])
    k = rng.randrange(5)
    if k == 0:
        return Not(random_formula(rng, depth - 1))
    cls = (And, Or, Imp, Iff)[k - 1]
    return cls(random_formula(rng, depth - 1), random_formula(rng, depth - 1))


def _pieces(f: Formula) -> list[Formula]:
    if isinstance(f, Not):
        return [f, f.a]
    if isinstance(f, (And, Or, Imp, Iff)):
        return [f, f.a, f.b]
    return [f]


def valid_sequents(rng: random.Random, n: int) -> list[Sequent]:
    """``n`` distinct valid sequents: goals built from pieces of the hypotheses, so proofs use them."""
    out: list[Sequent] = []
    seen = set()
    while len(out) < n:
        hyps = [random_formula(rng, rng.randint(1, 2)) for _ in range(rng.randint(0, 3))]
        pieces = [x for h in hyps for x in _pieces(h)] + [Atom("p"), Atom("q")]
        a, b = rng.choice(pieces), rng.choice(pieces)
        goal = rng.choice([a, b, And(a, b), Or(a, b), Imp(a, b), Not(a), Iff(a, b), Iff(a, a),
                           Or(a, Not(a)), random_formula(rng, 3)])
        seq = Sequent(tuple((f"h{i}", h) for i, h in enumerate(hyps)), goal)
        if seq.valid() and seq not in seen:
            seen.add(seq)
            out.append(seq)
    return out


def _goal_mutations(f: Formula) -> list[Formula]:
    """Formulas one small change away from ``f`` (at the top and in each direct part)."""
    out: list[Formula] = [Not(f), Bot()]
    if isinstance(f, Atom):
        out += [Atom(a) for a in PROPS if a != f.name]
    if isinstance(f, Not):
        out.append(f.a)
    if isinstance(f, And):
        out += [Or(f.a, f.b), And(f.a, Not(f.b)), And(Not(f.a), f.b)]
    if isinstance(f, Or):
        out += [And(f.a, f.b), f.a, f.b]
    if isinstance(f, Imp):
        out += [Imp(f.b, f.a), f.b, And(f.a, f.b)]
    if isinstance(f, Iff):
        out += [Imp(f.b, f.a), Imp(f.a, f.b), Or(f.a, f.b), Iff(f.a, Not(f.b)), And(f.a, f.b)]
    if isinstance(f, (And, Or, Imp, Iff)):
        out += [type(f)(g, f.b) for g in _goal_mutations_shallow(f.a)]
        out += [type(f)(f.a, g) for g in _goal_mutations_shallow(f.b)]
    return out


def _goal_mutations_shallow(f: Formula) -> list[Formula]:
    out: list[Formula] = [Not(f), Bot()]
    if isinstance(f, Atom):
        out += [Atom(a) for a in PROPS if a != f.name]
    if isinstance(f, Not):
        out.append(f.a)
    if isinstance(f, (And, Or)):
        out.append((Or if isinstance(f, And) else And)(f.a, f.b))
    return out


def falsified(seq: Sequent, rng: random.Random, k: int) -> list[Sequent]:
    """Up to ``k`` refuted sequents one change away from ``seq`` (same hypothesis names)."""
    cands = [Sequent(seq.hyps[:i] + seq.hyps[i + 1:], seq.goal) for i in range(len(seq.hyps))]
    cands += [Sequent(seq.hyps, g) for g in _goal_mutations(seq.goal)]
    for i, (n, h) in enumerate(seq.hyps):
        cands += [Sequent(seq.hyps[:i] + ((n, g),) + seq.hyps[i + 1:], seq.goal) for g in _goal_mutations(h)]
    bad = list(dict.fromkeys(c for c in cands if not c.valid()))
    rng.shuffle(bad)
    return bad[:k]


# -- the oracle's proof as a tree ------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    kind: str
    goal: Formula
    ctx: tuple[tuple[str, Formula], ...]   # hypotheses in scope, in order
    args: tuple = ()
    kids: tuple["Node", ...] = ()

    def hyp(self, name: str) -> Optional[Formula]:
        for n, f in reversed(self.ctx):
            if n == name:
                return f
        return None


_HAVE_APP = re.compile(r"^have (\S+) : (.+) := (\S+) (\S+)$")
_HAVE = re.compile(r"^have (\S+) : (.+)$")


def proof_tree(seq: Sequent) -> Node:
    lines = oracle_proof(seq.statement())
    node, i = _build(lines, 0, seq.hyps, seq.goal)
    assert i == len(lines), (lines, i)
    return node


def _without(ctx, name):
    return tuple((n, f) for n, f in ctx if n != name)


def _build(lines: list[str], i: int, ctx, goal: Formula) -> tuple[Node, int]:
    line = lines[i]
    i += 1
    words = line.split()

    def kid(c, g, j):
        return _build(lines, j, c, g)

    def hyp(name):
        return next(f for n, f in reversed(ctx) if n == name)

    if words[0] == "intro":
        x = words[1]
        a, b = (goal.a, goal.b) if isinstance(goal, Imp) else (goal.a, Bot())
        k, i = kid(ctx + ((x, a),), b, i)
        return Node("intro", goal, ctx, (x, a), (k,)), i
    if line == "constructor":
        first, second = (goal.a, goal.b) if isinstance(goal, And) else (Imp(goal.a, goal.b), Imp(goal.b, goal.a))
        k1, i = kid(ctx, first, i)
        k2, i = kid(ctx, second, i)
        return Node("and_intro" if isinstance(goal, And) else "iff_intro", goal, ctx, (), (k1, k2)), i
    if words[0] == "obtain":
        m = re.match(r"obtain ⟨(\S+), (\S+)⟩ := (\S+)$", line)
        a, b, n = m.groups()
        f = hyp(n)
        parts = (f.a, f.b) if isinstance(f, And) else (Imp(f.a, f.b), Imp(f.b, f.a))
        k, i = kid(_without(ctx, n) + ((a, parts[0]), (b, parts[1])), goal, i)
        return Node("obtain_and" if isinstance(f, And) else "obtain_iff", goal, ctx, (n, a, b), (k,)), i
    if words[0] == "have":
        m = _HAVE_APP.match(line)
        if m:
            nb, ftext, fn, arg = m.groups()
            f = parse_formula(ftext)
            k, i = kid(ctx + ((nb, f),), goal, i)
            return Node("have_app", goal, ctx, (nb, f, fn, arg), (k,)), i
        nb, ftext = _HAVE.match(line).groups()
        f = parse_formula(ftext)
        k1, i = kid(ctx, f, i)
        k2, i = kid(ctx + ((nb, f),), goal, i)
        return Node("have_goal", goal, ctx, (nb, f), (k1, k2)), i
    if words[0] == "rcases":
        m = re.match(r"rcases (\S+) with (\S+) \| (\S+)$", line)
        n, a, b = m.groups()
        f = hyp(n)
        rest = _without(ctx, n)
        k1, i = kid(rest + ((a, f.a),), goal, i)
        k2, i = kid(rest + ((b, f.b),), goal, i)
        return Node("rcases_or", goal, ctx, (n, a, b), (k1, k2)), i
    if line in ("left", "right"):
        k, i = kid(ctx, goal.a if line == "left" else goal.b, i)
        return Node(line, goal, ctx, (), (k,)), i
    if words[0] == "apply":
        n = words[1]
        f = hyp(n)
        k, i = kid(ctx, f.a, i)
        return Node("apply_imp" if isinstance(f, Imp) else "apply_not", goal, ctx, (n,), (k,)), i
    if line == "exfalso":
        k, i = kid(ctx, Bot(), i)
        return Node("exfalso", goal, ctx, (), (k,)), i
    if words[0] == "by_cases":
        h, p = words[1], words[3]
        k1, i = kid(ctx + ((h, Atom(p)),), goal, i)
        k2, i = kid(ctx + ((h, Not(Atom(p))),), goal, i)
        return Node("by_cases", goal, ctx, (h, p), (k1, k2)), i
    return Node("leaf", goal, ctx, _leaf(line)), i


def _leaf(line: str) -> tuple:
    if line == "trivial":
        return ("trivial",)
    term = line[len("exact "):]
    for pat, kind in ((r"False\.elim (\S+)$", "false_elim"), (r"absurd (\S+) (\S+)$", "absurd"),
                      (r"Or\.inl (\S+)$", "or_inl"), (r"Or\.inr (\S+)$", "or_inr"),
                      (r"Classical\.em (\S+)$", "em"), (r"⟨(\S+), (\S+)⟩$", "anon"), (r"(\S+) (\S+)$", "app"),
                      (r"(\S+)$", "hyp")):
        m = re.match(pat, term)
        if m:
            return (kind,) + m.groups()
    raise ValueError(f"unknown oracle line {line!r}")


# -- mutations -------------------------------------------------------------------------------------

def _nodes(tree: Node, path=()):
    yield path, tree
    for i, k in enumerate(tree.kids):
        yield from _nodes(k, path + (i,))


def _replace_at(tree: Node, path, new: Node) -> Node:
    if not path:
        return new
    kids = list(tree.kids)
    kids[path[0]] = _replace_at(kids[path[0]], path[1:], new)
    return replace(tree, kids=tuple(kids))


MUTATIONS = ("swap_hyp", "wrong_branch", "drop_case", "dup_case", "wrong_arg", "sorry", "cut")


def mutate(tree: Node, rng: random.Random, kind: str) -> Optional[Node]:
    """``tree`` changed by one mutation of ``kind``; None when the tree offers no place for it."""
    nodes = list(_nodes(tree))
    rng.shuffle(nodes)
    for path, n in nodes:
        new = _mutate_node(n, rng, kind)
        if new is not None:
            return _replace_at(tree, path, new)
    return None


def _mutate_node(n: Node, rng: random.Random, kind: str) -> Optional[Node]:
    names = [x for x, _ in n.ctx]
    if kind == "swap_hyp" and n.kind == "leaf" and n.args[0] not in ("trivial", "em"):
        used = [x for x in n.args[1:] if x in names]
        others = [x for x in names if x not in used]
        if used and others:
            old, new = rng.choice(used), rng.choice(others)
            return replace(n, args=tuple(new if x == old else x for x in n.args))
    if kind == "wrong_branch":
        if n.kind in ("left", "right"):
            return replace(n, kind="right" if n.kind == "left" else "left")
        if n.kind == "leaf" and n.args[0] in ("or_inl", "or_inr"):
            return replace(n, args=("or_inr" if n.args[0] == "or_inl" else "or_inl",) + n.args[1:])
        if len(n.kids) == 2 and n.kind in ("rcases_or", "by_cases", "and_intro", "iff_intro"):
            return replace(n, kids=(n.kids[1], n.kids[0]))
    if kind in ("drop_case", "dup_case") and len(n.kids) == 2 and n.kind != "have_goal":
        second = replace(n.kids[1], kind="dropped", kids=()) if kind == "drop_case" else n.kids[0]
        return replace(n, kids=(n.kids[0], second))
    if kind == "wrong_arg":
        if n.kind in ("apply_imp", "apply_not"):
            others = [x for x, f in n.ctx if x != n.args[0] and isinstance(f, (Imp, Not))]
            if others:
                return replace(n, args=(rng.choice(others),))
        if n.kind == "have_app":
            nb, f, fn, arg = n.args
            others = [x for x in names if x not in (fn, arg)]
            if others:
                return replace(n, args=(nb, f, fn, rng.choice(others)) if rng.random() < 0.5 else (nb, f, arg, fn))
        if n.kind in ("obtain_and", "obtain_iff", "rcases_or"):
            x, a, b = n.args
            return replace(n, args=(x, b, a))
        if n.kind == "leaf" and n.args[0] in ("absurd", "app", "anon"):
            return replace(n, args=(n.args[0], n.args[2], n.args[1]))
    if kind == "cut" and len(n.kids) == 1 and n.kind != "have_goal":   # the step, and nothing after it
        return replace(n, kids=(replace(n.kids[0], kind="dropped", kids=()),))
    if kind == "sorry" and n.kind != "leaf" and n.kids:
        i = rng.randrange(len(n.kids))
        kids = list(n.kids)
        kids[i] = Node("sorry", kids[i].goal, kids[i].ctx)
        return replace(n, kids=tuple(kids))
    return None
