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
