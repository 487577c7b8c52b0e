"""Ray at the edge: starting or joining a cluster from config."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

# Environment a local Ray started by this process hands to its workers. Ray Train's controller polls its
# workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s) and each training run waits for polls to
# start and to end: about 5 s of every SFT or EBM run on 2 cores. A value already set is kept, and a
# cluster's workers keep the environment ``ray start`` gave them.
LOCAL_RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}


def local_ray_env() -> None:
    """Set LOCAL_RAY_ENV in this process (before ``ray.init`` starts a local Ray) where not set already."""
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)


def init_ray(cfg, log_to_driver: bool = True) -> None:
    """Start a local Ray (``ray.address: null``) or join a cluster; a no-op when Ray is already up.

    ``log_to_driver=False`` keeps the workers' output (Ray Train's per-report lines) in Ray's log files."""
    import ray

    if ray.is_initialized():
        return
    r = cfg.ray
    if r.address is None:
        # "local": a new Ray, never one a stale /tmp/ray/ray_current_cluster points at (ray.init() with no
        # address joins that). Under ``ray job submit`` RAY_ADDRESS names the job's cluster: join it.
        local_ray_env()
        ray.init(address=None if os.environ.get("RAY_ADDRESS") else "local", num_cpus=r.num_cpus,
                 namespace=r.namespace, include_dashboard=r.dashboard,
                 log_to_driver=log_to_driver, configure_logging=False)
    else:
        ray.init(address=r.address, namespace=r.namespace, log_to_driver=log_to_driver, configure_logging=False)
    log.info("Ray up: %s", {k: v for k, v in ray.cluster_resources().items() if "node:" not in k})
