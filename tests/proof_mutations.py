"""Proof attempts for the built-in logic's soundness tests: the oracle's own proofs, rendered in many
syntaxes (tactic, term, mixed) and mutated, tried on true statements and on falsified copies of them.

- ``valid_sequents(rng)``: random classical tautologies with hypotheses over p, q, r (seeded).
- ``falsified(seq, rng)``: the same hypothesis names with a dropped hypothesis or a changed goal or
  hypothesis, kept only when a truth table refutes it.
- ``proof_tree(seq)``: the oracle's flat tactic lines parsed back into a tree whose nodes know their
  goal and context (``intro``, ``constructor``, ``obtain``, ``rcases``, ``by_cases``, leaves ...).
- ``render(tree, rng)``: one proof text for the tree; every node picks a syntax at random (tactic or
  term, and among equivalent tactics and term formers), so all of them are exercised.
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
        out += [Imp(f.b, f.a), Iff(f.a, Not(f.b)), And(f.a, f.b)]
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


# -- rendering -------------------------------------------------------------------------------------

def _ind(lines: list[str], first: str = "  ", rest: str = "  ") -> list[str]:
    return [(first if i == 0 else rest) + ln for i, ln in enumerate(lines)]


def _p(t: str) -> str:
    return t if re.fullmatch(r"[\w.₀-₉']+", t) else f"({t})"


class Renderer:
    """Render a proof tree; ``term_bias`` is the chance of switching a node to term mode."""

    def __init__(self, rng: random.Random, term_bias: float = 0.3, pure_term: bool = False):
        self.rng, self.term_bias, self.pure_term = rng, term_bias, pure_term
        self.root: Node | None = None

    def pick(self, *options):
        return options[self.rng.randrange(len(options))]

    # tactic mode: a list of lines closing the node's goal
    def tac(self, node: Node) -> list[str]:
        if node.kind == "sorry":
            return [self.pick("sorry", "admit")]
        if node.kind == "dropped":
            return []
        if self.rng.random() < self.term_bias:
            return [self.pick("exact ", "refine ") + self.term(node, {})]
        r = self.rng.random()
        if node is self.root and self.rng.random() < 0.2:   # where a falsified goal is most often negated
            r = 0.0
        if r < 0.05 and not isinstance(node.goal, Bot):   # by contradiction, then back to the goal
            return self.pick(["by_contra hbc", "apply hbc"],
                             ["apply Classical.byContradiction", "intro hbc", "apply hbc"]) + self.tac(node)
        if r < 0.09:
            return [f"show {show(node.goal)}"] + self.tac(node)
        if r < 0.11:
            return ["skip"] + self.tac(node)
        if r < 0.14:
            return ["focus"] + _ind(self.tac(node))
        if isinstance(node.goal, Iff) and node.goal.a == node.goal.b and r < 0.5:
            return ["rfl"]
        return getattr(self, "t_" + node.kind)(node, *node.args)

    def two(self, head: list[str], k1: Node, k2: Node, tags=None) -> list[str]:
        a, b = self.tac(k1), self.tac(k2)
        style = "case" if tags else self.pick("flat", "bullet")  # `cases` leaves names inaccessible
        if style == "flat":
            return head + a + b
        if style == "bullet":
            return head + (_ind(a, "· ") if a else []) + (_ind(b, "· ") if b else [])
        (t1, n1), (t2, n2) = tags
        word = self.pick("case", "next")
        c1 = f"case {t1} {n1} =>" if word == "case" else f"next {n1} =>"
        c2 = f"case {t2} {n2} =>" if word == "case" else f"next {n2} =>"
        return head + ([c1] + _ind(a) if a else []) + ([c2] + _ind(b) if b else [])

    def t_intro(self, node, x, a):
        return [f"{self.pick('intro', 'intros')} {x}"] + self.tac(node.kids[0])

    def t_and_intro(self, node):
        k1, k2 = node.kids
        if k1.kind == k2.kind == "leaf" and self.rng.random() < 0.3:
            l1, l2 = self.leaf_tac(k1), self.leaf_tac(k2)
            if len(l1) == len(l2) == 1:
                return [f"constructor <;> first | {l1[0]} | {l2[0]}"]
        return self.two([self.pick("constructor", "apply And.intro")], k1, k2)

    def t_iff_intro(self, node):
        return self.two([self.pick("constructor", "apply Iff.intro")], *node.kids)

    def t_obtain_and(self, node, n, a, b):
        rest = self._kid_after(node)
        if self.rng.random() < 0.2:
            return [f"cases {n}", f"case intro {a} {b} =>"] + _ind(rest)
        return self.pick([f"obtain ⟨{a}, {b}⟩ := {n}"], [f"rcases {n} with ⟨{a}, {b}⟩"],
                         [f"have {a} := {n}.1", f"have {b} := {self.pick(f'{n}.2', f'{n}.right', f'And.right {n}')}"]
                         ) + rest

    def _kid_after(self, node):
        return self.tac(node.kids[0])

    def t_obtain_iff(self, node, n, a, b):
        return self.pick([f"obtain ⟨{a}, {b}⟩ := {n}"], [f"rcases {n} with ⟨{a}, {b}⟩"],
                         [f"have {a} := {self.pick(f'{n}.mp', f'{n}.1', f'Iff.mp {n}')}",
                          f"have {b} := {self.pick(f'{n}.mpr', f'{n}.2', f'Iff.mpr {n}')}"]) + self._kid_after(node)

    def t_have_app(self, node, nb, f, fn, arg):
        head = self.pick(f"have {nb} : {show(f)} := {fn} {arg}", f"have {nb} := {fn} {arg}",
                         f"obtain {nb} := {fn} {arg}")
        return [head] + self.tac(node.kids[0])

    def t_have_goal(self, node, nb, f):
        k1, k2 = node.kids
        if self.rng.random() < 0.5:
            inner = self.tac(k1)
            if inner:
                return [f"have {nb} : {show(f)} := by"] + _ind(inner, "    ", "    ") + self.tac(k2)
        return self.two([f"have {nb} : {show(f)}"], k1, k2)

    def t_rcases_or(self, node, n, a, b):
        k1, k2 = node.kids
        style = self.rng.randrange(3)
        if style == 0:
            return self.two([f"rcases {n} with {a} | {b}"], k1, k2)
        if style == 1:
            return self.two([f"obtain {a} | {b} := {n}"], k1, k2)
        return self.two([f"cases {n}"], k1, k2, tags=(("inl", a), ("inr", b)))

    def t_left(self, node):
        return [self.pick("left", "apply Or.inl")] + self.tac(node.kids[0])

    def t_right(self, node):
        return [self.pick("right", "apply Or.inr")] + self.tac(node.kids[0])

    def t_apply_imp(self, node, n):
        return [f"apply {n}"] + self.tac(node.kids[0])

    def t_apply_not(self, node, n):
        return [f"apply {n}"] + self.tac(node.kids[0])

    def t_exfalso(self, node):
        return [self.pick("exfalso", "apply False.elim")] + self.tac(node.kids[0])

    def t_by_cases(self, node, h, p):
        k1, k2 = node.kids
        style = self.rng.randrange(3)
        if style == 0:
            return self.two([f"by_cases {h} : {p}"], k1, k2)
        if style == 1:
            return self.two([f"rcases Classical.em {p} with {h} | {h}"], k1, k2)
        return self.two([f"cases Classical.em {p}"], k1, k2, tags=(("inl", h), ("inr", h)))

    def t_leaf(self, node, *args):
        lines = self.leaf_tac(node)
        r = self.rng.random()
        if r < 0.08 and len(lines) == 1:
            return ["focus", f"  {self.pick('all_goals', 'any_goals')} {lines[0]}"]
        if r < 0.12 and len(lines) == 1:
            return [f"({lines[0]})"]
        if r < 0.16 and len(lines) == 1:
            return [f"first | exact {self.pick('trivial', 'h0', 'False.elim h1')} | {lines[0]}"]
        return lines

    def leaf_tac(self, node) -> list[str]:
        kind, *a = node.args
        if kind == "trivial":
            return [self.pick("trivial", "exact True.intro", "constructor", "exact trivial")]
        if kind == "hyp":
            return [self.pick("assumption", f"exact {a[0]}", f"apply {a[0]}")]
        if kind in ("false_elim",):
            return [self.pick("contradiction", f"exact False.elim {a[0]}", f"cases {a[0]}", f"exfalso\nexact {a[0]}")
                    ][0].split("\n")
        if kind == "absurd":
            return [self.pick("contradiction", f"exact absurd {a[0]} {a[1]}", f"exfalso\nexact {a[1]} {a[0]}")
                    ][0].split("\n")
        if kind == "app":
            f = node.hyp(a[0])
            if isinstance(node.goal, Bot) and isinstance(f, Not) and self.rng.random() < 0.4:
                return ["contradiction"]
            return self.pick([f"exact {a[0]} {a[1]}"], [f"apply {a[0]}", f"exact {a[1]}"])
        if kind in ("or_inl", "or_inr"):
            side = "left" if kind == "or_inl" else "right"
            return self.pick([f"exact Or.{kind[3:]} {a[0]}"], [side, f"exact {a[0]}"])
        if kind == "em":
            return [f"exact Classical.em {a[0]}"]
        if kind == "anon":
            return self.pick([f"exact ⟨{a[0]}, {a[1]}⟩"], ["constructor", f"exact {a[0]}", f"exact {a[1]}"],
                             [f"exact And.intro {a[0]} {a[1]}"])
        raise ValueError(kind)

    # term mode: a term proving the node's goal; ``sub`` maps hypothesis names to terms
    def term(self, node: Node, sub: dict) -> str:
        if node.kind == "sorry":
            return "sorry"
        if node.kind == "dropped":
            return "sorry"
        s = lambda n: sub.get(n, n)  # noqa: E731
        k = node.kids
        kind, a = node.kind, node.args
        r = self.rng.random()
        if node is self.root and self.rng.random() < 0.2:
            r = 0.0
        if r < 0.04 and not isinstance(node.goal, Bot):
            return f"Classical.byContradiction (fun hbc => hbc {_p(self.term(node, sub))})"
        if r < 0.08:
            return f"({self.term(node, sub)} : {show(node.goal)})"
        if r < 0.11 and not self.pure_term:
            return "by " + self.pick("exact ", "refine ") + self.term(node, sub)
        if kind == "intro":
            x, f = a
            binder = self.pick(x, f"({x} : {show(f)})")
            return f"fun {binder} => {self.term(k[0], sub)}"
        if kind in ("and_intro", "iff_intro"):
            t1, t2 = self.term(k[0], sub), self.term(k[1], sub)
            if self.rng.random() < 0.15:
                flipped = (And if kind == "and_intro" else Iff)(node.goal.b, node.goal.a)
                return f"(⟨{t2}, {t1}⟩ : {show(flipped)}).symm"
            name = "And.intro" if kind == "and_intro" else "Iff.intro"
            return self.pick(f"⟨{t1}, {t2}⟩", f"{name} {_p(t1)} {_p(t2)}")
        if kind in ("obtain_and", "obtain_iff"):
            n, x, y = a
            if kind == "obtain_and":
                px = self.pick(f"{_p(s(n))}.1", f"{_p(s(n))}.left", f"(And.left {_p(s(n))})")
                py = self.pick(f"{_p(s(n))}.2", f"{_p(s(n))}.right", f"(And.right {_p(s(n))})")
            else:
                px = self.pick(f"{_p(s(n))}.mp", f"{_p(s(n))}.1", f"(Iff.mp {_p(s(n))})")
                py = self.pick(f"{_p(s(n))}.mpr", f"{_p(s(n))}.2", f"(Iff.mpr {_p(s(n))})")
            return self.term(k[0], {**sub, x: px, y: py})
        if kind == "have_app":
            nb, f, fn, arg = a
            return self.term(k[0], {**sub, nb: f"({_p(s(fn))} {_p(s(arg))})"})
        if kind == "have_goal":
            nb, f = a
            return self.term(k[1], {**sub, nb: f"({self.term(k[0], sub)} : {show(f)})"})
        if kind == "rcases_or":
            n, x, y = a
            return f"Or.elim {_p(s(n))} (fun {x} => {self.term(k[0], sub)}) (fun {y} => {self.term(k[1], sub)})"
        if kind in ("left", "right"):
            return f"Or.{'inl' if kind == 'left' else 'inr'} {_p(self.term(k[0], sub))}"
        if kind == "apply_imp":
            return f"{_p(s(a[0]))} {_p(self.term(k[0], sub))}"
        if kind == "apply_not":
            t = self.term(k[0], sub)
            typed = f"({t} : {show(k[0].goal)})"  # absurd / Not.elim infer their proof's proposition
            return self.pick(f"{_p(s(a[0]))} {_p(t)}", f"absurd {typed} {_p(s(a[0]))}",
                             f"Not.elim {_p(s(a[0]))} {typed}")
        if kind == "exfalso":
            return f"False.elim {_p(self.term(k[0], sub))}"
        if kind == "by_cases":
            h, p = a
            return f"Or.elim (Classical.em {p}) (fun {h} => {self.term(k[0], sub)}) (fun {h} => {self.term(k[1], sub)})"
        return self.leaf_term(node, sub)

    def leaf_term(self, node: Node, sub: dict) -> str:
        s = lambda n: _p(sub.get(n, n))  # noqa: E731
        kind, *a = node.args
        if kind == "trivial":
            return self.pick("trivial", "True.intro")
        if kind == "hyp":
            return self.pick(s(a[0]), f"id {s(a[0])}")
        if kind == "false_elim":
            return f"False.elim {s(a[0])}"
        if kind == "absurd":
            return self.pick(f"absurd {s(a[0])} {s(a[1])}", f"Not.elim {s(a[1])} {s(a[0])}",
                             f"False.elim ({s(a[1])} {s(a[0])})")
        if kind == "app":
            return f"{s(a[0])} {s(a[1])}"
        if kind in ("or_inl", "or_inr"):
            g = node.goal
            if self.rng.random() < 0.2:
                other = "inr" if kind == "or_inl" else "inl"
                return f"(Or.{other} {s(a[0])} : {show(Or(g.b, g.a))}).symm"
            return f"Or.{kind[3:]} {s(a[0])}"
        if kind == "em":
            return f"Classical.em {a[0]}"
        if kind == "anon":
            return self.pick(f"⟨{s(a[0])}, {s(a[1])}⟩", f"And.intro {s(a[0])} {s(a[1])}",
                             f"(And.intro {s(a[1])} {s(a[0])}).symm")
        raise ValueError(kind)


def render(tree: Node, rng: random.Random) -> str:
    """A proof (the text after ``:=``) in a random style: tactics, a term, or tactics with terms inside."""
    style = rng.choice(["tactic", "tactic", "mixed", "term"])
    r = Renderer(rng, term_bias={"tactic": 0.0, "mixed": 0.25, "term": 0.0}[style], pure_term=style == "term")
    r.root = tree
    if style == "term":
        return r.term(tree, {})
    return "by\n" + "\n".join(_ind(r.tac(tree) + (["done"] if rng.random() < 0.2 else [])))


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


MUTATIONS = ("swap_hyp", "wrong_branch", "drop_case", "dup_case", "wrong_arg", "sorry")


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
    if kind == "sorry" and n.kind != "leaf" and n.kids:
        i = rng.randrange(len(n.kids))
        kids = list(n.kids)
        kids[i] = Node("sorry", kids[i].goal, kids[i].ctx)
        return replace(n, kids=tuple(kids))
    return None
