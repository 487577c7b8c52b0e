"""EBM training on local Ray (CPU workers): losses, resume after a kill without repeating a step, bad input.

The trajectories and embeddings here are synthetic (written with the real writers): proof-path states'
embeddings are shifted along one direction, so a head can learn to rank them first.
"""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylib.data.embeddings import EmbeddingsError, write_embeddings_part
from raylib.data.sampler import SamplerError
from raylib.data.trajectory import TrajectoryError, write_trajectory
from raylib.hashing import state_hash
from raylib.models.ebm import EBM, FingerprintMismatch, build_head, head_shape
from raylib.train.config import EBMSection
from raylib.train.ebm import prepare_ebm_data, train_ebm
from raylib.train.ebm_eval import evaluate_ebm, score_rows
from raylib.train.ebm_loop import group_loss, group_metrics, train_in_memory

FP = "fp-test"
# evaluations at 6 and 12 (not checkpoint steps), checkpoints at 4, 8, 12; killed after the checkpoint of 4
RUN = EBMSection(hidden_sizes=[32, 16], dropout=0.1, negatives=3, batch_size=16, max_steps=12, lr=1e-2,
                 eval_every=6, checkpoint_every=4, log_every=100, valid_fraction=0.3)


def _row(name, nid, parent, depth, text, on_path, outcome="state"):
    return {"run": "s", "iteration": 0, "theorem": name, "statement": "p", "node_id": nid, "parent_id": parent,
            "depth": depth, "state": text, "tactic": None if parent is None else "t", "outcome": outcome,
            "on_proof_path": on_path, "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0},
            "generator_fingerprint": "g", "config_hash": "c"}


