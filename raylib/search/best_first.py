"""Best-first proof search, pure asyncio (no Ray: the environment, generator and value function are awaited).

Priority of a node reached from the root by tactics t1..tk (higher is expanded first)::

    priority = alpha * logp / llm_temperature  -  beta * energy / ebm_temperature
    logp     = l1 + ... + lk      (sum of the generator's step logprobs along the path; root 0;
                                   a probe tactic the generator did not propose counts probe_logprob)
    energy   = the value function's energy of the node's own state (lower = more provable);
               0 when there is no value function or beta == 0. Ties go to the older node.

One step of the loop pops up to ``batch_expansion_size`` best frontier nodes and, for each, asks the
generator for ``num_candidates`` tactics, adds the probe tactics, dedupes tactics per node, runs them all
concurrently, and turns accepted outcomes into children (a state already in the tree by goal text is not
added again). A finished child is re-checked whole (``verify``) before anything else happens; the first
that passes ends the search, one that fails is recorded and the search goes on. Only then are the new open
states scored by the value function in one batch: finished states never reach it.

Budgets: ``max_nodes`` expansions, ``max_depth`` (nodes that deep are not expanded), and
``timeout_per_theorem`` of the search's own time, after which the search returns what it has (a proof
found in time is still verified): waiting for a Lean lease, and calls' waits behind other searches' work
in a worker's queue as the worker reports them, are credited to the deadline and reported as ``queue_s``.
A theorem's outcome (``stop_reason``) is proved, exhausted, budget (max_nodes), timeout or start_failed
(the statement does not elaborate). A failure while searching (generator, environment or value function
raising) ends the search with stop reason ``error`` and the message in ``SearchResult.error``; it is never
raised, and it is not the theorem's outcome: the prove stage retries it.

Time split: the phases of a step run one after another, so ``generate_s`` / ``lean_s`` / ``ebm_s`` are the
wall durations of their awaits (``start`` and ``verify`` count as Lean) and ``other_s`` is the rest.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from typing import Awaitable, Iterable, Optional, Sequence

from raylib.env.outcome import Finished, State
from raylib.env.theorems import Theorem
from raylib.models.generator import AsyncTacticGenerator, Candidate
from raylib.search.config import SearchSection
from raylib.search.env import AsyncEnv, ValueFunction, run_tacs
from raylib.search.result import STOP_REASONS, SearchResult  # noqa: F401  (re-exported)
from raylib.search.tree import FINISHED, VERIFY_FAILED, Node

log = logging.getLogger(__name__)

class _OutOfTime(Exception):
    pass


class InfraFailure(RuntimeError):
    """The environment could not serve a call for reasons not the tactic's own (a state it could not
    rebuild, a process that died twice): the search ends with stop reason ``error`` and is retried."""


class BestFirstSearch:
    """Best-first search over one ``AsyncEnv`` with one generator and an optional value function."""

    def __init__(self, cfg: SearchSection, env: AsyncEnv, generator: AsyncTacticGenerator,
                 value_fn: Optional[ValueFunction] = None):
        self.cfg = cfg
        self.env = env
        self.generator = generator
        self.value_fn = value_fn

    @property
    def uses_value(self) -> bool:
        return self.value_fn is not None and self.cfg.beta > 0

    async def prove(self, theorem: Theorem) -> SearchResult:
        """Search one theorem; never raises for a failure of this theorem (see ``SearchResult.error``).

        An environment offering ``session(theorem)`` (the Ray pool: a lease on one Lean worker) is asked
        for one first; the search's clock starts once it has it, and the session is closed (its queued
        calls cancelled, its proof states released) however the search ends.
        """
        opener = getattr(self.env, "session", None)
        session = None
        if opener is not None:
            try:
                session = await opener(theorem)
            except Exception as e:  # noqa: BLE001 - no Lean worker: an infrastructure failure
                run = _Run(self, theorem, self.env)
                run.error, run.stop_reason = f"{type(e).__name__}: {e}", "error"
                return run.result()
        run = _Run(self, theorem, session if session is not None else self.env)
        if session is not None:
            run.queue_s = session.wait_s
        try:
            await run.search()
        except Exception as e:  # noqa: BLE001 - one theorem's failure is recorded, never raised
            log.warning("search of %s failed: %s: %s", theorem.name, type(e).__name__, e, exc_info=True)
            run.error, run.stop_reason = f"{type(e).__name__}: {e}", "error"
        finally:
            if session is not None:
                await asyncio.shield(session.close(cancelled=run.stop_reason != "proved"))
        result = run.result()
        log.info("%s: %s (%s) expanded=%d created=%d wall=%.2fs gen=%.2fs lean=%.2fs ebm=%.2fs queue=%.2fs",
                 theorem.name, "proved" if result.proved else "not proved", result.stop_reason,
                 result.nodes_expanded, result.nodes_created, result.wall_s, result.generate_s,
                 result.lean_s, result.ebm_s, result.queue_s)
        return result

    async def prove_many(self, theorems: Iterable[Theorem], concurrency: int = 1) -> list[SearchResult]:
        """Search several theorems, at most ``concurrency`` at once; results in input order."""
        sem = asyncio.Semaphore(max(1, concurrency))

        async def one(t: Theorem) -> SearchResult:
            async with sem:
                return await self.prove(t)

        return list(await _gather([one(t) for t in theorems]))


class _Run:
    """The state of one theorem's search."""

    def __init__(self, search: BestFirstSearch, theorem: Theorem, env: AsyncEnv):
        self.s, self.cfg, self.theorem, self.env = search, search.cfg, theorem, env
        self.nodes: list[Node] = []
        self.frontier: list[tuple[float, int, Node]] = []
        self.seen: set[str] = set()
        self.times = {"generate": 0.0, "lean": 0.0, "ebm": 0.0}
        self.unique: list[int] = []
        self.children: list[int] = []
        self.kinds: Counter[str] = Counter()
        self.duplicates = 0
        self.expanded = 0
        self.failed_verifications: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.proof_node: Optional[Node] = None
        self.verified = False
        self.verify_messages: tuple[str, ...] = ()
        self.stop_reason = "exhausted"
        self.error: Optional[str] = None
        self.start_message: Optional[str] = None
        self.queue_s = 0.0
        self.t0 = time.perf_counter()
        self.deadline = time.monotonic() + self.cfg.timeout_per_theorem

    # -- helpers -----------------------------------------------------------------------------------
    async def _timed(self, bucket: str, aw: Awaitable, deadline: bool = True):
        """Await ``aw``, adding its duration to ``bucket``; past the theorem's deadline raise ``_OutOfTime``."""
        remaining = self.deadline - time.monotonic()
        if deadline and remaining <= 0:
            if asyncio.iscoroutine(aw):
                aw.close()
            raise _OutOfTime()
        t = time.perf_counter()
        waits = getattr(self.env, "queue_waits", None)
        seen = len(waits) if waits is not None else 0
        try:
            return await (asyncio.wait_for(aw, remaining) if deadline else aw)
        except asyncio.TimeoutError:
            if deadline and time.monotonic() >= self.deadline:
                raise _OutOfTime() from None
            raise
        finally:
            self.times[bucket] += time.perf_counter() - t
            if waits is not None and len(waits) > seen:  # time queued behind other searches is not ours:
                credit = max(waits[seen:])                # the deadline moves by the longest such wait
                self.deadline += credit
                self.queue_s += credit

    def _node(self, parent: Optional[Node], state: Optional[State], **kw) -> Node:
        node = Node(id=len(self.nodes), parent=parent, depth=parent.depth + 1 if parent else 0, state=state, **kw)
        self.nodes.append(node)
        if state is not None:
            self.seen.add(state.text)
        return node

    def _push(self, node: Node) -> None:
        if node.depth < self.cfg.max_depth:
            c = self.cfg
            prio = node.priority(c.alpha, c.beta if self.s.uses_value else 0.0, c.llm_temperature, c.ebm_temperature)
            heapq.heappush(self.frontier, (-prio, node.id, node))

    def _tactics(self, candidates: Sequence[Candidate]) -> list[tuple[str, float, bool]]:
        """(tactic, step logprob, is_probe) to run at one node: the generator's first, then the probes."""
        out: list[tuple[str, float, bool]] = [(c.tactic.strip(), float(c.logprob), False) for c in candidates]
        out += [(p, self.cfg.probe_logprob, True) for p in self.cfg.probe_tactics]
        out = [t for t in out if t[0]]
        self.unique.append(len({t[0] for t in out}))
        if not self.cfg.dedupe_tactics:
            return out
        best: dict[str, tuple[str, float, bool]] = {}
        for tac, lp, probe in out:  # the generator's best logprob wins; a probe it also proposed is not a probe
            prev = best.get(tac)
            if prev is None or (not probe and lp > prev[1]):
                best[tac] = (tac, lp, probe)
        return list(best.values())

    async def _propose(self, node: Node) -> tuple[list[Candidate], float]:
        t = time.perf_counter()
        c = self.cfg
        cands = await self.s.generator.propose(node.text, c.num_candidates, c.temperature, c.max_tokens)
        return list(cands), time.perf_counter() - t

    async def _run_tacs(self, state: State, tactics: list[str]) -> list[tuple[object, float]]:
        """Outcomes of ``tactics`` on ``state``, each with its share of the call's seconds."""
        t = time.perf_counter()
        outcomes = await run_tacs(self.env, state, tactics)
        per = (time.perf_counter() - t) / max(1, len(tactics))
        return [(o, per) for o in outcomes]

    # -- the loop ----------------------------------------------------------------------------------
    async def search(self) -> None:
        try:
            await self._search()
        except _OutOfTime:
            self.stop_reason = "timeout"

    async def _search(self) -> None:
        start = await self._timed("lean", self.env.start(self.theorem))
        if getattr(start, "infra", False):
            raise InfraFailure(f"starting {self.theorem.name}: {start.message}")
        if not isinstance(start, State):  # the statement does not elaborate: the theorem's own outcome
            self.stop_reason = "start_failed"
            self.start_message = f"{start.kind}: {getattr(start, 'message', '')}"
            return
        root = self._node(None, start)
        if self.s.uses_value:
            [root.energy] = await self._energies([root])
        self._push(root)
        while True:
            if not self.frontier:
                self.stop_reason = "exhausted"
                return
            if self.expanded >= self.cfg.max_nodes:
                self.stop_reason = "budget"
                return
            k = min(self.cfg.batch_expansion_size, self.cfg.max_nodes - self.expanded, len(self.frontier))
            batch = [heapq.heappop(self.frontier)[2] for _ in range(k)]
            if await self._expand(batch):
                self.stop_reason = "proved"
                return

    async def _expand(self, batch: list[Node]) -> bool:
        """Expand ``batch``; True when a proof was found (and passed verification)."""
        for node in batch:
            node.expanded = True
        self.expanded += len(batch)
        if self.cfg.num_candidates > 0:
            proposals = await self._timed("generate", _gather([self._propose(n) for n in batch]))
        else:
            proposals = [([], 0.0)] * len(batch)
        jobs = [(node, tac, lp, probe, gen_s)
                for node, (cands, gen_s) in zip(batch, proposals)
                for tac, lp, probe in self._tactics(cands)]
        per_node = await self._timed("lean", _gather([
            self._run_tacs(node.state, [j[1] for j in jobs if j[0] is node]) for node in batch]))
        outcomes = [o for node_outcomes in per_node for o in node_outcomes]  # jobs are grouped by node
        broken = next((o for o, _ in outcomes if getattr(o, "infra", False)), None)
        if broken is not None:
            raise InfraFailure(f"Lean could not run a tactic of {self.theorem.name}: {broken.message}")

        made = {node.id: 0 for node in batch}
        new_open: list[Node] = []
        finished: list[Node] = []
        for (node, tac, lp, probe, gen_s), (outcome, lean_s) in zip(jobs, outcomes):
            self.kinds[outcome.kind] += 1
            if isinstance(outcome, State):
                if self.cfg.dedupe_states and outcome.text in self.seen:
                    self.duplicates += 1
                    continue
                child = self._node(node, outcome, tactic=tac, step_logprob=lp, probe=probe, gen_s=gen_s, lean_s=lean_s)
                new_open.append(child)
            elif isinstance(outcome, Finished):
                child = self._node(node, None, tactic=tac, step_logprob=lp, probe=probe, gen_s=gen_s,
                                   lean_s=lean_s, outcome=FINISHED)
                finished.append(child)
            else:
                continue
            made[node.id] += 1
        self.children.extend(made[node.id] for node in batch)

        c = self.cfg
        finished.sort(key=lambda n: -n.priority(c.alpha, 0.0, c.llm_temperature, c.ebm_temperature))
        for node in finished:
            if await self._accept(node):
                return True
        if self.s.uses_value and new_open:
            for node, energy in zip(new_open, await self._energies(new_open)):
                node.energy = energy
        for node in new_open:
            self._push(node)
        return False

    async def _energies(self, nodes: list[Node]) -> list[float]:
        assert all(not n.is_finished for n in nodes), "finished states never go through the value function"
        energies = await self._timed("ebm", self.s.value_fn.energies([n.text for n in nodes]))
        energies = [float(e) for e in energies]
        if len(energies) != len(nodes):
            raise ValueError(f"value function returned {len(energies)} energies for {len(nodes)} states")
        return energies

    async def _accept(self, node: Node) -> bool:
        """Verify a finished node's proof whole; on success mark the proof path."""
        proof = node.tactics()
        if self.cfg.verify:
            v = await self._timed("lean", self.env.verify(self.theorem, proof), deadline=False)
            node.verify_messages = tuple(v.messages)
            if not v.ok:
                node.outcome = VERIFY_FAILED
                self.failed_verifications.append((proof, tuple(v.messages)))
                log.warning("%s: a finished proof failed verification and is skipped: %s",
                            self.theorem.name, "; ".join(v.messages)[:500])
                return False
            self.verified, self.verify_messages = True, tuple(v.messages)
        self.proof_node = node
        for n in node.path_nodes():
            n.on_proof_path = True
        return True

    def _ebm_top1(self) -> tuple[int, int]:
        hits = total = 0
        if self.proof_node is None or not self.s.uses_value:
            return 0, 0
        for node in self.proof_node.path_nodes()[1:]:
            others = [c.energy for c in node.parent.children if c is not node and c.energy is not None]
            if node.energy is None or not others:
                continue
            total += 1
            hits += node.energy < min(others)
        return hits, total

    def result(self) -> SearchResult:
        wall = time.perf_counter() - self.t0
        proof = self.proof_node.tactics() if self.proof_node is not None else ()
        hits, total = self._ebm_top1()
        t = self.times
        return SearchResult(
            theorem=self.theorem, proved=self.proof_node is not None, proof=proof, verified=self.verified,
            verify_messages=self.verify_messages, failed_verifications=tuple(self.failed_verifications),
            stop_reason=self.stop_reason, nodes_expanded=self.expanded, nodes_created=len(self.nodes),
            proof_depth=len(proof) if self.proof_node is not None else None, wall_s=wall,
            generate_s=t["generate"], lean_s=t["lean"], ebm_s=t["ebm"],
            other_s=max(0.0, wall - t["generate"] - t["lean"] - t["ebm"]),
            unique_tactics_per_expansion=tuple(self.unique), children_per_expansion=tuple(self.children),
            tactics_run=sum(self.kinds.values()), tactics_passed=self.kinds["state"] + self.kinds["finished"],
            duplicate_states=self.duplicates, outcome_counts=tuple(sorted(self.kinds.items())),
            ebm_top1_hits=hits, ebm_top1_total=total, error=self.error, start_message=self.start_message,
            queue_s=self.queue_s,
            tree=tuple(n.record() for n in self.nodes))


async def _gather(aws: Sequence[Awaitable]) -> list:
    """``asyncio.gather`` that cancels the remaining awaitables when one fails."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        raise
