"""The search tree: live nodes during a search, frozen records after it.

A node is an open proof state or a finished proof (a tactic closed every goal). Failed tactics (Lean
errors, timeouts, sorry) create no node; they are counted in the search's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from raylib.env.outcome import State

# Node outcomes, as written to trajectory rows.
OPEN = "state"                 # an open proof state (expanded or not; see ``expanded``)
FINISHED = "finished"          # no goals left, and the proof passed verification (or verify is off)
VERIFY_FAILED = "verify_failed"  # no goals left, but the whole-proof re-check failed


@dataclass(eq=False)
class Node:
    """A live node. ``logp`` is the sum of step logprobs from the root; ``energy`` is None when unscored."""

    id: int
    parent: Optional["Node"]
    depth: int
    state: Optional[State]          # None for a finished node
    tactic: Optional[str] = None    # the tactic that led here from the parent (None at the root)
    step_logprob: float = 0.0
    probe: bool = False             # the tactic came from the probe list, not the generator
    gen_s: float = 0.0              # duration of the generator call that proposed the tactic
    lean_s: float = 0.0             # duration of the tactic's environment call
    energy: Optional[float] = None
    outcome: str = OPEN
    expanded: bool = False
    on_proof_path: bool = False
    verify_messages: tuple[str, ...] = ()
    children: list["Node"] = field(default_factory=list)
    logp: float = field(init=False)

    def __post_init__(self) -> None:
        self.logp = (self.parent.logp if self.parent is not None else 0.0) + self.step_logprob
        if self.parent is not None:
            self.parent.children.append(self)

    @property
    def is_finished(self) -> bool:
        return self.state is None

    @property
    def text(self) -> str:
        """The goals as printed, joined by blank lines; empty for a finished node."""
        return self.state.text if self.state is not None else ""

    def tactics(self) -> tuple[str, ...]:
        """The tactic path from the root to this node."""
        out: list[str] = []
        node: Optional[Node] = self
        while node is not None and node.tactic is not None:
            out.append(node.tactic)
            node = node.parent
        return tuple(reversed(out))

    def path_nodes(self) -> list["Node"]:
        """Root first, this node last."""
        out: list[Node] = []
        node: Optional[Node] = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def priority(self, alpha: float, beta: float, llm_temperature: float, ebm_temperature: float) -> float:
        """``alpha * logp / llm_temperature - beta * energy / ebm_temperature`` (energy None counts as 0)."""
        energy = self.energy if self.energy is not None else 0.0
        return alpha * self.logp / llm_temperature - beta * energy / ebm_temperature

    def record(self) -> "NodeRecord":
        return NodeRecord(id=self.id, parent_id=self.parent.id if self.parent is not None else None,
                          depth=self.depth, state=self.text, tactic=self.tactic, step_logprob=self.step_logprob,
                          logp=self.logp, probe=self.probe, energy=self.energy, outcome=self.outcome,
                          expanded=self.expanded, on_proof_path=self.on_proof_path, gen_s=self.gen_s,
                          lean_s=self.lean_s, verify_messages=self.verify_messages)


@dataclass(frozen=True)
class NodeRecord:
    """A frozen, picklable copy of a node kept in the search result (no backend handles)."""

    id: int
    parent_id: Optional[int]
    depth: int
    state: str
    tactic: Optional[str]
    step_logprob: float
    logp: float
    probe: bool
    energy: Optional[float]
    outcome: str
    expanded: bool
    on_proof_path: bool
    gen_s: float
    lean_s: float
    verify_messages: tuple[str, ...] = ()
