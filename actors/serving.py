"""Serving actors held across the iterate job's stages, and the GPU turns they take with training.

The prove and evaluate stages need a generator (the policy: base + LoRA adapter), an encoder serving the
EBM (when the search uses the value model) and Lean workers; SFT, the probes, encode and EBM training
need the GPUs. ``ServingFleet`` starts the serving actors for the model a stage names and keeps them for
the next prove/evaluate stage instead of loading the model again:

* a new adapter on the same base is hot-loaded into the running generator (``GeneratorActor.load_adapter``)
  as version ``FRESH_VERSION``, the version a fresh start gives ``model.adapter``, so the generator's
  fingerprint, and with it the prove stage's result key, equals a fresh fleet's. Going back to no
  adapter, or any other change of the generator's settings, restarts it (a backend cannot unload one);
* the encoder runs only while the search uses the value model (``value.ebm_path`` and ``search.beta > 0``):
  it is started for the LLM+EBM variant and stopped for LLM-only search; a new EBM for the same encoder
  is loaded into it (``EncoderActor.load_ebm``); a new encoder (base, adapter, dtype, pooling, ...)
  restarts it;
* Lean workers stay up from one prove/evaluate stage to the next while their settings hold;
* each stage gets its own search drivers (the search settings live in them); they are dropped when the
  next stage asks for a fleet, or on ``release`` / ``shutdown``.

Turns: ``release`` (the iterate job calls it before each stage in ``TRAINING_STAGES``) kills the generator
and encoder and waits until Ray has them dead, so their GPUs are free when training asks for them; the
next prove/evaluate stage brings them back with the adapter and EBM it names. The Lean workers go too:
their CPU shares are what a small machine's training data pipeline needs (on 2 CPUs, one Lean worker's
half CPU beside the SFT worker left Ray Data's read tasks waiting forever). ``workers.serve_during_training:
true`` (a cluster with GPUs and CPUs for both serving and training) keeps them all up.

Sampling: ``prove_theorems`` reseeds the generator at the start of every seeded run, so a held generator
samples what a fresh one would for the same seed (a run without a seed continues the held generator's
random stream). ``events`` lists every start, stop, hot load and release, in order.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Optional

from actors.fleet import needs_encoder, start_drivers, start_serving_actor
from raylib.config import Config
from raylib.hashing import json_hash

log = logging.getLogger(__name__)

TRAINING_STAGES = ("sft", "probe", "encode", "ebm")  # the iterate stages that take the GPUs
FRESH_VERSION = "0"  # the adapter version a generator started with model.adapter serves


def _generator_key(cfg: Config) -> str:
    """What a running generator was built from, the adapter aside (that one is hot-loaded)."""
    model = cfg.model.model_dump(mode="json", exclude={"adapter"})
    return json_hash({"model": model, "generation": cfg.generation.model_dump(mode="json"),
                      "env": cfg.env.model_dump(mode="json"), "workers": cfg.workers.model_dump(mode="json")})


def _encoder_key(cfg: Config) -> str:
    """What a running encoder was built from, the EBM aside (that one is loaded into it)."""
    from actors.fleet import ENCODE_ONLY

    value = cfg.value.model_dump(mode="json", exclude={"ebm_path", *ENCODE_ONLY})
    return json_hash({"value": value, "model_path": cfg.model.path, "device": cfg.model.device,
                      "workers": cfg.workers.model_dump(mode="json")})


def _lean_key(cfg: Config) -> str:
    return json_hash({"env": cfg.env.model_dump(mode="json"), "workers": cfg.workers.model_dump(mode="json")})


def search_fleet(fleet, cfg: Config, value: bool):
    """A fleet sharing ``fleet``'s generator and Lean workers (and its encoder when ``value``) with new search
    drivers for ``cfg.search``: search settings live in the drivers, the models in the shared actors, so
    variants and settings that differ only in ``search.*`` cost no model load. Release it with
    ``drop_drivers`` (``Fleet.shutdown`` would kill the shared actors)."""
    from actors.fleet import Fleet

    if value and fleet.encoder is None:
        raise ValueError("a value-model search needs a fleet with an encoder (value.ebm_path and search.beta > 0)")
    names = dict(fleet.names, encoder=fleet.names.get("encoder") if value else None)
    fps = dict(fleet.fingerprints, encoder=fleet.fingerprints.get("encoder") if value else None)
    return Fleet(fleet.generator, fleet.encoder if value else None, fleet.lean, start_drivers(cfg, names), fps, names)


def _kill(actors: list) -> None:
    import ray

    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:  # noqa: BLE001 - an actor already gone is fine
            pass


def drop_drivers(fleet) -> None:
    _kill(fleet.drivers)
    fleet.drivers = []


def _wait_dead(actors: list, timeout_s: float = 120.0) -> None:
    """Return once Ray reports every killed actor dead (its resources go back to the node with it)."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    deadline = time.monotonic() + timeout_s
    for a in actors:
        while True:
            try:  # a call on a killed actor fails once Ray has it dead; until then it waits or answers
                ray.get(a.__ray_ready__.remote(), timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            except RayActorError:
                break
            except GetTimeoutError:
                pass
            if time.monotonic() >= deadline:
                log.warning("a killed serving actor is not reported dead after %.0f s; going on", timeout_s)
                return
            time.sleep(0.05)


class ServingFleet:
    """The serving actors one job keeps across its stages (see the module docstring)."""

    def __init__(self, cfg: Config, serve_during_training: Optional[bool] = None):
        self.keep_during_training = (cfg.workers.serve_during_training if serve_during_training is None
                                     else serve_during_training)
        self.events: list[dict] = []
        self.generator = self.encoder = None
        self.lean: list = []
        self.names: dict[str, Any] = {"generator": None, "encoder": None, "lean": []}
        self._gen: dict = {}   # key, adapter, fingerprint of the running generator
        self._enc: dict = {}   # key, ebm, fingerprint of the running encoder
        self._lean_key: Optional[str] = None
        self._fleet = None     # the fleet handed out last (its drivers are dropped at the next call)

    # -- bookkeeping --------------------------------------------------------------------------------
    def _event(self, event: str, role: str, **detail) -> None:
        self.events.append({"event": event, "role": role, "t": round(time.time(), 3), **detail})
        log.info("serving: %s %s %s", event, role, json.dumps(detail, default=str) if detail else "")

    @property
    def serving(self) -> bool:
        """Whether a generator or encoder (the GPU holders) is up."""
        return self.generator is not None or self.encoder is not None

    # -- the fleet for a stage ----------------------------------------------------------------------
    def fleet(self, cfg: Config, drivers: bool = True):
        """An ``actors.fleet.Fleet`` serving ``cfg``'s model (``model.path`` + ``model.adapter``; the encoder and
        ``value.ebm_path`` when ``needs_encoder(cfg)``) with fresh drivers for ``cfg.search`` (none when
        ``drivers`` is False: ``actors.evaluate.evaluate`` makes its own per variant). The previous
        stage's drivers are dropped. The fleet is not the caller's to shut down."""
        import ray

        from actors.fleet import Fleet
        from raylib.placement import wait_placed
        from raylib.rayutil import init_ray

        init_ray(cfg)
        self._drop_drivers()
        started: dict[str, list] = {}
        if self._lean_key != _lean_key(cfg):
            self._stop(["lean"])
            started["lean"] = self._start_lean(cfg)
        self._serve_generator(cfg, started)
        self._serve_encoder(cfg, started)
        if started:
            try:  # requests go out as configured; one not met in workers.placement_timeout_s stops the job
                wait_placed(started, cfg)
            except BaseException:
                self.shutdown()
                raise
        if "generator" in started:
            self._gen["fingerprint"] = ray.get(self.generator.fingerprint.remote())
        if "encoder" in started:
            self._enc["fingerprint"] = ray.get(self.encoder.fingerprint.remote())
        fps = {"generator": self._gen["fingerprint"],
               "encoder": self._enc["fingerprint"] if self.encoder is not None else None}
        names = dict(self.names, lean=list(self.names["lean"]))
        self._fleet = Fleet(self.generator, self.encoder, self.lean, start_drivers(cfg, names) if drivers else [],
                            fps, names)
        return self._fleet

    def _serve_generator(self, cfg: Config, started: dict) -> None:
        import ray

        key, adapter = _generator_key(cfg), cfg.model.adapter
        if self.generator is not None and self._gen["key"] == key:
            if self._gen["adapter"] == adapter:
                return
            if adapter is not None:  # hot-load the new adapter into the running model
                self._gen["fingerprint"] = ray.get(self.generator.load_adapter.remote(adapter, FRESH_VERSION))
                self._gen["adapter"] = adapter
                self._event("hot_load", "generator", adapter=adapter, fingerprint=self._gen["fingerprint"])
                return
        if self.generator is not None:
            self._stop(["generator"], why="another base or settings" if self._gen["key"] != key else "adapter removed")
        self.names["generator"] = f"rp-{uuid.uuid4().hex[:8]}-generator"
        self.generator = start_serving_actor(cfg, "generator", self.names["generator"])
        self._gen = {"key": key, "adapter": adapter, "fingerprint": None}
        started["generator"] = [self.generator]
        self._event("start", "generator", model=cfg.model.path, adapter=adapter)

    def _serve_encoder(self, cfg: Config, started: dict) -> None:
        import ray

        if not needs_encoder(cfg):
            if self.encoder is not None:
                self._stop(["encoder"], why="LLM-only search")
            return
        key, ebm = _encoder_key(cfg), cfg.value.ebm_path
        if self.encoder is not None and self._enc["key"] == key:
            if self._enc["ebm"] != ebm:
                ray.get(self.encoder.load_ebm.remote(ebm))
                self._enc["ebm"] = ebm
                self._event("load_ebm", "encoder", ebm=ebm)
            return
        if self.encoder is not None:
            self._stop(["encoder"], why="another encoder")
        self.names["encoder"] = f"rp-{uuid.uuid4().hex[:8]}-encoder"
        self.encoder = start_serving_actor(cfg, "encoder", self.names["encoder"])
        self._enc = {"key": key, "ebm": ebm, "fingerprint": None}
        started["encoder"] = [self.encoder]
        self._event("start", "encoder", adapter=cfg.value.encoder_adapter, ebm=ebm)

    def _start_lean(self, cfg: Config) -> list:
        from actors.lean_worker import lean_worker_pool

        tag = f"rp-{uuid.uuid4().hex[:8]}"
        self.names["lean"] = [f"{tag}-lean-{i}" for i in range(cfg.workers.lean)]
        self.lean = lean_worker_pool(cfg, names=self.names["lean"])
        self._lean_key = _lean_key(cfg)
        self._event("start", "lean", workers=len(self.lean))
        return self.lean

    # -- giving back --------------------------------------------------------------------------------
    def _drop_drivers(self) -> None:
        if self._fleet is not None:
            drop_drivers(self._fleet)
            self._fleet = None

    def _stop(self, roles: list[str], why: str = "", wait: bool = False) -> None:
        killed = []
        for role in roles:
            if role == "lean":
                if self.lean:
                    killed += self.lean
                    self._event("stop", "lean", why=why)
                self.lean, self.names["lean"], self._lean_key = [], [], None
                continue
            handle = getattr(self, role)
            if handle is None:
                continue
            killed.append(handle)
            setattr(self, role, None)
            self.names[role] = None
            (self._gen if role == "generator" else self._enc).clear()
            self._event("stop", role, why=why)
        _kill(killed)
        if wait and killed:
            _wait_dead(killed)

    def release(self, stage: str = "") -> None:
        """Give the resources back before a training stage: stop the generator, the encoder, the Lean
        workers and the drivers and wait until Ray has them dead; a no-op under
        ``workers.serve_during_training``."""
        if self.keep_during_training:
            if self.serving:
                self._event("keep", "serving", stage=stage)
            return
        self._drop_drivers()
        if self.serving or self.lean:
            self._stop(["generator", "encoder", "lean"], why=f"resources to {stage or 'training'}", wait=True)
            self._event("released", "serving", stage=stage)

    def shutdown(self) -> None:
        """Kill every actor this holder started."""
        self._drop_drivers()
        self._stop(["generator", "encoder", "lean"], why="shutdown")
