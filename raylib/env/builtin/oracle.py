"""A complete oracle prover for classical propositional tautologies in Lean 4 tactic syntax.

``oracle_proof(statement)`` returns tactic lines that prove a theorem such as
``theorem t (p q : Prop) (h₁ : p ∨ q) : q ∨ p``.  Each line acts on the current first goal and
every sub-proof closes its goal before the next goal is started, so the script runs in order
without focusing dots.

Strategy: invertible rules first (``intro``, ``constructor``, ``obtain``, ``rcases``, forward
modus ponens), then backward chaining (``left``/``right``, ``apply h``, ``have``), each step chosen
only when the resulting goals are still classically valid; truth tables (as bitmasks, at most six or
so atoms) decide that.  When nothing else applies, ``by_cases`` on an undecided atom.  Since every
step keeps validity and the measure (formula sizes, undecided atoms) decreases, the search never
backtracks and always ends (see the completeness argument in ``_Prover.prove``).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from raylib.env.builtin.formula import (
    And, Atom, Bot, Formula, Iff, Imp, Not, Or, Top, atoms, parse_formula, show,
)

log = logging.getLogger(__name__)

__all__ = ["ParsedStatement", "parse_statement", "oracle_proof", "falsifying_assignment", "TruthTables"]


@dataclass(frozen=True)
class ParsedStatement:
    name: str
    props: tuple[str, ...]                       # binders of type Prop, in order
    hyps: tuple[tuple[str, Formula], ...]        # (name, formula) binders, in order
    goal: Formula


_HEAD = re.compile(r"^\s*(?:theorem|lemma)\s+(\S+?)(?=[\s({\[:])|^\s*example(?=[\s({\[:])")
_CLOSE = {"(": ")", "{": "}", "[": "]"}


def parse_statement(statement: str) -> ParsedStatement:
    """Split ``theorem NAME (p q : Prop) (h : A) : GOAL`` into its parts; ValueError if malformed."""
    text = re.sub(r"\s*:=.*$", "", statement.strip(), flags=re.S)
    m = _HEAD.match(text)
    if not m:
        raise ValueError(f"not a theorem statement (expected 'theorem NAME ... : GOAL'): {statement[:80]!r}")
    name = m.group(1) or "example"
    i, n = m.end(), len(text)
    props: list[str] = []
    hyps: list[tuple[str, Formula]] = []
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise ValueError(f"statement has no ': GOAL' part: {statement[:80]!r}")
        c = text[i]
        if c == ":":
            goal_text = text[i + 1:]
            break
        if c not in _CLOSE:
            raise ValueError(f"unexpected {c!r} at offset {i} in binders of {statement[:80]!r}")
        depth, j = 0, i
        while j < n:
            if text[j] in _CLOSE:
                depth += 1
            elif text[j] in _CLOSE.values():
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if depth:
            raise ValueError(f"unbalanced binder brackets in {statement[:80]!r}")
        inner = text[i + 1:j]
        names_part, sep, type_part = inner.partition(":")
        names = names_part.split()
        if not sep or not names:
            raise ValueError(f"binder {text[i:j + 1]!r} is not '(names : type)'")
        if type_part.strip() == "Prop":
            props.extend(names)
        else:
            f = parse_formula(type_part)
            hyps.extend((x, f) for x in names)
        i = j + 1
    goal = parse_formula(goal_text)
    unknown = [a for f in [goal, *(h for _, h in hyps)] for a in atoms(f) if a not in props]
    if unknown:
        raise ValueError(f"atoms {sorted(set(unknown))} are not bound as Prop in {statement[:80]!r}")
    return ParsedStatement(name, tuple(props), tuple(hyps), goal)


def _size(f: Formula) -> int:
    if isinstance(f, Not):
        return 1 + _size(f.a)
    if isinstance(f, (And, Or, Imp, Iff)):
        return 1 + _size(f.a) + _size(f.b)
    return 1


def _is_literal(f: Formula) -> bool:
    return isinstance(f, Atom) or (isinstance(f, Not) and isinstance(f.a, Atom))


class _Names:
    """Fresh hypothesis names along one branch of the proof."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)

    def copy(self) -> "_Names":
        return _Names(self.taken)

    def fresh(self, f: Formula) -> str:
        if isinstance(f, Atom):
            base = "h" + f.name
        elif isinstance(f, Not) and isinstance(f.a, Atom):
            base = "hn" + f.a.name
        elif isinstance(f, Bot):
            base = "hf"
        else:
            base = "h"
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}{k}"
        self.taken.add(name)
        return name


