"""``get_logger`` and ``configure_logging`` under seapig's names (spec §6 ``seapig/utils/logging.py``).

The library itself never configures logging and never prints; these helpers exist for the
application. The selective system logs on ``synthperf.selective`` (the analogue of seapig's
``"seapig"`` logger); progress lines are on ``synthperf.progress``.
"""
from __future__ import annotations

import logging
import os
import sys

LOGGER_NAME = "synthperf.selective"
FORMAT = "%(levelname)s:%(name)s:%(message)s"


def get_logger(name: str | None = None) -> logging.Logger:
    """``logging.getLogger(name)`` for a name under ``synthperf``, else the ``synthperf.selective`` logger."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    if name and (name == "synthperf" or name.startswith("synthperf.")):
        return logging.getLogger(name)
    return logging.getLogger(LOGGER_NAME)


def _level(level: str | int, source: str) -> int:
    if isinstance(level, bool):
        raise TypeError(f"{source} must be a level name or int, got bool")
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        value = logging.getLevelName(level.strip().upper())
        if isinstance(value, int):
            return value
        raise ValueError(f"{source} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL or an int, got {level!r}")
    raise TypeError(f"{source} must be a level name or int, got {type(level).__name__}")


def configure_logging(level: str | int = "WARNING", handler: logging.Handler | None = None) -> logging.Logger:
    """Send ``synthperf.selective`` records at ``level`` and above to ``handler`` (default: a
    stderr StreamHandler with format ``%(levelname)s:%(name)s:%(message)s``), replacing the
    handlers it had. The environment variable ``SYNTHPERF_LOG_LEVEL`` overrides ``level``.
    Returns the logger."""
    env = os.environ.get("SYNTHPERF_LOG_LEVEL")
    lvl = _level(env, "SYNTHPERF_LOG_LEVEL") if env else _level(level, "level")
    if handler is not None and not isinstance(handler, logging.Handler):
        raise TypeError(f"handler must be a logging.Handler or None, got {type(handler).__name__}")
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(lvl)
    return logger
