"""The Lean REPL client driven against the built-in server (a real process speaking the REPL protocol).

Faults are injected by the server's ``--faults`` tactics: ``fault_sleep S``, ``fault_exit``,
``fault_garbage``, ``fault_truncate`` and ``fault_alloc MB``.
"""

import os
import signal
import time

import pytest

from raylib.env import Finished, GivenUp, LeanError, State, Theorem, Timeout
from raylib.env.repl import LeanReplEnv, ReplSettings
from raylib.env import builtin_command

AND_SWAP = Theorem("and_swap", "theorem and_swap (p q : Prop) (h : p ∧ q) : q ∧ p")
IMP_SELF = Theorem("imp_self", "theorem imp_self (p : Prop) : p → p")


def make(timeout=5.0, faults=True, **kw) -> LeanReplEnv:
    return LeanReplEnv(ReplSettings(command=builtin_command(faults), timeout_s=timeout, **kw))


@pytest.fixture
def env():
    e = make()
    yield e
    e.close()


def test_prove_step_by_step_and_verify(env):
    s0 = env.start(AND_SWAP)
    assert isinstance(s0, State) and s0.path == ()
    assert s0.goals == ("p q : Prop\nh : p ∧ q\n⊢ q ∧ p",)
    s1 = env.run_tac(s0, "constructor")
    assert isinstance(s1, State) and len(s1.goals) == 2
    assert s1.goals[0].startswith("case left") and s1.goals[0].endswith("⊢ q")
    s2 = env.run_tac(s1, "exact h.2")
    assert isinstance(s2, State) and s2.goals[0].endswith("⊢ p")
    done = env.run_tac(s2, "exact h.1")
    assert isinstance(done, Finished) and done.path == ("constructor", "exact h.2", "exact h.1")
    v = env.verify(AND_SWAP, done.path)
    assert v.ok, v.messages
    # States are immutable: branching again from s0 works.
    assert isinstance(env.run_tac(s0, "exact ⟨h.2, h.1⟩"), Finished)


def test_errors_sorry_and_verification_failures(env):
    s0 = env.start(AND_SWAP)
    err = env.run_tac(s0, "exact h")
    assert isinstance(err, LeanError) and err.message
    assert isinstance(env.run_tac(s0, "frobnicate"), LeanError)
    assert isinstance(env.run_tac(s0, "sorry"), GivenUp)  # refused by the filter before the REPL
    v = env.verify(AND_SWAP, ["sorry"])
    assert not v.ok and "sorry" in v.messages[0]
    v = env.verify(AND_SWAP, ["constructor", "exact h.2"])
    assert not v.ok and any("unsolved goals" in m for m in v.messages)
    bad = env.start(Theorem("bad", "theorem bad (p : Prop) : p ∧"))
    assert isinstance(bad, LeanError)


def test_whole_proof_verification_rejects_sorry_even_past_the_filter():
    """With the filter's give-up words emptied, the REPL's own sorry report still fails verification."""
    from raylib.env.filter import TacticFilter

    class NoFilter(TacticFilter):
        def check(self, tactic):
            from raylib.env.filter import Verdict
            return Verdict(True)

    e = LeanReplEnv(ReplSettings(command=builtin_command(False)), NoFilter())
    try:
        v = e.verify(AND_SWAP, ["constructor", "sorry", "exact h.1"])
        assert not v.ok and any("sorry" in m for m in v.messages)
        out = e.run_tac(e.start(IMP_SELF), "sorry")
        assert isinstance(out, GivenUp)
    finally:
        e.close()


def test_hung_tactic_times_out_and_next_request_succeeds():
    env = make(timeout=1.0)
    try:
        s0 = env.start(AND_SWAP)
        pid = env.proc.pid
        t = time.monotonic()
        out = env.run_tac(s0, "fault_sleep 30")
        took = time.monotonic() - t
        assert isinstance(out, Timeout) and took < 1.0 + 2.0
        # The next request succeeds, on a fresh process, with the old state rebuilt by replay.
        s1 = env.run_tac(s0, "constructor")
        assert isinstance(s1, State) and env.proc.pid != pid
    finally:
        env.close()


def test_killed_process_is_restarted_and_live_state_rebuilt(env):
    s0 = env.start(AND_SWAP)
    s1 = env.run_tac(s0, "constructor")
    s2 = env.run_tac(s1, "exact h.2")
    pid = env.proc.pid
    os.kill(pid, signal.SIGKILL)
    done = env.run_tac(s2, "exact h.1")
    assert isinstance(done, Finished)
    assert env.proc.pid != pid and env.restarts == 1


