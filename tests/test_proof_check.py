"""The whole-proof check cannot be fooled: axioms outside the allow-list, cheating tactic text and
answers the real REPL gives for failures are all refused, with the reason recorded.

Most tests here drive ``LeanReplEnv`` against ``tests/fake_lean_repl.py``, a FAKE REPL (see its
docstring) that answers in leanprover-community/repl's shapes and says yes to everything: every tactic
"Completed", every command compiled. A refusal can then only come from the client's own checks.
"""

import json
import sys
from pathlib import Path

import pytest

from raylib.env import Finished, GivenUp, LeanError, State, Theorem
from raylib.env.axioms import axiom_problems, check_command, parse_axiom_reports
from raylib.env.filter import TacticFilter, Verdict
from raylib.env.outcome import proof_text
from raylib.env.repl import LeanReplEnv, ReplSettings

FAKE = Path(__file__).with_name("fake_lean_repl.py")
THM = Theorem("cheat", "theorem cheat (p : Prop) (h : p) : p")


class NoFilter(TacticFilter):
    def check(self, tactic):
        return Verdict(True)


def fake_env(tmp_path=None, axioms="", tactic_filter=None, **env_vars) -> LeanReplEnv:
    extra = {"FAKE_REPL_AXIOMS": axioms, **env_vars}
    settings = ReplSettings(command=(sys.executable, str(FAKE)), extra_env=tuple(extra.items()), timeout_s=10)
    return LeanReplEnv(settings, tactic_filter)


@pytest.mark.parametrize("axioms, reason", [
    ("sorryAx", "sorryAx: the proof uses sorry"),
    ("propext,sorryAx,Classical.choice,Quot.sound", "sorryAx"),
    ("propext,Classical.choice,Lean.ofReduceBool,Quot.sound", "Lean.ofReduceBool: the proof trusts compiled code"),
    ("Lean.trustCompiler", "Lean.trustCompiler"),
    ("cheat_ax", "cheat_ax: an axiom outside the allowed list"),
])
def test_completed_proof_resting_on_a_bad_axiom_is_refused(axioms, reason):
    env = fake_env(axioms=axioms)
    try:
        done = env.run_tac(env.start(THM), "exact h")
        assert isinstance(done, Finished)  # the fake says the proof is complete...
        v = env.verify(THM, done.path)
        assert not v.ok and any(reason in m for m in v.messages), v.messages  # ...the axiom check refuses it
        assert v.axioms == tuple(axioms.split(","))
    finally:
        env.close()


@pytest.mark.parametrize("axioms, wrap", [("", "0"), ("propext,Classical.choice,Quot.sound", "0"),
                                          ("propext,Classical.choice,Quot.sound", "1")])
def test_allowed_axioms_pass(axioms, wrap):
    env = fake_env(axioms=axioms, FAKE_REPL_WRAP=wrap)
    try:
        v = env.verify(THM, ["exact h"])
        assert v.ok, v.messages
        assert v.axioms == tuple(a for a in axioms.split(",") if a)
    finally:
        env.close()


def test_allow_list_is_configurable():
    settings = ReplSettings(command=(sys.executable, str(FAKE)), allowed_axioms=("propext",),
                            extra_env=(("FAKE_REPL_AXIOMS", "propext,Classical.choice"),))
    with LeanReplEnv(settings) as env:
        v = env.verify(THM, ["exact h"])
        assert not v.ok and "Classical.choice" in v.messages[0] and "allowed: propext" in v.messages[0]
    from raylib.config import load_config
    from raylib.env import make_env
    cfg = load_config(None, ["env.allowed_axioms=[propext]"])
    assert make_env(cfg.env).s.allowed_axioms == ("propext",)


def test_axiom_check_runs_in_the_environment_of_the_checked_proof(tmp_path):
    log = tmp_path / "requests.jsonl"
    env = fake_env(FAKE_REPL_LOG=str(log))
    try:
        tactics = ["intro x", "cases x with\n| inl a => exact a\n| inr b => exact b"]
        assert env.verify(THM, tactics).ok
    finally:
        env.close()
    reqs = [json.loads(line) for line in log.read_text().splitlines()]
    compiled, printed = reqs[-2], reqs[-1]
    # exactly the file's statement with exactly the tactics, one per line, nothing re-split
    assert compiled["cmd"] == THM.statement + " := by\n  intro x\n  cases x with\n  | inl a => exact a\n  | inr b => exact b"
    assert printed == {"cmd": "#print axioms cheat", "env": 0}


def test_example_statements_are_checked_under_a_name():
    cmd, name = check_command(Theorem("ex", "example (p : Prop) (h : p) : p"), "by exact h")
    assert cmd.startswith(f"theorem {name} (p : Prop)") and name


def test_axiom_report_parsing_and_failures():
    info = [{"severity": "info", "data": "'T.x' depends on axioms: [propext,\n Classical.choice,\n Quot.sound]"},
            {"severity": "info", "data": "'y' does not depend on any axioms"}]
    assert parse_axiom_reports(info) == {"T.x": ("propext", "Classical.choice", "Quot.sound"), "y": ()}
    assert axiom_problems({"env": 1, "messages": info}, "x", ("propext", "Classical.choice", "Quot.sound")) \
        == ([], ("propext", "Classical.choice", "Quot.sound"))
    problems, axioms = axiom_problems({"env": 1, "messages": []}, "x", ())
    assert axioms is None and "no '#print axioms' report for x" in problems[0]
    problems, _ = axiom_problems({"env": 1, "messages": [{"severity": "error", "data": "unknown constant 'x'"}]},
                                 "x", ())
    assert "unknown constant" in problems[0]


