"""REPL protocol: command answers, layout, stdin/stdout loop, fault injection."""
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from raylib.env.builtin.server import Repl, render, serve

ROOT = Path(__file__).resolve().parents[1]


def test_whole_proof_ok_no_keys():
    r = Repl()
    out = r.handle({"cmd": "theorem foo (p q : Prop) (h : p ∧ q) : q ∧ p := by\n  constructor\n"
                           "  · exact h.2\n  · exact h.1"})
    assert out == {"env": 0}


def test_whole_proof_sorry_warning_and_sorries():
    r = Repl()
    out = r.handle({"cmd": "theorem foo (x : Prop) : x → x := by sorry"})
    assert out["messages"] == [{"severity": "warning", "pos": {"line": 1, "column": 8},
                                "endPos": {"line": 1, "column": 11}, "data": "declaration uses 'sorry'"}]
    assert out["sorries"] == [{"proofState": 0, "pos": {"line": 1, "column": 37},
                               "endPos": {"line": 1, "column": 42}, "goal": "x : Prop\n⊢ x → x"}]


def test_unsolved_goals_error():
    r = Repl()
    out = r.handle({"cmd": "theorem foo (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  constructor\n  exact hp"})
    (m,) = out["messages"]
    assert m["severity"] == "error"
    assert m["data"] == "unsolved goals\ncase right\np q : Prop\nhp : p\nhq : q\n⊢ q"
    assert m["pos"] == {"line": 1, "column": 54}


def test_errors_have_positions_and_several_declarations():
    r = Repl()
    cmd = ("-- a comment\ntheorem a1 (p : Prop) (hp : p) : p := hp\n\n"
           "theorem a2 (p q : Prop) (hp : p) : q := by\n  exact hp\n\nexample (p : Prop) : p → p := fun h => h")
    out = r.handle({"cmd": cmd})
    (m,) = out["messages"]
    assert m["severity"] == "error" and m["data"].startswith("type mismatch")
    assert m["pos"] == {"line": 5, "column": 8}
    again = r.handle({"cmd": "theorem a1 (p : Prop) (hp : p) : p := hp", "env": out["env"]})
    assert again["messages"][0]["data"] == "'a1' has already been declared"
    fresh = r.handle({"cmd": "theorem a1 (p : Prop) (hp : p) : p := hp", "env": 0 if out["env"] else 0})
    assert "messages" in fresh


def test_imports_and_unknown_env():
    r = Repl()
    assert "env" in r.handle({"cmd": ""})
    out = r.handle({"cmd": "import Mathlib\nopen Classical"})
    assert out["messages"][0]["data"].startswith("unknown module prefix 'Mathlib'")
    assert r.handle({"cmd": "theorem x (p : Prop) : p := sorry", "env": 42}) == {"message": "Unknown environment."}
    assert r.handle({"pickleTo": "x", "env": 0})["message"]
    assert r.handle({"foo": 1})["message"].startswith("Could not parse as a valid JSON command")
    assert r.handle_text("{nope")["message"].startswith("Could not parse JSON:\n")


def test_unknown_identifier_in_statement():
    out = Repl().handle({"cmd": "theorem t (p : Prop) : p ∧ z := by sorry"})
    assert out["messages"][0]["data"] == "unknown identifier 'z'"
    assert "sorries" not in out


def test_layout_matches_repl():
    ans = {"env": 0, "sorries": [{"proofState": 0, "pos": {"line": 1, "column": 36},
                                   "endPos": {"line": 1, "column": 41}, "goal": "x : Int\n⊢ x = x"}]}
    assert render(ans) == ('{"sorries":\n [{"proofState": 0,\n   "pos": {"line": 1, "column": 36},\n'
                           '   "goal": "x : Int\\n⊢ x = x",\n   "endPos": {"line": 1, "column": 41}}],\n "env": 0}')
    assert render({"proofState": 1, "goals": [], "proofStatus": "Completed"}) == \
        '{"proofStatus": "Completed", "proofState": 1, "goals": []}'


def _answers(text):
    return [json.loads(chunk) for chunk in text.split("\n\n") if chunk.strip()]


def test_serve_loop():
    inp = io.StringIO('{"cmd": "theorem t (p : Prop) (hp : p) : p := by sorry"}\n\n'
                      '{"tactic": "exact hp",\n "proofState": 0}\n\nnot json\n\n{"tactic": "skip", "proofState": 0}')
    out = io.StringIO()
    serve(inp, out, faults=False)
    a = _answers(out.getvalue())
    assert a[1]["proofStatus"] == "Completed"
    assert a[2]["message"].startswith("Could not parse JSON")
    assert a[3]["proofState"] == 2
    assert out.getvalue().endswith("}\n\n")


