import pytest

from raylib.config import Config, ConfigError, load_config


def test_local_yaml_is_the_embedded_default(repo_root):
    cfg = load_config(repo_root / "configs" / "local.yaml")
    assert cfg == Config() == load_config(None)
    assert cfg.hash() == Config().hash()


def test_every_shipped_config_loads(repo_root):
    for path in sorted((repo_root / "configs").glob("*.yaml")):
        assert load_config(path).hash()


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("env:\n  timout_s: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "env.timout_s" in msg and "unknown key" in msg
    assert "timeout_s" in msg.split("allowed here:")[1]


def test_bad_value_names_key_and_choices(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("env:\n  backend: coq\nworkers:\n  lean: 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "env.backend" in msg and "'lean_repl'" in msg and "'coq'" in msg
    assert "workers.lean" in msg


def test_overrides_parse_yaml_values():
    cfg = load_config(None, ["env.timeout_s=2.5", "env.lean_repl.command=[python, -m, x]",
                             "ray.num_cpus=null", "theorems.split=valid", "run.name=abc"])
    assert cfg.env.timeout_s == 2.5
    assert cfg.env.lean_repl.command == ["python", "-m", "x"]
    assert cfg.theorems.split == "valid" and cfg.run.name == "abc"


def test_bad_override_is_reported():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["env.timeout_s"])
    with pytest.raises(ConfigError, match=r"env\.nope.*unknown key"):
        load_config(None, ["env.nope=1"])
    with pytest.raises(ConfigError, match="run.name: Input should be a valid string"):
        load_config(None, ["run.name.x=1"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config(None, ["run.name=a", "run.name.x=1"])


def test_hash_is_stable_and_tracks_settings():
    a = load_config(None, ["env.timeout_s=3"])
    b = load_config(None, ["env.timeout_s=3"])
    c = load_config(None, ["env.timeout_s=4"])
    assert a.hash() == b.hash() != c.hash()
    assert len(a.hash()) == 12


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    p = tmp_path / "x.yaml"
    p.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


def test_generation_budget_is_checked_against_the_search():
    with pytest.raises(ConfigError, match="cannot hold even one state"):
        load_config(None, ["generation.max_batch_tokens=100", "search.num_candidates=8", "search.max_tokens=64"])
    assert load_config(None, ["generation.max_batch_tokens=null"]).generation.max_batch_tokens is None
