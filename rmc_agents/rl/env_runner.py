"""The EnvRunner of this project's IMPALA runs: RLlib's, shipping less to the learner.

RLlib's ``SingleAgentEnvRunner`` sends every sampled episode chunk to the learner whole, step infos
included. The IMPALA learner never reads infos, but pickling them was most of the EnvRunner's
serialisation cost: Mini-Pacman's infos are 8 numpy scalars per step, and cloudpickle handles each
scalar as its own object. Measured here (2 CPUs, 64 envs, one 1,280-step sample of Mini-Pacman
viewport with the RMC): cloudpickle of the 84 episode chunks took 58 ms with infos and 11 ms
without; in a training run that pickling was 22% of the EnvRunner's CPU.

:class:`LeanEnvRunner` replaces each shipped step's info with one shared empty dict *after*
sampling, so callbacks (``on_episode_step``/``on_episode_end``, which run during sampling) still see
the real infos; the episode lengths are unchanged. ``training.step_infos_to_learner: true`` turns this
off (RLlib's own EnvRunner is used) for a custom learner connector that reads infos.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

__all__ = ["LeanEnvRunner", "drop_step_infos"]

_NO_INFO: dict = {}


def drop_step_infos(episodes: list[Any]) -> None:
    """Replace every step info of ``episodes`` (lookback included) with one shared empty dict."""
    for episode in episodes:
        buffer = episode.infos
        if isinstance(buffer.data, list):
            buffer.data = [_NO_INFO] * len(buffer.data)


class LeanEnvRunner(SingleAgentEnvRunner):
    """``SingleAgentEnvRunner`` whose returned episode chunks carry no step infos (see module).

    It registers this project's env ids before it makes its env, so that a config naming
    ``MiniPacman-Viewport-v0`` works in EnvRunner processes too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from rmc_agents.rl.envs import _import_project_envs

        _import_project_envs()
        super().__init__(*args, **kwargs)

    def sample(self, **kwargs: Any) -> list[Any]:
        episodes = super().sample(**kwargs)
        drop_step_infos(episodes)
        return episodes
