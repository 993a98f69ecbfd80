"""rmc-agents: memory-based RL agents built around the Relational Memory Core.

:func:`load_policy` rebuilds a trained policy written by ``python -m rmc_agents.export`` (the
agents in ``pretrained/``) as a torch module, from JSON and safetensors only: nothing is unpickled
and Ray is not started (:mod:`rmc_agents.policy_file`). It loads torch on first use, not on
``import rmc_agents``.

Importing ``rmc_agents`` registers the Mini-Pacman ids with Gymnasium (``MiniPacman-Viewport-v0``,
``MiniPacman-Full-v0``; the game is the package ``minipacman``).
"""

from __future__ import annotations

from typing import Any

import minipacman as _minipacman  # noqa: F401  (registers the Mini-Pacman ids)

__version__ = "0.1.0"

__all__ = ["load_policy", "save_policy"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rmc_agents import policy_file

        return getattr(policy_file, name)
    raise AttributeError(f"module 'rmc_agents' has no attribute {name!r}")
