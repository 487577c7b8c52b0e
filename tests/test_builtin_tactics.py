"""Tactic engine through the in-process REPL: goal printing, case tags, error shapes."""
import pytest

from raylib.env.builtin.server import Repl


def start(stmt):
    r = Repl()
    out = r.handle({"cmd": stmt + " := by sorry"})
    assert out["sorries"][0]["proofState"] == 0, out
    return r, out["sorries"][0]["goal"]


def step(r, tac, ps):
    return r.handle({"tactic": tac, "proofState": ps})


def test_initial_goal_groups_props():
    _, goal = start("theorem t (p q r : Prop) (h₁ h₂ : p) (h : p ∧ q) : q ∧ p")
    assert goal == "p q r : Prop\nh₁ h₂ : p\nh : p ∧ q\n⊢ q ∧ p"


def test_constructor_tags_and_completion():
    r, _ = start("theorem t (p q : Prop) (h : p ∧ q) : q ∧ p")
    a = step(r, "constructor", 0)
    assert a["goals"] == ["case left\np q : Prop\nh : p ∧ q\n⊢ q", "case right\np q : Prop\nh : p ∧ q\n⊢ p"]
    assert a["proofStatus"] == "Incomplete: open goals remain"
    b = step(r, "exact h.2", a["proofState"])
    c = step(r, "exact h.right", a["proofState"])  # branching from the same state
    assert b["goals"] == c["goals"] and b["proofState"] != c["proofState"]
    d = step(r, "exact h.1", b["proofState"])
    assert d == {"proofState": d["proofState"], "goals": [], "proofStatus": "Completed"}


def test_iff_tags_mp_mpr():
    r, _ = start("theorem t (p q : Prop) : p ∧ q ↔ q ∧ p")
    a = step(r, "constructor", 0)
    assert [g.split("\n")[0] for g in a["goals"]] == ["case mp", "case mpr"]
    assert a["goals"][0].endswith("⊢ p ∧ q → q ∧ p")


def test_cases_or_inaccessible():
    r, _ = start("theorem t (p q : Prop) : p ∨ q → q ∨ p")
    a = step(r, "intro h", 0)
    b = step(r, "cases h", a["proofState"])
    assert b["goals"] == ["case inl\np q : Prop\nh✝ : p\n⊢ q ∨ p", "case inr\np q : Prop\nh✝ : q\n⊢ q ∨ p"]
    c = step(r, "rcases h with hp | hq", a["proofState"])
    assert c["goals"][0] == "case inl\np q : Prop\nhp : p\n⊢ q ∨ p"
    d = step(r, "right; assumption", c["proofState"])
    e = step(r, "left; assumption", d["proofState"])
    assert e["proofStatus"] == "Completed"


def test_intro_anonymous_and_shadowing():
    r, _ = start("theorem t (p q : Prop) : p → q → p")
    a = step(r, "intro", 0)
    assert a["goals"] == ["p q : Prop\na✝ : p\n⊢ q → p"]
    b = step(r, "intro p", 0)
    assert b["goals"] == ["p✝ q : Prop\np : p✝\n⊢ q → p✝"]
    c = step(r, "intros", 0)
    assert c["goals"] == ["p q : Prop\na✝¹ : p\na✝ : q\n⊢ p"]
    assert step(r, "assumption", c["proofState"])["proofStatus"] == "Completed"


def test_by_cases_pos_neg():
    r, _ = start("theorem t (p : Prop) : p ∨ ¬p")
    a = step(r, "by_cases h : p", 0)
    assert a["goals"] == ["case pos\np : Prop\nh : p\n⊢ p ∨ ¬p", "case neg\np : Prop\nh : ¬p\n⊢ p ∨ ¬p"]
    b = step(r, "· left; exact h", a["proofState"])
    c = step(r, "· right; exact h", b["proofState"])
    assert c["proofStatus"] == "Completed"


def test_obtain_and_intro_tags():
    r, _ = start("theorem t (p q r : Prop) (h : p ∧ q ∧ r) : r")
    a = step(r, "obtain ⟨a, b, c⟩ := h", 0)
    assert a["goals"] == ["case intro.intro\np q r : Prop\na : p\nb : q\nc : r\n⊢ r"]


def test_have_with_and_without_proof():
    r, _ = start("theorem t (p q : Prop) (hp : p) (hpq : p → q) : q")
    a = step(r, "have hq : q := hpq hp", 0)
    assert a["goals"] == ["p q : Prop\nhp : p\nhpq : p → q\nhq : q\n⊢ q"]
    b = step(r, "have hq : q", 0)
    assert len(b["goals"]) == 2 and b["goals"][0].endswith("⊢ q") and "hq : q" in b["goals"][1]


