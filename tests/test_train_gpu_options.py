"""GPU and memory options of SFT, checked on CPU with the tiny model: float32 master weights under a
bfloat16 compute dtype, the RNG record of a checkpoint, refusals of what a machine cannot run, gradient
checkpointing, and early stopping in a real Ray Train run."""

import json
import random
import re

import numpy as np
import pytest
import torch

from raylib.train.config import SFTSection
from raylib.train.options import EarlyStopping, SettingRefused, restore_rng, rng_state, runtime_refusal
from raylib.train.sft import Collator, sft_step
from raylib.train.worker import _load_model

PAIRS = [("p q : Prop\nh : p ∧ q\n⊢ q ∧ p", "constructor"), ("p : Prop\nhp : p\n⊢ p ∨ False", "left"),
         ("⊢ True", "trivial"), ("p q : Prop\nhq : q\n⊢ p → q", "intro h")]


def _batch(model_dir):
    from transformers import AutoTokenizer

    collate = Collator(AutoTokenizer.from_pretrained(model_dir), max_len=96)
    return collate({"prompt": [p for p, _ in PAIRS], "completion": [c for _, c in PAIRS]})


def _q_proj(model):
    return model.get_base_model().model.layers[0].self_attn.q_proj if hasattr(model, "get_base_model") \
        else model.model.layers[0].self_attn.q_proj


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_bfloat16_trains_float32_master_weights_and_keeps_tiny_updates(tiny_model_dir, mode):
    """sft.dtype bfloat16: the forward runs in bfloat16 (autocast) but every trained parameter and so
    the optimizer state is float32, so an Adam step of 1e-5 on weights of size ~0.02 is kept; a bfloat16
    parameter (8-bit mantissa: spacing ~1.2e-4 at 0.02) rounds nearly all of it away."""
    sft = SFTSection(mode=mode, dtype="bfloat16", lora={"r": 4, "alpha": 8})
    torch.manual_seed(0)
    model = _load_model(sft, str(tiny_model_dir), None, "cpu")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and all(p.dtype == torch.float32 for p in params)
    if mode == "lora":  # the frozen base sits in the compute dtype (half the memory)
        assert _q_proj(model).base_layer.weight.dtype == torch.bfloat16
        watched = _q_proj(model).lora_A["default"].weight
        with torch.no_grad():  # B starts at zero (so A gets no gradient): a trained adapter's B instead
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.02)
    else:
        watched = _q_proj(model).weight
    optim = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    assert all(p.dtype == torch.float32 for g in optim.param_groups for p in g["params"])
    seen = []
    head = model.get_output_embeddings()
    hook = head.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    before = watched.detach().clone()
    loss, tokens, norm = sft_step(model, [_batch(tiny_model_dir)], params, 1.0, None, "bfloat16")
    hook.remove()
    optim.step()
    assert seen == [torch.bfloat16]  # the compute ran in bfloat16
    assert tokens > 0 and norm > 0
    changed = (watched.detach() != before).float().mean().item()
    assert changed > 0.9, f"only {changed:.1%} of the watched weights moved: the update was rounded away"


def test_rng_state_carries_every_generator_and_restores_them():
    state = rng_state()
    assert {"rng", "python_rng", "numpy_rng", "cuda_rng"} <= set(state)
    assert (state["cuda_rng"] is None) == (not torch.cuda.is_available())
    first = (torch.rand(3).tolist(), random.random(), np.random.rand())
    restore_rng(state)
    assert (torch.rand(3).tolist(), random.random(), np.random.rand()) == first


def test_cuda_rng_restored_only_where_cuda_is_available(monkeypatch):
    """No GPU here: torch.cuda.set_rng_state_all is replaced by a recorder (the one fake in this file)."""
    import raylib.train.options as options

    calls = []
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: calls.append(states))
    state = dict(rng_state(), cuda_rng=["gpu0-state"])
    monkeypatch.setattr(options, "_cuda_available", lambda: False)
    restore_rng(state)
    assert calls == []
    monkeypatch.setattr(options, "_cuda_available", lambda: True)
    restore_rng(state)
    assert calls == [["gpu0-state"]]
    restore_rng({"rng": state["rng"]})  # a checkpoint from before the CUDA record still restores
    assert calls == [["gpu0-state"]]


