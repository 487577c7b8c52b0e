"""Against real Lean 4 through leanprover-community/repl. Skipped unless a Lean project with the REPL is
named by RAYPROVER_LEAN_PROJECT and `lake` is on PATH (CI has no Lean toolchain)."""

import os
import shutil

import pytest

from raylib.env import Finished, State, Theorem
from raylib.env.repl import LeanReplEnv, ReplSettings

PROJECT = os.environ.get("RAYPROVER_LEAN_PROJECT")
pytestmark = [pytest.mark.lean, pytest.mark.skipif(
    not PROJECT or shutil.which("lake") is None,
    reason="needs real Lean: set RAYPROVER_LEAN_PROJECT to a Lean project with the REPL built and lake on PATH")]


def test_real_lean_proves_and_verifies():
    env = LeanReplEnv(ReplSettings(command=("lake", "exe", "repl"), cwd=PROJECT, timeout_s=60))
    try:
        thm = Theorem("and_swap", "theorem and_swap (p q : Prop) (h : p ∧ q) : q ∧ p")
        s0 = env.start(thm)
        assert isinstance(s0, State) and s0.goals == ("p q : Prop\nh : p ∧ q\n⊢ q ∧ p",)
        s1 = env.run_tac(s0, "constructor")
        assert isinstance(s1, State) and s1.goals[0].startswith("case left")
        done = env.run_tac(env.run_tac(s1, "exact h.2"), "exact h.1")
        assert isinstance(done, Finished)
        assert env.verify(thm, done.path).ok
        assert not env.verify(thm, ["constructor", "exact h.2"]).ok
    finally:
        env.close()


class _NoFilter:
    """Lets every tactic through, so only Lean's own answers (and the axiom check) decide."""

    def check(self, tactic):
        from raylib.env.filter import Verdict
        return Verdict(True)

    def refusal(self, tactic):
        return None

    def script_refusal(self, tactics):
        return None


def test_real_lean_axiom_check_refuses_what_compiles():
    """Each proof below compiles with no error in real Lean; the ``#print axioms`` check refuses it."""
    env = LeanReplEnv(ReplSettings(command=("lake", "exe", "repl"), cwd=PROJECT, timeout_s=60), _NoFilter())
    try:
        em = Theorem("em_or", "theorem em_or (p : Prop) : p ∨ ¬p")
        v = env.verify(em, ["exact Classical.em p"])
        assert v.ok and set(v.axioms) == {"propext", "Classical.choice", "Quot.sound"}
        cheat = Theorem("by_cheat", "theorem by_cheat (p : Prop) : p", header="axiom cheat_ax : False")
        v = env.verify(cheat, ["exact cheat_ax.elim"])
        assert not v.ok and "cheat_ax" in " ".join(v.messages)
        native = Theorem("two_two", "theorem two_two : 2 + 2 = 4")
        v = env.verify(native, ["native_decide"])
        assert not v.ok and "Lean.ofReduceBool" in " ".join(v.messages)
        versions = env.versions()
        assert versions["backend"] == "lean_repl" and versions["lean"].startswith("Lean (version")
    finally:
        env.close()
