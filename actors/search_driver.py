"""SearchDriver: runs several theorem searches at once against shared generator, encoder and Lean pools.

Its constructor takes the config and the Ray names of the actors it uses (small arguments, so Ray can
restart it). Each search leases a Lean worker for its life (``actors.pools``). A failure while searching
(an actor died, the engine raised) comes back as ``SearchResult.error`` with stop reason ``error``: the
caller (``actors.fleet``) retries it; it is never a theorem's outcome. A driver that dies mid-search
loses nothing that was written, and the fleet hands the theorem to a driver again.
"""

from __future__ import annotations

from raylib.config import Config
from raylib.env import Theorem


class SearchDriver:
    def __init__(self, cfg: Config, names: dict):
        import ray

        from actors.pools import RayEnvPool, RayGenerator, RayValue
        from raylib.search.best_first import BestFirstSearch

        self.config_hash = cfg.hash()
        w = cfg.workers
        lean = [ray.get_actor(n) for n in names["lean"]]
        self.env = RayEnvPool(lean, max_attempts=w.max_attempts, retry_delay_s=w.retry_backoff_s / 4,
                              mode=w.lean_dealing)
        value = RayValue(ray.get_actor(names["encoder"])) if names.get("encoder") else None
        self.search = BestFirstSearch(cfg.search, self.env, RayGenerator(ray.get_actor(names["generator"])), value)

    async def prove(self, theorem: Theorem, run: str, iteration: int, fingerprints: dict) -> dict:
        result = await self.search.prove(theorem)
        rows = result.rows(run, iteration, statement=theorem.statement, config_hash=self.config_hash,
                           generator_fingerprint=fingerprints.get("generator", ""),
                           encoder_fingerprint=fingerprints.get("encoder"))
        return {"summary": result.summary(), "proof": list(result.proof), "rows": rows}

    async def failovers(self) -> int:
        return self.env.failovers