@pytest.mark.parametrize("settings, named", [
    ({"dtype": "float16"}, "sft.dtype=float16"),
    ({"quantization": "4bit", "mode": "full", "use_gpu": True}, "needs sft.mode=lora"),
    ({"quantization": "8bit"}, "sft.use_gpu: true"),
    ({"quantization": "4bit", "use_gpu": True, "save": "merged"}, "sft.save: adapter"),
    ({"early_stopping": {"patience": 2}, "eval_every": 0}, "sft.eval_every > 0"),
])
def test_unrunnable_settings_refused_at_validation(settings, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        SFTSection(**settings)


def test_quantization_refused_at_worker_start_without_cuda_or_bitsandbytes(monkeypatch):
    import importlib.util

    import raylib.train.options as options

    sft = SFTSection(quantization="4bit", use_gpu=True)
    assert runtime_refusal(SFTSection()) is None
    monkeypatch.setattr(options, "_cuda_available", lambda: False)
    msg = runtime_refusal(sft)
    assert msg and "sft.quantization=4bit" in msg and "CUDA" in msg and "sft.quantization: null" in msg
    monkeypatch.setattr(options, "_cuda_available", lambda: True)
    if importlib.util.find_spec("bitsandbytes") is None:
        msg = runtime_refusal(sft)
        assert msg and "bitsandbytes" in msg and ".[gpu]" in msg


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_gradient_checkpointing_recomputes_layers_with_the_same_gradients(tiny_model_dir, mode):
    """With checkpointing each decoder layer's attention runs twice per step (forward, then recomputed in
    backward) and the loss and gradients are those of the plain step."""
    batch = _batch(tiny_model_dir)
    out = {}
    for gc in (False, True):
        torch.manual_seed(0)  # the same LoRA init both times
        model = _load_model(SFTSection(mode=mode, gradient_checkpointing=gc, lora={"r": 4, "alpha": 8}),
                            str(tiny_model_dir), None, "cpu")
        model.train()
        attn = (model.get_base_model() if mode == "lora" else model).model.layers[0].self_attn
        calls = []
        attn.register_forward_hook(lambda *a: calls.append(1))
        params = [p for p in model.parameters() if p.requires_grad]
        loss, _, norm = sft_step(model, [batch], params, 0.0)
        out[gc] = (len(calls), loss, norm, [p.grad.clone() for p in params])
    assert out[False][0] == 1 and out[True][0] == 2
    assert out[True][1] == pytest.approx(out[False][1], rel=1e-6)
    assert out[True][2] == pytest.approx(out[False][2], rel=1e-4)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out[True][3], out[False][3]))


def test_early_stopping_counts_evaluations_without_improvement():
    es = EarlyStopping(patience=2, min_delta=0.1)
    assert es.update(2, 1.0)["early_stop"] == 0 and es.best_step == 2
    assert es.update(4, 0.95)["early_stop"] == 0  # better, but not by more than min_delta
    assert es.update(6, 0.8)["early_stop"] == 0 and es.best_step == 6 and es.bad == 0
    again = EarlyStopping(patience=2, min_delta=0.1)
    again.load_state(json.loads(json.dumps(es.state())))  # survives the checkpoint's JSON
    assert again.update(8, 0.79)["early_stop"] == 0
    m = again.update(10, float("nan"))
    assert m["early_stop"] == 1 and m["early_stop_best_step"] == 6 and "early stopping" in m["stop_reason"]


