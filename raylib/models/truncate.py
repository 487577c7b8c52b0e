"""The one truncation policy for proof-state text, used by the generator prompt (HF and vLLM), the SFT
collator and the state encoder.

A state is goals separated by blank lines; a goal is optional ``case <tag>`` lines, hypotheses
(``h : T``; lines indented under one continue it) and a target (the ``⊢ …`` line and the indented lines
after it). When a state (or the prompt wrapping it) is longer than the token limit:

1. The case tags and the ``⊢`` target of every goal are kept; hypotheses are dropped, middle ones
   first (the first hypotheses declare the variables, the last ones were introduced most recently),
   the hypotheses of later goals before those of the first goal (the one the next tactic acts on).
   Each run of dropped hypotheses becomes one marker line ``⋯ N hypotheses cut``.
2. Only when tags and targets alone do not fit is the text cut by characters from the end, marked
   ``⋯ cut`` (``target_cut``): the head (first goal's tag and target) is what stays.

The result is guaranteed to fit: its token count, as the tokenizer counts it (special tokens
included), is at most the limit. ``Truncated.cut`` counts the hypotheses dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

__all__ = ["CUT_MARK", "Truncated", "TruncationError", "TruncationStats", "count_tokens", "parse_goals",
           "truncate_state"]

CUT_MARK = "⋯ cut"


class TruncationError(ValueError):
    """The token limit cannot hold even the text around the state (e.g. the prompt template)."""


class Truncated(NamedTuple):
    text: str
    cut: int  # hypotheses dropped
    target_cut: bool = False  # tags and targets alone did not fit: the text was also cut by characters

    @property
    def truncated(self) -> bool:
        return self.cut > 0 or self.target_cut


@dataclass
class TruncationStats:
    """Running counts of one user of the policy (a generator, a collator, an encoder)."""
    texts: int = 0  # texts that were cut
    hypotheses: int = 0  # hypotheses dropped over all of them
    target_cut: int = 0  # texts cut inside their tags/targets (the limit is too small for them)

    def add(self, t: Truncated) -> None:
        if t.truncated:
            self.texts += 1
            self.hypotheses += t.cut
            self.target_cut += int(t.target_cut)

    def as_dict(self) -> dict:
        return {"truncated": self.texts, "hypotheses_cut": self.hypotheses, "target_cut": self.target_cut}


@dataclass
class _Goal:
    tags: list[str]
    hyps: list[str]  # each a block: first line plus its indented continuation lines
    target: str  # the ⊢ line plus its continuation lines ("" when the goal has none)


def parse_goals(text: str) -> list[_Goal]:
    """Split a state into goals (blank-line separated) of case tags, hypothesis blocks and target."""
    goals = []
    for chunk in [c for c in text.strip("\n").split("\n\n") if c.strip()]:
        tags: list[str] = []
        hyps: list[str] = []
        target: list[str] = []
        for line in chunk.split("\n"):
            if target:
                target.append(line)
            elif line.startswith("⊢"):
                target.append(line)
            elif line[:1].isspace() and hyps:
                hyps[-1] += "\n" + line
            elif line.startswith("case ") and not hyps:
                tags.append(line)
            else:
                hyps.append(line)
        goals.append(_Goal(tags, hyps, "\n".join(target)))
    return goals


def _marker(n: int) -> str:
    return f"⋯ {n} hypothesis cut" if n == 1 else f"⋯ {n} hypotheses cut"


def _render(goals: list[_Goal], dropped: set[tuple[int, int]]) -> str:
    out = []
    for gi, g in enumerate(goals):
        lines = list(g.tags)
        run = 0
        for hi, h in enumerate(g.hyps):
            if (gi, hi) in dropped:
                run += 1
                continue
            if run:
                lines.append(_marker(run))
                run = 0
            lines.append(h)
        if run:
            lines.append(_marker(run))
        if g.target:
            lines.append(g.target)
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _drop_order(goals: list[_Goal]) -> list[tuple[int, int]]:
    """Hypotheses in the order they are dropped: later goals first, then middle-out within a goal."""
    keys = []
    for gi, g in enumerate(goals):
        m = len(g.hyps)
        for hi in range(m):
            keys.append(((gi == 0), -min(hi, m - 1 - hi), -gi, hi, (gi, hi)))
    return [k[-1] for k in sorted(keys)]


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of ``text`` as the models see it (special tokens such as BOS included)."""
    return len(tokenizer(text)["input_ids"])


def truncate_state(text: str, tokenizer, max_tokens: int,
                   wrap: Callable[[str], str] | None = None) -> Truncated:
    """Fit a state into ``max_tokens`` by the module's policy.

    ``wrap`` maps the state text to what is measured (e.g. the prompt around it); the limit applies to
    ``wrap(text)``, while the returned text is the (cut) state itself. A state that fits is returned
    unchanged with ``cut == 0``. Raises TruncationError when even ``wrap`` of a bare cut marker exceeds
    the limit.
    """
    wrap = wrap or (lambda s: s)

    def fits(s: str) -> bool:
        return count_tokens(tokenizer, wrap(s)) <= max_tokens

    if fits(text):
        return Truncated(text, 0)
    if not fits(CUT_MARK):
        raise TruncationError(f"a limit of {max_tokens} tokens cannot hold even the text around the state "
                              f"({count_tokens(tokenizer, wrap(CUT_MARK))} tokens with an empty state); raise it")
    goals = parse_goals(text)
    order = _drop_order(goals)

    def render(k: int) -> str:
        return _render(goals, set(order[:k]))

    lo, hi = 1, len(order)  # smallest k whose rendering fits (dropping more only shortens, up to markers)
    if order and fits(render(hi)):
        while lo < hi:
            mid = (lo + hi) // 2
            if fits(render(mid)):
                hi = mid
            else:
                lo = mid + 1
        return Truncated(render(lo), lo)
    base = render(len(order))
    lo, hi = 0, len(base)  # longest head of the tags+targets text that fits with the cut marker
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(_head(base, mid)):
            lo = mid
        else:
            hi = mid - 1
    return Truncated(_head(base, lo), len(order), True)


def _head(text: str, n: int) -> str:
    head = text[:n].rstrip()
    return f"{head}\n{CUT_MARK}" if head else CUT_MARK
