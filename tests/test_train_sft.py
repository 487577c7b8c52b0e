"""The Ray Train SFT loop on local Ray with CPU workers: LoRA changes generations, resume, guard stop."""

import json

import pytest

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")

from raylib.data.sft import build_sft_examples, oracle_pairs, read_examples
from raylib.env.builtin.corpus import generate_theorems
from raylib.train.config import SFTSection
from raylib.train.guards import GuardStop
from raylib.train.sft import run_sft

LOOSE = {"probe_states": 3, "probe_samples": 1, "probe_max_tokens": 6, "max_identical_share": 1.0,
         "max_empty_share": 1.0, "max_repetitive_share": 1.0}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from raylib.models.tiny import init_tiny_model, save_model, train_tokenizer

    root = tmp_path_factory.mktemp("sft")
    thms = generate_theorems(120, seed=3)
    build = build_sft_examples(oracle_pairs([t for t in thms if t.split == "train"]), root / "examples",
                               [t for t in thms if t.split != "train"], valid_fraction=0.1)
    rows = read_examples(build.train_path).to_pylist()
    tok = train_tokenizer([r["prompt"] + r["completion"] for r in rows], vocab_size=320)
    save_model(init_tiny_model(tok, hidden_size=64, layers=1, heads=1, intermediate=128), tok, root / "base")
    return root


def _greedy(model_dir, adapter, prompt):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, adapter)
    ids = torch.tensor([tok(prompt)["input_ids"]])
    with torch.no_grad():
        out = model.generate(input_ids=ids, max_new_tokens=10, do_sample=False, pad_token_id=0)
    return tok.decode(out[0, ids.shape[1]:])


def test_lora_run_changes_generations(setup):
    sft = SFTSection(max_steps=24, lr=2e-2, batch_size=8, eval_every=12, checkpoint_every=12,
                     lora={"r": 4, "alpha": 8}, guards=LOOSE)
    res = run_sft(sft, setup / "examples", setup / "base", setup / "lora", config_hash="abc")
    assert res.steps == 24 and [h["step"] for h in res.history] == list(range(1, 25))
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert (res.model_dir / "adapter_config.json").is_file()
    fp = json.loads((res.model_dir / "fingerprint.json").read_text())
    assert fp["adapter"]["r"] == 4 and fp["config_hash"] == "abc" and fp["step"] == 24 and fp["data_hash"]
    prompt = read_examples(setup / "examples" / "valid.parquet").to_pylist()[0]["prompt"]
    assert _greedy(setup / "base", None, prompt) != _greedy(setup / "base", res.model_dir, prompt)
    again = run_sft(sft, setup / "examples", setup / "base", setup / "lora", config_hash="abc")
    assert again.cached and again.fingerprint == res.fingerprint


def test_interrupted_run_resumes_from_checkpoint(setup):
    sft = SFTSection(max_steps=6, lr=1e-2, batch_size=4, eval_every=0, checkpoint_every=2, guards=LOOSE,
                     lora={"r": 2})
    out = setup / "resume"
    with pytest.raises(ray.train.TrainingFailedError, match="interrupted after the checkpoint of step 4"):
        run_sft(sft, setup / "examples", setup / "base", out, interrupt_after_step=4)
    assert not (out / "COMPLETE").exists()
    res = run_sft(sft, setup / "examples", setup / "base", out)
    assert res.resumed_from == 4 and res.metrics["resumed_from"] == 4
    assert [h["step"] for h in res.history] == [1, 2, 3, 4, 5, 6]
    assert all(h["epoch"] == 0 for h in res.history)


def test_probe_collapse_stops_run_through_ray(setup):
    guards = dict(LOOSE, max_identical_share=0.0)  # any probe counts as collapsed
    sft = SFTSection(mode="full", max_steps=4, batch_size=4, eval_every=2, checkpoint_every=2, guards=guards)
    with pytest.raises(GuardStop) as e:
        run_sft(sft, setup / "examples", setup / "base", setup / "collapse")
    assert e.value.guard == "generation_probe" and e.value.step == 2
