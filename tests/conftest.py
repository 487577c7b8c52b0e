import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONPATH", str(ROOT))
# Each test's ray.init starts its own local Ray: never join one a `make run` or `ray start` beside the
# suite left in /tmp/ray/ray_current_cluster (ray.init with no address would, and refuse num_cpus then).
os.environ.setdefault("RAY_ADDRESS", "local")
from raylib.rayutil import local_ray_env  # noqa: E402  (the tests' own ray.init start local Rays too)

local_ray_env()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A real tiny Llama (random weights) with a tokenizer trained on the built-in corpus, saved once."""
    from raylib.models.tiny import build_tiny_model, builtin_texts

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts=builtin_texts(n=60),
                            hidden_size=128, heads=2, layers=2)


def _random_adapter(model_dir, out, seed: int = 0):
    """Save a peft LoRA adapter for ``model_dir`` whose B matrices are random (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from raylib.models.loading import load_causal_lm

    peft_model = get_peft_model(load_causal_lm(model_dir), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:  # LoRA B starts at zero (a no-op adapter): make it change the model
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def random_adapter():
    """``random_adapter(model_dir, out_dir, seed)`` saves a random LoRA adapter and returns its folder."""
    return _random_adapter


@pytest.fixture(scope="session")
def tiny_adapter_dir(tmp_path_factory, tiny_model_dir):
    """A random LoRA adapter for ``tiny_model_dir``."""
    return _random_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"))


@pytest.fixture(scope="session")
def ebm_dir(tiny_model_dir, tmp_path_factory):
    """An EBM head (random, seeded) for ``tiny_model_dir``'s encoder: a config with it starts the encoder too."""
    import torch

    from raylib.models.ebm import EBM, build_head
    from raylib.models.encoder import StateEncoder

    enc = StateEncoder(tiny_model_dir, device="cpu")
    torch.manual_seed(0)
    return EBM(build_head(enc.dim, hidden=16), enc.fingerprint()).save(tmp_path_factory.mktemp("ebm") / "ebm")
