"""Lean leases on a real local Ray: LeanWorker actors host the built-in environment (a real process speaking
the Lean REPL protocol, with its fault-injection tactics on). A search leases one worker; a killed worker
moves the lease and the new worker rebuilds the state from the longest prefix it holds; a cancelled or
timed-out search leaves no queued work on the workers and its proof states are released."""

import asyncio
import os
import signal
import time

import pytest

from raylib.config import load_config
from raylib.env.builtin.corpus import oracle_proof, textbook_theorems
from raylib.models.generator import Candidate

ray = pytest.importorskip("ray")

THM = {t.name: t for t in textbook_theorems()}["imp_distrib_s"]
STEPS = oracle_proof(THM.statement)  # 6 tactics


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def workers(n, *extra):
    from actors.lean_worker import lean_worker_pool

    cfg = load_config(None, ["env.builtin.faults=true", "workers.lean_cpus=0.1", *extra])
    ws = lean_worker_pool(cfg, n)
    ray.get([w.ping.remote() for w in ws])
    return cfg, ws


def _gone(pid, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_search_leases_one_worker_and_a_killed_worker_moves_the_lease(local_ray):
    from actors.pools import RayEnvPool

    _, ws = workers(2)
    pool = RayEnvPool(ws, retry_delay_s=0.05)

    async def go():
        lease = await pool.session(THM)
        first = lease.index
        state = await lease.start(THM)
        for tac in STEPS[:3]:
            [state] = await lease.run_tacs(state, [tac])
        before = [ray.get(w.stats.remote()) for w in ws]
        old_actor = ray.get(ws[first].actor_pid.remote())
        old_repl = ray.get(ws[first].process_pid.remote())
        os.kill(old_actor, signal.SIGKILL)
        assert _gone(old_actor) and _gone(old_repl)  # the actor and its REPL process really died
        [nxt] = await lease.run_tacs(state, [STEPS[3]])  # moves the lease; the new worker rebuilds `state`
        moved = lease.index
        after_move = ray.get(ws[moved].stats.remote())
        new_actor = ray.get(ws[moved].actor_pid.remote())
        [sib] = await lease.run_tacs(state, ["exact nonsense"])  # same prefix again: nothing replayed
        rest = nxt
        for tac in STEPS[4:]:
            [rest] = await lease.run_tacs(rest, [tac])
        verdict = await lease.verify(THM, list(STEPS))
        end = ray.get(ws[moved].stats.remote())
        await lease.close()
        released = ray.get(ws[moved].stats.remote())
        return first, moved, before, after_move, end, released, nxt, sib, rest, verdict, lease.moves, old_actor, new_actor

    (first, moved, before, after_move, end, released, nxt, sib, rest, verdict, moves, old_actor,
     new_actor) = asyncio.run(go())
    other = 1 - first
    # until the kill, every call went to the leased worker: the other one opened nothing
    assert before[first]["executed"] == 4 and before[other]["executed"] == 0
    assert before[other]["env"]["opens"] == 0
    # Ray restarts a killed LeanWorker (max_restarts=-1). When the next call fails, the lease moves to the
    # other worker; when Ray has already restarted the killed one, the call lands on that fresh process.
    # Either way a process that never held the state serves the search from now on.
    if moves:
        assert moved == other and moves == 1 and pool.lease_moves == 1
    else:
        assert moved == first and new_actor != old_actor and pool.lease_moves == 0
    # rebuilt from what the new worker held (nothing): one open, the 3 tactics of the path, once
    env = after_move["env"]
    assert env["opens"] == 1 and env["replays"] == 1 and env["replayed_tactics"] == 3
    assert nxt.kind == "state" and nxt.path == tuple(STEPS[:4]) and sib.kind == "error"
    assert end["env"]["replayed_tactics"] == 3 and end["env"]["opens"] == 1  # later calls replayed nothing
    assert rest.kind == "finished" and verdict.ok
    # released: the lease is gone and the theorem's states with it
    assert released["leases"] == {} and released["released"] == 1 and released["held_states"] == 0
    for w in ws:
        ray.kill(w)


def test_leases_go_to_the_least_loaded_worker_under_a_cap(local_ray):
    from actors.pools import RayEnvPool

    _, ws = workers(2, "workers.leases_per_worker=2")
    pool = RayEnvPool(ws)
    thms = [t for t in textbook_theorems()[:5]]

    async def go():
        leases = [await pool.session(t) for t in thms[:4]]
        counts = [ray.get(w.lease_count.remote()) for w in ws]
        waiting = asyncio.ensure_future(pool.session(thms[4]))  # both workers full: it waits
        await asyncio.sleep(0.5)
        was_waiting = not waiting.done()
        await leases[0].close()
        fifth = await waiting
        await asyncio.gather(*[le.close() for le in leases[1:]], fifth.close())
        return leases, counts, was_waiting, fifth

    leases, counts, was_waiting, fifth = asyncio.run(go())
    assert counts == [2, 2] and sorted(le.index for le in leases) == [0, 0, 1, 1]
    assert was_waiting and fifth.index == leases[0].index and fifth.wait_s >= 0.4
    assert [ray.get(w.lease_count.remote()) for w in ws] == [0, 0]
    for w in ws:
        ray.kill(w)


class SlowGenerator:
    """Test double generator: four distinct slow tactics (the built-in's fault_sleep) at every node."""

    async def propose(self, state, n, temperature, max_tokens):
        return [Candidate(f"fault_sleep 0.{5 + i}", -1.0) for i in range(4)]


def test_timed_out_search_leaves_no_queued_work_and_releases_its_states(local_ray):
    from actors.pools import RayEnvPool
    from raylib.search.best_first import BestFirstSearch
    from raylib.search.config import SearchSection

    _, ws = workers(1)
    pool = RayEnvPool(ws)
    search = BestFirstSearch(SearchSection(timeout_per_theorem=1.0, batch_expansion_size=1, probe_tactics=[],
                                           max_nodes=50), pool, SlowGenerator())
    r = asyncio.run(search.prove(THM))
    assert r.stop_reason == "timeout"
    # one node's 4 tactics are one call (~2.6 s): the deadline falls inside it. Calls of the next step were
    # never sent; nothing of this lease may run after the search returned.
    ray.get(ws[0].ping.remote())  # answers once everything queued before it ran or was cancelled
    s = ray.get(ws[0].stats.remote())
    assert s["leases"] == {} and s["held_states"] == 0
    executed_then = s["executed"]
    time.sleep(0.5)
    assert ray.get(ws[0].stats.remote())["executed"] == executed_then

    # several calls queued at once on the lease (a batch of 4 nodes): cancellation reaches the queue
    search = BestFirstSearch(SearchSection(timeout_per_theorem=1.0, batch_expansion_size=4, probe_tactics=[],
                                           max_nodes=50, num_candidates=4), pool, _OneSlowTactic())
    before = ray.get(ws[0].stats.remote())
    r = asyncio.run(search.prove(THM))
    ray.get(ws[0].ping.remote())
    after = ray.get(ws[0].stats.remote())
    assert r.stop_reason == "timeout"
    ran = after["executed"] - before["executed"]
    skipped = after["skipped"] - before["skipped"]
    assert r.nodes_expanded == 5
    sent = 1 + r.nodes_expanded  # start + one call per expanded node
    # the calls still queued at the deadline did not run on the worker
    assert ran < sent, (ran, sent, skipped)
    assert after["leases"] == {} and after["held_states"] == 0
    for w in ws:
        ray.kill(w)


class _OneSlowTactic:
    """Test double generator: at the root four tactics that each make a new state; at every other node
    one slow tactic. So the second step expands four nodes at once: four calls queued on one lease."""

    def __init__(self):
        self.n = 0

    async def propose(self, state, n, temperature, max_tokens):
        self.n += 1
        if self.n == 1:
            return [Candidate(f"have h{i} : True := trivial", -1.0) for i in range(4)]
        return [Candidate("fault_sleep 0.6", -1.0)]


class _Fixed:
    """Test double generator: the same tactics everywhere."""

    def __init__(self, tactics):
        self.tactics = tactics

    async def propose(self, state, n, temperature, max_tokens):
        return [Candidate(t, -1.0) for t in self.tactics]


def test_waiting_for_a_lease_is_queue_time_not_search_time(local_ray):
    from actors.pools import RayEnvPool
    from raylib.env import Theorem
    from raylib.search.best_first import BestFirstSearch
    from raylib.search.config import SearchSection

    _, ws = workers(1, "workers.leases_per_worker=1")
    pool = RayEnvPool(ws)
    hog = BestFirstSearch(SearchSection(timeout_per_theorem=1.5, batch_expansion_size=1, probe_tactics=[]),
                          pool, SlowGenerator())  # holds the only lease ~2.6 s (one slow call)
    quick = BestFirstSearch(SearchSection(timeout_per_theorem=1.5, probe_tactics=[]), pool,
                            _Fixed(["intro h", "exact h"]))
    easy = Theorem("imp_self", "theorem imp_self (p : Prop) : p → p")

    async def go():
        first = asyncio.ensure_future(hog.prove(THM))
        await asyncio.sleep(0.3)  # the hog has the lease
        return await asyncio.gather(first, quick.prove(easy))

    slow, fast = asyncio.run(go())
    assert slow.stop_reason == "timeout"
    # the quick search waited longer than its whole timeout for the lease, yet was not timed out by it
    assert fast.queue_s > 1.5 and fast.stop_reason == "proved" and fast.wall_s < 1.5
    assert fast.summary()["queue_s"] == fast.queue_s
    for w in ws:
        ray.kill(w)