def _proc(*args):
    return subprocess.Popen([sys.executable, "-m", "raylib.env.builtin", *args], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_main_help():
    out = subprocess.run([sys.executable, "-m", "raylib.env.builtin", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--faults" in out.stdout


def test_faults_process():
    p = _proc("--faults")
    start = '{"cmd": "theorem t (p : Prop) (hp : p) : p := by sorry"}\n\n'
    req = (start + '{"tactic": "fault_sleep 0.2", "proofState": 0}\n\n'
           '{"tactic": "fault_garbage", "proofState": 0}\n\n{"tactic": "fault_alloc 4", "proofState": 0}\n\n'
           '{"tactic": "fault_exit", "proofState": 0}\n\n{"tactic": "skip", "proofState": 0}\n\n')
    t0 = time.time()
    out, err = p.communicate(req, timeout=30)
    assert p.returncode == 3
    assert time.time() - t0 >= 0.2
    chunks = [c for c in out.split("\n\n") if c.strip()]
    assert len(chunks) == 4
    assert json.loads(chunks[1])["proofState"] == 1
    assert not chunks[2].startswith("{")
    assert json.loads(chunks[3])["proofState"] == 2


def test_fault_truncate_blocks():
    p = _proc("--faults")
    p.stdin.write('{"cmd": "theorem t (p : Prop) (hp : p) : p := by sorry"}\n\n'
                  '{"tactic": "fault_truncate", "proofState": 0}\n\n')
    p.stdin.flush()
    import os
    import select
    got, deadline = b"", time.monotonic() + 60   # wait for the half answer (no fixed sleep: slow machines)
    while time.monotonic() < deadline and not (b"\n\n" in got and got.split(b"\n\n", 1)[1].strip()):
        if select.select([p.stdout], [], [], 0.5)[0]:
            got += os.read(p.stdout.fileno(), 1 << 16)
    time.sleep(0.5)
    assert p.poll() is None  # still blocked after half an answer
    p.kill()
    p.communicate(timeout=10)
    tail = got.decode().split("\n\n")[-1]
    assert tail and not tail.rstrip().endswith("}")


def test_without_faults_fault_tactics_are_unknown():
    p = _proc()
    out, _ = p.communicate('{"cmd": "theorem t (p : Prop) (hp : p) : p := by sorry"}\n\n'
                           '{"tactic": "fault_exit", "proofState": 0}\n\n', timeout=30)
    assert p.returncode == 0
    assert _answers(out)[1]["message"] == "Lean error:\n<input>:1:0: unknown tactic"


def test_print_axioms_answers_as_lean_does():
    """Shapes as in Lean's `#print axioms` (an info message), e.g. "'foo' depends on axioms: [propext,
    Classical.choice, Quot.sound]" for a classical proof and "'foo' does not depend on any axioms"."""
    r = Repl()
    cmd = ("theorem direct (p q : Prop) (h : p ∧ q) : q ∧ p := ⟨h.2, h.1⟩\n"
           "theorem classical (p : Prop) : p ∨ ¬p := by\n  by_cases h : p\n  · exact Or.inl h\n  · exact Or.inr h\n"
           "theorem em (p : Prop) : p ∨ ¬p := Classical.em p\n"
           "theorem gap (p : Prop) : p → p := by sorry\n"
           "theorem both (p : Prop) : ¬¬p → p := by\n  intro h\n  by_contra n\n  sorry")
    env = r.handle({"cmd": cmd})["env"]

    def ask(name):
        out = r.handle({"cmd": f"#print axioms {name}", "env": env})
        (m,) = out["messages"]
        assert m["severity"] == "info" and m["pos"] == {"line": 1, "column": 0} and "env" in out
        return m["data"]

    assert ask("direct") == "'direct' does not depend on any axioms"
    assert ask("classical") == "'classical' depends on axioms: [propext, Classical.choice, Quot.sound]"
    assert ask("em") == "'em' depends on axioms: [propext, Classical.choice, Quot.sound]"
    assert ask("gap") == "'gap' depends on axioms: [sorryAx]"
    assert ask("both") == "'both' depends on axioms: [propext, sorryAx, Classical.choice, Quot.sound]"
    out = r.handle({"cmd": "#print axioms nope", "env": env})
    assert out["messages"][0]["severity"] == "error" and "unknown constant 'nope'" in out["messages"][0]["data"]


def test_not_as_a_function_and_untyped_binders_elaborate_as_in_lean():
    r = Repl()
    assert r.handle({"cmd": "theorem a (p : Prop) (h : Not p) : p → False := by\n  intro hp\n  exact h hp"}) == {"env": 0}
    assert r.handle({"cmd": "theorem b (p q) (h : And p q) : Or q p := Or.inl h.2"}) == {"env": 1}
    out = r.handle({"cmd": "theorem c (p q) (h : p ∧ q) : q := by sorry"})
    assert out["sorries"][0]["goal"] == "p q : Prop\nh : p ∧ q\n⊢ q"
    out = r.handle({"cmd": "theorem d (p : Prop) : Not p p := sorry"})
    assert out["messages"][0]["severity"] == "error"


def test_control_characters_are_not_whitespace():
    """Lean reads only space, tab and newline as whitespace; `\\x1c` (which Python's str.isspace accepts)
    is an error, so a tactic holding it cannot pass here and then split differently in the whole proof."""
    r = Repl()
    s0 = r.handle({"cmd": "theorem t (p : Prop) (h : p) : p := by sorry"})["sorries"][0]["proofState"]
    assert "proofState" in r.handle({"tactic": "exact h", "proofState": s0})
    assert "Lean error" in r.handle({"tactic": "exact\x1ch", "proofState": s0})["message"]
    assert "messages" in r.handle({"cmd": "theorem u (p : Prop) (h : p) : p := by\n  exact\x1ch"})