Ctx = list[tuple[str, Formula]]


class TruthTables:
    """Truth tables of formulas over fixed atoms as bitmasks (bit j: the value under assignment j)."""

    def __init__(self, props: list[str]):
        self.props = props
        self.nbits = 1 << len(props)
        self.full = (1 << self.nbits) - 1
        self.memo: dict[Formula, int] = {}
        for k, p in enumerate(props):   # bit j of an atom's mask: value of atom k under assignment j
            self.memo[Atom(p)] = sum(1 << j for j in range(self.nbits) if (j >> k) & 1)

    def mask(self, f: Formula) -> int:
        m = self.memo.get(f)
        if m is not None:
            return m
        if isinstance(f, Top):
            m = self.full
        elif isinstance(f, Bot):
            m = 0
        elif isinstance(f, Not):
            m = self.full & ~self.mask(f.a)
        else:
            a, b = self.mask(f.a), self.mask(f.b)
            if isinstance(f, And):
                m = a & b
            elif isinstance(f, Or):
                m = a | b
            elif isinstance(f, Imp):
                m = (self.full & ~a) | b
            elif isinstance(f, Iff):
                m = self.full & ~(a ^ b)
            else:
                raise TypeError(f"not a formula: {f!r}")
        self.memo[f] = m
        return m

    def counter(self, hyps: list[Formula] | tuple[Formula, ...], goal: Formula) -> int:
        """Bitmask of the assignments where all hyps hold and the goal fails."""
        m = self.full
        for h in hyps:
            m &= self.mask(h)
        return m & ~self.mask(goal)

    def entails(self, hyps: list[Formula], goal: Formula) -> bool:
        return self.counter(hyps, goal) == 0


