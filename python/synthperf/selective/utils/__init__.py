"""``synthperf.selective.utils`` (seapig's ``seapig.utils``, spec §6): logging and progress helpers.

``configure_logging``/``get_logger`` act on the selective package logger (``synthperf.selective``,
renamed by ``set_package_logger``, e.g. to ``"seapig"``); ``disable``/
``enable``/``is_enabled``/``reset``/``track`` drive synthperf's one progress switch
(:mod:`synthperf.progress`); ``get_backend``/``set_backend`` choose how :func:`track` draws
("rich" or "tqdm"). None of these is the compute backend (that is :mod:`synthperf.backend`).
"""
from __future__ import annotations

from .logging import configure_logging, get_logger, package_logger_name, set_package_logger
from .progress import disable, enable, get_backend, is_enabled, reset, set_backend, track

__all__ = ["configure_logging", "get_logger", "package_logger_name", "set_package_logger", "disable", "enable",
           "get_backend", "is_enabled", "reset", "set_backend", "track"]
