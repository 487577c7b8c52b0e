"""Contrastive sampler for the EBM: each positive (a proof-path state) with K negatives.

Definitions, over trajectory rows (``raylib.data.trajectory``); states are keyed by
``raylib.hashing.state_hash`` of the ``state`` column, as the embeddings are:

* An *eligible* state is a row with outcome ``state`` and non-empty state text (finished nodes and
  failures have no state to embed, and terminal states never go through the EBM).
* A *positive* is an eligible state on the proof path; a theorem's positives are its distinct
  proof-path state hashes. The root of a proved theorem is one (with no siblings).
* The *off-path* states of a theorem are its eligible states whose hash is not one of its positives.
* Negatives of a positive ``p`` of theorem ``T`` (distinct state hashes, never ``p``'s):
  ``hard`` = off-path children of ``p``'s parent (its siblings); ``medium`` = the other off-path states
  of ``T``; ``easy`` = off-path states of the other theorems of the same split that are no state of ``T``.

The K slots are split by the ratios (largest remainder; ties go to the earlier kind in ``fallback``).
A kind with fewer states than its quota gives its missing slots to the kinds in ``fallback`` order
(each as far as it has states left). A positive with fewer than K negatives in all has its drawn
negatives repeated to fill the K slots (``padded``); one with none is dropped (``no_negatives``).

Theorems are split into train and val by a hash of their name (``theorem_split``); the report gives the
eligible positives and negatives of each kind per split. Sampling is seeded: the same rows, settings
and seed give the same groups.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from raylib.hashing import state_hash, text_hash

log = logging.getLogger(__name__)

__all__ = ["KINDS", "Groups", "SamplerError", "SplitIndex", "TheoremStates", "build_index", "quotas",
           "sample_groups", "sampler_report", "theorem_split"]

KINDS = ("hard", "medium", "easy")
SPLITS = ("train", "val")


class SamplerError(ValueError):
    """Data the sampler cannot use (no positives...); the message names the input and what to do."""


def theorem_split(theorem: str, valid_fraction: float, seed: int = 0) -> str:
    """``train`` or ``val`` for a theorem, fixed by a hash of the seed and its name."""
    digits = 15
    return "val" if int(text_hash(f"{seed}:{theorem}", digits), 16) / 16.0 ** digits < valid_fraction else "train"


@dataclass
class TheoremStates:
    """One theorem's states: positives (in node order) and, per positive, its sibling hashes."""

    theorem: str
    positives: list[str] = field(default_factory=list)
    siblings: dict[str, list[str]] = field(default_factory=dict)   # positive hash -> hard negatives
    off_path: list[str] = field(default_factory=list)                # every off-path hash, node order
    hashes: set[str] = field(default_factory=set)                    # every eligible hash of the theorem


@dataclass
class SplitIndex:
    """The theorems of one split and the split's off-path states (the easy pool)."""

    name: str
    theorems: dict[str, TheoremStates] = field(default_factory=dict)
    off_path: list[str] = field(default_factory=list)  # distinct, first-seen order over sorted theorems

    def medium(self, t: TheoremStates, positive: str) -> list[str]:
        hard = set(t.siblings.get(positive, ()))
        return [h for h in t.off_path if h not in hard]

    def easy_size(self, t: TheoremStates) -> int:
        return len(self.off_path) - sum(1 for h in t.hashes if h in self._off_set)

    def __post_init__(self) -> None:
        self._off_set: set[str] = set()

    def finish(self) -> None:
        seen: set[str] = set()
        for name in sorted(self.theorems):
            for h in self.theorems[name].off_path:
                if h not in seen:
                    seen.add(h)
                    self.off_path.append(h)
        self._off_set = seen


def build_index(table: pa.Table, valid_fraction: float, seed: int = 0) -> dict[str, SplitIndex]:
    """Index trajectory rows (a ``read_trajectories`` table) into train and val splits by theorem."""
    cols = table.select(["theorem", "node_id", "parent_id", "state", "outcome", "on_proof_path"]).to_pydict()
    by_theorem: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(cols["theorem"]):
        by_theorem[name].append(i)
    splits = {s: SplitIndex(s) for s in SPLITS}
    for name in sorted(by_theorem):
        rows = sorted(by_theorem[name], key=lambda i: cols["node_id"][i])
        t = TheoremStates(name)
        eligible = [i for i in rows if cols["outcome"][i] == "state" and cols["state"][i]]
        hashes = {i: state_hash(cols["state"][i]) for i in eligible}
        t.hashes = set(hashes.values())
        pos_set: set[str] = set()
        for i in eligible:
            if cols["on_proof_path"][i] and hashes[i] not in pos_set:
                pos_set.add(hashes[i])
                t.positives.append(hashes[i])
        off_rows = [i for i in eligible if hashes[i] not in pos_set]
        seen: set[str] = set()
        for i in off_rows:
            if hashes[i] not in seen:
                seen.add(hashes[i])
                t.off_path.append(hashes[i])
        children: dict[object, list[str]] = defaultdict(list)
        for i in off_rows:
            parent = cols["parent_id"][i]
            if parent is not None and hashes[i] not in children[parent]:
                children[parent].append(hashes[i])
        for i in eligible:
            h, parent = hashes[i], cols["parent_id"][i]
            if cols["on_proof_path"][i] and h not in t.siblings:
                t.siblings[h] = list(children.get(parent, [])) if parent is not None else []
        splits[theorem_split(name, valid_fraction, seed)].theorems[name] = t
    for s in splits.values():
        s.finish()
    return splits


