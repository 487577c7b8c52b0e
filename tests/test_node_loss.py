"""A worker node lost mid-prove, on a real multi-node Ray (``ray.cluster_utils.Cluster``): the head hosts
the generator (the real tiny model, on CPU) and the search drivers; two Lean nodes host the LeanWorkers
(the built-in environment, a real process speaking the Lean REPL protocol), placed by their custom
resource as on a cluster. Once the first theorems are written, the node under a Lean worker is removed
(its raylet and every process on it killed, as when a spot node goes). Ray restarts the worker on the
other Lean node. Searches that were on it fail (``workers.max_attempts=1``: no lease move, which
tests/test_lease.py covers) and the prove stage retries them. The run must still finish with every
theorem accounted for exactly once: one row per theorem in results.jsonl, each with the theorem's own
outcome (an infrastructure failure is retried, never an outcome).
"""

import json
import threading
import time

import pytest

from raylib.config import load_config
from raylib.env.builtin.corpus import builtin_theorems
from tests.test_placement import free_port

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

OWN = ("proved", "exhausted", "budget", "timeout", "start_failed")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # a dead raylet is noticed after 3 failed health checks 1 s apart (Ray's default takes ~30 s)
    health = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"head": 1}, "_system_config": health,
                                                      "include_dashboard": True,
                                                      "dashboard_port": free_port()})
    c.lean_nodes = [c.add_node(num_cpus=1, resources={"lean_worker": 4}) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="node-loss-test", configure_logging=False)
    yield c
    ray.shutdown()
    c.shutdown()


def node_of(handle) -> str:
    from ray.util.state import get_actor

    return get_actor(handle._actor_id.hex(), address=ray.get_runtime_context().gcs_address).node_id


@pytest.mark.timeout(300)
def test_losing_a_lean_node_mid_prove_accounts_for_every_theorem_once(cluster, tmp_path, tiny_model_dir):
    from actors.fleet import prove_theorems, start_actors
    from ray.util.state import get_actor

    theorems = builtin_theorems("textbook")[:16]
    cfg = load_config(None, [f"run.root={tmp_path}", f"model.path={tiny_model_dir}", "model.device=cpu",
                             "workers.lean=2", "workers.lean_cpus=0.5", "workers.lean_resource=lean_worker",
                             "workers.drivers=2", "workers.searches_per_driver=2",
                             "workers.generator_resources={head: 0.01}", "workers.driver_resources={head: 0.01}",
                             "workers.max_attempts=1", "workers.infra_retries=3", "workers.retry_backoff_s=0.2",
                             "workers.placement_timeout_s=120", "search.num_candidates=4", "search.max_tokens=16",
                             "search.max_nodes=12", "search.timeout_per_theorem=60"])
    fleet = start_actors(cfg)
    out = tmp_path / "prove"
    results = out / "results.jsonl"
    box: dict = {}

    def run():
        try:
            box["summary"] = prove_theorems(cfg, theorems, out, fleet=fleet)
        except BaseException as e:  # noqa: BLE001 - the test reads it
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while t.is_alive() and not (results.is_file() and results.read_text().count("\n") >= 2):
            time.sleep(0.05)
        busy = []
        while t.is_alive() and not busy:  # the victim: a worker holding searches right now
            busy = [w for w, n in zip(fleet.lean, ray.get([w.lease_count.remote() for w in fleet.lean])) if n]
        assert t.is_alive(), f"the prove stage ended before the node could be removed: {box}"
        victim_id = node_of(busy[0])
        [victim] = [n for n in cluster.lean_nodes if n.node_id == victim_id]
        on_victim = [w for w in fleet.lean if node_of(w) == victim_id]
        written_before = results.read_text().count("\n")
        cluster.remove_node(victim, allow_graceful=False)
        t.join(240)
        assert not t.is_alive(), "the prove stage did not finish after the node was lost"
        assert "error" not in box, box.get("error")
        gcs = ray.get_runtime_context().gcs_address
        for w in on_victim:  # each worker of the lost node comes back, on the other Lean node
            deadline = time.monotonic() + 60
            while True:
                row = get_actor(w._actor_id.hex(), address=gcs)
                if row.state == "ALIVE" and row.num_restarts >= 1 and row.node_id != victim_id:
                    break
                assert time.monotonic() < deadline, f"the lost Lean worker did not come back elsewhere: {row}"
                time.sleep(0.5)
        failovers = sum(ray.get([d.failovers.remote() for d in fleet.drivers]))
    finally:
        fleet.shutdown()

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    names = [r["theorem"] for r in rows]
    assert sorted(names) == sorted(t.name for t in theorems), "a theorem missing or written twice"
    assert all(r["outcome"] in OWN for r in rows), [(r["theorem"], r["outcome"], r.get("error")) for r in rows]
    summary = box["summary"]
    assert summary["theorems"] == len(theorems) and summary["infra_errors"] == 0
    # the loss hit searches in flight: with no lease move (max_attempts 1) they failed and were retried
    retried = [r["theorem"] for r in rows if r["attempts"] > 1]
    print(f"node loss: {written_before} rows before, {len(on_victim)} Lean worker(s) lost, "
          f"{failovers} lease failovers, retried {retried}")
    assert retried