# -- a real Ray Train run ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sft_setup(tmp_path_factory, tiny_model_dir):
    from raylib.data.sft import build_sft_examples, oracle_pairs
    from raylib.env.builtin.corpus import generate_theorems

    root = tmp_path_factory.mktemp("sft_gpu_options")
    thms = generate_theorems(60, seed=5)
    build_sft_examples(oracle_pairs([t for t in thms if t.split == "train"]), root / "examples",
                       [t for t in thms if t.split != "train"], valid_fraction=0.1)
    (root / "base").symlink_to(tiny_model_dir)
    return root


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    # a declared GPU (this machine has none for torch): quantization's refusal in the worker is reached
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, configure_logging=False,
             log_to_driver=False)
    yield
    ray.shutdown()


NO_PROBE = {"probe_states": 0}


@pytest.mark.ray
def test_early_stopping_ends_a_real_run_and_says_why(sft_setup, local_ray):
    """bfloat16 autocast + gradient checkpointing + early stopping through run_sft on Ray Train (CPU).
    min_delta 100 cannot be met: evaluations at 2 (best), 4 and 6 (no improvement) stop it at step 6
    of 40; the final checkpoint carries every RNG record and the early-stopping state."""
    import torch as th

    from raylib.train.sft import run_sft

    sft = SFTSection(max_steps=40, lr=1e-2, batch_size=8, eval_every=2, eval_examples=16, log_every=100,
                     checkpoint_every=0, dtype="bfloat16", gradient_checkpointing=True, lora={"r": 4, "alpha": 8},
                     early_stopping={"patience": 2, "min_delta": 100.0}, guards=NO_PROBE)
    out = sft_setup / "early"
    res = run_sft(sft, sft_setup / "examples", sft_setup / "base", out)
    assert res.steps == 6 and [h["step"] for h in res.history] == list(range(1, 7))
    assert [h["step"] for h in res.history if "eval_loss" in h] == [2, 4, 6]
    saved = json.loads((out / "result.json").read_text())["metrics"]
    assert saved["early_stop"] == 1 and saved["early_stop_best_step"] == 2 and saved["stop_step"] == 6
    assert saved["stop_reason"].startswith("early stopping") and (out / "COMPLETE").is_file()
    assert res.fingerprint["step"] == 6 and (res.model_dir / "adapter_config.json").is_file()
    (ckpt,) = (out / "train").glob("sft-*/checkpoint_000006")
    state = th.load(ckpt / "trainer_state.pt", weights_only=False)
    assert {"rng", "python_rng", "numpy_rng", "cuda_rng"} <= set(state)
    assert json.loads((ckpt / "history.json").read_text())["early_stopping"] == {"best": res.history[1]["eval_loss"],
                                                                               "best_step": 2, "bad": 2}


@pytest.mark.ray
def test_early_stopping_without_held_out_examples_is_refused_before_work(sft_setup, local_ray):
    from raylib.train.sft import run_sft

    sft = SFTSection(max_steps=4, eval_every=2, early_stopping={"patience": 1}, guards=NO_PROBE)
    out = sft_setup / "refused"
    with pytest.raises(SettingRefused, match=r"sft\.early_stopping needs held-out examples.*early_stopping: null"):
        run_sft(sft, sft_setup / "examples" / "train.parquet", sft_setup / "base", out)
    assert not out.exists()


@pytest.mark.ray
def test_quantization_refused_by_the_worker_before_any_training(sft_setup, local_ray):
    """Ray grants the worker the node's declared GPU but torch sees no CUDA (a CPU machine): the worker
    refuses sft.quantization before loading anything and the driver raises it once (retries allowed,
    none made), with no checkpoint and no finished model."""
    if torch.cuda.is_available():
        pytest.skip("a real GPU: the CUDA part of the refusal does not apply")
    from raylib.train.sft import run_sft

    sft = SFTSection(max_steps=4, quantization="4bit", use_gpu=True, max_failures=2, guards=NO_PROBE)
    out = sft_setup / "qlora"
    with pytest.raises(SettingRefused, match=r"sft\.quantization=4bit needs a CUDA GPU.*sft\.quantization: null"):
        run_sft(sft, sft_setup / "examples", sft_setup / "base", out)
    assert not (out / "COMPLETE").exists() and not list(out.glob("train/sft-*/checkpoint_*"))
