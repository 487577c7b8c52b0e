"""The shipped profiles load, validate, and say what their headers claim: the laptop asks for no GPU, the
one-GPU box shares its GPU between generator and encoder (and trains in turn), the cluster places each
role on a node type of cluster.yaml, and the DeepSeek-Prover-V2-7B config is the field's setup."""

import json

import pytest
import yaml

from raylib.config import load_config
from raylib.env.theorems import load_theorems
from raylib.placement import ROLES, role_options, train_scaling

SEVEN = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
GIB = 1024 ** 3


def profile(repo_root, name):
    return load_config(repo_root / "configs" / f"{name}.yaml")


def test_local_profile_asks_for_no_gpu(repo_root):
    cfg = profile(repo_root, "local")
    for role in ROLES:
        o = role_options(cfg, role)
        assert o["num_gpus"] == 0 and o["resources"] == {}, role
    assert cfg.model.backend == "hf" and cfg.model.dtype == "float32"


def test_null_gpus_mean_none_never_a_guess():
    cfg = load_config(None, ["workers.generator_gpus=null", "workers.encoder_gpus=null"])
    assert role_options(cfg, "generator")["num_gpus"] == 0 and role_options(cfg, "encoder")["num_gpus"] == 0


def test_encode_gpus_fall_back_to_the_encoders():
    cfg = load_config(None, ["workers.encoder_gpus=0.25", "workers.encoder_resources={gpu_worker: 0.01}"])
    assert role_options(cfg, "encode") == {"num_cpus": 1.0, "num_gpus": 0.25, "resources": {"gpu_worker": 0.01}}
    cfg = load_config(None, ["workers.encoder_gpus=0.25", "value.encode_gpus=1"])
    assert role_options(cfg, "encode")["num_gpus"] == 1.0


def test_a_bad_resource_names_the_key():
    from raylib.config import ConfigError

    with pytest.raises(ConfigError, match="workers.generator_resources.*'GPU' is not a custom resource"):
        load_config(None, ["workers.generator_resources={GPU: 1}"])
    with pytest.raises(ValueError, match="unknown placement role 'trainer'"):
        role_options(load_config(None), "trainer")


def deepseek_7b_bytes(dtype_bytes=2):
    """Parameters of DeepSeek-Prover-V2-7B's shape (hidden 4096, 30 layers, intermediate 11008, vocab
    102400, untied embeddings) times the dtype size: the encoder's weights beside vLLM."""
    h, layers, inter, vocab = 4096, 30, 11008, 102400
    return (2 * vocab * h + layers * (4 * h * h + 3 * h * inter)) * dtype_bytes


@pytest.mark.parametrize("name", ["gpu1", "deepseek_prover_v2_7b"])
def test_one_gpu_profiles_share_the_gpu_and_train_in_turn(repo_root, name):
    cfg = profile(repo_root, name)
    gen, enc = role_options(cfg, "generator"), role_options(cfg, "encoder")
    assert 0 < gen["num_gpus"] < 1 and 0 < enc["num_gpus"] < 1
    assert gen["num_gpus"] + enc["num_gpus"] <= 1          # both fit on the one GPU
    assert gen["resources"] == enc["resources"] == {}
    assert cfg.model.backend == "vllm" and cfg.model.dtype == "bfloat16" and cfg.value.dtype == "bfloat16"
    # vLLM's share plus the encoder's 7B bf16 weights and 4 GiB of activations fit in an 80 GB GPU
    gpu = 80e9
    assert cfg.model.gpu_memory_utilization * gpu + deepseek_7b_bytes() + 4 * GIB <= gpu
    assert cfg.model.gpu_memory_utilization >= 0.4   # and vLLM keeps room for a KV cache past the weights
    # the training workers ask for the whole GPU: Ray places them only once serving has let it go
    for role in ("sft", "ebm"):
        scaling = train_scaling(cfg, role)
        assert scaling["use_gpu"] and scaling["resources_per_worker"]["GPU"] == 1
        assert scaling["resources_per_worker"]["GPU"] + gen["num_gpus"] > 1
    assert role_options(cfg, "encode")["num_gpus"] == enc["num_gpus"]


def test_deepseek_profile_is_the_fields_setup(repo_root, tmp_path):
    cfg = profile(repo_root, "deepseek_prover_v2_7b")
    assert cfg.model.path.endswith("DeepSeek-Prover-V2-7B")
    assert cfg.search.num_candidates == 32
    lora = cfg.sft.lora
    assert cfg.sft.mode == "lora" and lora.r == 32 and lora.alpha == 64 and set(lora.target_modules) == SEVEN
    assert cfg.model.max_lora_rank >= lora.r
    assert cfg.value.encoder_path in (None, cfg.model.path) and cfg.value.dtype == cfg.model.dtype
    assert cfg.env.backend == "lean_repl" and "import Mathlib" in cfg.env.lean_repl.header.splitlines()
    assert cfg.theorems.source.endswith(".jsonl")
    assert cfg.generation.max_batch_tokens is None or \
        cfg.generation.max_batch_tokens >= cfg.search.num_candidates * cfg.search.max_tokens
    # the same placement as the one-GPU profile
    gpu1 = profile(repo_root, "gpu1")
    for role in ("generator", "encoder", "encode", "sft", "ebm"):
        assert role_options(cfg, role) == role_options(gpu1, role), role
    # a miniF2F-style row (as DeepSeek-Prover's minif2f.jsonl has them) loads as a theorem
    row = {"name": "mathd_algebra_10", "split": "valid", "informal_prefix": "",
           "header": "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat "
                     "Topology Rat\n\n",
           "formal_statement": "theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by\n"}
    f = tmp_path / "minif2f.jsonl"
    f.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    [thm] = load_theorems(f)
    assert thm.name == "mathd_algebra_10" and thm.split == cfg.theorems.split
    assert thm.statement.startswith("theorem mathd_algebra_10") and not thm.statement.rstrip().endswith("by")


def node_type_of(types: dict, resource: str) -> list[str]:
    return [name for name, t in types.items() if resource in (t.get("resources") or {})]


def test_cluster_profile_places_roles_on_cluster_yaml_node_types(repo_root):
    cfg = profile(repo_root, "cluster_gpu")
    cluster = yaml.safe_load((repo_root / "cluster.yaml").read_text())
    types = cluster["available_node_types"]
    head = cluster["head_node_type"]

    def placed_on(role):
        custom = role_options(cfg, role)["resources"]
        assert custom, f"{role}: no custom resource, so no node type is named"
        found = {t for r in custom for t in node_type_of(types, r)}
        assert len(found) == 1, f"{role}: resources {custom} name node types {found}"
        return found.pop()

    assert placed_on("driver") == head
    assert placed_on("generator") == placed_on("encoder") == placed_on("encode") == "gpu_worker"
    assert placed_on("lean") == "lean_worker" != head
    assert role_options(cfg, "generator")["num_gpus"] >= 1 and role_options(cfg, "encoder")["num_gpus"] >= 1
    # the head does no CPU work: whatever is placed there asks for no CPU
    assert types[head]["resources"].get("CPU") == 0 and role_options(cfg, "driver")["num_cpus"] == 0
    # a Lean node holds as many workers as its resource says, each with a CPU
    lean_units = types["lean_worker"]["resources"]["lean_worker"]
    assert lean_units >= 1 and cfg.workers.lean % lean_units == 0
    assert cfg.ray.address == "auto" and cfg.workers.placement_timeout_s >= 600