class _Prover(TruthTables):
    split_width = 3   # atoms tried at a by_cases (the shortest script wins)
    depth = 0         # by_cases nesting while trying alternatives

    def valid(self, ctx: Ctx, goal: Formula) -> bool:
        return self.counter([f for _, f in ctx], goal) == 0

    # -- the prover -------------------------------------------------------------------------

    def prune(self, ctx: Ctx, goal: Formula) -> Ctx:
        """Forget non-literal hypotheses the goal does not need (largest first)."""
        keep = list(ctx)
        for entry in sorted((e for e in ctx if not _is_literal(e[1])), key=lambda e: -_size(e[1])):
            trial = [e for e in keep if e is not entry]
            if self.valid(trial, goal):
                keep = trial
        return keep

    @staticmethod
    def closer(ctx: Ctx, goal: Formula) -> str | None:
        have: dict[Formula, str] = {}
        for n, f in ctx:
            have.setdefault(f, n)
        if isinstance(goal, Top):
            return "trivial"
        if goal in have:
            return f"exact {have[goal]}"
        if Bot() in have:
            return f"exact False.elim {have[Bot()]}"
        for n, f in ctx:
            if isinstance(f, Not) and f.a in have:
                if isinstance(goal, Bot):
                    return f"exact {n} {have[f.a]}"
                return f"exact absurd {have[f.a]} {n}"
        for n, f in ctx:
            if isinstance(f, Imp) and f.b == goal and f.a in have:
                return f"exact {n} {have[f.a]}"
        if isinstance(goal, Or):
            if goal.a in have:
                return f"exact Or.inl {have[goal.a]}"
            if goal.b in have:
                return f"exact Or.inr {have[goal.b]}"
            if isinstance(goal.a, Atom) and goal.b == Not(goal.a):
                return f"exact Classical.em {goal.a.name}"
        if isinstance(goal, And) and goal.a in have and goal.b in have:
            return f"exact ⟨{have[goal.a]}, {have[goal.b]}⟩"
        return None

    def prove(self, ctx: Ctx, goal: Formula, names: _Names) -> list[str]:
        """Lines that close ``ctx ⊢ goal``, which must be classically valid.

        Completeness: when no rule but ``by_cases`` applies and every atom of the sequent has a
        literal in ``ctx`` (literals are never pruned), the assignment is fixed; either some
        implication/negation hypothesis is false (so its antecedent is valid from the rest and the
        backward-chaining step fires) or every hypothesis holds, so the goal (an atom or a
        disjunction; False cannot hold) is true and a closer or ``left``/``right`` fires.
        """
        lines: list[str] = []
        ctx = list(ctx)
        while True:
            done = self.closer(ctx, goal)
            if done:
                lines.append(done)
                return lines
            ctx = self.prune(ctx, goal)
            done = self.closer(ctx, goal)
            if done:
                lines.append(done)
                return lines
            # right invertible rules
            if isinstance(goal, (Imp, Not)):
                hyp = goal.a
                name = names.fresh(hyp)
                lines.append(f"intro {name}")
                ctx.append((name, hyp))
                goal = goal.b if isinstance(goal, Imp) else Bot()
                continue
            # invertible rules on hypotheses that do not split the proof
            step = self.left_step(ctx, names, lines)
            if step is not None:
                ctx = step
                continue
            if isinstance(goal, (And, Iff)):
                lines.append("constructor")
                first, second = (goal.a, goal.b) if isinstance(goal, And) else (
                    Imp(goal.a, goal.b), Imp(goal.b, goal.a))
                lines += self.prove(ctx, first, names.copy())
                lines += self.prove(ctx, second, names.copy())
                return lines
            if self.split_or(ctx, goal, names, lines):
                return lines
            # goal is an atom, False or a disjunction: choices guided by validity
            if isinstance(goal, Or):
                if self.valid(ctx, goal.a):
                    lines.append("left")
                    goal = goal.a
                    continue
                if self.valid(ctx, goal.b):
                    lines.append("right")
                    goal = goal.b
                    continue
            chained = self.chain(ctx, goal, names, lines)
            if chained is not None:
                ctx, goal = chained
                continue
            return lines + self.split(ctx, goal, names)

    @staticmethod
    def left_step(ctx: Ctx, names: _Names, lines: list[str]) -> Ctx | None:
        """Apply one non-branching invertible rule to a hypothesis: the new ctx, or None."""
        have = {f for _, f in ctx}
        for idx, (n, f) in enumerate(ctx):
            rest = ctx[:idx] + ctx[idx + 1:]
            if isinstance(f, Top):
                return rest
            if isinstance(f, (And, Iff)):
                parts = (f.a, f.b) if isinstance(f, And) else (Imp(f.a, f.b), Imp(f.b, f.a))
                na, nb = names.fresh(parts[0]), names.fresh(parts[1])
                lines.append(f"obtain ⟨{na}, {nb}⟩ := {n}")
                return rest + [(na, parts[0]), (nb, parts[1])]
            if isinstance(f, Imp) and f.a in have:
                if f.b not in have:
                    ante = next(m for m, g in ctx if g == f.a)
                    nb = names.fresh(f.b)
                    lines.append(f"have {nb} : {show(f.b)} := {n} {ante}")
                    return rest + [(nb, f.b)]
                return rest
        return None

    def split_or(self, ctx: Ctx, goal: Formula, names: _Names, lines: list[str]) -> bool:
        """Case on a disjunction hypothesis, proving both branches; False if there is none."""
        for idx, (n, f) in enumerate(ctx):
            if isinstance(f, Or):
                rest = ctx[:idx] + ctx[idx + 1:]
                na = names.fresh(f.a)
                hb = names.fresh(f.b)
                lines.append(f"rcases {n} with {na} | {hb}")
                lines += self.prove(rest + [(na, f.a)], goal, names.copy())
                lines += self.prove(rest + [(hb, f.b)], goal, names.copy())
                return True
        return False

    def chain(self, ctx: Ctx, goal: Formula, names: _Names, lines: list[str]):
        """Use an implication or negation whose antecedent is valid from the other hypotheses."""
        cands = []
        for idx, (n, f) in enumerate(ctx):
            if isinstance(f, Imp):
                ante, concl = f.a, f.b
            elif isinstance(f, Not) and not isinstance(f.a, Atom):   # literals are kept
                ante, concl = f.a, Bot()
            else:
                continue
            rank = 0 if concl == goal else (1 if isinstance(concl, Bot) else 2)
            cands.append((rank, _size(ante), idx, n, ante, concl))
        for rank, _, idx, n, ante, concl in sorted(cands, key=lambda c: c[:3]):
            rest = ctx[:idx] + ctx[idx + 1:]
            if not self.valid(rest, ante):
                continue
            if rank == 0:
                lines.append(f"apply {n}")
                return rest, ante
            if rank == 1:
                lines += ["exfalso", f"apply {n}"]
                return rest, ante
            nb = names.fresh(concl)
            lines += [f"have {nb} : {show(concl)}", f"apply {n}"]
            lines += self.prove(rest, ante, names.copy())
            return rest + [(nb, concl)], goal
        return None

    def split(self, ctx: Ctx, goal: Formula, names: _Names) -> list[str]:
        decided = {f.name if isinstance(f, Atom) else f.a.name for _, f in ctx if _is_literal(f)}
        order: list[str] = []
        for f in [goal] + [f for _, f in reversed(ctx)]:
            order += [a for a in atoms(f) if a not in decided and a not in order]
        if not order:
            raise AssertionError(f"oracle stuck on valid sequent {ctx} ⊢ {goal}")  # cannot happen
        best: list[str] | None = None
        # try every candidate atom while the choice is cheap, otherwise the first in goal order
        for a in order[:self.split_width if self.depth < 2 else 1]:
            self.depth += 1
            try:
                sub = names.copy()
                p = Atom(a)
                hp = sub.fresh(p)
                lines = [f"by_cases {hp} : {a}"]
                lines += self.prove(ctx + [(hp, p)], goal, sub.copy())
                lines += self.prove(ctx + [(hp, Not(p))], goal, sub.copy())
            finally:
                self.depth -= 1
            if best is None or len(lines) < len(best):
                best = lines
        return best


