"""The LeanDojo backend.

No traced repository and no Lean toolchain exist here, so the unit tests drive ``LeanDojoEnv`` against a
FAKE ``lean_dojo`` module: it has the same names and shapes as lean_dojo 4.x (``LeanGitRepo``, ``Theorem``,
``Dojo`` as a context manager yielding ``(dojo, TacticState)``, ``run_tac`` answering ``TacticState``,
``ProofFinished``, ``LeanError``, ``ProofGivenUp``, and raising ``DojoCrashError`` /
``DojoTacticTimeoutError``) over a scripted two-step proof. Like the real Dojo, each fake Dojo numbers its
own tactic states 0, 1, 2, ... and resolves a state by its id alone (the real one sends only the id to its
Lean process), so a state used in a Dojo that did not make it lands on an unrelated state, as it would
with real LeanDojo. The real test is skipped unless
RAYPROVER_LEANDOJO_{REPO,COMMIT,FILE,THEOREM,TACTICS} name a traced repository and a proof.
"""

import os
import types
from dataclasses import dataclass, field

import pytest

from raylib.env import Finished, GivenUp, LeanError, State, Theorem, Timeout
from raylib.env import leandojo as backend


def fake_lean_dojo(log, live=None):
    m = types.SimpleNamespace()
    live = set() if live is None else live

    @dataclass(frozen=True)
    class TacticState:
        pp: str
        id: int = field(compare=False)

    @dataclass(frozen=True)
    class ProofFinished:
        tactic_state_id: int
        message: str = ""

    @dataclass(frozen=True)
    class LeanError:
        error: str

    @dataclass(frozen=True)
    class ProofGivenUp:
        pass

    class DojoCrashError(Exception):
        pass

    class DojoTacticTimeoutError(Exception):
        pass

    script = {("⊢ p ∧ q", "constructor"): "case left\n⊢ p\n\ncase right\n⊢ q",
              ("⊢ p ∧ q", "refine ⟨hp, ?_⟩"): "⊢ q",
              ("⊢ q", "exact hq"): None,
              ("case left\n⊢ p\n\ncase right\n⊢ q", "exact hp"): "case right\n⊢ q",
              ("case right\n⊢ q", "exact hq"): None}

    class Dojo:
        def __init__(self, theorem, timeout=600):
            self.theorem, self.states = theorem, {}

        def _new(self, pp):
            st = TacticState(pp, len(self.states))  # ids count up per Dojo, as in lean_dojo
            self.states[st.id] = pp
            return st

        def __enter__(self):
            log.append("enter")
            live.add(self)
            return self, self._new("⊢ p ∧ q")

        def __exit__(self, *exc):
            log.append("exit")
            live.discard(self)

        def run_tac(self, state, tactic):
            log.append(tactic)
            if self not in live:
                raise DojoCrashError("the Dojo was closed")
            if tactic == "crash":
                raise DojoCrashError("Lean died")
            if tactic == "spin":
                raise DojoTacticTimeoutError()
            if tactic == "sorry_like":
                return ProofGivenUp()
            pp = self.states.get(state.id)  # only the id reaches Lean
            if pp is None:
                return LeanError(f"invalid state id {state.id}")
            key = (pp, tactic)
            if key not in script:
                return LeanError(f"unknown tactic {tactic}")
            nxt = script[key]
            return ProofFinished(len(self.states)) if nxt is None else self._new(nxt)

    m.TacticState, m.ProofFinished, m.LeanError, m.ProofGivenUp = TacticState, ProofFinished, LeanError, ProofGivenUp
    m.DojoCrashError, m.DojoTacticTimeoutError, m.Dojo = DojoCrashError, DojoTacticTimeoutError, Dojo
    m.LeanGitRepo = lambda url, commit: (url, commit)
    m.Theorem = lambda repo, path, name: (repo, path, name)
    m.live = live
    return m


@pytest.fixture
def env(monkeypatch):
    log = []
    fake = fake_lean_dojo(log)
    monkeypatch.setattr(backend, "import_lean_dojo", lambda: fake)
    e = backend.LeanDojoEnv("https://example.invalid/repo", "abc123")
    e.log, e.live = log, fake.live
    yield e
    e.close()


THM = Theorem("T.and_intro", "theorem and_intro (p q : Prop) (hp : p) (hq : q) : p ∧ q", file_path="T.lean")


