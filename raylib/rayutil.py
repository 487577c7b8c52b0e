"""Ray at the edge: starting or joining a cluster from config."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def init_ray(cfg) -> None:
    """Start a local Ray (``ray.address: null``) or join a cluster; a no-op when Ray is already up."""
    import ray

    if ray.is_initialized():
        return
    r = cfg.ray
    if r.address is None:
        ray.init(num_cpus=r.num_cpus, namespace=r.namespace, include_dashboard=r.dashboard,
                 log_to_driver=True, configure_logging=False)
    else:
        ray.init(address=r.address, namespace=r.namespace, configure_logging=False)
    log.info("Ray up: %s", {k: v for k, v in ray.cluster_resources().items() if "node:" not in k})
