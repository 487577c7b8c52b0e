import pytest

from raylib.env.filter import TacticFilter


@pytest.mark.parametrize("tactic, kind", [
    ("sorry", "sorry"), ("exact sorry", "sorry"), ("admit", "sorry"), ("  constructor <;> sorry", "sorry"),
    ("exact sorryAx _", "sorry"), ("#eval IO.println 1", "denied"), ("set_option maxHeartbeats 0 in simp", "denied"),
    ("run_tac do pure ()", "denied"), ("exact (IO.println 1)", "denied"), ("native_decide", "denied"),
    ("", "empty"), ("   ", "empty"),
])
def test_refused(tactic, kind):
    verdict = TacticFilter().check(tactic)
    assert not verdict.ok and verdict.kind == kind and verdict.reason


@pytest.mark.parametrize("tactic", [
    "intro h", "exact ⟨h.2, h.1⟩", "apply sorry_free_lemma", "exact hIO", "simp -- sorry in a comment",
    "exact h /- admit -/", "rcases h with ⟨a, b⟩ | c",
])
def test_allowed(tactic):
    assert TacticFilter().check(tactic).ok


def test_deny_list_is_configurable():
    f = TacticFilter(deny=["simp"])
    assert not f.check("simp only [foo]").ok
    assert f.check("#eval 1").ok  # the default list was replaced
    assert not f.check("sorry").ok  # give-up words are always refused
    assert "longer than" in TacticFilter(max_chars=5).check("exact foo").reason
