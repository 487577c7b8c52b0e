"""SOUNDNESS: no statement refuted by a truth table may ever reach a finished proof,
whatever tactic or term text is sent (random statements, random tactic sequences).

Derandomized (hypothesis ``derandomize=True``): the same examples every run. These random attempts
rarely complete a proof; ``test_soundness_mutations.py`` holds the tests that bite (attempts built
from the oracle's proofs, most of which complete on true statements)."""
import itertools

from hypothesis import HealthCheck, given, settings, strategies as st

from raylib.env.builtin.formula import (And, Atom, Bot, Iff, Imp, Not, Or, Top, evaluate, parse_formula,
                                        show)
from raylib.env.builtin.server import Repl

PROPS = ["p", "q", "r"]
HYPS = ["h0", "h1"]
NAMES = HYPS + ["a", "b", "h", "hp", "p", "this"]

formula = st.recursive(
    st.sampled_from([Atom("p"), Atom("q"), Atom("r"), Top(), Bot()]),
    lambda sub: st.one_of(st.builds(Not, sub), st.builds(And, sub, sub), st.builds(Or, sub, sub),
                          st.builds(Imp, sub, sub), st.builds(Iff, sub, sub)), max_leaves=6)
ftext = formula.map(lambda f: "(" + show(f) + ")")
name = st.sampled_from(NAMES)
proj = st.sampled_from(["", ".1", ".2", ".mp", ".mpr", ".left", ".symm"])

term = st.recursive(
    st.one_of(st.builds(lambda n, p: n + p, name, proj), st.sampled_from(["trivial", "True.intro", "sorry"]),
              ftext.map(lambda f: f"Classical.em {f}")),
    lambda t: st.one_of(
        st.builds(lambda a, b: f"{a} ({b})", t, t),
        st.builds(lambda a, b: f"⟨{a}, {b}⟩", t, t),
        st.builds(lambda a: f"Or.inl ({a})", t), st.builds(lambda a: f"Or.inr ({a})", t),
        st.builds(lambda a, b: f"absurd ({a}) ({b})", t, t), st.builds(lambda a: f"False.elim ({a})", t),
        st.builds(lambda n, a: f"fun {n} => {a}", name, t),
        st.builds(lambda a, b, c: f"Or.elim ({a}) ({b}) ({c})", t, t, t),
        st.builds(lambda a, b: f"And.intro ({a}) ({b})", t, t),
        st.builds(lambda a, f: f"({a} : {f})", t, ftext),
        st.builds(lambda a: f"Classical.byContradiction ({a})", t),
        st.builds(lambda a: f"(by exact {a})", t),
    ), max_leaves=5)

simple_tactic = st.one_of(
    st.sampled_from(["intro", "intros", "constructor", "left", "right", "exfalso", "contradiction",
                     "assumption", "trivial", "rfl", "skip", "sorry", "by_contra h", "apply And.intro",
                     "apply Classical.byContradiction", "apply False.elim", "apply Or.inl"]),
    st.builds(lambda n: f"intro {n}", name),
    st.builds(lambda t: f"exact {t}", term), st.builds(lambda t: f"apply {t}", term),
    st.builds(lambda n: f"cases {n}", name),
    st.builds(lambda n: f"rcases {n} with ⟨a, b⟩ | c", name),
    st.builds(lambda n: f"obtain ⟨a, -⟩ := {n}", name),
    st.builds(lambda f: f"by_cases h : {f}", ftext),
    st.builds(lambda n, f, t: f"have {n} : {f} := {t}", name, ftext, term),
    st.builds(lambda n, f: f"have {n} : {f}", name, ftext),
    st.builds(lambda f: f"show {f}", ftext),
)
tactic = st.one_of(
    simple_tactic, simple_tactic,
    st.builds(lambda a, b: f"{a} <;> {b}", simple_tactic, simple_tactic),
    st.builds(lambda a: f"all_goals {a}", simple_tactic),
    st.builds(lambda a, b: f"{a}; {b}", simple_tactic, simple_tactic),
)


def entails(hyps, goal):
    for vals in itertools.product([False, True], repeat=len(PROPS)):
        env = dict(zip(PROPS, vals))
        if all(evaluate(h, env) for h in hyps) and not evaluate(goal, env):
            return False
    return True


