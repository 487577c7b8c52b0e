"""Logging set-up shared by the command line and the jobs."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def setup_logging(level: str | int | None = None) -> None:
    level = level or os.environ.get("RAYPROVER_LOG", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def quiet_console(logfile: Path, *own: str) -> Path:
    """A long job's console: the lines of the loggers ``own`` names, warnings, and errors only from Ray;
    ``logfile`` gets everything at INFO (Ray's and transformers' chatter included, and what native code
    writes to the process's standard error). Returns ``logfile``."""
    logfile = Path(logfile)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    native_stderr_to(logfile)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.INFO)
    fh = logging.FileHandler(logfile, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(lambda r: r.name in own or r.levelno >= (logging.ERROR if r.name.startswith("ray")
                                                               else logging.WARNING))
    root.addHandler(console)
    quiet_libraries()
    return logfile


def native_stderr_to(logfile: Path) -> None:
    """Point file descriptor 2 at ``logfile`` and keep the terminal for Python's ``sys.stderr``.

    Native code writes to descriptor 2 past Python's logging (Ray's C++ core worker prints its own
    error lines there, such as Ray Data's note on actor constructor arguments), and so do the Ray
    processes this one starts. Only in a process whose ``sys.stderr`` is still the original one: under a
    test runner's capture, or when called twice, nothing changes."""
    if sys.stderr is not sys.__stderr__ or getattr(sys.stderr, "fileno", None) is None:
        return
    try:
        fd = sys.stderr.fileno()
        sys.stderr.flush()
        terminal = os.dup(fd)
        target = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except (OSError, ValueError):
        return
    os.dup2(target, fd)
    os.close(target)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.__stderr__.encoding or "utf-8",
                           errors="backslashreplace")


def quiet_libraries() -> None:
    """Ray and transformers install their own console handlers and bars: route them to the log file."""
    import ray  # noqa: F401  (import first: importing configures Ray's loggers)
    import ray.data  # noqa: F401
    import ray.train  # noqa: F401

    for name in list(logging.root.manager.loggerDict):
        if name == "ray" or name.startswith("ray."):
            lg = logging.getLogger(name)
            lg.handlers.clear()
            lg.propagate = True
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
