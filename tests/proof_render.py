"""Rendering of the oracle's proof trees (``tests/proof_mutations.py``) as proof text for the built-in logic.

``render(tree, rng)`` gives one proof: every node picks a syntax at random (tactics or a term, and among
equivalent tactics and term formers: ``obtain``/``rcases``/``cases``+``case``, ``constructor``/``apply
And.intro``, ``⟨_, _⟩``/``And.intro``, ``Or.elim``, projections, ``absurd``/``Not.elim``, ``by`` blocks in
terms, combinators ``<;>``, ``all_goals``, ``any_goals``, ``first``, ``focus``, ``·``, ...), so the
soundness tests exercise all of them.
"""

from __future__ import annotations

import random
import re

from raylib.env.builtin.formula import And, Bot, Iff, Not, Or, show

from proof_mutations import Node

def _ind(lines: list[str], first: str = "  ", rest: str = "  ") -> list[str]:
    return [(first if i == 0 else rest) + ln for i, ln in enumerate(lines)]


def _p(t: str) -> str:
    return t if re.fullmatch(r"[\w.₀-₉']+", t) else f"({t})"


WRAPPABLE = ("intro", "left", "right", "exfalso", "apply_imp", "apply_not", "have_app")


class Renderer:
    """Render a proof tree; ``term_bias`` is the chance of switching a node to term mode."""

    def __init__(self, rng: random.Random, term_bias: float = 0.3, pure_term: bool = False, flat: bool = False):
        self.rng, self.term_bias, self.pure_term = rng, term_bias, pure_term
        self.flat = flat  # one tactic per line at one level (to join with ';' inside a term's `by`)
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
        if self.flat:
            r = 1.0
        if r < 0.14:
            return ["focus"] + _ind(self.tac(node))
        if isinstance(node.goal, Iff) and node.goal.a == node.goal.b and r < 0.5:
            return ["rfl"]
        lines = getattr(self, "t_" + node.kind)(node, *node.args)
        if node.kind in WRAPPABLE and self.rng.random() < 0.2 and lines and " := by" not in lines[0] \
                and not self.flat:
            head = lines[0]   # the node's own step, on its one goal: the same step through a combinator
            k = self.rng.randrange(5)
            if k < 3:
                lines[0] = (f"skip <;> {head}", f"({head})", f"first | {head}")[k]
            else:   # inside focus, so all_goals / any_goals see this goal only
                lines = ["focus"] + _ind([f"{('all_goals', 'any_goals')[k - 3]} {head}"] + lines[1:])
        return lines

    def two(self, head: list[str], k1: Node, k2: Node, tags=None) -> list[str]:
        if not tags and not self.flat and self.rng.random() < 0.15:
            # both cases at once: each goal takes the alternative that closes it
            fr = Renderer(self.rng, term_bias=0.0, flat=True)
            a, b = fr.tac(k1), fr.tac(k2)
            if a and b:
                both = (f"{self.pick('any_goals', 'all_goals')} first | ({'; '.join(a + ['done'])}) | "
                        f"({'; '.join(b + ['done'])})")
                return ["focus"] + _ind(head + [both])
        a, b = self.tac(k1), self.tac(k2)
        style = "case" if tags else "flat" if self.flat else self.pick("flat", "bullet")  # `cases`: names
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
        if k1.kind == k2.kind == "leaf" and self.rng.random() < 0.3 and not self.flat:
            l1, l2 = self.leaf_tac(k1), self.leaf_tac(k2)
            if len(l1) == len(l2) == 1:
                return self.pick(f"constructor <;> first | {l1[0]} | {l2[0]}",
                                  f"focus\n  constructor\n  all_goals first | {l1[0]} | {l2[0]}",
                                  f"focus\n  constructor\n  any_goals first | {l1[0]} | {l2[0]}").split("\n")
        return self.two([self.pick("constructor", "apply And.intro")], k1, k2)

    def t_iff_intro(self, node):
        return self.two([self.pick("constructor", "apply Iff.intro")], *node.kids)

    def t_obtain_and(self, node, n, a, b):
        rest = self._kid_after(node)
        if self.rng.random() < 0.2 and not self.flat:
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
                         f"obtain {nb} := {fn} {arg}", f"obtain {nb} : {show(f)} := {fn} {arg}")
        return [head] + self.tac(node.kids[0])

    def t_have_goal(self, node, nb, f):
        k1, k2 = node.kids
        if self.rng.random() < 0.5 and not self.flat:
            inner = self.tac(k1)
            if inner:
                return [f"have {nb} : {show(f)} := by"] + _ind(inner, "    ", "    ") + self.tac(k2)
        return self.two([f"have {nb} : {show(f)}"], k1, k2)

    def t_rcases_or(self, node, n, a, b):
        k1, k2 = node.kids
        style = self.rng.randrange(2 if self.flat else 3)
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
        style = self.rng.randrange(2 if self.flat else 3)
        if style == 0:
            return self.two([f"by_cases {h} : {p}"], k1, k2)
        if style == 1:
            return self.two([f"rcases Classical.em {p} with {h} | {h}"], k1, k2)
        return self.two([f"cases Classical.em {p}"], k1, k2, tags=(("inl", h), ("inr", h)))

    def t_leaf(self, node, *args):
        lines = self.leaf_tac(node)
        r = 1.0 if self.flat else self.rng.random()
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
        if r < 0.16 and not self.pure_term and not sub and node.kind not in ("sorry", "dropped"):
            lines = Renderer(self.rng, term_bias=0.0, flat=True).tac(node)   # a tactic block inside the term
            if lines:
                return "(by " + "; ".join(lines) + ")"
        if kind == "intro":
            x, f = a
            kid = k[0]
            if kid.kind in ("obtain_and", "obtain_iff") and kid.args[0] == x and self.rng.random() < 0.8:
                return f"fun ⟨{kid.args[1]}, {kid.args[2]}⟩ => {self.term(kid.kids[0], sub)}"   # pattern binder
            binder = self.pick(x, f"({x} : {show(f)})")
            return f"fun {binder} => {self.term(kid, sub)}"
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


