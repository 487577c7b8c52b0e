"""Formula AST: parsing with Lean 4 precedences, printing as Lean does, truth tables."""
import pytest
from hypothesis import given, settings, strategies as st

from raylib.env.builtin.formula import (And, Atom, Bot, FormulaSyntaxError, Iff, Imp, Not, Or, Top,
                                        atoms, evaluate, is_tautology, parse_formula, show)

ATOMS = st.sampled_from([Atom("p"), Atom("q"), Atom("r"), Atom("h₁"), Atom("x'"), Top(), Bot()])


def formulas(max_leaves=12):
    return st.recursive(ATOMS, lambda sub: st.one_of(
        st.builds(Not, sub), st.builds(And, sub, sub), st.builds(Or, sub, sub),
        st.builds(Imp, sub, sub), st.builds(Iff, sub, sub)), max_leaves=max_leaves)


@pytest.mark.parametrize("text,expected", [
    ("¬p ∧ q", "¬p ∧ q"), ("¬(p ∧ q)", "¬(p ∧ q)"), ("(p->q)->r", "(p → q) → r"),
    ("p → q → r", "p → q → r"), ("¬¬p", "¬¬p"), ("¬(p ∨ q)", "¬(p ∨ q)"),
    ("p /\\ q \\/ r", "p ∧ q ∨ r"), ("p <-> q", "p ↔ q"), ("(p ↔ q) ↔ r", "(p ↔ q) ↔ r"),
    ("p → q ↔ ¬q → ¬p", "p → q ↔ ¬q → ¬p"), ("True → False", "True → False"),
    ("(p ∧ q) ∧ r", "(p ∧ q) ∧ r"), ("((p))", "p"), ("¬ p → q", "¬p → q"),
])
def test_show_parse_examples(text, expected):
    assert show(parse_formula(text)) == expected


def test_precedence_structure():
    assert parse_formula("¬p ∧ q") == And(Not(Atom("p")), Atom("q"))
    assert parse_formula("p ∨ q ∧ r") == Or(Atom("p"), And(Atom("q"), Atom("r")))
    assert parse_formula("p → q → r") == Imp(Atom("p"), Imp(Atom("q"), Atom("r")))
    assert parse_formula("p ∧ q → r") == Imp(And(Atom("p"), Atom("q")), Atom("r"))
    assert parse_formula("p → q ↔ r") == Iff(Imp(Atom("p"), Atom("q")), Atom("r"))


@pytest.mark.parametrize("bad", ["a ↔ b ↔ c", "p ∧", "(p", "p q", "", "∧ p", "fun", "p @ q"])
def test_syntax_errors(bad):
    with pytest.raises(FormulaSyntaxError) as e:
        parse_formula(bad)
    assert isinstance(e.value, ValueError)
    assert "expected" in str(e.value) or "unexpected" in str(e.value)


def test_semantics():
    assert is_tautology(parse_formula("p ∨ ¬p"))
    assert is_tautology(parse_formula("((p → q) → p) → p"))
    assert not is_tautology(parse_formula("p → q"))
    assert atoms(parse_formula("q ∧ p ∨ q → r")) == ["q", "p", "r"]
    assert evaluate(parse_formula("p ↔ q"), {"p": False, "q": False})


@settings(max_examples=300, deadline=None)
@given(formulas())
def test_round_trip(f):
    text = show(f)
    assert parse_formula(text) == f
    assert show(parse_formula(text)) == text
    hash(f)
