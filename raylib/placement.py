"""Placement: the one place that turns config into Ray resource requests, per role.

Roles: ``generator`` (GeneratorActor), ``encoder`` (EncoderActor), ``lean`` (LeanWorker), ``driver``
(SearchDriver), ``encode`` (the encode job's Ray Data encoder actors), ``sft`` and ``ebm`` (Ray Train
workers). Actor roles read ``workers.*``; ``encode`` takes its GPUs from ``value.encode_gpus`` (null: the
encoder's); the training roles read ``sft``/``ebm`` ``use_gpu`` and ``resources_per_worker`` (Ray Train's
own settings, kept where the training is configured).

Requests go out as configured and are never sized from ``ray.cluster_resources()``: under an autoscaler
the cluster is empty at start, and a request for a GPU or a custom resource is what makes it add a node.
What the cluster has is read only to explain a request that was not met: ``wait_placed`` raises
``PlacementTimeout`` naming the role, what it asked for and what the cluster has and has free.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)

ROLES = ("generator", "encoder", "lean", "driver", "encode", "sft", "ebm")
ACTOR_ROLES = ("generator", "encoder", "lean", "driver")

__all__ = ["ROLES", "PlacementTimeout", "role_options", "section_scaling", "train_scaling", "wait_placed",
           "describe_request"]


class PlacementTimeout(RuntimeError):
    """A role's resource request was not met within ``workers.placement_timeout_s``."""

    def __init__(self, role: str, asked: dict, cluster_has: dict, available: dict | None = None,
                 timeout_s: float | None = None, waiting: int | None = None, count: int | None = None):
        self.role, self.asked, self.cluster_has, self.available = role, asked, cluster_has, available
        self.timeout_s = timeout_s
        n = f"{waiting} of {count} actors" if waiting is not None and count is not None else "its actors"
        after = f" after {timeout_s:g}s" if timeout_s is not None else ""
        msg = (f"placement of role {role!r}: {n} not placed{after}; each asks for {describe_request(asked)}; "
               f"the cluster has {describe_request(cluster_has)}")
        if available is not None:
            msg += f" (free now: {describe_request(available)})"
        msg += (". Lower the role's request in workers.* (sft/ebm: use_gpu, resources_per_worker), add a node "
                "that has it, or raise workers.placement_timeout_s if an autoscaler is still adding one")
        super().__init__(msg)


def _resources_of(role: str, cfg) -> tuple[float, float, dict]:
    w = cfg.workers
    if role == "generator":
        return w.generator_cpus, w.generator_gpus, dict(w.generator_resources)
    if role == "encoder":
        return w.encoder_cpus, w.encoder_gpus, dict(w.encoder_resources)
    if role == "lean":
        return w.lean_cpus, 0.0, ({w.lean_resource: 1.0} if w.lean_resource else {})
    if role == "driver":
        return w.driver_cpus, 0.0, dict(w.driver_resources)
    if role == "encode":
        gpus = cfg.value.encode_gpus if cfg.value.encode_gpus is not None else w.encoder_gpus
        return w.encode_cpus, float(gpus), dict(w.encoder_resources)
    if role in ("sft", "ebm"):
        return _training_resources(getattr(cfg, role))
    raise ValueError(f"unknown placement role {role!r}; roles are {', '.join(ROLES)}")


def _training_resources(section) -> tuple[float, float, dict]:
    """(CPUs, GPUs, custom resources) of one worker of an sft/ebm section (``use_gpu``, ``resources_per_worker``)."""
    rpw = dict(section.resources_per_worker or {})
    cpus = float(rpw.pop("CPU", 1.0))
    gpus = float(rpw.pop("GPU", 1.0 if section.use_gpu else 0.0))
    return cpus, gpus, rpw


def role_options(cfg, role: str) -> dict:
    """Ray ``.options`` keyword arguments of one actor of ``role``: ``num_cpus``, ``num_gpus``, ``resources``.

    (For the encode role they suit ``Dataset.map_batches``; for sft/ebm they are one training worker's.)"""
    cpus, gpus, resources = _resources_of(role, cfg)
    return {"num_cpus": float(cpus), "num_gpus": float(gpus), "resources": resources}


def train_scaling(cfg, role: str) -> dict:
    """``ScalingConfig`` keyword arguments of the ``sft`` or ``ebm`` training workers."""
    if role not in ("sft", "ebm"):
        raise ValueError(f"train_scaling: role must be sft or ebm, not {role!r}")
    return section_scaling(getattr(cfg, role))


def section_scaling(section) -> dict:
    """``ScalingConfig`` keyword arguments from an ``SFTSection`` or ``EBMSection`` (what the trainers pass)."""
    cpus, gpus, resources = _training_resources(section)
    rpw = {"CPU": cpus, **({"GPU": gpus} if gpus else {}), **resources}
    return {"num_workers": section.num_workers, "use_gpu": gpus > 0, "resources_per_worker": rpw}