def statement(hyps, goal):
    binders = "".join(f" ({n} : {show(h)})" for n, h in zip(HYPS, hyps))
    return f"theorem t (p q r : Prop){binders} : {show(goal)}"


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(formula, max_size=2), formula, st.lists(st.tuples(st.integers(0, 50), tactic), min_size=1, max_size=8))
def test_tactic_mode_never_completes_a_false_statement(hyps, goal, steps):
    repl = Repl()
    out = repl.handle({"cmd": statement(hyps, goal) + " := by sorry"})
    assert out["sorries"][0]["proofState"] == 0, out
    valid = entails(hyps, goal)
    states = [0]  # proof states reachable from the root (branching allowed)
    for pick, tac in steps:
        ans = repl.handle({"tactic": tac, "proofState": states[pick % len(states)]})
        assert isinstance(ans, dict)
        if "message" in ans:
            assert ans["message"].startswith("Lean error:\n"), ans
            continue
        if ans["proofStatus"] == "Completed":
            assert valid, (statement(hyps, goal), steps)
        if ans["proofStatus"] != "Completed" or True:
            states.append(ans["proofState"])


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(formula, max_size=2), formula, st.lists(tactic, min_size=1, max_size=8))
def test_whole_proof_never_checks_a_false_statement(hyps, goal, tacs):
    body = "\n".join("  " + t for t in tacs)
    out = Repl().handle({"cmd": statement(hyps, goal) + " := by\n" + body})
    assert "env" in out
    if not out.get("messages"):
        assert entails(hyps, goal), (statement(hyps, goal), tacs)


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(formula, term)
def test_term_mode_never_checks_a_false_statement(goal, t):
    out = Repl().handle({"cmd": f"theorem t (p q r : Prop) : {show(goal)} := {t}"})
    if not out.get("messages"):
        assert entails([], goal), (show(goal), t)


def test_statement_text_round_trips_for_checker():
    f = parse_formula("(p → q) → ¬q → ¬p")
    assert entails([], f) and not entails([], parse_formula("p → q"))


def test_known_proofs_complete():
    """The generator's building blocks do prove things (so the properties above are not vacuous)."""
    proofs = {
        "theorem t (p q : Prop) : p ∧ q → q ∧ p": "intro h\n  exact ⟨h.2, h.1⟩",
        "theorem t (p : Prop) : ¬¬p → p": "intro h\n  by_contra hn\n  exact h hn",
        "theorem t (p q : Prop) : (p → q) ↔ (¬p ∨ q)":
            "constructor\n  · intro h\n    by_cases hp : p\n    · exact Or.inr (h hp)\n    · exact Or.inl hp\n"
            "  · intro h hp\n    rcases h with hn | hq\n    · exact absurd hp hn\n    · exact hq",
        "theorem t (p q : Prop) : ((p → q) → p) → p":
            "intro h\n  by_cases hp : p\n  · exact hp\n  · exact h (fun x => absurd x hp)",
    }
    for stmt, body in proofs.items():
        out = Repl().handle({"cmd": f"{stmt} := by\n  {body}"})
        assert out == {"env": 0}, (stmt, out)


def test_shadowed_prop_cannot_be_confused():
    # `p` the hypothesis shadows `p` the proposition; the old p is still a different atom.
    out = Repl().handle({"cmd": "theorem t (p q : Prop) : p → q := by\n  intro p\n  exact p"})
    assert out["messages"][0]["severity"] == "error"
    out = Repl().handle({"cmd": "theorem t (p : Prop) (h : p) (p : Prop) : p := h"})
    assert out["messages"][0]["severity"] == "error"


closer = st.one_of(
    st.sampled_from(["assumption", "trivial", "contradiction", "intro a", "intro b", "intros", "exfalso",
                     "constructor", "left", "right", "cases h0", "cases h1", "cases a", "by_contra h",
                     "apply h0", "apply h1", "apply a", "sorry"]),
    st.builds(lambda a, b: f"exact {a} {b}", st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.builds(lambda a, p: f"exact {a}{p}", st.sampled_from(NAMES), proj),
    st.builds(lambda f: f"by_cases h : {f}", st.sampled_from(["p", "q", "r"])),
)


@st.composite
def related_statement(draw):
    """Goals built from pieces of the hypotheses, so that many random proofs do finish."""
    hyps = draw(st.lists(formula, min_size=1, max_size=2))
    pieces = list(hyps)
    for h in hyps:
        if isinstance(h, (And, Or, Imp, Iff)):
            pieces += [h.a, h.b]
        if isinstance(h, Not):
            pieces.append(h.a)
    a, b = draw(st.sampled_from(pieces)), draw(st.sampled_from(pieces + [Bot(), Atom("p")]))
    goal = draw(st.sampled_from([a, And(a, b), Or(a, b), Imp(a, b), Imp(b, a), Not(a), Iff(a, b)]))
    return hyps, goal


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(related_statement(), st.lists(st.tuples(st.integers(0, 50), closer), min_size=1, max_size=8))
def test_biased_tactic_mode_soundness(stmt, steps):
    hyps, goal = stmt
    repl = Repl()
    repl.handle({"cmd": statement(hyps, goal) + " := by sorry"})
    states, valid = [0], entails(hyps, goal)
    for pick, tac in steps:
        ans = repl.handle({"tactic": tac, "proofState": states[pick % len(states)]})
        if "message" in ans:
            continue
        if ans["proofStatus"] == "Completed":
            assert valid, (statement(hyps, goal), steps)
        states.append(ans["proofState"])
