"""Config section of the search room: every knob of best-first search (``config.search``).

Node priority (higher is expanded first), for a node reached by tactics t1..tk with step logprobs l1..lk::

    priority = alpha * (l1 + ... + lk) / llm_temperature  -  beta * energy / ebm_temperature

``energy`` is the value function's energy of the node's own state (lower = more provable); it is 0 when
no value function is given, so ``beta`` only matters with one. See ``raylib/search/best_first.py``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from raylib.configbase import Section

DEFAULT_PROBE_TACTICS = ("assumption", "contradiction", "trivial", "constructor", "intro")


class SearchSection(Section):
    max_nodes: int = Field(64, ge=1, description="budget: stop after this many node expansions")
    max_depth: int = Field(100, ge=1, description="nodes at this depth (tactics from the root) are never "
                                                  "expanded, so a proof has at most max_depth tactics")
    num_candidates: int = Field(8, ge=0, description="tactics asked of the generator per expansion")
    temperature: float = Field(1.0, ge=0, description="sampling temperature of the generator")
    max_tokens: int = Field(128, ge=1, description="token limit of one generated tactic")
    batch_expansion_size: int = Field(4, ge=1, description="frontier nodes expanded concurrently per step")
    timeout_per_theorem: float = Field(60.0, gt=0, description="wall-clock seconds per theorem; past it the "
                                                                "search returns what it has")
    probe_tactics: list[str] = Field(default_factory=lambda: list(DEFAULT_PROBE_TACTICS),
                                     description="cheap tactics tried at every node besides the generator's")
    probe_logprob: float = Field(-2.0, le=0, description="step logprob given to a probe tactic the generator "
                                                          "did not also propose")
    dedupe_tactics: bool = Field(True, description="run each distinct tactic once per node")
    dedupe_states: bool = Field(True, description="one node per goal text across the tree (first arrival wins)")
    alpha: float = Field(1.0, ge=0, description="weight of the cumulative policy logprob in the priority")
    beta: float = Field(1.0, ge=0, description="weight of the value function's energy (0 or no value "
                                               "function: LLM-only search)")
    llm_temperature: float = Field(1.0, gt=0, description="divides the cumulative logprob in the priority")
    ebm_temperature: float = Field(1.0, gt=0, description="divides the energy in the priority")
    verify: bool = Field(True, description="re-check a found proof whole from a fresh environment before "
                                           "reporting it; a failed check is recorded and the search goes on")

    @field_validator("probe_tactics")
    @classmethod
    def _probes(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for tac in v:
            if not isinstance(tac, str) or not tac.strip():
                raise ValueError("probe tactics must be non-empty strings")
            if tac.strip() not in out:
                out.append(tac.strip())
        return out
