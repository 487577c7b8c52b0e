"""Theorem corpora for the built-in propositional environment.

* ``textbook_theorems()``: named classics (De Morgan, Peirce, distributivity, ...).
* ``generate_theorems(n, seed)``: seeded random classical tautologies over 2–6 atoms, some with
  hypotheses as binders, some instances of classical schemas; deduplicated up to atom renaming.
* ``split_of(statement)``: a train/valid/test split fixed by a hash of the statement, so the same
  proposition lands in the same split whatever its name or seed.
* ``oracle_proof`` (from ``oracle.py``): a complete prover giving tactic scripts for all of them.
"""
from __future__ import annotations

import hashlib
import logging
import random
import re
from typing import Sequence

from raylib.env.builtin.formula import (
    And, Atom, Bot, Formula, Iff, Imp, Not, Or, atoms, parse_formula, show,
)
from raylib.env.builtin.oracle import TruthTables, oracle_proof, parse_statement
from raylib.env.theorems import SPLITS, Theorem

log = logging.getLogger(__name__)

__all__ = [
    "statement_of", "split_of", "generate_theorems", "textbook_theorems", "builtin_theorems",
    "difficulty", "oracle_proof", "ATOM_NAMES", "KINDS",
]

KINDS = ("textbook", "generated")
ATOM_NAMES = ("p", "q", "r", "s", "t", "u", "v", "w")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
# Fractions of train / valid / test, in SPLITS order.
SPLIT_WEIGHTS = (0.8, 0.1, 0.1)


def _hyp_name(i: int) -> str:
    return "h" + str(i).translate(_SUBSCRIPT)


def statement_of(name: str, formula: Formula, hyps: Sequence[Formula] = ()) -> str:
    """``theorem NAME (p q : Prop) (h₁ : A) ... : GOAL``; atoms bound in first-occurrence order."""
    order: list[str] = []
    for f in [*hyps, formula]:
        order += [a for a in atoms(f) if a not in order]
    parts = [f"theorem {name}"]
    if order:
        parts.append(f"({' '.join(order)} : Prop)")
    parts += [f"({_hyp_name(i)} : {show(h)})" for i, h in enumerate(hyps, 1)]
    return " ".join(parts) + f" : {show(formula)}"


def normalized_statement(statement: str) -> str:
    """Whitespace-normalized statement with the declaration name replaced by ``_``."""
    text = " ".join(statement.split())
    return re.sub(r"^(theorem|lemma)\s+\S+?(?=[\s({\[:])", r"\1 _", text)


def split_of(statement: str) -> str:
    """``train``/``valid``/``test`` from sha256 of the normalized statement (name ignored), 80/10/10."""
    digest = hashlib.sha256(normalized_statement(statement).encode("utf-8")).digest()
    x = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    acc = 0.0
    for split, w in zip(SPLITS, SPLIT_WEIGHTS):
        acc += w
        if x < acc:
            return split
    return SPLITS[-1]


def difficulty(statement: str) -> int:
    """Difficulty measure: the number of lines of the oracle's proof."""
    return len(oracle_proof(statement))


# -- the generator -----------------------------------------------------------------------------

_OPS = (Not, And, Or, Imp, Iff)
_OP_WEIGHTS = (3, 4, 4, 5, 1)


def _random_formula(rng: random.Random, pool: Sequence[str], size: int) -> Formula:
    if size <= 1:
        r = rng.random()
        return Bot() if r < 0.01 else Atom(rng.choice(pool))
    op = rng.choices(_OPS, _OP_WEIGHTS)[0]
    if op is Not or size == 2:
        return Not(_random_formula(rng, pool, size - 1))
    left = rng.randint(1, size - 2)
    return op(_random_formula(rng, pool, left), _random_formula(rng, pool, size - 1 - left))


def _substitute(f: Formula, sub: dict[str, Formula]) -> Formula:
    if isinstance(f, Atom):
        return sub.get(f.name, f)
    if isinstance(f, Not):
        return Not(_substitute(f.a, sub))
    if isinstance(f, (And, Or, Imp, Iff)):
        return type(f)(_substitute(f.a, sub), _substitute(f.b, sub))
    return f


def _canonical(hyps: Sequence[Formula], goal: Formula) -> tuple[tuple[Formula, ...], Formula]:
    """Rename atoms to p, q, r, ... in first-occurrence order (hypotheses, then goal)."""
    order: list[str] = []
    for f in [*hyps, goal]:
        order += [a for a in atoms(f) if a not in order]
    sub = {a: Atom(_atom_name(i)) for i, a in enumerate(order)}
    return tuple(_substitute(h, sub) for h in hyps), _substitute(goal, sub)


def _atom_name(i: int) -> str:
    return ATOM_NAMES[i] if i < len(ATOM_NAMES) else f"p{i}"