def quotas(k: int, ratios: dict[str, float], fallback: Sequence[str]) -> dict[str, int]:
    """K slots split by the ratios: floors, then the remainder by largest fraction (ties: fallback order)."""
    total = sum(ratios[x] for x in KINDS)
    raw = {x: k * ratios[x] / total for x in KINDS}
    out = {x: int(np.floor(raw[x] + 1e-9)) for x in KINDS}
    order = sorted(KINDS, key=lambda x: (-(raw[x] - out[x]), list(fallback).index(x)))
    for x in order[: k - sum(out.values())]:
        out[x] += 1
    return out


@dataclass
class Groups:
    """Sampled groups: ``positive[i]`` with negatives ``negatives[i]`` of kinds ``kinds[i]`` (0 hard, 1 medium,
    2 easy); ``counts`` has the drawn slots of each kind, ``fallback`` (slots filled by another kind than
    their quota's), ``padded`` (repeated slots) and ``no_negatives`` (dropped positives)."""

    positive: list[str]
    negatives: list[list[str]]
    kinds: np.ndarray
    theorem: list[str]
    counts: dict[str, int]

    def __len__(self) -> int:
        return len(self.positive)


def _draw(rng: np.random.Generator, pool: list[str], n: int, taken: set[str]) -> list[str]:
    """Up to ``n`` distinct items of ``pool`` not in ``taken``, in a random order."""
    if n <= 0:
        return []
    out = []
    for j in rng.permutation(len(pool)):
        h = pool[j]
        if h not in taken:
            taken.add(h)
            out.append(h)
            if len(out) == n:
                break
    return out


def _draw_easy(rng: np.random.Generator, split: SplitIndex, t: TheoremStates, n: int, taken: set[str]) -> list[str]:
    """Easy negatives by rejection from the split's off-path list (the pool is large; most draws hit)."""
    pool = split.off_path
    avail = split.easy_size(t) - sum(1 for h in taken if h in split._off_set and h not in t.hashes)
    n = min(n, avail)
    out: list[str] = []
    tries = 0
    while len(out) < n and tries < 20 * n + 100:
        tries += 1
        h = pool[int(rng.integers(len(pool)))]
        if h not in taken and h not in t.hashes:
            taken.add(h)
            out.append(h)
    if len(out) < n:  # an unlucky streak: finish exhaustively
        out += _draw(rng, [h for h in pool if h not in t.hashes], n - len(out), taken)
    return out


def sample_groups(split: SplitIndex, k: int, ratios: dict[str, float], fallback: Sequence[str],
                  seed: int = 0) -> Groups:
    """One group per positive of the split (theorems sorted by name, positives in node order)."""
    rng = np.random.default_rng([seed, 0 if split.name == "train" else 1])
    quota = quotas(k, ratios, fallback)
    counts = dict.fromkeys(KINDS, 0) | {"fallback": 0, "padded": 0, "no_negatives": 0}
    pos, negs, kinds, names = [], [], [], []
    for name in sorted(split.theorems):
        t = split.theorems[name]
        for p in t.positives:
            pools = {"hard": t.siblings.get(p, []), "medium": split.medium(t, p)}
            taken = {p}
            drawn: dict[str, list[str]] = {}
            for x in KINDS:
                drawn[x] = (_draw_easy(rng, split, t, quota[x], taken) if x == "easy"
                            else _draw(rng, pools[x], quota[x], taken))
            short = k - sum(len(v) for v in drawn.values())
            for x in fallback:
                if short <= 0:
                    break
                more = (_draw_easy(rng, split, t, short, taken) if x == "easy" else _draw(rng, pools[x], short, taken))
                drawn[x] += more
                short -= len(more)
                counts["fallback"] += len(more)
            row = [(h, KINDS.index(x)) for x in KINDS for h in drawn[x]]
            if not row:
                counts["no_negatives"] += 1
                continue
            for x in KINDS:
                counts[x] += len(drawn[x])
            if len(row) < k:
                counts["padded"] += k - len(row)
                row = [row[i % len(row)] for i in range(k)]
            pos.append(p)
            negs.append([h for h, _ in row])
            kinds.append([c for _, c in row])
            names.append(name)
    return Groups(pos, negs, np.asarray(kinds, dtype=np.int8).reshape(len(pos), k), names, counts)


def sampler_report(splits: dict[str, SplitIndex], groups: dict[str, Groups] | None = None) -> dict:
    """Eligible positives and negatives of each kind per split (and what was drawn, when groups are given).

    ``hard``/``medium``/``easy``: (positive, negative) pairs available; ``*_states``: distinct states
    that are a negative of that kind for some positive.
    """
    out: dict = {}
    for name, s in splits.items():
        proved = [t for t in s.theorems.values() if t.positives]
        r = {"theorems": len(s.theorems), "theorems_with_positives": len(proved),
             "positives": sum(len(t.positives) for t in proved),
             "hard": 0, "medium": 0, "easy": 0, "hard_states": 0, "medium_states": 0,
             "easy_states": len(s.off_path)}
        hard_states: set[str] = set()
        for t in proved:
            for p in t.positives:
                sib = t.siblings.get(p, [])
                hard_states.update(sib)
                r["hard"] += len(sib)
                r["medium"] += len(t.off_path) - len(sib)
                r["easy"] += s.easy_size(t)
            r["medium_states"] += sum(1 for h in t.off_path if any(h not in t.siblings.get(p, ()) for p in t.positives))
        r["hard_states"] = len(hard_states)
        if groups and name in groups:
            g = groups[name]
            r["groups"] = len(g)
            r["drawn"] = dict(g.counts)
        out[name] = r
    return out
