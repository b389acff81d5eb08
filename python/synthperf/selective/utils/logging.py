"""``get_logger`` and ``configure_logging`` under seapig's names (spec ``seapig.md`` §6 ``seapig/utils/logging.py``).

The library itself never configures logging and never prints; these helpers exist for the
application. The selective system logs on its *package logger*, ``synthperf.selective`` (the
analogue of seapig's ``"seapig"`` logger; progress lines are on ``synthperf.progress``).
:func:`set_package_logger` renames it, e.g. ``set_package_logger("seapig")`` for an application
written for seapig that configures ``logging.getLogger("seapig")``: the selective system's records
then go to that logger, and :func:`get_logger`/:func:`configure_logging` act on it.
"""
from __future__ import annotations

import logging
import os
import sys

from .._common import _PACKAGE_LOGGER

LOGGER_NAME = "synthperf.selective"
FORMAT = "%(levelname)s:%(name)s:%(message)s"
#: level variables, the first one set wins (``SEAPIG_LOG_LEVEL`` is seapig's name, for drop-in use)
LEVEL_VARIABLES = ("SYNTHPERF_LOG_LEVEL", "SEAPIG_LOG_LEVEL")


def package_logger_name() -> str:
    """The name of the selective system's package logger (default ``"synthperf.selective"``)."""
    return _PACKAGE_LOGGER[0]


def set_package_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """Log the selective system's records on the logger ``name`` (a non-empty dotted name; the
    default restores ``"synthperf.selective"``). Adds a ``logging.NullHandler`` to it (library
    manners: no "last resort" output unless the application configures logging). Returns it."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name.strip() or any(not part for part in name.split(".")):
        raise ValueError(f"name must be a non-empty dotted logger name, got {name!r}")
    _PACKAGE_LOGGER[0] = name
    logger = logging.getLogger(name)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    return logger


def _in_namespace(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def get_logger(name: str | None = None) -> logging.Logger:
    """``logging.getLogger(name)`` for a name under ``synthperf`` or under the package logger's top
    name (``"seapig"`` after ``set_package_logger("seapig")``), else the package logger."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    package = package_logger_name()
    if name and (_in_namespace(name, "synthperf") or _in_namespace(name, package.split(".")[0])):
        return logging.getLogger(name)
    return logging.getLogger(package)


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
    """Send the package logger's records at ``level`` and above to ``handler`` (default: a stderr
    StreamHandler with format ``%(levelname)s:%(name)s:%(message)s``), replacing the handlers it
    had. ``SYNTHPERF_LOG_LEVEL`` (else ``SEAPIG_LOG_LEVEL``), when set, overrides ``level``.
    Returns the logger."""
    lvl = None
    for var in LEVEL_VARIABLES:
        env = os.environ.get(var, "").strip()
        if env:
            lvl = _level(env, var)
            break
    if lvl is None:
        lvl = _level(level, "level")
    if handler is not None and not isinstance(handler, logging.Handler):
        raise TypeError(f"handler must be a logging.Handler or None, got {type(handler).__name__}")
    logger = logging.getLogger(package_logger_name())
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(lvl)
    return logger
