"""Evaluation metrics on hand-built results, with values worked out by hand."""

import math

import pytest

from raylib.eval.metrics import (
    depth_distribution,
    gained_lost,
    mean_sd,
    pass_at_k,
    pass_at_k_table,
    proof_rates,
    search_figures,
    time_split,
    trajectory_stats,
)


def test_pass_at_k_single_theorem():
    assert pass_at_k(3, 0, 1) == 0.0
    assert pass_at_k(3, 3, 1) == 1.0
    assert pass_at_k(3, 1, 1) == pytest.approx(1 / 3)
    assert pass_at_k(3, 1, 2) == pytest.approx(1 - 1 / 3)      # 1 - C(2,2)/C(3,2)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)      # 1 - C(3,2)/C(4,2)
    assert pass_at_k(3, 2, 2) == 1.0                            # only one failure: any 2 include a success
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_pass_at_k_table_over_seeded_attempts():
    # a: proved in attempts 1 and 3; b: never; c: always; d: attempts 2 and 3
    attempts = [{"a": True, "b": False, "c": True, "d": False},
                {"a": False, "b": False, "c": True, "d": True},
                {"a": True, "b": False, "c": True, "d": True}]
    t = pass_at_k_table(attempts)
    assert t["pass_at_k"] == {1: round(7 / 12, 4), 2: 0.75, 3: 0.75}
    assert t["attempt_rates"] == [0.5, 0.5, 0.75]
    assert t["mean"] == round(7 / 12, 4)
    assert t["sd"] == round(math.sqrt(((0.5 - 7 / 12) ** 2 * 2 + (0.75 - 7 / 12) ** 2) / 2), 4)
    assert t["proved_any"] == 3 and t["per_theorem"] == {"a": 2, "b": 0, "c": 3, "d": 2}
    # a theorem missing from an attempt is not proved there
    t2 = pass_at_k_table([{"a": True}, {}], theorems=["a", "b"])
    assert t2["attempt_rates"] == [0.5, 0.0] and t2["pass_at_k"] == {1: 0.25, 2: 0.5}


def test_mean_sd():
    assert mean_sd([1.0]) == (1.0, 0.0)
    m, sd = mean_sd([0.2, 0.4])
    assert m == pytest.approx(0.3) and sd == pytest.approx(math.sqrt(0.02))


def test_gained_and_lost_by_name():
    now = {"a": True, "b": True, "c": False, "d": False, "new": True}
    before = {"a": True, "b": False, "c": True, "d": False, "old": True}
    g = gained_lost(now, before)
    assert g["gained"] == ["b"] and g["lost"] == ["c"]
    assert (g["compared"], g["both"], g["neither"]) == (4, 1, 1)
    assert g["only_now"] == ["new"] and g["only_before"] == ["old"]


def test_proof_rates_with_and_without_probe_tactics_and_start_failures_apart():
    rows = [{"theorem": "a", "proved": True, "verified": True, "probe_steps": 0, "outcome": "proved"},
            {"theorem": "b", "proved": True, "verified": True, "probe_steps": 2, "outcome": "proved"},
            {"theorem": "c", "proved": True, "verified": False, "probe_steps": 0, "outcome": "exhausted"},
            {"theorem": "d", "proved": False, "outcome": "start_failed"},
            {"theorem": "e", "proved": False, "outcome": "infra_error"}]
    r = proof_rates(rows)
    assert (r["theorems"], r["proved"], r["proof_rate"]) == (5, 2, 0.4)
    assert (r["proved_model_only"], r["proof_rate_model_only"]) == (1, 0.2)
    assert (r["start_failed"], r["infra_errors"]) == (1, 1)
    assert r["outcomes"] == {"exhausted": 1, "infra_error": 1, "proved": 2, "start_failed": 1}
    # rows that do not say how many probe steps a proof used: the model-only rate is unknown, not 100%
    assert proof_rates([{"theorem": "a", "proved": True}])["proof_rate_model_only"] is None


def test_depth_distribution_time_split_and_search_figures():
    rows = [{"theorem": "a", "proved": True, "proof_depth": 2, "generate_s": 3.0, "lean_s": 1.0, "ebm_s": 0.0,
             "other_s": 0.0, "mean_unique_tactics": 4.0, "mean_children": 2.0, "lean_pass_rate": 0.5, "wall_s": 4},
            {"theorem": "b", "proved": True, "proof_depth": 2, "generate_s": 1.0, "lean_s": 1.0, "ebm_s": 1.0,
             "other_s": 1.0, "mean_unique_tactics": 6.0, "mean_children": 1.0, "lean_pass_rate": 0.25, "wall_s": 4},
            {"theorem": "c", "proved": True, "proof_depth": 5, "verified": False},
            {"theorem": "d", "proved": True, "proof_depth": 1},
            {"theorem": "e", "proved": False, "proof_depth": None}]
    assert depth_distribution(rows) == {1: 1, 2: 2}
    ts = time_split(rows)
    assert ts["seconds"] == {"generate": 4.0, "lean": 2.0, "ebm": 1.0, "other": 1.0}
    assert ts["share"] == {"generate": 0.5, "lean": 0.25, "ebm": 0.125, "other": 0.125}
    sf = search_figures(rows)
    assert (sf["mean_unique_tactics"], sf["mean_children"], sf["lean_pass_rate"]) == (5.0, 1.5, 0.375)
    assert sf["generate_s_per_theorem"] == 2.0


def _node(thm, nid, parent, depth, outcome, on_path):
    return {"run": "r", "iteration": 0, "theorem": thm, "node_id": nid, "parent_id": parent, "depth": depth,
            "outcome": outcome, "on_proof_path": on_path}


def test_trajectory_stats_on_a_hand_built_tree():
    # theorem t: root 0 -> {1 (state, on path), 2 (error), 3 (state)}; 1 -> {4 (finished, on path)}
    # theorem u: root only
    rows = [_node("t", 0, None, 0, "state", True), _node("t", 1, 0, 1, "state", True),
            _node("t", 2, 0, 1, "error", False), _node("t", 3, 0, 1, "state", False),
            _node("t", 4, 1, 2, "finished", True), _node("u", 0, None, 0, "state", False)]
    s = trajectory_stats(rows)
    assert (s["nodes"], s["theorems"], s["trees"]) == (6, 2, 2)
    assert s["label_balance"] == {"positive": 2, "negative": 2, "positive_share": 0.5}
    assert s["branching"] == {"expanded": 2, "mean_children": 2.0, "max_children": 3}
    assert s["depth_distribution"] == {0: 2, 1: 3, 2: 1}
    assert s["nodes_per_theorem"] == {"mean": 3.0, "median": 3.0, "max": 5}
    assert s["outcomes"] == {"error": 1, "finished": 1, "state": 4}
    import pyarrow as pa

    assert trajectory_stats(pa.Table.from_pylist(rows)) == s  # the same from a table
