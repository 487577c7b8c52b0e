"""Infrastructure failures and resume in the prove stage, on a real local Ray with the real tiny model and
Lean workers on the built-in environment.

The engine error is injected by a test double around the real GeneratorActor: its engine rejects any
batch holding one poisoned theorem's state (as vLLM rejects a batch for one over-long prompt). The other
theorems batched with it must still be proved; the poisoned one is retried, recorded ``infra_error``
(never an outcome) past the retry limit, and redone by the next run. A rerun after the model's weights
changed in place (same path, same config, same sizes) redoes everything.
"""

import json
import shutil

import pytest

from raylib.config import load_config
from raylib.env import Theorem

ray = pytest.importorskip("ray")

OWN = ("proved", "exhausted", "budget", "timeout", "start_failed")
THEOREMS = [Theorem("imp_self", "theorem imp_self (p : Prop) : p → p"),
            Theorem("and_intro", "theorem and_intro (p q : Prop) (hp : p) (hq : q) : p ∧ q"),
            Theorem("poisoned", "theorem poisoned (p : Prop) (hpoison : p) : p")]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def poisoned_generator(failures: int):
    """The real GeneratorActor whose engine raises on a batch holding 'hpoison', ``failures`` times
    (-1: always). Defined in a function so Ray ships the class by value."""
    from actors.generator import GeneratorActor

    class PoisonedGenerator(GeneratorActor):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.left = failures

        def _generate_batch(self, key, states):
            if self.left != 0 and any("hpoison" in s for s in states):
                self.left -= 1
                raise RuntimeError("engine error (injected): request rejected")
            return super()._generate_batch(key, states)

    return PoisonedGenerator


def rows_of(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_engine_error_in_one_request_is_retried_never_recorded_as_an_outcome(local_ray, tmp_path, tiny_model_dir):
    from actors.fleet import prove_theorems, start_actors

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cfg = load_config(None, [f"run.root={tmp_path}", f"model.path={model}", "search.num_candidates=2",
                             "search.max_tokens=16", "search.max_nodes=4", "search.timeout_per_theorem=30",
                             "workers.lean=1", "workers.drivers=1", "workers.searches_per_driver=3",
                             "workers.linger_ms=300", "workers.infra_retries=1", "workers.retry_backoff_s=0.2"])
    out = tmp_path / "prove"

    # 1. the engine always rejects the poisoned request: the others, batched with it, are proved; the
    #    poisoned theorem is retried once, then recorded infra_error, not an outcome
    fleet = start_actors(cfg, generator_cls=poisoned_generator(-1))
    s1 = prove_theorems(cfg, THEOREMS, out, fleet=fleet)
    gen_stats = ray.get(fleet.generator.stats.remote())
    fleet.shutdown()
    last = {r["theorem"]: r for r in rows_of(out)}
    assert last["imp_self"]["outcome"] == last["and_intro"]["outcome"] == "proved"
    assert last["imp_self"]["attempts"] == last["and_intro"]["attempts"] == 1  # the failing batch did not sink them
    assert last["poisoned"]["outcome"] == "infra_error" and last["poisoned"]["attempts"] == 2
    assert "engine error" in last["poisoned"]["error"]
    assert s1["infra_errors"] == 1 and s1["outcomes"]["proved"] == 2 and s1["proved"] == 2
    assert gen_stats["failed_requests"] >= 2 and gen_stats["requests"] >= 2

    # 2. next run, the engine fails once more then recovers: the poisoned theorem is redone (retried
    #    within the run) and reaches its own outcome; the two proved ones are reused
    fleet = start_actors(cfg, generator_cls=poisoned_generator(1))
    s2 = prove_theorems(cfg, THEOREMS, out, fleet=fleet)
    fleet.shutdown()
    last = {r["theorem"]: r for r in rows_of(out)}
    assert s2["reused"] == 2 and s2["infra_errors"] == 0
    assert all(r["outcome"] in OWN for r in last.values()), last  # an infra_error row fails the test
    assert last["poisoned"]["outcome"] == "proved" and last["poisoned"]["attempts"] == 2
    assert (out / "trajectories").is_dir() and len(list((out / "trajectories").glob("*.parquet"))) == 3

    # 3. the model's weights change in place (same path, config and file sizes): everything is redone
    _perturb_weights(model)
    fleet = start_actors(cfg)
    s3 = prove_theorems(cfg, THEOREMS, out, fleet=fleet)
    fleet.shutdown()
    assert s3["reused"] == 0 and s3["fingerprints"]["generator"] != s2["fingerprints"]["generator"]
    assert len(rows_of(out)) == 3 + 1 + 3  # run 1: three rows; run 2: the poisoned one; run 3: all three
    assert all(r["outcome"] in OWN for r in rows_of(out)[-3:])


def _perturb_weights(model_dir):
    """Rewrite the model's safetensors with one tensor changed: same names, shapes and file size."""
    from safetensors.torch import load_file, save_file

    for f in model_dir.glob("*.safetensors"):
        tensors = load_file(str(f))
        name = sorted(tensors)[0]
        tensors[name] = tensors[name] + 0.5
        save_file(tensors, str(f), metadata={"format": "pt"})