# -- tactic text that cheats: refused even though the (fake) REPL accepts it --------------------------

CHEATS = {
    "macro_rules": "macro_rules | `(tactic| done) => `(tactic| skip)",
    "notation": 'notation "False" => True',
    "infix": 'infix:50 " ≺ " => And',
    "instance": "instance : Inhabited False := ⟨h⟩",
    "attribute": "exact h\nattribute [simp] cheat",
    "local attribute": "attribute [local instance] Classical.propDecidable in exact h",
    "debug option": "set_option debug.skipKernelTC true in exact h",
    "debug option word": "exact (debug.skipKernelTC)",
    "implemented_by": "@[implemented_by h] def f := 1",
    "extern": '@[extern "c_cheat"] opaque f : False',
    "csimp": "exact (csimp)",
    "unsafe": "exact unsafe (unsafeCast ())",
    "partial": "exact (partial_fix h)\npartial def f : Nat → Nat := f",
    "Lean.Elab": "exact Lean.Elab.Tactic.evalTactic",
    "Lean.Meta": "open Lean in exact Meta.mkSorry",
    "MetaM": "exact (show MetaM Unit from pure ())",
    "native_decide": "native_decide",
    "ofReduceBool": "exact Lean.ofReduceBool _ _ rfl",
    "new declaration at column 0": "exact h\ntheorem cheat2 : False := cheat2",
    "new declaration indented": "exact h\n  axiom cheat3 : False",
    "namespace": "exact h\nnamespace X",
    "end": "exact h\nend",
    "#command": "exact h\n#exit",
    "where": "exact aux\nwhere aux : p := h",
    "unterminated comment": "exact h /-",
    "unterminated string": 'exact h "',
    "control character \\x1c": "exact h\x1c",
    "zero-width space": "exact\u200bh",
    "carriage return": "exact h\r\nskip",
    "tab": "exact\th",
    "sorry": "exact sorry",
}


@pytest.fixture(scope="module")
def yes_env():
    env = fake_env()
    yield env
    env.close()


@pytest.fixture(scope="module")
def naive_env():
    env = fake_env(tactic_filter=NoFilter())
    yield env
    env.close()


@pytest.mark.parametrize("what", sorted(CHEATS))
def test_cheating_tactic_is_refused_though_the_repl_says_completed(what, yes_env, naive_env):
    tac = CHEATS[what]
    # without the filter the fake REPL accepts it: step by step and whole
    assert isinstance(naive_env.run_tac(naive_env.start(THM), tac), Finished)
    assert naive_env.verify(THM, [tac]).ok
    # with it, refused both ways, the reason recorded
    out = yes_env.run_tac(yes_env.start(THM), tac)
    assert isinstance(out, (LeanError, GivenUp)) and out.message
    v = yes_env.verify(THM, ["intro x", tac])
    assert not v.ok and tac in v.messages[0] or repr(tac) in v.messages[0]


def test_proof_text_never_resplits_a_tactic():
    tac = "exact h\x1cfoo\x1dbar\u2028baz\x0bq\x0cr\x85s"
    assert proof_text(["intro h", tac]) == "by\n  intro h\n  " + tac
    assert proof_text(["cases h with\n| inl a => exact a"]) == "by\n  cases h with\n  | inl a => exact a"


# -- classification of tactic answers as the real REPL gives them ---------------------------------

ANSWERS = {
    "error_no_goals": {"goals": [], "messages": [{"severity": "error", "pos": {"line": 1, "column": 0},
                                                  "endPos": {"line": 1, "column": 4}, "data": "type mismatch"}],
                       "proofStatus": "Incomplete: open goals remain"},
    "error_completed": {"goals": [], "messages": [{"severity": "error", "pos": {"line": 1, "column": 0},
                                                   "endPos": None, "data": "unknown identifier 'x'"}]},
    "sorry_open_goals": {"goals": ["⊢ q"], "sorries": [{"goal": "⊢ p", "proofState": 0}],
                         "proofStatus": "Incomplete: open goals remain"},
    "sorry_done": {"goals": [], "sorries": [{"goal": "⊢ p", "proofState": 0}],
                   "proofStatus": "Incomplete: contains sorry"},
    "kernel": {"goals": [], "proofStatus": "Error: kernel type check failed: (kernel) declaration has metavariables"},
    "mvars": {"goals": [], "proofStatus": "Incomplete: contains metavariable(s)"},
    "open_goals": {"goals": ["p : Prop\n⊢ p"], "proofStatus": "Incomplete: open goals remain"},
    "legacy_done": {"goals": [], "proofStatus": None},
}


def test_tactic_answers_are_classified_by_messages_sorries_and_status(tmp_path):
    script = tmp_path / "answers.json"
    script.write_text(json.dumps(ANSWERS))
    env = fake_env(FAKE_REPL_TACTICS=str(script))
    try:
        s0 = env.start(THM)
        kinds = {name: env.run_tac(s0, name) for name in ANSWERS}
    finally:
        env.close()
    assert isinstance(kinds["error_no_goals"], LeanError) and "type mismatch" in kinds["error_no_goals"].message
    assert isinstance(kinds["error_completed"], LeanError)
    assert isinstance(kinds["sorry_open_goals"], GivenUp)
    assert isinstance(kinds["sorry_done"], GivenUp)
    assert isinstance(kinds["kernel"], LeanError) and "kernel" in kinds["kernel"].message
    assert isinstance(kinds["mvars"], LeanError) and "metavariable" in kinds["mvars"].message
    assert isinstance(kinds["open_goals"], State) and kinds["open_goals"].goals == ("p : Prop\n⊢ p",)
    assert isinstance(kinds["legacy_done"], Finished)
