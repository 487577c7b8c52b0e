"""What one theorem's search did: ``SearchResult`` (frozen, picklable), its summary and trajectory rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from raylib.env.theorems import Theorem
from raylib.search.tree import NodeRecord

# A theorem's own outcomes, then "error": the search raised (an infrastructure failure: the caller retries it).
STOP_REASONS = ("proved", "exhausted", "budget", "timeout", "start_failed", "error")


@dataclass(frozen=True)
class SearchResult:
    """What one theorem's search did. Times are seconds; ``tree`` holds every node created."""

    theorem: Theorem
    proved: bool
    proof: tuple[str, ...]                 # the tactics of the proof (empty when not proved)
    verified: bool                         # the proof passed the whole-proof re-check (False with verify off)
    verify_messages: tuple[str, ...]       # messages of that re-check
    failed_verifications: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (proof, messages) rejected
    stop_reason: str                       # one of STOP_REASONS ("budget": max_nodes expansions spent)
    nodes_expanded: int
    nodes_created: int                     # including the root and finished nodes
    proof_depth: Optional[int]             # number of tactics of the proof
    wall_s: float
    generate_s: float
    lean_s: float
    ebm_s: float
    other_s: float
    unique_tactics_per_expansion: tuple[int, ...]   # distinct tactics proposed (generator + probes) per node
    children_per_expansion: tuple[int, ...]         # nodes created per expansion
    tactics_run: int
    tactics_passed: int                    # outcomes the environment accepted: a state (new or not) or finished
    duplicate_states: int                  # accepted states already in the tree (not added again)
    outcome_counts: tuple[tuple[str, int], ...]      # (outcome kind, count) over all tactics run
    ebm_top1_hits: int                     # proof-path steps where the child had the strictly lowest energy
    ebm_top1_total: int                    # proof-path steps with the child and >= 1 sibling scored
    error: Optional[str] = None
    start_message: Optional[str] = None    # why the statement did not start (stop_reason start_failed)
    queue_s: float = 0.0                   # waiting for a Lean lease or in actors' queues (not in wall_s' budget)
    tree: tuple[NodeRecord, ...] = field(default=(), repr=False, compare=False)

    @property
    def probe_steps(self) -> int:
        """Steps of the proof whose tactic came from the probe list, not the generator."""
        return sum(1 for n in self.tree if n.on_proof_path and n.probe)

    @property
    def lean_pass_rate(self) -> Optional[float]:
        return self.tactics_passed / self.tactics_run if self.tactics_run else None

    @property
    def ebm_top1_rate(self) -> Optional[float]:
        return self.ebm_top1_hits / self.ebm_top1_total if self.ebm_top1_total else None

    @property
    def mean_unique_tactics(self) -> Optional[float]:
        u = self.unique_tactics_per_expansion
        return sum(u) / len(u) if u else None

    @property
    def mean_children(self) -> Optional[float]:
        c = self.children_per_expansion
        return sum(c) / len(c) if c else None

    def summary(self) -> dict[str, Any]:
        """Scalar figures of this search, for logs and reports."""
        return {"theorem": self.theorem.name, "proved": self.proved, "verified": self.verified,
                "stop_reason": self.stop_reason, "proof_depth": self.proof_depth,
                "nodes_expanded": self.nodes_expanded, "nodes_created": self.nodes_created,
                "wall_s": self.wall_s, "generate_s": self.generate_s, "lean_s": self.lean_s,
                "ebm_s": self.ebm_s, "other_s": self.other_s, "lean_pass_rate": self.lean_pass_rate,
                "mean_unique_tactics": self.mean_unique_tactics, "mean_children": self.mean_children,
                "duplicate_states": self.duplicate_states, "ebm_top1_rate": self.ebm_top1_rate,
                "tactics_run": self.tactics_run, "failed_verifications": len(self.failed_verifications),
                "probe_steps": self.probe_steps, "queue_s": self.queue_s, "error": self.error,
                "start_message": self.start_message}

    def rows(self, run: str, iteration: int, statement: str = "", config_hash: str = "",
             generator_fingerprint: str = "", encoder_fingerprint: Optional[str] = None) -> list[dict[str, Any]]:
        """One trajectory row per node, root first, in the columns of ``raylib.data.trajectory``."""
        return [{"run": run, "iteration": iteration, "theorem": self.theorem.name,
                 "statement": statement or self.theorem.statement, "node_id": n.id, "parent_id": n.parent_id,
                 "depth": n.depth, "state": n.state, "tactic": n.tactic, "step_logprob": n.step_logprob,
                 "energy": n.energy, "outcome": n.outcome, "on_proof_path": n.on_proof_path,
                 "probe": n.probe,
                 "timings": {"gen_s": n.gen_s, "lean_s": n.lean_s, "ebm_s": 0.0},
                 "generator_fingerprint": generator_fingerprint, "encoder_fingerprint": encoder_fingerprint,
                 "config_hash": config_hash}
                for n in self.tree]