def make_data(root, n_theorems=24, depth=3, branch=4, dim=32, signal=2.5, proved_every=3, seed=0):
    """Trees of ``branch`` children per proof-path node; every ``proved_every``-th theorem unproved."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    labels = {}
    for t in range(n_theorems):
        name, proved = f"synth_{t}", t % proved_every != 0
        rows = [_row(name, 0, None, 0, f"{name} root", proved)]
        cur = 0
        for d in range(1, depth + 1):
            kids = []
            for c in range(branch):
                rows.append(_row(name, len(rows), cur, d, f"{name} d{d} c{c}", proved and c == 0))
                kids.append(len(rows) - 1)
            cur = kids[0]
        if proved:
            rows.append(_row(name, len(rows), cur, depth + 1, "", True, "finished"))
        write_trajectory(rows, root / "traj", name)
        labels.update({state_hash(r["state"]): r["on_proof_path"] for r in rows if r["state"]})
    hashes = sorted(labels)
    emb = rng.normal(size=(len(hashes), dim)) + signal * np.array([labels[h] for h in hashes])[:, None] * direction
    write_embeddings_part(root / "emb", hashes, emb.astype(np.float32), FP, "float32")
    return root / "traj", root / "emb"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("ebm"))


def test_losses_and_metrics_on_known_energies():
    import torch

    e = torch.tensor([[0.0, 1.0, 2.0], [3.0, 1.0, 5.0]])
    assert group_metrics(e) == {"gap": pytest.approx(((1.5 - 0) + (3 - 3)) / 2), "rank": 0.5}
    # info_nce: -log softmax(-e)[0]
    a = e.numpy()
    want = float(np.mean([np.log(np.exp(-a[i]).sum()) + a[i, 0] for i in range(2)]))
    assert float(group_loss(e, "info_nce")) == pytest.approx(want, rel=1e-6)
    assert float(group_loss(e / 2, "info_nce", temperature=0.5)) == pytest.approx(want, rel=1e-6)
    # margin 1: relu(1 + pos - neg) = [0, 0] and [3, 0] -> mean 3/4
    assert float(group_loss(e, "margin_ranking", margin=1.0)) == pytest.approx(0.75)
    assert float(group_loss(e, "margin_ranking", margin=0.0)) == pytest.approx(0.5)


def test_head_shape_from_config_round_trips(tmp_path):
    import torch

    head = build_head(8, hidden_sizes=[16, 4], dropout=0.2)
    assert head_shape(head) == {"dim": 8, "hidden_sizes": [16, 4], "dropout": 0.2}
    ebm = EBM(head, FP)
    loaded = EBM.load(ebm.save(tmp_path / "e"))
    x = torch.randn(3, 8).numpy()
    assert loaded.energies(x, FP) == pytest.approx(ebm.energies(x, FP))
    assert head_shape(loaded.head) == head_shape(head)


def test_bad_input_stops_before_work(tmp_path, data):
    traj, emb = data
    out = tmp_path / "out"
    with pytest.raises(EmbeddingsError, match=f"{emb}.*fingerprint"):
        train_ebm(RUN, traj, emb, out, fingerprint="other-encoder")
    (tmp_path / "nometa").mkdir()
    with pytest.raises(EmbeddingsError, match="nometa.*jobs.encode"):
        train_ebm(RUN, traj, tmp_path / "nometa", out)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"theorem": ["x"], "state": ["s"]}), bad)
    with pytest.raises(TrajectoryError, match=f"{bad}: missing trajectory columns"):
        train_ebm(RUN, [*sorted(traj.glob("*.parquet")), bad], emb, out)
    unproved = tmp_path / "unproved"
    for f in sorted(traj.glob("*.parquet")):
        rows = pq.read_table(f).to_pylist()
        write_trajectory([dict(r, on_proof_path=False) for r in rows if r["outcome"] == "state"], unproved)
    with pytest.raises(SamplerError, match=f"{unproved}.*no proof-path state"):
        train_ebm(RUN, unproved, emb, out)
    few = tmp_path / "few"
    write_embeddings_part(few, ["0" * 16], np.ones((1, 32), np.float32), FP, "float32")
    with pytest.raises(EmbeddingsError, match=f"{few}.*have no embedding.*jobs.encode"):
        train_ebm(RUN, traj, few, out)
    assert not out.exists()  # nothing written by a refused run
    with pytest.raises(FileNotFoundError, match="not an EBM directory.*jobs.train_ebm"):
        EBM.load(tmp_path / "nometa")


@pytest.mark.ray
def test_training_resumes_after_a_kill_without_repeating_steps(tmp_path, data):
    ray = pytest.importorskip("ray")
    import ray.train

    traj, emb = data
    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        with pytest.raises(ray.train.TrainingFailedError):
            train_ebm(RUN, traj, emb, out, interrupt_after_step=4)
        assert not (out / "ebm").exists() and not (out / "COMPLETE").exists()
        res = train_ebm(RUN, traj, emb, out)
        assert res.resumed_from == 4 and res.steps == 12 and not res.cached
        assert [h["step"] for h in res.history] == list(range(1, 13))
        # the same steps on the same groups in one plain process: a repeated or skipped step would differ
        prep = prepare_ebm_data(RUN, traj, emb)
        _, ref = train_in_memory(RUN, prep.train, prep.embeddings, steps=12)
        assert [h["loss"] for h in res.history] == pytest.approx([h["loss"] for h in ref], rel=1e-4)
        evals = [h for h in res.history if "val_rank" in h]
        assert [h["step"] for h in evals] == [6, 12]
        assert all(k in evals[-1] for k in ("train_loss", "train_gap", "train_rank", "val_loss", "val_gap"))
        assert evals[-1]["val_rank"] > 0.5 and evals[-1]["val_gap"] > 0  # chance rank: 1 / (K + 1) = 0.25
        report = json.loads((out / "sampler.json").read_text())
        assert report["train"]["positives"] > 0 and report["val"]["positives"] > 0
        ebm = EBM.load(res.ebm_dir)
        assert ebm.encoder_fingerprint == FP and ebm.meta["trained_steps"] == 12
        with pytest.raises(FingerprintMismatch):
            ebm.energies(np.zeros((1, 32), np.float32), "another/fingerprint")
        held_out = evaluate_ebm(res.ebm_dir, traj, emb, "val")  # the val theorems, as the head's split says
        assert held_out["theorems"] == report["val"]["theorems"]
        sib = held_out["sibling_accuracy"]
        assert sib["nodes"] == report["val"]["positives"] - report["val"]["theorems_with_positives"]  # roots: none
        assert sib["accuracy"] > sib["chance"] + 0.2 and sib["chance"] == pytest.approx(0.25)
        rows = score_rows(res.ebm_dir, traj, emb, "all")
        assert rows and all((r["energy"] is None) == (r["outcome"] != "state") for r in rows)  # terminal: unscored
        again = train_ebm(RUN, traj, emb, out)
        assert again.cached and again.steps == 12
    finally:
        ray.shutdown()


def test_cli_refuses_bad_input_before_ray(tmp_path, data, caplog):
    from jobs.train_ebm import main

    traj, emb = data
    assert main(["--trajectories", str(traj / "*.parquet"), "--embeddings", str(emb), "--out", str(tmp_path / "o"),
                 "--fingerprint", "other"]) == 2
    assert f"{emb}: embeddings folder holds fingerprint" in caplog.text
    assert main(["--trajectories", str(tmp_path / "none*.parquet"), "--embeddings", str(emb),
                 "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
