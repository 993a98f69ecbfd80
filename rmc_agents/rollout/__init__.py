"""Watch a trained agent: ``python -m rmc_agents.rollout --checkpoint DIR --episodes N``.

Loads the policy (an RLlib ``RLModule``) from a checkpoint without starting Ray or a training run,
plays episodes, prints each episode's return (and the env's ``score`` where its ``info`` has one)
and length, then the means. Optionally renders every step: ``--render human`` (a pygame window)
and/or ``--video out.gif|out.mp4``. With ``--attention`` and an RMC policy each frame also shows
the memory's attention for that step (see :mod:`rmc_agents.rl.attention_view`).

``--checkpoint`` takes a training run's output directory (its final ``checkpoint/``, else the
newest checkpoint found below it), an algorithm checkpoint directory, or the RLModule directory
itself (``<ckpt>/learner_group/learner/rl_module/default_policy``). The environment and its
arguments come from the run's ``config.yaml`` (or the checkpoint's stored algorithm config);
``--env`` overrides them.

The recurrent state is fed back each step (``STATE_OUT`` of one step is ``STATE_IN`` of the
next; the module's initial state at each episode start), as RLlib's EnvRunner does. Actions are
sampled from the policy's distribution, or its most likely action with ``--deterministic``; with
``--seed`` the environment and the sampling are reproducible. Errors a user can cause print one
``error: ...`` line and exit with status 2.

The package: :mod:`~rmc_agents.rollout.checkpoints` (finding and loading the policy),
:mod:`~rmc_agents.rollout.environment` (the env and its fit to the policy),
:mod:`~rmc_agents.rollout.acting` (the policy stepper), :mod:`~rmc_agents.rollout.frames` (video,
window, attention panel), :mod:`~rmc_agents.rollout.playing` (episodes),
:mod:`~rmc_agents.rollout.cli` (the command line).
"""

from __future__ import annotations

from .acting import PolicyStepper
from .checkpoints import (
    MODULE_SUBDIR,
    RUN_CONFIG,
    LoadedPolicy,
    RolloutError,
    find_checkpoint,
    find_run_env,
    load_policy,
)
from .cli import main, parse_args
from .environment import check_compatible, make_rollout_env
from .frames import VIDEO_SUFFIXES, _attention_view_for, _VideoWriter
from .playing import EpisodeResult, play

__all__ = [
    "MODULE_SUBDIR",
    "RUN_CONFIG",
    "VIDEO_SUFFIXES",
    "EpisodeResult",
    "LoadedPolicy",
    "PolicyStepper",
    "RolloutError",
    "_VideoWriter",
    "_attention_view_for",
    "check_compatible",
    "find_checkpoint",
    "find_run_env",
    "load_policy",
    "main",
    "make_rollout_env",
    "parse_args",
    "play",
]
