"""Evaluation during training: the current policy on fixed env seeds, apart from training.

Every ``evaluation.every`` training iterations the trainer copies the learner's weights into a
module of its own and plays ``evaluation.episodes`` episodes with it in the driver process
(:func:`rmc_agents.rollout.playing.play`: the recurrent state starts fresh at every episode, actions
are sampled, or the most likely with ``evaluation.deterministic``). The env is seeded with
``evaluation.seed`` at the first reset of each evaluation, so every evaluation plays the same
sequence of levels and differences between evaluations come from the policy alone (and its action
sampling, seeded the same way). The results go to ``progress.csv`` and TensorBoard as
``eval/return_mean`` and ``eval/return_std``; with evaluation on, the run's ``best/`` policy is
the one with the best evaluation return instead of the best running training mean.

Training waits while an evaluation plays (IMPALA's EnvRunners finish their current fragment and
idle): on 2 CPUs 10 Mini-Pacman viewport episodes take a few seconds.
"""

from __future__ import annotations

import statistics
from types import SimpleNamespace
from typing import Any

__all__ = ["Evaluator"]


class Evaluator:
    """Plays the learner's current policy on fixed seeds; see the module docstring.

    Args:
        run: the run's :class:`~rmc_agents.rl.settings.RunSettings` (``evaluation`` and the env).
        algo: the built RLlib algorithm (its learner group holds the weights and the module's
            spaces and settings).
    """

    def __init__(self, run: Any, algo: Any) -> None:
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from rmc_agents.rollout.environment import make_rollout_env

        self.settings = run.evaluation
        self.algo = algo
        # The learner's module decides the spaces (with previous action/reward the observation
        # space is the connector's Dict) and the settings; local or remote learners alike.
        described = algo.learner_group.foreach_learner(
            lambda learner: _describe(learner.module["default_policy"])
        )
        cls, obs_space, act_space, model_config = _first_result(described)
        self.module = RLModuleSpec(
            module_class=cls,
            observation_space=obs_space,
            action_space=act_space,
            model_config=model_config,
        ).build()
        self.env = make_rollout_env(run.env, dict(run.env_kwargs), frames=False)

    def due(self, iteration: int) -> bool:
        every = self.settings.every
        return every > 0 and iteration % every == 0

    def evaluate(self) -> dict[str, float]:
        """``{"eval/return_mean": ..., "eval/return_std": ...}`` of this evaluation."""
        import torch

        from rmc_agents.rollout.playing import play

        weights = self.algo.learner_group.get_weights()["default_policy"]
        self.module.load_state_dict(
            {k: torch.as_tensor(v) for k, v in weights.items()}, strict=False
        )
        results = play(
            SimpleNamespace(module=self.module),
            self.env,
            episodes=self.settings.episodes,
            seed=self.settings.seed,
            deterministic=self.settings.deterministic,
            max_steps=self.settings.max_steps,
        )
        returns = [r.episode_return for r in results]
        return {
            "eval/return_mean": statistics.fmean(returns),
            "eval/return_std": statistics.pstdev(returns) if len(returns) > 1 else 0.0,
        }

    def close(self) -> None:
        self.env.close()


def _describe(module: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    inner = module.unwrapped() if hasattr(module, "unwrapped") else module
    return type(inner), inner.observation_space, inner.action_space, dict(inner.model_config)


def _first_result(results: Any) -> Any:
    """The value of the first learner's call (``foreach_learner`` gives RLlib's call results)."""
    for call in results:
        if call.ok:
            return call.get()
    raise RuntimeError("evaluation: no learner answered (cannot read the module's spaces)")