def test_not_is_arrow_to_false():
    r, _ = start("theorem t (p : Prop) (hp : p) : ¬¬p")
    a = step(r, "intro hn", 0)
    assert a["goals"] == ["p : Prop\nhp : p\nhn : ¬p\n⊢ False"]
    assert step(r, "exact hn hp", a["proofState"])["proofStatus"] == "Completed"
    assert step(r, "apply hn; exact hp", a["proofState"])["proofStatus"] == "Completed"
    assert step(r, "contradiction", a["proofState"])["proofStatus"] == "Completed"
    assert step(r, "exact fun h => h hp", 0)["proofStatus"] == "Completed"


@pytest.mark.parametrize("tac,needle", [
    ("exact x", "Lean error:\nunknown identifier 'x'"),
    ("exact hp", "Lean error:\ntype mismatch\n  hp\nhas type\n  p : Prop\nbut is expected to have type\n  q : Prop"),
    ("foo", "Lean error:\n<input>:1:0: unknown tactic"),
    ("tauto", "Lean error:\n<input>:1:0: unknown tactic"),
    ("decide", "Lean error:\n<input>:1:0: unknown tactic"),
    ("fault_exit", "Lean error:\n<input>:1:0: unknown tactic"),
    ("cases hp with x", "Lean error:\n<input>:1:"),
    ("assumption", "Lean error:\ntactic 'assumption' failed"),
    ("intro h", "Lean error:\ntactic 'introN' failed"),
])
def test_error_shapes(tac, needle):
    r, _ = start("theorem t (p q : Prop) (hp : p) : q")
    out = step(r, tac, 0)
    assert set(out) == {"message"} and out["message"].startswith(needle), out


def test_unknown_state_and_no_goals():
    r, _ = start("theorem t (p : Prop) (hp : p) : p")
    assert step(r, "skip", 7) == {"message": "Unknown proof state."}
    done = step(r, "exact hp", 0)
    out = step(r, "exact hp", done["proofState"])
    assert out == {"message": "Lean error:\nno goals to be proved"}


def test_sorry_tactic_is_flagged():
    r, _ = start("theorem t (p q : Prop) : p ∧ q")
    a = step(r, "constructor", 0)
    b = step(r, "sorry", a["proofState"])
    assert b["sorries"][0]["goal"].startswith("case left")
    c = step(r, "sorry", b["proofState"])
    assert c["goals"] == [] and c["proofStatus"] == "Incomplete: contains sorry"


def test_terms():
    r, _ = start("theorem t (p q r : Prop) (h : p ∧ (q ∨ r)) : (p ∧ q) ∨ (p ∧ r)")
    proof = "exact Or.elim h.2 (fun hq => Or.inl ⟨h.1, hq⟩) (fun hr => Or.inr ⟨h.1, hr⟩)"
    assert step(r, proof, 0)["proofStatus"] == "Completed"
    r, _ = start("theorem t (p : Prop) : p ∨ ¬p")
    assert step(r, "exact Classical.em p", 0)["proofStatus"] == "Completed"
    r, _ = start("theorem t (p q : Prop) : (p → q) → ¬q → ¬p")
    assert step(r, "exact fun hpq hnq hp => absurd (hpq hp) hnq", 0)["proofStatus"] == "Completed"
    assert step(r, "exact fun hpq hnq hp => hnq (hpq hp)", 0)["proofStatus"] == "Completed"
    r, _ = start("theorem t (p q : Prop) (h : p ↔ q) (hq : q) : p ∧ True")
    assert step(r, "exact ⟨h.mpr hq, trivial⟩", 0)["proofStatus"] == "Completed"
    assert step(r, "exact And.intro (h.2 hq) True.intro", 0)["proofStatus"] == "Completed"
    assert step(r, "exact ⟨by exact h.mpr hq, by trivial⟩", 0)["proofStatus"] == "Completed"
    assert "message" in step(r, "exact ⟨hq, trivial⟩", 0)


def test_apply_tags():
    r, _ = start("theorem t (p q r : Prop) (h : p → q → r) : r")
    a = step(r, "apply h", 0)
    assert [g.split("\n")[0] for g in a["goals"]] == ["case a", "case a"]
    assert a["goals"][0].endswith("⊢ p") and a["goals"][1].endswith("⊢ q")


def test_fun_tuple_pattern_splits_only_a_conjunction():
    """``fun ⟨a, b⟩`` destructures ∧ (and ↔); on a disjunction it is an error, else `p ∨ q → p` would hold."""
    r, _ = start("theorem t (p q : Prop) : p ∨ q → p")
    bad = step(r, "exact fun ⟨a, b⟩ => a", 0)
    assert bad == {"message": "Lean error:\ninvalid pattern"}  # the REPL's shape of a failed tactic
    r, _ = start("theorem t (p q : Prop) : p ∧ q → p")
    good = step(r, "exact fun ⟨a, b⟩ => a", 0)
    assert good["goals"] == [] and good["proofStatus"] == "Completed"
