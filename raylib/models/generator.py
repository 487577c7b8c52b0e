"""The tactic generator interface shared by every backend and by the search.

A backend turns a batch of proof states into ``n`` candidate tactics each, with the sum of the token
log-probabilities of each candidate, at a given temperature and token limit. Candidates are stripped,
deduplicated (keeping the best log-probability) and passed through the tactic filter before they leave
the backend (``postprocess``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from raylib.env.filter import TacticFilter


@dataclass(frozen=True)
class Candidate:
    tactic: str
    logprob: float  # sum of the token log-probabilities of the tactic (higher is more likely)


class TacticGenerator(Protocol):
    """Synchronous batch interface implemented by the backends (``hf``, ``vllm``)."""

    def generate(self, states: Sequence[str], n: int, temperature: float,
                 max_tokens: int) -> list[list[Candidate]]:
        """For each state, up to ``n`` distinct filtered candidates, best first."""

    def fingerprint(self) -> str:
        """Identifies the model, adapter version and dtype that produced the candidates."""


class AsyncTacticGenerator(Protocol):
    """What the search awaits: one state at a time; implementations batch concurrent calls."""

    async def propose(self, state: str, n: int, temperature: float, max_tokens: int) -> list[Candidate]:
        ...


def postprocess(raw: Iterable[tuple[str, float]], tactic_filter: TacticFilter | None, n: int) -> list[Candidate]:
    """Strip, drop empty and filtered tactics, deduplicate keeping the best logprob; best first, at most n."""
    best: dict[str, float] = {}
    for text, logprob in raw:
        tac = text.strip()
        if not tac:
            continue
        if tactic_filter is not None and not tactic_filter.check(tac).ok:
            continue
        if tac not in best or logprob > best[tac]:
            best[tac] = logprob
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:n]
    return [Candidate(t, lp) for t, lp in ranked]


def make_generator(model, generation, tactic_filter: TacticFilter | None = None) -> TacticGenerator:
    """The backend named by ``Config.model.backend`` (``hf`` or ``vllm``), built from the model and
    generation config sections; backends are imported only when chosen."""
    if model.backend == "vllm":
        from raylib.models.vllm_backend import VLLMGenerator

        return VLLMGenerator.from_config(model, generation, tactic_filter)
    from raylib.models.hf import HFGenerator

    return HFGenerator.from_config(model, generation, tactic_filter)