def test_outcomes_convert(env):
    s0 = env.start(THM)
    assert isinstance(s0, State) and s0.goals == ("⊢ p ∧ q",)
    s1 = env.run_tac(s0, "constructor")
    assert s1.goals == ("case left\n⊢ p", "case right\n⊢ q") and s1.path == ("constructor",)
    assert isinstance(env.run_tac(s1, "exact hq"), LeanError)
    assert isinstance(env.run_tac(s1, "sorry_like"), GivenUp)
    assert isinstance(env.run_tac(s1, "sorry"), GivenUp) and "sorry" not in env.log  # filtered first
    assert isinstance(env.run_tac(s1, "spin"), Timeout)
    done = env.run_tac(env.run_tac(env.start(THM), "constructor"), "exact hp")
    assert isinstance(env.run_tac(done, "exact hq"), Finished)


def test_crash_then_replay(env):
    s1 = env.run_tac(env.start(THM), "constructor")
    assert isinstance(env.run_tac(s1, "crash"), LeanError)
    s2 = env.run_tac(s1, "exact hp")  # the Dojo was closed: rebuilt by replaying ["constructor"]
    assert isinstance(s2, State) and s2.goals == ("case right\n⊢ q",)
    assert env.log[-3:] == ["enter", "constructor", "exact hp"]


def test_verify_and_bad_theorem(env):
    assert env.verify(THM, ["constructor", "exact hp", "exact hq"]).ok
    v = env.verify(THM, ["constructor", "exact hp"])
    assert not v.ok and "open" in v.messages[0]
    assert not env.verify(THM, ["constructor", "sorry"]).ok
    out = env.start(Theorem("x", "theorem x : True"))
    assert isinstance(out, LeanError) and "file_path" in out.message


def test_a_state_is_only_used_in_the_dojo_that_made_it(monkeypatch):
    """Worker b gets a state made by worker a: b has its own state 1 (another goal), so the id alone
    would land on the wrong state; b must rebuild a's state by replaying its path."""
    log, live = [], set()
    monkeypatch.setattr(backend, "import_lean_dojo", lambda: fake_lean_dojo(log, live))
    a = backend.LeanDojoEnv("https://example.invalid/repo", "abc123")
    b = backend.LeanDojoEnv("https://example.invalid/repo", "abc123")
    try:
        s1 = a.run_tac(a.start(THM), "constructor")                       # a's state 1: two goals
        other = b.run_tac(b.start(THM), "refine ⟨hp, ?_⟩")                # b's state 1: ⊢ q
        assert s1.handle.state.id == other.handle.state.id == 1
        s2 = b.run_tac(s1, "exact hp")
        assert isinstance(s2, State) and s2.goals == ("case right\n⊢ q",)
        assert b.stats["replayed_tactics"] == 1
        # a state of a Dojo that was closed is rebuilt in the new one too (same theorem, same worker)
        a.release(THM)
        s3 = a.run_tac(s1, "exact hp")
        assert isinstance(s3, State) and s3.goals == ("case right\n⊢ q",)
        assert isinstance(a.run_tac(s3, "exact hq"), Finished)
    finally:
        a.close()
        b.close()
    assert not live


def test_release_closes_the_dojo_and_verify_leaves_the_search_alone(env):
    s1 = env.run_tac(env.start(THM), "constructor")
    assert len(env.live) == 1
    assert env.verify(THM, ["constructor", "exact hp", "exact hq"]).ok
    assert len(env.live) == 1                       # verify used a Dojo of its own and closed it
    before = env.stats["opens"]
    assert isinstance(env.run_tac(s1, "exact hp"), State) and env.stats["opens"] == before  # search Dojo kept
    env.release(THM)                                # the search ended unproved: no Lean process left
    assert not env.live and env.log[-1] == "exit"
    assert set(env.versions()) >= {"backend", "lean_dojo", "repo", "repo_commit"}
    assert env.versions()["repo_commit"] == "abc123"


REAL = {k: os.environ.get(f"RAYPROVER_LEANDOJO_{k}") for k in ("REPO", "COMMIT", "FILE", "THEOREM", "TACTICS")}


@pytest.mark.leandojo
@pytest.mark.skipif(not all(REAL.values()), reason="needs LeanDojo with a traced repository: set "
                    "RAYPROVER_LEANDOJO_REPO, _COMMIT, _FILE, _THEOREM and _TACTICS (tactics separated by ';;')")
def test_real_leandojo():
    e = backend.LeanDojoEnv(REAL["REPO"], REAL["COMMIT"])
    try:
        thm = Theorem(REAL["THEOREM"], f"theorem {REAL['THEOREM']} : True", file_path=REAL["FILE"])
        assert e.verify(thm, REAL["TACTICS"].split(";;")).ok
    finally:
        e.close()