def test_process_that_exits_while_answering_gives_an_error_not_a_hang(env):
    s0 = env.start(AND_SWAP)
    out = env.run_tac(s0, "fault_exit")
    assert isinstance(out, LeanError) and "exit code 3" in out.message
    assert isinstance(env.run_tac(s0, "constructor"), State)


def test_garbage_output_gives_a_clear_error_and_a_restart(env):
    s0 = env.start(AND_SWAP)
    out = env.run_tac(s0, "fault_garbage")
    assert isinstance(out, LeanError) and "malformed JSON" in out.message
    assert isinstance(env.run_tac(s0, "constructor"), State)


def test_truncated_answer_is_a_timeout_not_a_hang():
    env = make(timeout=1.0)
    try:
        s0 = env.start(AND_SWAP)
        t = time.monotonic()
        out = env.run_tac(s0, "fault_truncate")
        assert isinstance(out, Timeout) and time.monotonic() - t < 3.0
        assert isinstance(env.run_tac(s0, "constructor"), State)
    finally:
        env.close()


def test_memory_cap_stops_a_runaway_process():
    env = make(memory_limit_gb=1.0)
    try:
        s0 = env.start(AND_SWAP)
        out = env.run_tac(s0, "fault_alloc 2048")
        assert isinstance(out, LeanError) and "died" in out.message
        small = env.run_tac(s0, "fault_alloc 16")
        assert isinstance(small, State)
    finally:
        env.close()


def test_restart_after_request_budget_replays_states():
    env = make(max_requests=3)
    try:
        s = env.start(AND_SWAP)
        pids = {env.proc.pid}
        for tac in ["constructor", "exact h.2", "exact h.1"]:
            s = env.run_tac(s, tac)
            pids.add(env.proc.pid)
        assert isinstance(s, Finished)
        assert len(pids) >= 2 and env.restarts >= 1
    finally:
        env.close()


def test_states_move_between_clients():
    """A state from one worker's client is rebuilt by another (as in a pool of Lean workers)."""
    a, b = make(), make()
    try:
        s1 = a.run_tac(a.start(AND_SWAP), "constructor")
        assert isinstance(b.run_tac(s1, "exact h.2"), State)
    finally:
        a.close()
        b.close()


def test_header_failure_is_reported():
    env = LeanReplEnv(ReplSettings(command=builtin_command(False), header="import Mathlib"))
    try:
        out = env.start(AND_SWAP)
        assert isinstance(out, LeanError) and "header" in out.message
    finally:
        env.close()


def test_missing_program_is_a_clear_error():
    env = LeanReplEnv(ReplSettings(command=("no-such-lean-repl-binary",)))
    out = env.start(AND_SWAP)
    assert isinstance(out, LeanError) and "no-such-lean-repl-binary" in out.message


# -- issue 10: rebuilds, replay failures, the memory cap, leases and versions ----------------------

def test_unknown_proof_state_rebuilds_the_state_before_the_retry(env):
    """The REPL forgets its states (``fault_forget``); the retry replays the path instead of reusing the id."""
    s1 = env.run_tac(env.start(AND_SWAP), "constructor")
    env.proc.request({"tactic": "fault_forget", "proofState": 0}, 5.0)  # the server drops every state
    opens = env.stats["opens"]
    s2 = env.run_tac(s1, "exact h.2")
    assert isinstance(s2, State) and s2.goals[0].endswith("⊢ p")
    assert env.stats["states_lost"] == 1 and env.stats["opens"] == opens + 1
    assert env.stats["replayed_tactics"] == 1 and env.restarts == 0  # same process, state rebuilt


def test_a_timeout_while_replaying_is_a_replay_failure_not_the_tactics_timeout():
    slow, quick = make(timeout=5.0), make(timeout=0.5)
    try:
        s1 = slow.run_tac(slow.start(AND_SWAP), "fault_sleep 1.0")  # a step that takes 1 s (then skip)
        assert isinstance(s1, State)
        out = quick.run_tac(s1, "constructor")  # rebuilding s1 here replays the 1 s step: past 0.5 s
        assert isinstance(out, LeanError) and out.infra and out.message.startswith("replay failed")
        assert "no answer within 0.5 s" in out.message
    finally:
        slow.close()
        quick.close()


def test_memory_cap_holds_from_the_first_instruction(monkeypatch, tmp_path):
    """The child reads its own RLIMIT_AS before doing anything else; a cap set after the start (the old
    ``prlimit``, disabled here so no race can hide it) would not be there yet."""
    import resource
    import sys

    from raylib.env.repl_process import ReplProcess

    def no_prlimit(*a, **k):
        raise OSError("prlimit disabled by the test")

    monkeypatch.setattr(resource, "prlimit", no_prlimit, raising=False)
    script = ("import json, resource, sys\nsoft = resource.getrlimit(resource.RLIMIT_AS)[0]\n"
              "sys.stdin.readline()\nprint(json.dumps({'as': soft}))\nprint()\nsys.stdout.flush()\n"
              "sys.stdin.read()\n")
    p = ReplProcess([sys.executable, "-c", script], memory_limit_bytes=3 * 2**30)
    try:
        p.start()
        assert p.request({"cmd": ""}, 10.0) == {"as": 3 * 2**30}
    finally:
        p.kill()


