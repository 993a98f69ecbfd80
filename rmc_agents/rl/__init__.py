"""RLlib glue: the agent's RLModule (torso by observation space, core, heads), env resolution,
the algorithm config builder, the training loop and its CLI (``train_agent.py``).

For your own RLlib configs: :func:`configure` (the one call that puts the agent into an IMPALA,
APPO or PPO config as ``train_agent.py`` runs it; :mod:`rmc_agents.rl.agent_config`), or the pieces
alone: :func:`policy_spec` (the policy as an ``RLModuleSpec``), :func:`learner_class` (this
project's learner for IMPALA, APPO or PPO) and :func:`learner_pipeline` (train batches built in one
pass); see :mod:`rmc_agents.rl.spec`. They load RLlib on first use, not on ``import rmc_agents.rl``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["configure", "learner_class", "learner_pipeline", "policy_spec"]


def __getattr__(name: str) -> Any:
    if name == "configure":
        from rmc_agents.rl.agent_config import configure

        return configure
    if name in __all__:
        from rmc_agents.rl import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'rmc_agents.rl' has no attribute {name!r}")
