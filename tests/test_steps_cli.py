"""`rayprover steps` as a user runs it: a subprocess, JSON lines on stdout, exit status."""

import json
import subprocess
import sys

THM = "theorem and_swap (p q : Prop) (h : p ∧ q) : q ∧ p"


def steps(*args, check_code=None):
    proc = subprocess.run([sys.executable, "-m", "raylib.cli", "steps", *args], capture_output=True, text=True,
                          timeout=120)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr


def test_steps_prints_one_json_line_per_step_and_verifies():
    code, lines, err = steps("--theorem", THM, "--tactic", "constructor", "--tactic", "exact h.2",
                             "--tactic", "exact h.1", "--verify")
    assert code == 0, err
    assert [line.get("kind") for line in lines[:4]] == ["state", "state", "state", "finished"]
    assert lines[0]["tactic"] is None and lines[0]["goals"] == ["p q : Prop\nh : p ∧ q\n⊢ q ∧ p"]
    assert lines[1]["tactic"] == "constructor" and len(lines[1]["goals"]) == 2
    assert lines[4]["verify"] is True and "exact h.1" in lines[4]["proof"]


def test_steps_stops_at_an_error_with_status_1():
    code, lines, _ = steps("--theorem", THM, "--tactic", "exact h", "--tactic", "constructor")
    assert code == 1
    assert lines[-1]["kind"] == "error" and lines[-1]["message"] and len(lines) == 2
    code, lines, _ = steps("--theorem", THM, "--tactic", "sorry")
    assert code == 1 and lines[-1]["kind"] == "sorry"


def test_any_program_speaking_the_protocol_plugs_in_as_lean_repl():
    cmd = json.dumps([sys.executable, "-m", "raylib.env.builtin"])
    code, lines, err = steps("--set", "env.backend=lean_repl", "--set", f"env.lean_repl.command={cmd}",
                             "--theorem", "theorem t (p : Prop) : p → p", "--tactic", "intro hp",
                             "--tactic", "exact hp")
    assert code == 0, err
    assert [line["kind"] for line in lines] == ["state", "state", "finished"]
    assert lines[1]["goals"] == ["p : Prop\nhp : p\n⊢ p"]


def test_bad_input_is_a_clear_error():
    code, _, err = steps("--theorem", "def x := 1")
    assert code == 2 and "must start with 'theorem'" in err
    code, _, err = steps("--set", "env.backend=coq", "--theorem", THM)
    assert code == 2 and "env.backend" in err
    proc = subprocess.run([sys.executable, "-m", "raylib.cli", "steps", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "JSON line per step" in proc.stdout
