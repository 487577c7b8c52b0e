"""The contrastive sampler on a hand-built tree: exact eligible counts, drawn kinds, fallback, padding, seeds."""

import pytest

from raylib.data.sampler import KINDS, build_index, quotas, sample_groups, sampler_report, theorem_split
from raylib.data.trajectory import read_trajectories, write_trajectory
from raylib.hashing import state_hash

RATIOS = {"hard": 0.5, "medium": 0.25, "easy": 0.25}


def _names():
    """Two train theorems and one val theorem under valid_fraction 0.5, seed 0 (found by the split's hash)."""
    train, val = [], []
    for i in range(100):
        name = f"thm_{i}"
        (val if theorem_split(name, 0.5, 0) == "val" else train).append(name)
    return train[0], train[1], val[0]


def _row(theorem, node, parent, state, on_path=False, outcome="state"):
    return {"run": "t", "iteration": 0, "theorem": theorem, "statement": "p", "node_id": node, "parent_id": parent,
            "depth": 0, "state": state, "tactic": None if parent is None else "tac", "outcome": outcome,
            "on_proof_path": on_path, "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0},
            "generator_fingerprint": "g", "config_hash": "c"}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    t1, t2, t3 = _names()
    d = tmp_path_factory.mktemp("traj")
    write_trajectory([  # proved: 0 -> 1 -> 4 -> 7 (finished)
        _row(t1, 0, None, "s0", True), _row(t1, 1, 0, "s1", True), _row(t1, 2, 0, "s2"), _row(t1, 3, 0, "s3"),
        _row(t1, 4, 1, "s4", True), _row(t1, 5, 1, "s5"), _row(t1, 6, 1, "s6"),
        _row(t1, 7, 4, "", True, "finished"), _row(t1, 8, 3, "s8"),
        _row(t1, 9, 2, "s1"),                      # the positive s1 reached again off the path: never a negative
        _row(t1, 10, 0, "", False, "error"),       # no state: not eligible
    ], d)
    write_trajectory([_row(t2, 0, None, "t0"), _row(t2, 1, 0, "t1"), _row(t2, 2, 0, "t2"),
                      _row(t2, 3, 1, "s3")], d)    # unproved; s3 is also a state of t1
    write_trajectory([_row(t3, 0, None, "u0", True), _row(t3, 1, 0, "", True, "finished"), _row(t3, 2, 0, "u2")], d)
    return read_trajectories(d), (t1, t2, t3)


def test_quotas_split_k_by_ratios():
    assert quotas(4, RATIOS, KINDS) == {"hard": 2, "medium": 1, "easy": 1}
    assert quotas(7, RATIOS, KINDS) == {"hard": 3, "medium": 2, "easy": 2}  # 3.5/1.75/1.75: largest remainders
    even = {"hard": 1, "medium": 1, "easy": 1}  # equal remainders: the earlier kinds in the fallback order win
    assert quotas(2, even, KINDS) == {"hard": 1, "medium": 1, "easy": 0}
    assert quotas(2, even, ["easy", "medium", "hard"]) == {"hard": 0, "medium": 1, "easy": 1}
    assert sum(quotas(5, {"hard": 1, "medium": 0, "easy": 0}, KINDS).values()) == 5


def test_eligible_counts_are_exact(table):
    tab, (t1, t2, t3) = table
    splits = build_index(tab, 0.5, 0)
    assert set(splits["train"].theorems) == {t1, t2} and set(splits["val"].theorems) == {t3}
    th = splits["train"].theorems[t1]
    h = state_hash
    assert th.positives == [h("s0"), h("s1"), h("s4")]
    assert th.siblings == {h("s0"): [], h("s1"): [h("s2"), h("s3")], h("s4"): [h("s5"), h("s6")]}
    assert th.off_path == [h("s2"), h("s3"), h("s5"), h("s6"), h("s8")]
    rep = sampler_report(splits)
    assert rep["train"] == {"theorems": 2, "theorems_with_positives": 1, "positives": 3,
                            "hard": 4, "medium": 11, "easy": 9,
                            "hard_states": 4, "medium_states": 5, "easy_states": 8}
    assert rep["val"] == {"theorems": 1, "theorems_with_positives": 1, "positives": 1, "hard": 0, "medium": 1,
                          "easy": 0, "hard_states": 0, "medium_states": 1, "easy_states": 1}


def test_drawn_kinds_fallback_and_padding(table):
    tab, (t1, _, _) = table
    splits = build_index(tab, 0.5, 0)
    h = state_hash
    g = sample_groups(splits["train"], 4, RATIOS, KINDS, seed=1)
    assert g.positive == [h("s0"), h("s1"), h("s4")] and g.theorem == [t1] * 3
    assert g.counts == {"hard": 4, "medium": 5, "easy": 3, "fallback": 2, "padded": 0, "no_negatives": 0}
    for pos, negs, kinds in zip(g.positive, g.negatives, g.kinds):
        assert len(set(negs)) == 4 and pos not in negs and h("s1") not in negs
        hard = {n for n, k in zip(negs, kinds) if k == 0}
        assert hard == set(splits["train"].theorems[t1].siblings[pos])
        easy = {n for n, k in zip(negs, kinds) if k == 2}
        assert easy <= {h("t0"), h("t1"), h("t2")}  # s3 belongs to t1 as well: never easy for t1
    # the root has no sibling: its two hard slots go to the next kind in the fallback order
    assert list(g.kinds[0]).count(1) == 3
    g2 = sample_groups(splits["train"], 4, RATIOS, ["easy", "medium", "hard"], seed=1)
    assert g2.counts == {"hard": 4, "medium": 3, "easy": 5, "fallback": 2, "padded": 0, "no_negatives": 0}
    v = sample_groups(splits["val"], 4, RATIOS, KINDS, seed=1)
    assert v.counts == {"hard": 0, "medium": 1, "easy": 0, "fallback": 0, "padded": 3, "no_negatives": 0}
    assert v.negatives == [[h("u2")] * 4]
    rep = sampler_report(splits, {"train": g, "val": v})
    assert rep["train"]["groups"] == 3 and rep["train"]["drawn"]["padded"] == 0


def test_sampling_is_seeded(table):
    tab, _ = table
    splits = build_index(tab, 0.5, 0)
    runs = [sample_groups(splits["train"], 4, RATIOS, KINDS, seed=s).negatives for s in (3, 3, 4, 5, 6)]
    assert runs[0] == runs[1]
    assert any(r != runs[0] for r in runs[2:])


def test_split_is_deterministic_and_follows_the_fraction():
    names = [f"theorem_{i}" for i in range(2000)]
    a = [theorem_split(n, 0.2, 7) for n in names]
    assert a == [theorem_split(n, 0.2, 7) for n in names]
    assert 0.15 < a.count("val") / len(a) < 0.25
    assert a != [theorem_split(n, 0.2, 8) for n in names]
    assert all(theorem_split(n, 0.0, 0) == "train" for n in names[:50])
