"""The core's log lines go to the ``logging`` logger "sipreferral"."""

from __future__ import annotations

import logging

from ._base import _core

logger = logging.getLogger("sipreferral")

# sr_log_level -> logging level
_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}


def _emit(level: int, message: str) -> None:
    logger.log(_LEVELS.get(level, logging.DEBUG), "%s", message)


def core_level() -> int:
    """The core log level matching the logger's effective level (the core
    does not even format lines above it)."""
    eff = logger.getEffectiveLevel()
    if eff <= logging.DEBUG:
        return 3
    if eff <= logging.INFO:
        return 2
    if eff <= logging.WARNING:
        return 1
    return 0


_core.sr_py_set_log_handler(_emit)
