"""Quiet start-up: drop Ray's and RLlib's log lines that say nothing to a user of this project.

Dropped (each matched by its text, nothing else): that IMPALA/APPO/PPO run "on the new API stack"
(they always do here), RLlib's own ``RLModule(config=...)`` deprecation notice (raised inside
RLlib, not by this project's code), "Install gputil for GPU system monitoring", and the notice that
token authentication is on (it stays on). Warnings and errors about anything else pass.
"""

from __future__ import annotations

import logging

__all__ = ["NOISE", "install"]

#: Text of each dropped line.
NOISE = (
    "on the new API stack",
    "`RLModule(config=[RLModuleConfig object])` has been deprecated",
    "Install gputil for GPU system monitoring",
    "Token authentication is enabled for this Ray cluster",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in NOISE)


_FILTER = _DropNoise()


def install() -> None:
    """Attach the filter to the handlers of Ray's and RLlib's loggers (idempotent)."""
    for name in ("ray", "ray.rllib"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
