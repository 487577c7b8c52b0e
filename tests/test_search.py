"""Best-first search against the real built-in environment (REPL protocol, two server processes).

Pure asyncio, in-process, no Ray. Every generator and value function here is a test double, not a model.
"""

from __future__ import annotations

import asyncio
import tempfile
import itertools
import time

import pytest

from raylib.config import load_config
from raylib.data.trajectory import read_trajectory, write_trajectory
from raylib.configbase import ConfigError
from raylib.env import Verification, make_env
from raylib.env.builtin.corpus import oracle_proof, textbook_theorems
from raylib.models.generator import Candidate
from raylib.search.best_first import BestFirstSearch, SearchResult
from raylib.search.config import DEFAULT_PROBE_TACTICS, SearchSection
from raylib.search.env import ThreadedEnv

THEOREMS = {t.name: t for t in textbook_theorems()}
VALID_DISTRACTORS = ("exfalso", "by_contra hx")           # accepted by Lean, lead nowhere useful
DISTRACTORS = VALID_DISTRACTORS + ("exact nonsense", "apply h99", "skip")


@pytest.fixture(scope="module")
def env():
    pool = ThreadedEnv.from_factory(lambda: make_env(load_config(None).env), max_workers=2)
    yield pool
    pool.close()


def cfg(**kw) -> SearchSection:
    return SearchSection(**{"timeout_per_theorem": 30.0, **kw})


async def oracle_steps(env, theorem) -> dict[str, str]:
    """Goal text → the oracle's next tactic, along the oracle's proof of ``theorem``."""
    state, steps = await env.start(theorem), {}
    for tac in oracle_proof(theorem.statement):
        steps[state.text] = tac
        state = await env.run_tac(state, tac)
    assert state.kind == "finished"
    return steps


class OracleGenerator:
    """Test double: proposes the oracle's next tactic (on states of the oracle's path) among distractors."""

    def __init__(self, steps: dict[str, str], good_lp: float = -0.01, bad_lp: float = -5.0,
                 distractors=DISTRACTORS):
        self.steps, self.good_lp, self.bad_lp, self.distractors = steps, good_lp, bad_lp, distractors
        self.calls = 0

    async def propose(self, state, n, temperature, max_tokens):
        self.calls += 1
        out = [Candidate(d, self.bad_lp - 0.1 * i) for i, d in enumerate(self.distractors)]
        if state in self.steps:
            out.insert(0, Candidate(self.steps[state], self.good_lp))
        return out[:n]


class BadGenerator:
    """Test double: only useless tactics, each a fresh ``have`` (a new state every time) or an error."""

    def __init__(self, delay: float = 0.0):
        self.counter, self.delay = itertools.count(), delay

    async def propose(self, state, n, temperature, max_tokens):
        if self.delay:
            await asyncio.sleep(self.delay)
        return [Candidate(f"have hb{next(self.counter)} : True := trivial", -1.0), Candidate("exact nonsense", -2.0)]


class FixedGenerator:
    """Test double: the same fixed tactics for every state."""

    def __init__(self, tactics=()):
        self.tactics = tactics

    async def propose(self, state, n, temperature, max_tokens):
        return [Candidate(t, -1.0) for t in self.tactics]


class RaisingGenerator(OracleGenerator):
    """Test double: the oracle generator, except that it raises on the given states."""

    def __init__(self, steps, poison: set[str]):
        super().__init__(steps)
        self.poison = poison

    async def propose(self, state, n, temperature, max_tokens):
        if state in self.poison:
            raise RuntimeError("generator broke")
        return await super().propose(state, n, temperature, max_tokens)


class PathValue:
    """Test double value function: energy 0 on the oracle's path states, 5 elsewhere; records what it saw."""

    def __init__(self, path_texts):
        self.path_texts, self.seen = set(path_texts), []

    async def energies(self, states):
        self.seen.extend(states)
        return [0.0 if s in self.path_texts else 5.0 for s in states]


def check_proof_path(r: SearchResult) -> None:
    rows = r.rows("run0", 3, config_hash="cfg", generator_fingerprint="gen@1")
    assert len(rows) == r.nodes_created
    with tempfile.TemporaryDirectory() as d:  # the rows fit the trajectory parquet schema
        assert read_trajectory(write_trajectory(rows, d)).num_rows == len(rows)
    by_id = {row["node_id"]: row for row in rows}
    on_path = [row for row in rows if row["on_proof_path"]]
    assert len(on_path) == len(r.proof) + 1 == r.proof_depth + 1
    last = max(on_path, key=lambda row: row["depth"])
    chain, row = [], last
    while row["parent_id"] is not None:
        chain.append(row["tactic"])
        row = by_id[row["parent_id"]]
    assert tuple(reversed(chain)) == r.proof
    assert last["outcome"] == "finished" and last["energy"] is None and last["state"] == ""
    assert {row["node_id"] for row in on_path} == {row["node_id"] for row in rows if row["on_proof_path"]}
    assert all(row["run"] == "run0" and row["iteration"] == 3 and row["generator_fingerprint"] == "gen@1"
               and row["theorem"] == r.theorem.name for row in rows)


