"""How well the value model (EBM) ranks proof-path children among their siblings, against chance.

For every proof-path node whose parent has at least two children scored by the EBM (``energy`` not
null: terminal states are never scored), the EBM is right when the proof-path child has the lowest
energy among them (a tie at the lowest shares the credit: 1/number tied). Chance is 1/(scored
siblings), averaged over the same nodes. The field's warning sign: 13% accuracy against ~10% chance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["sibling_accuracy"]


def _figures(hits: list[float], chances: list[float]) -> dict:
    n = len(hits)
    acc = sum(hits) / n if n else None
    chance = sum(chances) / n if n else None
    return {"nodes": n, "accuracy": None if acc is None else round(acc, 4),
            "chance": None if chance is None else round(chance, 4),
            "lift": None if acc is None else round(acc - chance, 4)}


def sibling_accuracy(rows: Iterable[Mapping] | object) -> dict:
    """Sibling accuracy of the EBM on proof paths, overall and per theorem.

    ``rows``: trajectory rows (dicts with run, iteration, theorem, node_id, parent_id, energy,
    on_proof_path) or a pyarrow Table of them. Returns ``{"nodes", "accuracy", "chance", "lift",
    "theorems", "per_theorem": {theorem: {"nodes", "accuracy", "chance", "lift"}}}``; accuracy and
    chance are None when no proof-path node has two scored siblings.
    """
    if hasattr(rows, "to_pylist"):
        rows = rows.to_pylist()
    trees: dict[tuple, list[Mapping]] = defaultdict(list)
    for r in rows:
        trees[(r.get("run"), r.get("iteration"), r["theorem"])].append(r)
    hits: dict[str, list[float]] = defaultdict(list)
    chances: dict[str, list[float]] = defaultdict(list)
    for (_, _, theorem), tree in trees.items():
        children: dict[int, list[Mapping]] = defaultdict(list)
        for r in tree:
            if r.get("parent_id") is not None and r.get("energy") is not None:
                children[r["parent_id"]].append(r)
        for r in tree:
            if not r.get("on_proof_path") or r.get("parent_id") is None or r.get("energy") is None:
                continue
            scored = children[r["parent_id"]]
            if len(scored) < 2:
                continue
            low = min(c["energy"] for c in scored)
            tied = sum(1 for c in scored if c["energy"] == low)
            hits[theorem].append(1.0 / tied if r["energy"] == low else 0.0)
            chances[theorem].append(1.0 / len(scored))
    every_hit = [h for t in sorted(hits) for h in hits[t]]
    every_chance = [c for t in sorted(chances) for c in chances[t]]
    per = {t: _figures(hits[t], chances[t]) for t in sorted(hits)}
    return {**_figures(every_hit, every_chance), "theorems": len(per), "per_theorem": per}


def sibling_accuracy_dir(traj_dir, theorems: Iterable[str] | None = None) -> dict | None:
    """``sibling_accuracy`` of the trajectory files in a folder (only ``theorems`` when given); None when
    no node there was scored by an EBM (a search without a value model)."""
    from pathlib import Path

    import pyarrow.compute as pc

    from raylib.data.trajectory import read_trajectories

    files = sorted(Path(traj_dir).glob("*.parquet"))
    if not files:
        return None
    table = read_trajectories(files).select(["run", "iteration", "theorem", "node_id", "parent_id", "energy",
                                             "on_proof_path"])
    if theorems is not None:
        table = table.filter(pc.is_in(table.column("theorem"), value_set=_strings(theorems)))
    if table.column("energy").null_count == table.num_rows:
        return None
    return sibling_accuracy(table)


def _strings(values: Iterable[str]):
    import pyarrow as pa

    return pa.array(sorted(set(values)), pa.string())
