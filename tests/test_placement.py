"""Placement from config on a real multi-node Ray (``ray.cluster_utils.Cluster``) whose nodes are the node
types of cluster.yaml: ``head`` (no CPU), ``gpu_worker`` (declares a GPU: Ray accepts declared GPUs on a
CPU machine; the models still run on CPU, ``model.device=cpu``) and ``lean_worker``, each with the custom
resources cluster.yaml gives it. The profiles' placement sections are used as shipped; only the model
settings are turned to the tiny CPU model.

Checked: the one-GPU profile puts generator and encoder on the GPU node at once, sharing its one GPU by
fractions, and a training worker asking for the GPU is placed only once they let it go; the cluster
profile puts each role on its node type; a request the cluster cannot meet stops ``start_actors`` within
``workers.placement_timeout_s`` with a message naming the role, the request and what the cluster has.
"""

import threading

import pytest
import yaml

from raylib.config import load_config

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

CPU_MODEL = ["model.backend=hf", "model.dtype=float32", "model.device=cpu", "value.dtype=float32",
             "sft.dtype=float32", "run.name=placement", "workers.lean=1", "workers.drivers=1"]


def node_args(types: dict, name: str, cpus: float) -> dict:
    """``Cluster.add_node`` arguments of one node of cluster.yaml's type ``name``: its custom resources and
    GPUs as declared there, and ``cpus`` CPUs (a 2-core test machine cannot stand in for 16 or 32)."""
    res = dict(types[name].get("resources") or {})
    res.pop("CPU", None)
    return {"num_cpus": cpus, "num_gpus": res.pop("GPU", 0), "resources": res}


def free_port() -> int:
    """A free TCP port for this cluster's dashboard (other Rays on the machine may hold the default 8265)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(repo_root):
    from ray.cluster_utils import Cluster

    types = yaml.safe_load((repo_root / "cluster.yaml").read_text())["available_node_types"]
    c = Cluster(initialize_head=True, head_node_args={**node_args(types, "head", 0), "include_dashboard": True,
                                                               "dashboard_port": free_port()})
    c.add_node(**node_args(types, "gpu_worker", 2))
    c.add_node(**node_args(types, "lean_worker", 2))
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="placement-test", configure_logging=False)
    assert ray.cluster_resources().get("GPU") == 1, "the test needs cluster.yaml's GPU node type to have one GPU"
    c.types = types
    yield c
    ray.shutdown()
    c.shutdown()


def profile(repo_root, name, tiny_model_dir, ebm_dir, *extra):
    return load_config(repo_root / "configs" / f"{name}.yaml",
                       [*CPU_MODEL, f"model.path={tiny_model_dir}", f"value.ebm_path={ebm_dir}", *extra])


def node_types() -> dict:
    """Node id -> the cluster.yaml node type it stands for (by the custom resource naming its type)."""
    out = {}
    for n in ray.nodes():
        if n["Alive"]:
            kinds = [t for t in ("head", "gpu_worker", "lean_worker") if t in n["Resources"]]
            out[n["NodeID"]] = kinds[0] if kinds else "?"
    return out


def landed(fleet) -> dict[str, list[str]]:
    """Role -> node type of each of its actors, as Ray's state API reports them."""
    from ray.util.state import get_actor

    types = node_types()
    roles = {"generator": [fleet.generator], "encoder": [fleet.encoder], "lean": fleet.lean, "driver": fleet.drivers}
    out = {}
    for role, handles in roles.items():
        out[role] = []
        for h in handles:
            row = get_actor(h._actor_id.hex(), address=ray.get_runtime_context().gcs_address)
            assert row.state == "ALIVE", (role, row.state)
            out[role].append(types[row.node_id])
    return out