def falsifying_assignment(props: list[str], hyps: list[Formula], goal: Formula) -> dict[str, bool] | None:
    """An assignment making every hypothesis true and the goal false, or None if there is none."""
    bad = TruthTables(props).counter(hyps, goal)
    if not bad:
        return None
    j = (bad & -bad).bit_length() - 1
    return {p: bool((j >> k) & 1) for k, p in enumerate(props)}


def oracle_proof(statement: str) -> list[str]:
    """Tactic lines proving a classical propositional tautology (with hypotheses).

    Raises ValueError naming a falsifying assignment when the statement is not valid.
    """
    st = parse_statement(statement)
    props = list(st.props)
    hyps = [f for _, f in st.hyps]
    bad = falsifying_assignment(props, hyps, st.goal)
    if bad is not None:
        shown = ", ".join(f"{p} := {'True' if v else 'False'}" for p, v in bad.items())
        raise ValueError(f"{st.name} is not a tautology: {shown} makes the hypotheses true "
                         f"and the goal {show(st.goal)} false")
    names = _Names(set(props) | {n for n, _ in st.hyps} | {st.name})
    lines = _Prover(props).prove(list(st.hyps), st.goal, names)
    log.debug("oracle: %s proved in %d lines", st.name, len(lines))
    return lines
