"""cluster.yaml is checked against the schema that `ray up` itself validates with (shipped in Ray)."""

import json
from pathlib import Path

import jsonschema
import ray
import yaml


def test_cluster_yaml_matches_ray_schema(repo_root):
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((repo_root / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    # Lean workers are placed by the custom resource named in configs/lean_mathlib.yaml.
    lean = yaml.safe_load((repo_root / "configs" / "lean_mathlib.yaml").read_text())["workers"]["lean_resource"]
    assert any(lean in t.get("resources", {}) for t in types.values())