def describe_request(req: dict) -> str:
    """A request or a resource total in words, e.g. ``CPU 1, GPU 2, gpu_node 0.01`` (node-id keys left out)."""
    flat: dict[str, float] = {}
    for k, v in req.items():
        if k == "resources":
            flat.update(v or {})
        elif k in ("num_cpus", "num_gpus"):
            flat["CPU" if k == "num_cpus" else "GPU"] = v
        elif not k.startswith("node:") and k not in ("memory", "object_store_memory"):
            flat[k] = v
    shown = [f"{k} {v:g}" for k, v in sorted(flat.items()) if v or k in ("CPU", "GPU")]
    return ", ".join(shown) or "nothing"


def _cluster_totals() -> tuple[dict, dict]:
    """What the cluster has and has free (for the message only: requests are never sized from it)."""
    import ray

    return dict(ray.cluster_resources()), dict(ray.available_resources())


def _unplaced_actors(actor_ids: set[str]) -> set[str] | None:
    """Of ``actor_ids``, those Ray has not yet given a worker (waiting for resources or a node); None when
    Ray's state API cannot be reached (no dashboard). A constructing actor already has its worker."""
    import ray
    from ray.util.state import list_actors

    gcs = ray.get_runtime_context().gcs_address
    try:
        rows = list_actors(address=gcs, detail=True, raise_on_missing_output=False,
                           filters=[("state", "!=", "DEAD")], limit=10_000)
        seen, waiting = set(), set()
        for r in rows:
            if r.actor_id in actor_ids:
                seen.add(r.actor_id)
                if r.state in ("DEPENDENCIES_UNREADY", "PENDING_CREATION") and not r.pid:
                    waiting.add(r.actor_id)
        unlisted = actor_ids - seen  # not registered yet, or dead
        return waiting | (unlisted - _dead(unlisted, gcs))
    except Exception as e:  # noqa: BLE001 - no dashboard / state API: the caller falls back
        log.debug("state API not reachable: %s", e)
        return None


def _dead(actor_ids: set[str], gcs: str) -> set[str]:
    """Of ``actor_ids``, the dead ones (placed once, or never: their error is the caller's to read)."""
    from ray.util.state import get_actor

    return {a for a in actor_ids if (row := get_actor(a, address=gcs)) is not None and row.state == "DEAD"}


def wait_placed(items: Sequence[Any] | Mapping[str, Sequence[Any]], cfg, role: str | None = None,
                timeout_s: float | None = None, asked: Mapping[str, dict] | dict | None = None,
                poll_s: float = 0.5) -> None:
    """Return once every actor handle (or object ref) is placed; else raise ``PlacementTimeout``.

    ``items`` is a list of one ``role``'s handles or refs, or ``{role: [handles or refs]}`` for several
    roles waited on together (one deadline). An actor handle counts as placed once Ray has given it a
    worker on some node (its constructor may still run: loading a 7B model is not a placement wait).
    Where Ray's state API cannot be reached (a Ray without its dashboard) only the actor's built-in
    ready call tells, constructor included. An object ref (``PlacementGroup.ready()``, a first
    method call) counts once it is ready. ``timeout_s`` defaults to ``workers.placement_timeout_s``;
    ``asked`` (per role) to ``role_options(cfg, role)``. The error names the first role left waiting.
    """
    import ray

    if isinstance(items, Mapping):
        groups = {r: list(v) for r, v in items.items() if v}
        asked = dict(asked or {})
    else:
        if role is None:
            raise ValueError("wait_placed: name the role of a list of handles (or pass {role: handles})")
        groups = {role: list(items)}
        asked = {role: asked} if asked is not None else {}
    timeout_s = cfg.workers.placement_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    refs = {r: [x for x in v if isinstance(x, ray.ObjectRef)] for r, v in groups.items()}
    handles = {x._actor_id.hex(): x for v in groups.values() for x in v if not isinstance(x, ray.ObjectRef)}
    waiting = {r: {x._actor_id.hex() for x in v if not isinstance(x, ray.ObjectRef)} for r, v in groups.items()}
    ready = {h.__ray_ready__.remote(): a for a, h in handles.items()}  # constructed: placed for sure
    state_until = time.monotonic() + min(30.0, timeout_s)  # how long a state API that does not answer is asked
    use_state = True
    while True:
        for r in refs:
            if refs[r]:
                _, refs[r] = ray.wait(refs[r], num_returns=len(refs[r]), timeout=0)
        if ready:
            done, _ = ray.wait(list(ready), num_returns=len(ready), timeout=0)
            placed = {ready.pop(x) for x in done}
            waiting = {r: w - placed for r, w in waiting.items()}
        ids = set().union(*waiting.values())
        if ids and use_state:
            left = _unplaced_actors(ids)
            if left is not None:
                waiting = {r: w & left for r, w in waiting.items()}
                state_until = float("inf")
            elif time.monotonic() > state_until:
                use_state = False
                log.warning("Ray's state API is not reachable (no dashboard?): placement waits for the actors to "
                            "be ready, constructors included")
        late = [r for r in groups if refs[r] or waiting[r]]
        if not late:
            return
        if time.monotonic() >= deadline:
            r = late[0]
            has, free = _cluster_totals()
            raise PlacementTimeout(r, asked.get(r) or role_options(cfg, r), has, free, timeout_s,
                                   len(refs[r]) + len(waiting[r]), len(groups[r]))
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
