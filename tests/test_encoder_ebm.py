"""State encoder, EBM head and EncoderActor on a real tiny transformers model (random weights, built here)."""


import numpy as np
import pytest

from raylib.models.ebm import EBM, FingerprintMismatch, build_head
from raylib.models.encoder import StateEncoder, token_budget_batches

STATES = ["p q : Prop\nh : p ∧ q\n⊢ q ∧ p", "⊢ True", "p : Prop\nhp : p\n⊢ p ∨ ¬p ∧ (p → p → p → p)", "⊢ False"]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return tiny_model_dir


def test_token_budget_batches_cover_everything_within_budget():
    lengths = [5, 50, 7, 300, 12, 49, 3]
    batches = token_budget_batches(lengths, max_tokens=100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 100
    assert [3] in batches  # the over-long state forms a batch of its own


def test_encoder_is_batch_invariant_and_fingerprinted(model_dir):
    enc = StateEncoder(model_dir, device="cpu", max_batch_tokens=64)
    together = enc.encode(STATES)
    alone = np.stack([enc.encode([s])[0] for s in STATES])
    assert together.shape == (4, 128) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-4)  # padding never leaks into the mean
    assert enc.fingerprint().endswith("/base/float32/mean/512")
    assert StateEncoder(model_dir, device="cpu", max_length=64).fingerprint().endswith("/base/float32/mean/64")
    assert StateEncoder(model_dir, device="cpu", pooling="last").fingerprint() != enc.fingerprint()


def test_last_pooling_batch_invariant_and_adapter_applied(model_dir, tiny_adapter_dir):
    last = StateEncoder(model_dir, device="cpu", pooling="last", max_batch_tokens=64)
    np.testing.assert_allclose(last.encode(STATES), np.stack([last.encode([s])[0] for s in STATES]), atol=1e-4)
    base = StateEncoder(model_dir, device="cpu").encode(STATES)
    tuned = StateEncoder(model_dir, adapter=tiny_adapter_dir, device="cpu")
    assert not np.allclose(tuned.encode(STATES), base, atol=1e-3)  # the decoder body carries the LoRA layers
    assert "/base/" not in tuned.fingerprint()


def test_fingerprint_follows_content_not_path(model_dir, tmp_path):
    import shutil

    from raylib.models.loading import model_hash

    copy = shutil.copytree(model_dir, tmp_path / "elsewhere")
    assert StateEncoder(copy, device="cpu").fingerprint() == StateEncoder(model_dir, device="cpu").fingerprint()
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one byte near the end of the weights
    weights.write_bytes(bytes(data))
    assert model_hash(copy) != model_hash(model_dir)


def test_ebm_round_trip_and_refuses_other_embeddings(model_dir, tmp_path):
    enc = StateEncoder(model_dir, device="cpu")
    ebm = EBM(build_head(enc.dim, hidden=32), enc.fingerprint())
    emb = enc.encode(STATES)
    e1 = ebm.energies(emb, enc.fingerprint())
    loaded = EBM.load(ebm.save(tmp_path / "ebm"))
    assert loaded.energies(emb, enc.fingerprint()) == pytest.approx(e1, abs=1e-6)
    with pytest.raises(FingerprintMismatch, match="refuses"):
        loaded.energies(emb, enc.fingerprint().replace("float32", "bfloat16"))
    with pytest.raises(FileNotFoundError, match="not an EBM directory"):
        EBM.load(tmp_path)


def test_encoder_actor_batches_concurrent_requests(model_dir, tmp_path):
    ray = pytest.importorskip("ray")
    from actors.encoder import EncoderActor
    from raylib.config import load_config

    enc = StateEncoder(model_dir, device="cpu")
    path = EBM(build_head(enc.dim, hidden=32), enc.fingerprint()).save(tmp_path / "ebm")
    expected = EBM.load(path).energies(enc.encode(STATES), enc.fingerprint())
    cfg = load_config(None, [f"model.path={model_dir}", f"value.ebm_path={path}", "model.device=cpu",
                             "workers.linger_ms=50"])
    ray.init(num_cpus=1, include_dashboard=False, configure_logging=False)
    try:
        actor = ray.remote(EncoderActor).options(num_cpus=0).remote(cfg)
        got = ray.get([actor.energies.remote([s]) for s in STATES])
        assert [g[0] for g in got] == pytest.approx(expected, abs=1e-4)
        assert ray.get(actor.stats.remote())["max_batch"] > 1  # concurrent callers shared a batch
        assert ray.get(actor.energies.remote(STATES)) == pytest.approx(expected, abs=1e-4)
        assert ray.get(actor.energies.remote([])) == []
    finally:
        ray.shutdown()
