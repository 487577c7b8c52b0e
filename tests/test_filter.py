import pytest

from raylib.env.filter import TacticFilter


@pytest.mark.parametrize("tactic, kind", [
    ("sorry", "sorry"), ("exact sorry", "sorry"), ("admit", "sorry"), ("  constructor <;> sorry", "sorry"),
    ("exact sorryAx _", "sorry"), ("#eval IO.println 1", "command"), ("set_option maxHeartbeats 0 in simp", "denied"),
    ("run_tac do pure ()", "denied"), ("exact (IO.println 1)", "denied"), ("native_decide", "denied"),
    ("", "empty"), ("   ", "empty"),
    ("macro_rules | `(tactic| done) => `(tactic| skip)", "denied"), ('infixl:65 " +' + "' \" => Or", "denied"),
    ("exact h\ntheorem t : False := t", "command"), ("exact h\n  lemma t : False := t", "command"),
    ("exact h\nend", "command"), ("exact h\n#print axioms t", "command"), ("@[csimp] def x := 1", "command"),
    ("exact h\x1c", "unprintable"), ("exact\u00a0h", "unprintable"), ("exact h\u2028", "unprintable"),
    ("exact h -- ok\nopen Classical", "command"), ("open Lean", "command"),
    ("set_option maxRecDepth 100", "command"), ("exact (Lean.Meta.mkSorry)", "denied"),
    ("exact h /- unclosed", "command"),
])
def test_refused(tactic, kind):
    verdict = TacticFilter().check(tactic)
    assert not verdict.ok and verdict.kind == kind and verdict.reason


@pytest.mark.parametrize("tactic", [
    "intro h", "exact ⟨h.2, h.1⟩", "apply sorry_free_lemma", "exact hIO", "simp -- sorry in a comment",
    "exact h /- admit -/", "rcases h with ⟨a, b⟩ | c", "open Classical in exact em p", "classical",
    "cases h with\n| inl a => exact a\n| inr b => exact b", "exact Or.elim h (fun a => a) id",
    "exact fun ⟨a, b⟩ => ⟨b, a⟩", "simp [And.comm] at h ⊢", "by_contra hn", "exact h.elim",
])
def test_allowed(tactic):
    assert TacticFilter().check(tactic).ok


def test_deny_list_is_configurable():
    f = TacticFilter(deny=["simp"])
    assert not f.check("simp only [foo]").ok
    assert f.check("native_decide").ok  # the default list was replaced
    assert not f.check("#eval 1").ok and f.check("#eval 1").kind == "command"  # new commands: always refused
    assert not f.check("exact h\x1c").ok  # so are non-printable characters
    assert not f.check("sorry").ok  # give-up words are always refused
    assert "longer than" in TacticFilter(max_chars=5).check("exact foo").reason
