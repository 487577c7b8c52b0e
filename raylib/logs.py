"""Logging set-up shared by the command line and the jobs."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | int | None = None) -> None:
    level = level or os.environ.get("RAYPROVER_LOG", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
