"""Separation probe: separates a separable set, reports collapse on a collapsed one; probe_model on the tiny model."""

import json

import numpy as np
import pytest

from raylib.train.probe import ProbeError, probe_model, probe_states, separation_probe


def _clouds(seed=0, n=200, dim=64, shift=1.5):
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    neg = rng.normal(size=(n, dim))
    pos = rng.normal(size=(n, dim)) + shift * 2 * direction
    return pos, neg, direction


def test_separable_set_is_separated():
    pos, neg, _ = _clouds()
    r = separation_probe(pos, neg, seed=0)
    assert r["probe_accuracy"] > 0.9 and not r["collapsed"]
    assert r["centroid_l2"] == pytest.approx(np.linalg.norm(pos.mean(0) - neg.mean(0)))
    assert 2.0 < r["centroid_l2"] < 4.5  # shift 3 along one direction, plus sampling noise
    assert r["n_pos"] == r["n_neg"] == 200
    assert r["norm_gap"] == pytest.approx(r["mean_norm_pos"] - r["mean_norm_neg"])
    assert separation_probe(pos, neg, seed=0) == r  # seeded


def test_collapsed_set_is_reported():
    pos, neg, direction = _clouds()
    # what a collapsed encoder does: the separating direction is gone, the rest is unchanged
    proj = np.eye(len(direction)) - np.outer(direction, direction)
    r = separation_probe(pos @ proj, neg @ proj, seed=0)
    assert r["probe_accuracy"] < 0.62 and r["collapsed"]
    assert r["centroid_l2"] < 1.5
    same = np.random.default_rng(1).normal(size=(300, 32))
    r2 = separation_probe(same[:150], same[150:], seed=0)
    assert r2["collapsed"] and abs(r2["probe_accuracy"] - 0.5) < 0.12


def test_norm_gap_and_bad_input():
    pos, neg, _ = _clouds(dim=16, shift=0.0)
    r = separation_probe(2 * pos, neg)
    assert r["norm_gap"] > 0.8 * r["mean_norm_neg"]
    assert r["mean_norm_pos"] == pytest.approx(np.linalg.norm(2 * pos, axis=1).mean())
    with pytest.raises(ProbeError, match="at least 2"):
        separation_probe(pos[:1], neg)
    with pytest.raises(ProbeError, match="one dim"):
        separation_probe(pos, neg[:, :8])


def _rows(theorem, states, on_path):
    rows = []
    for i, (s, p) in enumerate(zip(states, on_path)):
        rows.append({"run": "t", "iteration": 0, "theorem": theorem, "statement": "p", "node_id": i,
                     "parent_id": None if i == 0 else 0, "depth": int(i > 0), "state": s,
                     "tactic": None if i == 0 else "t", "outcome": "state", "on_proof_path": p,
                     "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0}, "generator_fingerprint": "g",
                     "config_hash": "c"})
    return rows


def test_probe_model_encodes_held_out_states(tmp_path, tiny_model_dir, tiny_adapter_dir):
    from raylib.config import load_config
    from raylib.data.trajectory import read_trajectories, write_trajectory

    for k in range(4):
        write_trajectory(_rows(f"thm{k}", [f"p q : Prop\n⊢ p ∧ q{'' if j else ' → p'} {k}{j}" for j in range(4)],
                               [True, True, False, False]), tmp_path / "traj")
    table = read_trajectories(tmp_path / "traj")
    pos, neg = probe_states(table, "all")
    assert len(pos) == 8 and len(neg) == 8 and not set(pos) & set(neg)
    assert all(s.endswith(("0", "1")) for s in pos) and all(s.endswith(("2", "3")) for s in neg)
    cfg = load_config(None, [f"model.path={tiny_model_dir}", "model.device=cpu"])
    r = probe_model(cfg, tmp_path / "traj", split="all")
    assert r["n_pos"] == 8 and r["n_neg"] == 8 and r["adapter"] is None
    assert 0.0 <= r["probe_accuracy"] <= 1.0 and r["centroid_l2"] > 0
    ra = probe_model(cfg, tmp_path / "traj", adapter=tiny_adapter_dir, split="all")
    assert ra["fingerprint"] != r["fingerprint"] and ra["centroid_l2"] != r["centroid_l2"]
    json.dumps(ra)  # the CLI prints it
    with pytest.raises(ProbeError, match="--split all"):
        probe_model(load_config(None, [f"model.path={tiny_model_dir}", "ebm.valid_fraction=0.0"]),
                    tmp_path / "traj", split="val")


def test_cli_prints_json(tmp_path, tiny_model_dir, capsys):
    from jobs.probe import main
    from raylib.data.trajectory import write_trajectory

    for k in range(3):
        write_trajectory(_rows(f"thm{k}", [f"⊢ goal {k} {j}" for j in range(3)], [True, False, False]), tmp_path)
    rc = main(["--trajectories", str(tmp_path / "*.parquet"), "--split", "all", "--set", f"model.path={tiny_model_dir}"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["n_pos"] == 3 and out["n_neg"] == 6 and "probe_accuracy" in out
    assert main(["--trajectories", str(tmp_path / "none*.parquet")]) == 2
