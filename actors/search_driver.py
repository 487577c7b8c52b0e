"""SearchDriver: runs several theorem searches at once against shared generator, encoder and Lean pools.

One theorem's failure is recorded as that theorem's error (``SearchResult.error``), never the job's.
The driver returns the search's trajectory rows to the job, which writes them; a driver that dies
mid-search loses nothing that was written, and the job hands the theorem to another driver.
"""

from __future__ import annotations

from raylib.config import Config
from raylib.env import Theorem


class SearchDriver:
    def __init__(self, cfg: Config, lean_workers: list, generator, encoder=None):
        from actors.pools import RayEnvPool, RayGenerator, RayValue
        from raylib.search.best_first import BestFirstSearch

        self.config_hash = cfg.hash()
        self.env = RayEnvPool(lean_workers, max_attempts=cfg.workers.max_attempts)
        value = RayValue(encoder) if encoder is not None else None
        self.search = BestFirstSearch(cfg.search, self.env, RayGenerator(generator), value)

    async def prove(self, theorem: Theorem, run: str, iteration: int, fingerprints: dict) -> dict:
        result = await self.search.prove(theorem)
        rows = result.rows(run, iteration, statement=theorem.statement, config_hash=self.config_hash,
                           generator_fingerprint=fingerprints.get("generator", ""),
                           encoder_fingerprint=fingerprints.get("encoder"))
        return {"summary": result.summary(), "proof": list(result.proof), "rows": rows}

    async def failovers(self) -> int:
        return self.env.failovers
