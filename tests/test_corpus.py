"""Tests for the built-in corpora (generator, textbook set, splits) and the oracle prover."""
from __future__ import annotations

import collections
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raylib.env.builtin.corpus import (
    builtin_theorems, difficulty, generate_theorems, oracle_proof, split_of, statement_of,
    textbook_theorems,
)
from raylib.env.builtin.formula import (
    And, Atom, Bot, Iff, Imp, Not, Or, Top, atoms, evaluate, is_tautology, parse_formula,
)
from raylib.env.builtin.oracle import falsifying_assignment, parse_statement
from raylib.env.theorems import SPLITS, Theorem

HAVE_SERVER = importlib.util.find_spec("raylib.env.builtin.server") is not None
needs_server = pytest.mark.skipif(not HAVE_SERVER, reason="raylib/env/builtin/server.py (the built-in REPL) "
                                  "is not written yet; oracle scripts are only shape-checked")

_TACTIC = re.compile(
    r"^(intro \S+|constructor|left|right|exfalso|trivial|exact .+|apply \S+|obtain ⟨\S+, \S+⟩ := \S+"
    r"|rcases \S+ with \S+ \| \S+|by_cases \S+ : \S+|have \S+ : .+)$")


def _as_formula(thm: Theorem):
    """The statement as one formula: hypotheses curried into the goal."""
    st_ = parse_statement(thm.statement)
    f = st_.goal
    for _, h in reversed(st_.hyps):
        f = Imp(h, f)
    return f


def _check_proof(statement: str, lines: list[str]) -> None:
    """Check a script: whole-proof through the built-in REPL when it exists, else its shape."""
    assert lines, statement
    for line in lines:
        assert _TACTIC.match(line), f"unexpected tactic line {line!r} for {statement}"
    if not HAVE_SERVER:
        return
    from raylib.env.builtin.server import Repl
    cmd = statement + " := by\n" + "\n".join("  " + x for x in lines)
    resp = Repl().handle({"cmd": cmd})
    bad = [m for m in resp.get("messages", [])
           if m.get("severity") == "error" or "sorry" in m.get("data", "")]
    assert not bad, f"{cmd}\n-> {bad}"


# -- statement_of and splits -----------------------------------------------------------------

def test_statement_of_binders_in_first_occurrence_order():
    s = statement_of("t", parse_formula("q ∧ p → r"), [parse_formula("r ∨ q")])
    assert s == "theorem t (r q p : Prop) (h₁ : r ∨ q) : q ∧ p → r"
    st_ = parse_statement(s)
    assert st_.props == ("r", "q", "p") and st_.hyps[0][0] == "h₁"
    assert statement_of("u", Top()) == "theorem u : True"


def test_split_is_deterministic_and_ignores_name_and_spacing():
    a = "theorem a (p q : Prop) : p ∧ q → q ∧ p"
    b = "theorem other_name   (p q : Prop)  :  p ∧ q →  q ∧ p"
    assert split_of(a) == split_of(a) == split_of(b)
    assert split_of(a) in SPLITS


def test_split_proportions_roughly_80_10_10():
    stmts = [f"theorem t (p : Prop) (h : p) : p ∨ x{i}" for i in range(4000)]
    counts = collections.Counter(split_of(s) for s in stmts)
    assert 0.77 < counts["train"] / 4000 < 0.83
    assert 0.08 < counts["valid"] / 4000 < 0.12
    assert 0.08 < counts["test"] / 4000 < 0.12


# -- generator -------------------------------------------------------------------------------

def test_generator_deterministic_distinct_tautologies_in_atom_range():
    thms = generate_theorems(1000, seed=7)
    assert thms == generate_theorems(1000, seed=7)
    assert thms != generate_theorems(1000, seed=8)
    assert len({t.name for t in thms}) == 1000
    assert len({" ".join(t.statement.split(" ", 2)[2:]) for t in thms}) == 1000  # distinct bodies
    n_atoms = collections.Counter()
    for i, t in enumerate(thms):
        assert t.name == f"gen_7_{i}" and t.statement.startswith(f"theorem {t.name} ")
        assert t.split == split_of(t.statement)
        f = _as_formula(t)
        assert is_tautology(f), t.statement
        n_atoms[len(atoms(f))] += 1
    assert set(n_atoms) <= set(range(2, 7)) and len(n_atoms) >= 4, n_atoms
    with_hyps = sum(1 for t in thms if parse_statement(t.statement).hyps)
    assert 100 < with_hyps < 900
    assert {"train", "valid", "test"} == {t.split for t in thms}


def test_generator_deterministic_across_processes():
    code = ("import hashlib; from raylib.env.builtin.corpus import generate_theorems, oracle_proof; "
            "t = generate_theorems(300, seed=5); "
            "print(hashlib.sha256(repr((t, [oracle_proof(x.statement) for x in t])).encode()).hexdigest())")
    root = Path(__file__).resolve().parents[1]
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                           env={**os.environ, "PYTHONHASHSEED": str(h), "PYTHONPATH": str(root)}).stdout
            for h in (1, 2)}
    assert len(outs) == 1


def test_generator_respects_atom_bounds_and_proof_length():
    for t in generate_theorems(100, seed=3, min_atoms=3, max_atoms=4, max_proof_lines=12):
        assert 3 <= len(parse_statement(t.statement).props) <= 4
        assert difficulty(t.statement) <= 12
    with pytest.raises(ValueError):
        generate_theorems(3, min_atoms=4, max_atoms=2)


def test_generator_includes_classical_theorems():
    # some generated theorems have no proof without by_cases (classical reasoning)
    thms = generate_theorems(200, seed=1)
    assert sum(any(x.startswith("by_cases") for x in oracle_proof(t.statement)) for t in thms) >= 10


