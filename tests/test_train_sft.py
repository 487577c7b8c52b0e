"""The Ray Train SFT loop on local Ray with CPU workers: LoRA changes generations, resume, guard stop."""

import json
import shutil

import pytest

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")

from raylib.data.sft import build_sft_examples, oracle_pairs, read_examples
from raylib.env.builtin.corpus import generate_theorems
from raylib.train.config import SFTSection
from raylib.train.guards import GuardStop
from raylib.train.sft import resume_key, run_sft

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


# One LoRA run shared by the tests below: evaluations at 5, 10, 12 (5 and 10 are neither log nor checkpoint
# steps), checkpoints at 3, 6, 9, 12. Few reports: Ray Train collects one about every 2 s.
RUN = SFTSection(max_steps=12, lr=2e-2, batch_size=8, eval_every=5, log_every=100, checkpoint_every=3,
                 lora={"r": 4, "alpha": 8}, guards=LOOSE)


def _ckpt_state(out, step):
    (path,) = (out / "train").glob(f"sft-*/checkpoint_{step:06d}/history.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def lora_run(setup):
    from ray.train import UserCallback

    reports = setup / "reports.jsonl"

    class RecordReports(UserCallback):  # runs on the Ray Train controller (same machine here)
        def after_report(self, run_context, metrics, checkpoint):
            with open(reports, "a") as f:
                f.write(json.dumps({"step": metrics[0].get("step"), "keys": sorted(metrics[0])}) + "\n")

    res = run_sft(RUN, setup / "examples", setup / "base", setup / "lora", config_hash="abc",
                  callbacks=[RecordReports()])
    res.reports = [json.loads(line) for line in reports.read_text().splitlines()]
    return res, {step: _ckpt_state(setup / "lora", step) for step in (3, 6, 9, 12)}


def test_lora_run_changes_generations(setup, lora_run):
    res, _ = lora_run
    assert res.steps == 12 and [h["step"] for h in res.history] == list(range(1, 13))
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert (res.model_dir / "adapter_config.json").is_file()
    fp = json.loads((res.model_dir / "fingerprint.json").read_text())
    assert fp["adapter"]["r"] == 4 and fp["config_hash"] == "abc" and fp["step"] == 12 and fp["data_hash"]
    prompt = read_examples(setup / "examples" / "valid.parquet").to_pylist()[0]["prompt"]
    assert _greedy(setup / "base", None, prompt) != _greedy(setup / "base", res.model_dir, prompt)
    again = run_sft(RUN, setup / "examples", setup / "base", setup / "lora", config_hash="abc")
    assert again.cached and again.fingerprint == res.fingerprint


def test_eval_metrics_kept_at_every_evaluated_step(lora_run):
    res, _ = lora_run
    assert [r["step"] for r in res.reports] == [3, 5, 6, 9, 10, 12]  # checkpoints and evaluations
    assert [r["step"] for r in res.reports if "eval_loss" in r["keys"] and "probe_healthy" in r["keys"]] == [5, 10, 12]
    evaluated = [h for h in res.history if "eval_loss" in h]
    assert [h["step"] for h in evaluated] == [5, 10, 12]
    assert all(h["probe_healthy"] == 1 and h["eval_loss"] > 0 for h in evaluated)
    assert res.metrics["eval_loss"] == evaluated[-1]["eval_loss"]


def test_checkpoint_probed_healthy_at_its_step_is_the_last_healthy(lora_run):
    _, ckpts = lora_run
    assert ckpts[3]["collapse"]["last_healthy"] is None  # not probed yet when saved
    assert ckpts[6]["collapse"]["last_healthy"] == "checkpoint_000003"  # probe at 5 covers 3, not 6
    assert ckpts[12]["collapse"]["last_healthy"] == "checkpoint_000012"  # probed at 12, then saved


def test_resume_key_covers_every_training_setting():
    base = resume_key(RUN, "base", "data")
    for change in [{"lr": 1e-2}, {"max_steps": 13}, {"epochs": 2.0}, {"batch_size": 4}, {"grad_accum": 2},
                   {"schedule": "linear"}, {"warmup_steps": 1}, {"warmup_ratio": 0.1}, {"min_lr_ratio": 0.0},
                   {"seed": 1}, {"weight_decay": 0.1}, {"max_seq_len": 128}, {"shuffle_buffer": 0},
                   {"num_workers": 2}, {"mode": "full"}, {"dtype": "bfloat16"}, {"lora": {"r": 8}},
                   {"guards": {"probe_states": 2}}]:
        changed = SFTSection.model_validate(dict(RUN.model_dump(mode="json"), **change))
        assert resume_key(changed, "base", "data") != base, change
    for neutral in [{"log_every": 1}, {"keep_checkpoints": 2}, {"max_failures": 3}]:
        assert resume_key(SFTSection.model_validate(dict(RUN.model_dump(mode="json"), **neutral)),
                          "base", "data") == base, neutral
    assert resume_key(RUN, "other", "data") != base and resume_key(RUN, "base", "other") != base


def test_changed_settings_train_afresh_and_guard_stops_once(setup, lora_run, tmp_path):
    """Rerun the finished run's folder with another LR and a probe guard that fires at the first
    evaluation, retries allowed: the run starts from step 0 (it never resumes the old run's checkpoints
    nor returns its model) and the guard stops it once, at step 5, without a worker failure or retry."""
    from ray.train import UserCallback

    failures = tmp_path / "worker_failures"

    class RecordFailures(UserCallback):  # runs on the Ray Train controller (same machine here)
        def after_exception(self, run_context, worker_exceptions):
            with open(failures, "a") as f:
                f.write(f"{sorted(worker_exceptions)}\n")

    out = tmp_path / "lora"
    shutil.copytree(setup / "lora", out)
    changed = RUN.model_copy(update={"lr": 1e-2, "max_failures": 1,
                                     "guards": RUN.guards.model_copy(update={"max_identical_share": 0.0})})
    with pytest.raises(GuardStop) as e:
        run_sft(changed, setup / "examples", setup / "base", out, config_hash="abc", callbacks=[RecordFailures()])
    assert e.value.guard == "generation_probe" and e.value.step == 5 and e.value.last_healthy is None
    assert not failures.exists()  # a guard stop is no worker failure: FailureConfig never reran it
    assert not (out / "COMPLETE").exists()
    run = json.loads((out / "resume_key.json").read_text())["run"]
    assert [p.name for p in (out / "train").iterdir()] == [run]  # the old run's checkpoints are gone
    assert sorted(p.name for p in (out / "train" / run).glob("checkpoint_0*")) == ["checkpoint_000003"]


def test_interrupted_run_resumes_from_checkpoint(setup, lora_run):
    ref, ref_ckpts = lora_run
    out = setup / "resume"
    with pytest.raises(ray.train.TrainingFailedError, match="interrupted after the checkpoint of step 6"):
        run_sft(RUN, setup / "examples", setup / "base", out, config_hash="abc", interrupt_after_step=6)
    assert not (out / "COMPLETE").exists()
    res = run_sft(RUN, setup / "examples", setup / "base", out, config_hash="abc")
    assert res.resumed_from == 6 and res.metrics["resumed_from"] == 6
    assert [h["step"] for h in res.history] == list(range(1, 13))
    # the same steps as the uninterrupted run: data order, optimizer, scheduler and RNG carried over
    assert [h["loss"] for h in res.history] == pytest.approx([h["loss"] for h in ref.history], rel=1e-5)
    assert [h["lr"] for h in res.history] == pytest.approx([h["lr"] for h in ref.history], rel=1e-9)
    assert res.history[-1]["eval_loss"] == pytest.approx(ref.history[-1]["eval_loss"], rel=1e-5)
    # the collapse guard's record survived the resume: checkpoint 9 (saved after the probe at 5) names 3
    resumed = _ckpt_state(out, 9)["collapse"]
    assert resumed["last_healthy"] == "checkpoint_000003" and resumed == ref_ckpts[9]["collapse"]


def test_no_held_out_rows_warns_in_the_plan(setup):
    sft = SFTSection(batch_size=8, guards={"stop_on_plan": True})
    with pytest.raises(GuardStop, match="no held-out examples.*generation probe"):
        run_sft(sft, setup / "examples" / "train.parquet", setup / "base", setup / "no_valid")


def test_missing_base_is_a_clear_error(setup, tmp_path):
    from jobs.train_sft import main
    from raylib.models.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match="does not exist"):
        run_sft(SFTSection(), setup / "examples", tmp_path / "nope", tmp_path / "out")
    args = ["--examples", str(setup / "examples"), "--base", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert not (tmp_path / "o").exists()


def test_bootstrap_validity_eval_uses_config_template_and_device(setup, tmp_path, monkeypatch):
    import yaml

    import raylib.models.hf
    import raylib.rayutil
    import raylib.train.sft
    from jobs import bootstrap
    from raylib.config import load_config

    template = "Lean goals:\n{state}\nNext tactic:\n"
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({
        "run": {"root": str(tmp_path / "runs")}, "generation": {"template": template},
        "model": {"path": str(tmp_path / "model"), "device": "auto"},
        "sft": {"bootstrap": {"theorems": 10, "vocab_size": 300, "hidden_size": 64, "layers": 1, "heads": 1,
                              "eval_states": 2}}}))
    cfg = load_config(tmp_path / "cfg.yaml")
    seen = {}

    class Stop(Exception):
        pass

    def fake_generator(model_dir, **kw):
        seen.update(kw)
        raise Stop

    fake_result = type("R", (), {"model_dir": setup / "base", "fingerprint": {}, "history": [], "steps": 0,
                                 "metrics": {}})
    monkeypatch.setattr(raylib.models.hf, "HFGenerator", fake_generator)
    monkeypatch.setattr(raylib.train.sft, "run_sft", lambda *a, **k: fake_result)
    monkeypatch.setattr(raylib.rayutil, "init_ray", lambda cfg, **kw: None)
    with pytest.raises(Stop):
        bootstrap.run(cfg)
    assert seen == {"template": template, "device": "auto"}