@pytest.mark.timeout(240)
def test_unmeetable_request_stops_with_role_asked_and_has(cluster, repo_root, tiny_model_dir, ebm_dir):
    """The generator asks for 2 GPUs; the cluster has 1: PlacementTimeout names all three, within the
    configured time, and no actor of the fleet is left waiting for resources."""
    from ray.util.state import list_actors

    from actors.fleet import start_actors
    from raylib.placement import PlacementTimeout

    cfg = profile(repo_root, "gpu1", tiny_model_dir, ebm_dir, "workers.generator_gpus=2",
                  "workers.placement_timeout_s=3")
    box: dict = {}

    def run():
        try:
            box["fleet"] = start_actors(cfg)
        except BaseException as e:  # noqa: BLE001 - the test reads it
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(120)  # a hang guard, not a speed claim: without the placement check it never returns
    assert not t.is_alive(), "start_actors still waits for a GPU the cluster does not have"
    err = box.get("error")
    assert isinstance(err, PlacementTimeout), box
    msg = str(err)
    assert err.role == "generator" and "role 'generator'" in msg
    assert "asks for CPU 1, GPU 2" in msg and "the cluster has CPU 4, GPU 1" in msg and "after 3s" in msg
    pending = [a for a in list_actors(address=ray.get_runtime_context().gcs_address, filters=[
        ("state", "=", "PENDING_CREATION")])]
    assert not pending, f"actors left waiting: {pending}"


@pytest.mark.timeout(300)
def test_one_gpu_profile_shares_the_gpu_then_training_takes_it(cluster, repo_root, tiny_model_dir, ebm_dir):
    from actors.fleet import start_actors
    from raylib.placement import PlacementTimeout, role_options, wait_placed

    cfg = profile(repo_root, "gpu1", tiny_model_dir, ebm_dir, "workers.lean_cpus=0.5",
                  "workers.placement_timeout_s=120")
    fleet = start_actors(cfg)
    try:
        where = landed(fleet)
        print("gpu1 placement:", where)
        assert where["generator"] == where["encoder"] == ["gpu_worker"]
        assert ray.available_resources().get("GPU", 0) == 0  # 0.5 + 0.5 of the one GPU
        assert ray.get(fleet.generator.fingerprint.remote()) and ray.get(fleet.encoder.fingerprint.remote())

        # a training worker asks for the whole GPU: not placed while serving holds it
        @ray.remote
        class TrainSlot:
            def node(self):
                return ray.get_runtime_context().get_node_id()

        sft = role_options(cfg, "sft")
        assert sft["num_gpus"] == 1
        slot = TrainSlot.options(**sft).remote()
        with pytest.raises(PlacementTimeout, match="role 'sft'.*GPU 1"):
            wait_placed([slot], cfg, "sft", timeout_s=2)
    finally:
        fleet.shutdown()
    wait_placed([slot], cfg, "sft", timeout_s=60)  # serving let the GPU go: training takes it
    assert node_types()[ray.get(slot.node.remote())] == "gpu_worker"
    ray.kill(slot)


@pytest.mark.timeout(300)
def test_cluster_profile_puts_each_role_on_its_node_type(cluster, repo_root, tiny_model_dir, ebm_dir):
    """cluster_gpu.yaml: generator and encoder (a GPU each) on gpu_worker nodes, Lean workers on the Lean
    node by their custom resource, drivers on the head (no CPU). A second GPU node is added for the
    encoder's GPU, as the autoscaler would."""
    from actors.fleet import start_actors

    cluster.add_node(**node_args(cluster.types, "gpu_worker", 2))
    cluster.wait_for_nodes()
    cfg = profile(repo_root, "cluster_gpu", tiny_model_dir, ebm_dir, "workers.placement_timeout_s=120")
    fleet = start_actors(cfg)
    try:
        where = landed(fleet)
        print("cluster_gpu placement:", where)
        assert where == {"generator": ["gpu_worker"], "encoder": ["gpu_worker"],
                         "lean": ["lean_worker"], "driver": ["head"]}
    finally:
        fleet.shutdown()