def _curry(hyps: Sequence[Formula], goal: Formula, conj: bool) -> Formula:
    if not hyps:
        return goal
    if conj:
        ante = hyps[-1]
        for h in reversed(hyps[:-1]):
            ante = And(h, ante)
        return Imp(ante, goal)
    for h in reversed(hyps):
        goal = Imp(h, goal)
    return goal


class _Generator:
    def __init__(self, seed: int, min_atoms: int, max_atoms: int):
        self.rng = random.Random(seed)
        self.min_atoms, self.max_atoms = min_atoms, max_atoms
        self.pool = [f"?{i}" for i in range(max_atoms)]
        self.tables = TruthTables(self.pool)
        self.schemas = [(parse_statement(t.statement).hyps, parse_statement(t.statement).goal)
                        for t in textbook_theorems()]

    def entails(self, hyps: Sequence[Formula], goal: Formula) -> bool:
        return self.tables.entails(list(hyps), goal)

    def consistent(self, hyps: Sequence[Formula]) -> bool:
        return not self.tables.entails(list(hyps), Bot())

    def candidate(self, k: int) -> tuple[tuple[Formula, ...], Formula] | None:
        """One random attempt at a valid sequent over about ``k`` atoms: (hypotheses, goal) or None."""
        rng = self.rng
        pool = rng.sample(self.pool, k)
        level = rng.randint(1, 4)
        kind = rng.random()
        if kind < 0.3:                                    # instance of a textbook schema
            hyps0, goal0 = rng.choice(self.schemas)
            sub = {}
            for a in atoms(_curry([h for _, h in hyps0], goal0, conj=False)):   # ordered: no set here
                sub[a] = _random_formula(rng, pool, rng.randint(1, level + k // 3))
            hyps = tuple(_substitute(h, sub) for _, h in hyps0)
            goal = _substitute(goal0, sub)
        elif kind < 0.45:                                 # a pure tautology A → B or A ↔ B
            a = _random_formula(rng, pool, rng.randint(2, 2 + 2 * level + k))
            b = _random_formula(rng, pool, rng.randint(1, 1 + 2 * level + k))
            hyps, goal = (), (Iff(a, b) if rng.random() < 0.15 else Imp(a, b))
            if a == b or not self.entails((), goal):
                return None
        else:                                             # premises entailing a conclusion
            hyps = tuple(_random_formula(rng, pool, rng.randint(1, 2 + 2 * level + k // 2))
                         for _ in range(rng.randint(1, 3)))
            goal = _random_formula(rng, pool, rng.randint(1, 1 + 2 * level + k // 2))
            if (goal in hyps or not self.consistent(hyps) or self.entails((), goal)
                    or not self.entails(hyps, goal)):
                return None
        if hyps and rng.random() < 0.4:                   # move the premises into the goal
            goal = _curry(hyps, goal, conj=rng.random() < 0.3)
            hyps = ()
        n_atoms = len({x for f in (*hyps, goal) for x in atoms(f)})
        if not max(self.min_atoms, k - 1) <= n_atoms <= self.max_atoms:
            return None
        return _canonical(hyps, goal)


def generate_theorems(n: int, seed: int = 0, min_atoms: int = 2, max_atoms: int = 6,
                      max_proof_lines: int | None = 60) -> list[Theorem]:
    """``n`` distinct classical tautologies named ``gen_<seed>_<i>``, deterministic for a seed.

    Theorems whose oracle proof is longer than ``max_proof_lines`` are skipped (None: no limit).
    """
    if not 1 <= min_atoms <= max_atoms:
        raise ValueError(f"need 1 <= min_atoms <= max_atoms, got {min_atoms}, {max_atoms}")
    gen = _Generator(seed, min_atoms, max_atoms)
    out: list[Theorem] = []
    seen: set[str] = set()
    attempts = 0
    target: int | None = None
    limit = 2000 + 500 * n
    while len(out) < n:
        attempts += 1
        if attempts > limit:
            raise RuntimeError(f"generated only {len(out)} of {n} distinct theorems in {limit} attempts "
                               f"(atoms {min_atoms}..{max_atoms}); ask for fewer or widen the atom range")
        if target is None:
            target = gen.rng.randint(min_atoms, max_atoms)
        cand = gen.candidate(target)
        if cand is None:
            continue
        target = None
        hyps, goal = cand
        key = statement_of("_", goal, hyps)
        if key in seen:
            continue
        seen.add(key)
        if max_proof_lines is not None and len(oracle_proof(key)) > max_proof_lines:
            continue
        stmt = statement_of(f"gen_{seed}_{len(out)}", goal, hyps)
        out.append(Theorem(name=f"gen_{seed}_{len(out)}", statement=stmt, split=split_of(stmt)))
    log.debug("generated %d theorems in %d attempts (seed %d)", n, attempts, seed)
    return out


# -- the textbook set --------------------------------------------------------------------------

_TEXTBOOK: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("and_comm", (), "p ∧ q ↔ q ∧ p"),
    ("or_comm", (), "p ∨ q ↔ q ∨ p"),
    ("iff_comm", (), "(p ↔ q) ↔ (q ↔ p)"),
    ("and_assoc", (), "(p ∧ q) ∧ r ↔ p ∧ q ∧ r"),
    ("or_assoc", (), "(p ∨ q) ∨ r ↔ p ∨ q ∨ r"),
    ("iff_assoc", (), "((p ↔ q) ↔ r) ↔ (p ↔ (q ↔ r))"),
    ("and_idem", (), "p ∧ p ↔ p"),
    ("or_idem", (), "p ∨ p ↔ p"),
    ("imp_self", (), "p → p"),
    ("and_elim_left", (), "p ∧ q → p"),
    ("or_intro_left", (), "p → p ∨ q"),
    ("imp_intro_const", (), "p → q → p"),
    ("imp_distrib_s", (), "(p → q → r) → (p → q) → p → r"),
    ("de_morgan_not_or", (), "¬(p ∨ q) → ¬p ∧ ¬q"),
    ("de_morgan_and_not", (), "¬p ∧ ¬q → ¬(p ∨ q)"),
    ("de_morgan_not_and_classical", (), "¬(p ∧ q) → ¬p ∨ ¬q"),
    ("de_morgan_or_not", (), "¬p ∨ ¬q → ¬(p ∧ q)"),
    ("contrapositive", (), "(p → q) → ¬q → ¬p"),
    ("contrapositive_converse", (), "(¬p → ¬q) → q → p"),
    ("double_negation_intro", (), "p → ¬¬p"),
    ("double_negation_elim", (), "¬¬p → p"),
    ("triple_negation", (), "¬¬¬p ↔ ¬p"),
    ("peirce", (), "((p → q) → p) → p"),
    ("excluded_middle", (), "p ∨ ¬p"),
    ("not_not_excluded_middle", (), "¬¬(p ∨ ¬p)"),
    ("and_distrib_or", (), "p ∧ (q ∨ r) ↔ p ∧ q ∨ p ∧ r"),
    ("or_distrib_and", (), "p ∨ q ∧ r ↔ (p ∨ q) ∧ (p ∨ r)"),
    ("curry", (), "(p ∧ q → r) → p → q → r"),
    ("uncurry", (), "(p → q → r) → p ∧ q → r"),
    ("exportation", (), "(p ∧ q → r) ↔ (p → q → r)"),
    ("modus_ponens", ("p → q", "p"), "q"),
    ("modus_tollens", ("p → q", "¬q"), "¬p"),
    ("hypothetical_syllogism", ("p → q", "q → r"), "p → r"),
    ("disjunctive_syllogism", ("p ∨ q", "¬p"), "q"),
    ("constructive_dilemma", ("p → r", "q → r", "p ∨ q"), "r"),
    ("explosion", (), "False → p"),
    ("ex_falso", ("p", "¬p"), "q"),
    ("non_contradiction", (), "p ∧ ¬p → False"),
    ("iff_intro", (), "(p → q) → (q → p) → (p ↔ q)"),
    ("iff_elim_mp", ("p ↔ q", "p"), "q"),
    ("iff_elim_mpr", ("p ↔ q", "q"), "p"),
    ("iff_iff_implies_and_implies", (), "(p ↔ q) ↔ (p → q) ∧ (q → p)"),
    ("material_implication", (), "(p → q) ↔ ¬p ∨ q"),
    ("not_imp_classical", (), "¬(p → q) → p ∧ ¬q"),
    ("imp_or_converse", (), "(p → q) ∨ (q → p)"),
    ("by_cases_elim", (), "(p → q) → (¬p → q) → q"),
    ("absorption_and", (), "p ∧ (p ∨ q) ↔ p"),
    ("absorption_or", (), "p ∨ p ∧ q ↔ p"),
    ("and_true", (), "p ∧ True ↔ p"),
    ("or_false", (), "p ∨ False ↔ p"),
)


def textbook_theorems() -> list[Theorem]:
    """The named classics, each with its statement's split."""
    out = []
    for name, hyps, goal in _TEXTBOOK:
        stmt = statement_of(name, parse_formula(goal), [parse_formula(h) for h in hyps])
        out.append(Theorem(name=name, statement=stmt, split=split_of(stmt)))
    return out


def builtin_theorems(kind: str, n: int | None = None, seed: int = 0) -> list[Theorem]:
    """``textbook`` (the first ``n`` classics, or all) or ``generated`` (``n`` theorems, 1000 by default)."""
    if kind == "textbook":
        thms = textbook_theorems()
        return thms if n is None else thms[:n]
    if kind == "generated":
        return generate_theorems(1000 if n is None else n, seed=seed)
    raise ValueError(f"unknown built-in corpus {kind!r}; choose one of {', '.join(KINDS)}")