def test_rebuild_replays_from_the_longest_prefix_held():
    a, b = make(), make()
    try:
        s1 = a.run_tac(a.start(AND_SWAP), "constructor")
        s2 = a.run_tac(s1, "exact h.2")
        b.run_tac(b.start(AND_SWAP), "constructor")       # b holds the prefix ("constructor",)
        before = dict(b.stats)
        done = b.run_tac(s2, "exact h.1")
        assert isinstance(done, Finished)
        assert b.stats["replayed_tactics"] - before["replayed_tactics"] == 1   # only "exact h.2"
        assert b.stats["opens"] == before["opens"]                           # no reopening
    finally:
        a.close()
        b.close()


def test_release_forgets_the_theorem_and_recycles_an_idle_process():
    env = make(recycle_states=4)
    try:
        s = env.start(AND_SWAP)
        for tac in ("constructor", "exact h.2"):
            s = env.run_tac(s, tac)
        other = env.start(IMP_SELF)
        for _ in range(3):
            assert isinstance(env.run_tac(other, "intro h"), State)
        pid = env.proc.pid
        env.release(AND_SWAP)                          # IMP_SELF is still live: no recycling
        assert not any(k[0] == AND_SWAP for k in env._handles) and env.proc.pid == pid
        assert env.stats["recycles"] == 0
        env.release(IMP_SELF)                          # idle and past 4 states: recycled
        assert env._handles == {} and not env.proc.alive and env.stats["recycles"] == 1
        out = env.run_tac(s, "exact h.1")              # a released state still works: rebuilt by replay
        assert isinstance(out, Finished) and env.proc.pid != pid
        assert {"opens", "replayed_tactics", "requests", "restarts"} <= set(env.stats)
    finally:
        env.close()


def test_versions_builtin_and_verification_axioms(env):
    from raylib.env.versions import rayprover_version

    assert env.versions()["backend"] == "lean_repl" and env.versions()["repl_commit"] is None  # no cwd: no project
    builtin = LeanReplEnv(ReplSettings(command=builtin_command(False), backend="builtin"))
    try:
        assert builtin.versions() == {"backend": "builtin", "version": rayprover_version()}
        v = builtin.verify(AND_SWAP, ["exact ⟨h.2, h.1⟩"])
        assert v.ok and v.axioms == ()
        em = Theorem("em_or", "theorem em_or (p : Prop) : p ∨ ¬p")
        v = builtin.verify(em, ["exact Classical.em p"])
        assert v.ok and v.axioms == ("propext", "Classical.choice", "Quot.sound")
    finally:
        builtin.close()


def test_versions_of_a_lean_project(tmp_path, monkeypatch):
    """A project with a ``lake-manifest.json`` (new and old formats), a FAKE ``lean`` on PATH and a git head."""
    import json
    import subprocess

    from raylib.env.versions import repl_versions

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lean = bin_dir / "lean"
    lean.write_text("#!/bin/sh\necho 'Lean (version 4.9.0, x86_64-unknown-linux-gnu, commit 8f9843a4a5fe, Release)'\n")
    lean.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "lake-manifest.json").write_text(json.dumps({"version": 7, "packages": [
        {"type": "git", "name": "mathlib", "rev": "a" * 40, "url": "https://github.com/leanprover-community/mathlib4"},
        {"type": "git", "name": "REPL", "rev": "b" * 40, "url": "https://github.com/leanprover-community/repl"}]}))
    got = repl_versions("lean_repl", ["lake", "exe", "repl"], str(proj))
    assert got["lean"].startswith("Lean (version 4.9.0") and got["mathlib_commit"] == "a" * 40
    assert got["repl_commit"] == "b" * 40 and got["backend"] == "lean_repl"
    # the REPL's own checkout: old manifest format, the REPL commit is the git head
    (proj / "lake-manifest.json").write_text(json.dumps({"version": 4, "packages": [
        {"git": {"name": "mathlib", "rev": "c" * 40, "url": "u"}}]}))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", str(proj)], check=True)
    subprocess.run(git + ["-C", str(proj), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(proj), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    got = repl_versions("lean_repl", ["lake", "exe", "repl"], str(proj))
    assert got["mathlib_commit"] == "c" * 40 and got["repl_commit"] == head