# (a) ------------------------------------------------------------------------------------------------
def test_oracle_guided_search_proves_textbook_theorems(env):
    names = ["and_comm", "or_comm", "iff_assoc", "peirce", "de_morgan_not_and_classical", "material_implication",
             "ex_falso", "or_distrib_and"]

    async def go():
        steps = {}
        for name in names:
            steps.update(await oracle_steps(env, THEOREMS[name]))
        search = BestFirstSearch(cfg(batch_expansion_size=4, max_nodes=400), env, OracleGenerator(steps))
        return await search.prove_many([THEOREMS[n] for n in names], concurrency=2)

    results = asyncio.run(go())
    assert [r.theorem.name for r in results] == names
    for r in results:
        assert r.proved and r.verified and r.error is None and r.stop_reason == "proved", r.summary()
        assert r.proof == tuple(oracle_proof(r.theorem.statement))
        assert r.summary()["probe_steps"] == 0  # the generator proposed every step (a probe it proposed counts as its)
        assert r.verify_messages == () and r.failed_verifications == ()
        assert 0 < r.lean_pass_rate < 1 and r.duplicate_states > 0  # errors and `skip` among the distractors
        assert len(r.unique_tactics_per_expansion) == len(r.children_per_expansion) == r.nodes_expanded
        assert r.ebm_s == 0 and r.generate_s >= 0 and r.lean_s > 0
        assert abs(r.generate_s + r.lean_s + r.ebm_s + r.other_s - r.wall_s) < 1e-6
        check_proof_path(r)
    assert results[names.index("iff_assoc")].proof_depth == 69


# (b) ------------------------------------------------------------------------------------------------
def test_bad_generator_exhausts_max_nodes(env):
    search = BestFirstSearch(cfg(max_nodes=20, probe_tactics=[]), env, BadGenerator())
    r = asyncio.run(search.prove(THEOREMS["and_comm"]))
    assert not r.proved and r.error is None and r.stop_reason == "budget"
    assert r.nodes_expanded == 20 and r.proof == () and r.proof_depth is None
    assert r.lean_pass_rate == 0.5 and dict(r.outcome_counts) == {"state": 20, "error": 20}
    assert not any(row["on_proof_path"] for row in r.rows("run", 0))


# (c) ------------------------------------------------------------------------------------------------
def test_generator_failure_is_recorded_for_that_theorem_only(env):
    names = ["and_comm", "contrapositive", "or_comm"]

    async def go():
        steps = {}
        for name in names:
            steps.update(await oracle_steps(env, THEOREMS[name]))
        poison = {(await env.start(THEOREMS["contrapositive"])).text}
        search = BestFirstSearch(cfg(), env, RaisingGenerator(steps, poison))
        return await search.prove_many([THEOREMS[n] for n in names], concurrency=3)

    ok1, bad, ok2 = asyncio.run(go())
    assert ok1.proved and ok2.proved and ok1.error is None and ok2.error is None
    assert not bad.proved and bad.stop_reason == "error" and "generator broke" in bad.error
    assert bad.nodes_created == 1 and len(bad.rows("run", 0)) == 1


# (d) ------------------------------------------------------------------------------------------------
def test_timeout_per_theorem_is_respected(env):
    search = BestFirstSearch(cfg(timeout_per_theorem=1.0, max_nodes=10_000, batch_expansion_size=1),
                             env, BadGenerator(delay=0.3))
    t = time.monotonic()
    r = asyncio.run(search.prove(THEOREMS["and_comm"]))
    assert time.monotonic() - t < 1.8
    assert not r.proved and r.error is None and r.stop_reason == "timeout"
    assert 2 <= r.nodes_expanded <= 4 and r.generate_s > 0.8 and r.generate_s > 5 * r.lean_s


# (e) ------------------------------------------------------------------------------------------------
def test_value_function_reorders_search_and_never_sees_finished_states(env):
    thm = THEOREMS["and_comm"]

    async def go():
        steps = await oracle_steps(env, thm)
        out = []
        for beta in (0.0, 1.0):
            gen = OracleGenerator(steps, good_lp=-1.0, bad_lp=-0.5, distractors=VALID_DISTRACTORS)
            value = PathValue(steps)
            search = BestFirstSearch(cfg(beta=beta, max_nodes=300, probe_tactics=[]), env, gen, value)
            out.append((await search.prove(thm), value))
        return out

    (r0, v0), (r1, v1) = asyncio.run(go())
    assert r1.proved and r1.verified
    assert r1.nodes_expanded < r0.nodes_expanded
    assert v0.seen == [] and r0.ebm_top1_total == 0 and all(n.energy is None for n in r0.tree)
    open_texts = {n.state for n in r1.tree if n.outcome == "state"}
    assert v1.seen and all(s and s in open_texts for s in v1.seen)
    assert all(n.energy is None for n in r1.tree if n.outcome != "state")
    assert all(n.energy is not None for n in r1.tree if n.expanded)  # the last step's states skip the EBM
    assert r1.ebm_top1_total > 0 and r1.ebm_top1_rate == 1.0
    assert r1.ebm_s >= 0 and r1.summary()["ebm_top1_rate"] == 1.0
    check_proof_path(r1)