def test_builtin_theorems_kinds():
    assert builtin_theorems("textbook", None, 0) == textbook_theorems()
    assert len(builtin_theorems("textbook", 5, 0)) == 5
    assert builtin_theorems("generated", 20, 4) == generate_theorems(20, seed=4)
    with pytest.raises(ValueError, match="textbook"):
        builtin_theorems("nope", 3, 0)


# -- textbook set ----------------------------------------------------------------------------

def test_textbook_set_named_valid_and_proved():
    thms = textbook_theorems()
    names = {t.name for t in thms}
    assert 25 <= len(thms) <= 60 and len(names) == len(thms)
    for must in ("peirce", "excluded_middle", "double_negation_elim", "de_morgan_not_and_classical",
                 "contrapositive", "modus_tollens", "and_distrib_or", "or_distrib_and", "curry"):
        assert must in names
    for t in thms:
        assert t.split == split_of(t.statement)
        assert is_tautology(_as_formula(t)), t.name
        _check_proof(t.statement, oracle_proof(t.statement))


@needs_server
def test_generated_scripts_verify_through_repl():
    for t in generate_theorems(300, seed=11):
        _check_proof(t.statement, oracle_proof(t.statement))


@needs_server
def test_repl_check_is_not_vacuous():
    stmt = textbook_theorems()[0].statement
    lines = oracle_proof(stmt)
    _check_proof(stmt, lines)
    with pytest.raises(AssertionError, match="error"):
        _check_proof(stmt, lines[:-1])


# -- oracle ----------------------------------------------------------------------------------

def test_oracle_refuses_non_tautology_with_assignment():
    with pytest.raises(ValueError, match=r"not a tautology: p := True, q := False"):
        oracle_proof("theorem bad (p q : Prop) : p → q")
    with pytest.raises(ValueError, match="not a tautology"):
        oracle_proof("theorem bad2 (p q : Prop) (h₁ : p ∨ q) : p")


def test_oracle_fresh_names_avoid_binders():
    stmt = "theorem hp (p hq : Prop) (h : p) (h1 : p → hq) : ¬¬hq"
    lines = oracle_proof(stmt)
    introduced = set()
    for line in lines:
        m = re.match(r"(?:intro|by_cases) (\S+)|have (\S+) :|obtain ⟨(\S+), (\S+)⟩|rcases \S+ with (\S+) \| (\S+)",
                     line)
        if m:
            introduced |= {g for g in m.groups() if g}
    assert not introduced & {"hp", "p", "hq", "h", "h1"}, lines
    _check_proof(stmt, lines)


def test_oracle_classical_examples_short():
    assert oracle_proof("theorem em (p : Prop) : p ∨ ¬p") == ["exact Classical.em p"]
    peirce = oracle_proof("theorem peirce (p q : Prop) : ((p → q) → p) → p")
    assert peirce[0] == "intro h" and "by_cases hp : p" in peirce and len(peirce) <= 8


def test_difficulty_is_script_length():
    s = "theorem t (p q : Prop) (h : p ∧ q) : q ∧ p"
    assert difficulty(s) == len(oracle_proof(s)) >= 1


_NAMES = ["p", "q", "r", "s"]
_formulas = st.recursive(
    st.sampled_from([Atom(x) for x in _NAMES] + [Top(), Bot()]),
    lambda sub: st.one_of(
        st.builds(Not, sub), st.builds(And, sub, sub), st.builds(Or, sub, sub),
        st.builds(Imp, sub, sub), st.builds(Iff, sub, sub)),
    max_leaves=8)

_SCHEMAS = [parse_formula(x) for x in (
    "((p → q) → p) → p", "p ∨ ¬p", "¬¬p → p", "(p → q) ∨ (q → p)", "¬(p ∧ q) → ¬p ∨ ¬q",
    "(p → q) → ¬p ∨ q", "(¬q → ¬p) → p → q", "p → p", "(p → q) → (q → r) → p → r",
    "(p ↔ q) → (q ↔ r) → (p ↔ r)", "p ∧ (q ∨ r) ↔ p ∧ q ∨ p ∧ r")]


def _subst(f, sub):
    if isinstance(f, Atom):
        return sub[f.name]
    if isinstance(f, Not):
        return Not(_subst(f.a, sub))
    if isinstance(f, (And, Or, Imp, Iff)):
        return type(f)(_subst(f.a, sub), _subst(f.b, sub))
    return f


@st.composite
def _sequents(draw):
    """(hypotheses, goal): random ones (valid or not) and schema instances (always valid)."""
    if draw(st.booleans()):
        schema = draw(st.sampled_from(_SCHEMAS))
        sub = {x: draw(_formulas) for x in ("p", "q", "r")}
        goal = _subst(schema, sub)
        hyps = []
        while isinstance(goal, Imp) and draw(st.booleans()):   # move some premises to binders
            hyps.append(goal.a)
            goal = goal.b
        return hyps, goal
    return draw(st.lists(_formulas, max_size=3)), draw(_formulas)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sequents())
def test_oracle_complete_and_sound_property(seq):
    hyps, goal = seq
    stmt = statement_of("prop_t", goal, hyps)
    props = list(parse_statement(stmt).props)
    bad = falsifying_assignment(props, hyps, goal)
    if bad is None:
        _check_proof(stmt, oracle_proof(stmt))
    else:
        with pytest.raises(ValueError, match="not a tautology"):
            oracle_proof(stmt)
        env = {**{x: False for x in _NAMES}, **bad}
        assert all(evaluate(h, env) for h in hyps) and not evaluate(goal, env)
