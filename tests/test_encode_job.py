"""The encode stage on local Ray (CPU) with the tiny model: Ray Data → encoder actor pool → embeddings
folder; the cache by (state hash, fingerprint), resume after a kill, bad input, the zero-embedding check."""

import json
import re

import numpy as np
import pytest

from raylib.data.embeddings import EmbeddingsError, read_embeddings, write_embeddings_part
from raylib.data.trajectory import TrajectoryError, write_trajectory
from raylib.hashing import state_hash


def tree_rows(theorem, states, finished_after=None):
    """A root and a chain of children (every second one a failed tactic) ending in a finished node."""
    rows, nid = [], 0
    base = {"run": "t", "iteration": 0, "theorem": theorem, "statement": f"theorem {theorem} : True",
            "tactic": None, "step_logprob": None, "energy": None, "on_proof_path": False,
            "timings": {"gen_s": 0.0, "lean_s": 0.0, "ebm_s": 0.0}, "generator_fingerprint": "g",
            "encoder_fingerprint": None, "config_hash": "c"}
    for i, s in enumerate(states):
        rows.append({**base, "node_id": nid, "parent_id": nid - 1 if nid else None, "depth": i, "state": s,
                     "outcome": "state", "tactic": None if nid == 0 else "intro h"})
        nid += 1
        rows.append({**base, "node_id": nid, "parent_id": nid - 1, "depth": i + 1, "state": "",
                     "outcome": "error", "tactic": "bad"})
        nid += 1
    rows.append({**base, "node_id": nid, "parent_id": nid - 2, "depth": len(states), "state": "",
                 "outcome": "finished", "tactic": "trivial"})
    return rows


S1 = ["p q : Prop\nh : p ∧ q\n⊢ q ∧ p", "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p", "case left\np : Prop\n⊢ p"]
S2 = ["p : Prop\n⊢ p → p", "p : Prop\nh : p\n⊢ p", "p q : Prop\nh : p ∧ q\n⊢ q ∧ p"]  # one state also in S1
S3 = [f"p : Prop\nh{i} : p\n⊢ p ∨ ¬p" for i in range(7)]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def trajs(tmp_path_factory):
    d = tmp_path_factory.mktemp("traj")
    return [write_trajectory(tree_rows("t1", S1), d), write_trajectory(tree_rows("t2", S2), d),
            write_trajectory(tree_rows("t3", S3), d)]


def _cfg(model_dir, *extra):
    from raylib.config import load_config

    return load_config(None, [f"model.path={model_dir}", "model.device=cpu", "value.encode_batch_states=4",
                              "value.part_states=4", *extra])


def test_encode_resume_and_cache(ray_local, tiny_model_dir, trajs, tmp_path, monkeypatch, capsys):
    """Run 1 dies after its first part; run 2 (same input) encodes only what no part holds; run 3 (the CLI,
    one more file) encodes only the new file's states and reports the rest warm."""
    import raylib.data.encode as encode_mod
    from jobs.encode import main
    from raylib.models.encoder import StateEncoder

    cfg = _cfg(tiny_model_dir, "value.dtype=bfloat16")
    out, calls = tmp_path / "emb", []

    def dying_write(*a, **k):
        if calls:
            raise KeyboardInterrupt("killed")  # the job dies after its first part (4 states)
        calls.append(a[1])
        return write_embeddings_part(*a, **k)

    monkeypatch.setattr(encode_mod, "write_embeddings_part", dying_write)
    with pytest.raises(KeyboardInterrupt):
        encode_mod.encode_trajectories(cfg, trajs[:2], out, progress=False)
    assert len(calls) == 1 and len(read_embeddings(out)[0]) == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # nothing half-written left behind
    monkeypatch.undo()

    distinct = set(S1) | set(S2)  # 5 states: one is in both files
    second = encode_mod.encode_trajectories(cfg, trajs[:2], out, progress=False)
    assert (second["states"], second["warm"], second["encoded"]) == (len(distinct), 4, 1) == (5, 4, 1)
    hashes, arr, meta = read_embeddings(out, second["fingerprint"])
    assert sorted(hashes) == sorted(state_hash(s) for s in distinct) and meta["count"] == 5
    assert meta["dtype"] == "bfloat16" and second["fingerprint"].endswith("/bfloat16/mean/512")
    enc = StateEncoder(tiny_model_dir, device="cpu", dtype="bfloat16")
    assert enc.fingerprint() == second["fingerprint"]
    by_hash = dict(zip(hashes, arr))
    for s, w in zip(S1, enc.encode(S1)):
        np.testing.assert_allclose(by_hash[state_hash(s)], w, rtol=1e-2, atol=1e-2)

    rc = main(["--trajectories", str(trajs[0].parent / "*.parquet"), "--out", str(out), "--no-progress",
               "--set", f"model.path={tiny_model_dir}", "--set", "model.device=cpu", "--set", "value.dtype=bfloat16",
               "--set", "value.part_states=4"])
    printed = capsys.readouterr().out  # Ray may print a raylet warning to stdout first (slow worker start)
    third = json.loads(printed[re.search(r"^\{$", printed, re.M).start():])
    assert rc == 0 and (third["states"], third["warm"], third["encoded"]) == (12, 5, 7)
    assert (third["count"], third["dim"], third["parts_written"]) == (12, 128, 2)
    hashes3, arr3, _ = read_embeddings(out)
    assert sorted(hashes3) == sorted({state_hash(s) for s in S1 + S2 + S3})
    np.testing.assert_array_equal(dict(zip(hashes3, arr3))[hashes[0]], arr[0])  # old rows untouched


