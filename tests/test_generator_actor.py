"""GeneratorActor on a real local Ray with the HF backend and a real tiny model: concurrent requests are
coalesced into batched generate calls, and a LoRA adapter is hot-loaded without restarting the actor."""

import pytest

from raylib.config import load_config

ray = pytest.importorskip("ray")

STATES = ["p q : Prop\nh : p ∧ q\n⊢ q ∧ p", "⊢ True", "p : Prop\nhp : p\n⊢ p ∨ ¬p", "⊢ False → False",
          "p q : Prop\nhq : q\n⊢ p → q", "p : Prop\n⊢ ¬¬(p ∨ ¬p)"]


def test_generator_actor_coalesces_and_hot_loads_adapters(tiny_model_dir, tiny_adapter_dir):
    from actors.generator import GeneratorActor
    from raylib.models.hf import HFGenerator

    cfg = load_config(None, [f"model.path={tiny_model_dir}", "model.device=cpu", "workers.linger_ms=50"])
    from raylib.env import make_filter

    direct = HFGenerator(tiny_model_dir, device="cpu", tactic_filter=make_filter(cfg.env))  # the actor's filter
    expected = direct.generate(STATES, 1, 0.0, 16)
    ray.init(num_cpus=1, include_dashboard=False, configure_logging=False)
    try:
        actor = ray.remote(GeneratorActor).options(num_cpus=0).remote(cfg)
        got = ray.get([actor.propose.remote(s, 1, 0.0, 16) for s in STATES])
        assert got == expected  # greedy: batching changes nothing
        stats = ray.get(actor.stats.remote())
        assert stats["requests"] == len(STATES) and stats["max_batch"] > 1
        base_fp = ray.get(actor.fingerprint.remote())
        new_fp = ray.get(actor.load_adapter.remote(str(tiny_adapter_dir), 1))
        assert new_fp != base_fp and "1@" in new_fp
        after = ray.get([actor.propose.remote(s, 1, 0.0, 16) for s in STATES])
        assert after != got  # the adapter changed what the same actor generates

        # a request cancelled while it waits in the actor's queue is never generated
        slow = ray.remote(GeneratorActor).options(num_cpus=0).remote(
            load_config(None, [f"model.path={tiny_model_dir}", "model.device=cpu", "workers.linger_ms=1500"]))
        ray.get(slow.fingerprint.remote())
        refs = [slow.propose.remote(s, 1, 0.0, 16) for s in STATES[:3]]
        import time
        time.sleep(0.5)
        ray.cancel(refs[1])
        assert ray.get([refs[0], refs[2]]) == [expected[0], expected[2]]
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(refs[1])
        s = ray.get(slow.stats.remote())
        assert s["requests"] == 2 and s["dropped"] == 1
    finally:
        ray.shutdown()
