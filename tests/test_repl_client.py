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