def test_other_fingerprint_is_refused_before_work(tiny_model_dir, trajs, tmp_path):
    from raylib.data.encode import encode_trajectories
    from raylib.models.encoder import config_fingerprint

    out = tmp_path / "emb"
    write_embeddings_part(out, ["a", "b"], np.ones((2, 128)), config_fingerprint(_cfg(tiny_model_dir)), "float32")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(EmbeddingsError, match=f"{out}.*fingerprint.*never mixed"):  # raised before Ray is used
        encode_trajectories(_cfg(tiny_model_dir, "value.pooling=last"), trajs, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(EmbeddingsError, match="not .*/float32/last/512"):
        read_embeddings(out, "x/base/float32/last/512")
    with pytest.raises(EmbeddingsError, match="never mixed"):
        write_embeddings_part(out, ["c"], np.ones((1, 128)), "x/base/float32/last/512", "float32")


def test_zero_embedding_is_caught_naming_the_state(tiny_model_dir):
    """An encoder that returns all-zero hidden states for one state (as an encode server did in the field)."""
    from raylib.models.encoder import EmbeddingCheckError, StateEncoder

    enc = StateEncoder(tiny_model_dir, device="cpu")
    body = enc._decoder

    class ZeroSecond:
        def __call__(self, **kw):
            out = body(**kw)
            out.last_hidden_state[1] = 0.0  # the second state of every batch comes back as zeros
            return out

    enc._decoder = ZeroSecond()
    with pytest.raises(EmbeddingCheckError, match="all zeros for state") as e:
        enc.encode(S1)
    assert any(state_hash(s) in str(e.value) and repr(s) in str(e.value) for s in S1)

    class NaNFirst:
        def __call__(self, **kw):
            out = body(**kw)
            out.last_hidden_state[0, 0, 0] = float("nan")
            return out

    enc._decoder = NaNFirst()
    with pytest.raises(EmbeddingCheckError, match="NaN or Inf"):
        enc.encode(S1)


def test_bad_input_names_the_file(tiny_model_dir, trajs, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.encode import main
    from raylib.data.encode import encode_trajectories

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"prompt": ["x"], "completion": ["y"]}), other)
    with pytest.raises(TrajectoryError, match=f"{other}: not a trajectory file: missing columns"):
        encode_trajectories(_cfg(tiny_model_dir), [trajs[0], other], tmp_path / "e", progress=False)
    assert not (tmp_path / "e").exists()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(EmbeddingsError, match="not an embeddings folder"):
        encode_trajectories(_cfg(tiny_model_dir), trajs[:1], tmp_path / "junk", progress=False)
    cfg = ["--set", f"model.path={tiny_model_dir}"]
    assert main(["--trajectories", str(tmp_path / "none" / "*.parquet"), "--out", str(tmp_path / "o"), *cfg]) == 2
    assert main(["--trajectories", str(other), "--out", str(tmp_path / "o"), *cfg]) == 2