# (f) ------------------------------------------------------------------------------------------------
def test_state_dedupe_makes_one_node_for_equal_goals(env):
    thm = THEOREMS["imp_self"]
    gen = FixedGenerator(["intro h", "intros h", "skip"])
    r = asyncio.run(BestFirstSearch(cfg(max_nodes=1, probe_tactics=[]), env, gen).prove(thm))
    assert r.nodes_created == 2 and r.children_per_expansion == (1,) and r.duplicate_states == 2
    r = asyncio.run(BestFirstSearch(cfg(max_nodes=1, probe_tactics=[], dedupe_states=False), env, gen).prove(thm))
    assert r.nodes_created == 4 and r.duplicate_states == 0


def test_tactic_dedupe_per_node(env):
    thm = THEOREMS["imp_self"]
    gen = FixedGenerator(["intro h", " intro h", "intro h\n"])
    r = asyncio.run(BestFirstSearch(cfg(max_nodes=1, probe_tactics=["intro h", "intro"]), env, gen).prove(thm))
    assert r.unique_tactics_per_expansion == (2,) and r.tactics_run == 2
    assert [(n.tactic, n.probe) for n in r.tree[1:]] == [("intro h", False), ("intro", True)]
    r = asyncio.run(BestFirstSearch(cfg(max_nodes=1, probe_tactics=[], dedupe_tactics=False),
                                    env, gen).prove(thm))
    assert r.tactics_run == 3 and r.duplicate_states == 2


# (g) ------------------------------------------------------------------------------------------------
def test_probe_tactics_alone_prove_easy_theorems(env):
    names = ["imp_self", "ex_falso", "explosion", "imp_intro_const", "double_negation_intro"]
    search = BestFirstSearch(cfg(max_nodes=50), env, FixedGenerator(["exact nonsense"]))
    results = asyncio.run(search.prove_many([THEOREMS[n] for n in names], concurrency=2))
    for r in results:
        assert r.proved and r.verified, r.summary()
        assert set(r.proof) <= set(DEFAULT_PROBE_TACTICS)
        assert all(n.probe for n in r.tree[1:] if n.on_proof_path)
        assert r.summary()["probe_steps"] == len(r.proof) > 0
        check_proof_path(r)


# verification failure ------------------------------------------------------------------------------
class FirstVerifyFails:
    """Test double around the real env: the first whole-proof check fails, later ones are real."""

    def __init__(self, env):
        self.env, self.failed = env, False

    async def start(self, theorem):
        return await self.env.start(theorem)

    async def run_tac(self, state, tactic):
        return await self.env.run_tac(state, tactic)

    async def verify(self, theorem, tactics):
        if not self.failed:
            self.failed = True
            return Verification(False, ("injected failure",), "")
        return await self.env.verify(theorem, tactics)


def test_failed_verification_is_recorded_and_search_goes_on(env):
    search = BestFirstSearch(cfg(max_nodes=50), FirstVerifyFails(env), FixedGenerator())
    r = asyncio.run(search.prove(THEOREMS["imp_self"]))
    assert r.proved and r.verified
    assert len(r.failed_verifications) == 1 and r.failed_verifications[0][1] == ("injected failure",)
    rows = r.rows("run", 0)
    assert [row["outcome"] for row in rows].count("verify_failed") == 1
    with tempfile.TemporaryDirectory() as d:  # such a tree is written like any other
        assert read_trajectory(write_trajectory(rows, d)).column("outcome").to_pylist().count("verify_failed") == 1
    assert r.failed_verifications[0][0] != r.proof


def test_verify_off_accepts_finished_proof_unverified(env):
    r = asyncio.run(BestFirstSearch(cfg(verify=False), env, FixedGenerator()).prove(THEOREMS["imp_self"]))
    assert r.proved and not r.verified and r.proof_depth == 2


def test_start_failure_is_the_theorems_outcome_not_an_exception(env):
    from raylib.env.theorems import Theorem
    bad = Theorem(name="bad", statement="theorem bad (p : Prop) : p ∧∧ q")
    r = asyncio.run(BestFirstSearch(cfg(), env, FixedGenerator()).prove(bad))
    assert not r.proved and r.stop_reason == "start_failed" and r.error is None and r.nodes_created == 0
    assert r.start_message.startswith("error:") and r.summary()["start_message"] == r.start_message


# config ---------------------------------------------------------------------------------------------
def test_search_config_defaults_and_validation():
    c = load_config(None).search
    assert c == SearchSection() and c.verify and c.dedupe_states and c.dedupe_tactics
    assert c.probe_tactics == list(DEFAULT_PROBE_TACTICS)
    assert load_config(None, ["search.beta=0.5", "search.probe_tactics=[rfl, ' rfl ']"]).search.probe_tactics == ["rfl"]
    for bad in ("search.llm_temperature=0", "search.max_nodes=0", "search.probe_tactics=['']", "search.nope=1",
                "search.probe_logprob=1"):
        with pytest.raises(ConfigError):
            load_config(None, [bad])
