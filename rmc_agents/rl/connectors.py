"""One-pass EnvRunner connectors: the same data as RLlib's default pipelines, built per vector step.

Each step of an EnvRunner goes through two connector pipelines: env-to-module (the latest
observation and the recurrent state of every sub-env, batched into tensors) and module-to-env
(actions sampled from the logits, turned into numpy and split per sub-env). RLlib's defaults do this
with six and seven generic pieces that walk every sub-env's items through ``tree`` calls one at a
time: with 64 envs that was 28% of the EnvRunner's CPU in a Mini-Pacman run (py-spy), more than the
policy's forward pass. The two pieces here do the same work on whole arrays:

- :class:`BatchForModule` (env-to-module): ``OBS`` ``[B, 1, ...]`` (no time rank for a stateless
  module) from each episode's latest observation, and ``STATE_IN`` ``[B, ...]`` from each episode's
  last ``STATE_OUT`` (the module's initial state at an episode start), as torch tensors;
- :class:`ActionsToEnv` (module-to-env): samples ``ACTIONS`` from ``ACTION_DIST_INPUTS`` with the
  module's action distribution (``ACTION_LOGP`` beside them; the argmax when not exploring; a
  categorical is sampled directly, :func:`sample_categorical`, with RLlib's numbers), drops
  the single time step and returns numpy columns indexed by sub-env, ``STATE_OUT`` as a per-env
  view.

The episodes that reach the learner hold the same values as with RLlib's pipelines
(``tests/rl/test_connectors.py`` compares both, step by step). They are used only where
:func:`fast_connectors_apply` says so: numeric observations (Box, Discrete, MultiDiscrete,
MultiBinary, nested in Dict/Tuple; a Text part keeps RLlib's pipeline) and Discrete or
MultiDiscrete actions (Box actions need RLlib's unsquash/clip). The previous action/reward
(``model.prev_action``/``prev_reward``) are added before, by :class:`PreviousActionsRewards`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tree
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module import PrevActionsPrevRewards
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.torch_utils import convert_to_torch_tensor

__all__ = [
    "ActionsToEnv",
    "BatchForModule",
    "PerEnvState",
    "PreviousActionsRewards",
    "env_to_module_pipeline",
    "fast_connectors_apply",
    "module_to_env_pipeline",
    "sample_categorical",
]

_NUMERIC_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
)


def _numeric_space(space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Dict):
        return all(_numeric_space(s) for s in space.spaces.values())
    if isinstance(space, gym.spaces.Tuple):
        return all(_numeric_space(s) for s in space.spaces)
    return isinstance(space, _NUMERIC_SPACES)


def fast_connectors_apply(observation_space: gym.Space, action_space: gym.Space) -> bool:
    """Whether :class:`BatchForModule` and :class:`ActionsToEnv` can stand in for RLlib's pipelines."""
    return _numeric_space(observation_space) and isinstance(
        action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)
    )


def _stack(items: Sequence[Any]) -> Any:
    """Stack a list of equally nested items (arrays, numbers, dicts/tuples of them) on axis 0."""
    first = items[0]
    if isinstance(first, np.ndarray) or np.isscalar(first):
        return np.stack(items)
    if isinstance(first, dict) and all(isinstance(v, np.ndarray) for v in first.values()):
        return {key: np.stack([item[key] for item in items]) for key in first}
    return tree.map_structure(lambda *leaves: np.stack(leaves), *items)


class BatchForModule(ConnectorV2):
    """Env-to-module in one pass (see the module docstring)."""

    def __init__(self, *args: Any, device: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._device = device

    def _to_tensor(self, data: Any) -> Any:
        # RLlib's own conversion (as its NumpyToTensor): float64 becomes float32, too.
        return convert_to_torch_tensor(data, device=self._device)

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        stateful = rl_module.is_stateful()
        obs = _stack([episode.get_observations(-1) for episode in episodes])
        if stateful:  # a time rank of one step, as RLlib's AddTimeDimToBatchAndZeroPad adds
            obs = tree.map_structure(lambda x: x[:, None], obs)
        batch[Columns.OBS] = self._to_tensor(obs)
        if stateful:
            initial = None
            states = []
            for episode in episodes:
                if (episode.t_started == 0 and len(episode) == 0) or (
                    Columns.STATE_OUT not in episode.extra_model_outputs
                ):
                    if initial is None:
                        initial = tree.map_structure(np.asarray, rl_module.get_initial_state())
                    states.append(initial)
                else:
                    states.append(
                        episode.get_extra_model_outputs(key=Columns.STATE_OUT, indices=-1)
                    )
            batch[Columns.STATE_IN] = self._to_tensor(_stack(states))
        return batch


class PerEnvState:
    """``STATE_OUT`` of a whole batch that gives sub-env ``i``'s state dict for ``[i]``.

    The EnvRunner stores ``column[i]`` of every module-to-env column in episode ``i``; this keeps
    the batch as one array per state part instead of building a dict per sub-env up front.
    """

    __slots__ = ("_flat", "_parts")

    def __init__(self, parts: Any) -> None:
        self._parts = parts
        # A flat dict of arrays (every module here) is indexed without ``tree``.
        flat = isinstance(parts, dict) and all(isinstance(v, np.ndarray) for v in parts.values())
        self._flat = list(parts.items()) if flat else None

    def __getitem__(self, index: int) -> Any:
        if self._flat is not None:
            return {key: value[index] for key, value in self._flat}
        return tree.map_structure(lambda part: part[index], self._parts)

    def __len__(self) -> int:
        return len(tree.flatten(self._parts)[0])


def sample_categorical(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions and their log-probabilities from ``logits`` ``[..., A]``: the numbers RLlib's
    ``TorchCategorical`` gives (through ``torch.distributions.Categorical``: the logits
    normalised, their softmax, one ``multinomial`` draw per row, the normalised logit of each
    action), for the same random state, without building the two distribution objects per step
    (they were most of this connector's time)."""
    normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
    probs = torch.softmax(normalized, dim=-1)
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, True)
    actions = flat.reshape(probs.shape[:-1])
    return actions, normalized.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


class ActionsToEnv(ConnectorV2):
    """Module-to-env in one pass (see the module docstring)."""

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        if Columns.ACTIONS not in batch:
            if explore:
                dist_cls = rl_module.get_exploration_action_dist_cls()
            else:
                dist_cls = rl_module.get_inference_action_dist_cls()
            if explore and dist_cls is TorchCategorical and Columns.ACTION_LOGP not in batch:
                logits = batch[Columns.ACTION_DIST_INPUTS]
                batch[Columns.ACTIONS], batch[Columns.ACTION_LOGP] = sample_categorical(logits)
                return self._to_env(rl_module, batch)
            dist = dist_cls.from_logits(batch[Columns.ACTION_DIST_INPUTS])
            if not explore:
                dist = dist.to_deterministic()
            actions = dist.sample()
            batch[Columns.ACTIONS] = actions
            if Columns.ACTION_LOGP not in batch:
                batch[Columns.ACTION_LOGP] = dist.logp(actions)
        return self._to_env(rl_module, batch)

    @staticmethod
    def _to_env(rl_module: Any, batch: dict[str, Any]) -> dict[str, Any]:
        stateful = rl_module.is_stateful()
        out: dict[str, Any] = {}
        for column, value in batch.items():
            value = convert_to_numpy(value)  # as RLlib's TensorToNumpy: int64 -> int32 too
            if column == Columns.STATE_OUT:  # [B, ...], no time rank
                out[column] = PerEnvState(value)
                continue
            if stateful:  # drop the single time step
                value = tree.map_structure(lambda x: x[:, 0], value)
            out[column] = value
        return out


def _single_spaces(env: Any, spaces: Any) -> tuple[gym.Space | None, gym.Space | None]:
    """One sub-env's observation and action space, as RLlib's config builders find them."""
    if env is not None:
        return (
            getattr(env, "single_observation_space", env.observation_space),
            getattr(env, "single_action_space", env.action_space),
        )
    from ray.rllib.env import INPUT_ENV_SINGLE_SPACES

    if spaces is not None and INPUT_ENV_SINGLE_SPACES in spaces:
        return spaces[INPUT_ENV_SINGLE_SPACES]
    return None, None


class PreviousActionsRewards(PrevActionsPrevRewards):
    """RLlib's ``PrevActionsPrevRewards`` whose observation space has only the parts it adds.

    RLlib 2.60's piece declares both ``prev_n_actions`` and ``prev_n_rewards`` in its output space
    even when one of the counts is 0 and that part is never written, so an encoder built from the
    space looked for a key that no observation had (``prev_action: true`` alone failed).
    """

    def _convert_individual_space(self, obs_space: gym.Space, act_space: gym.Space) -> gym.Space:
        space = super()._convert_individual_space(obs_space, act_space)
        counts = {
            self.PREV_ACTIONS_KEY: self.n_prev_actions,
            self.PREV_REWARDS_KEY: self.n_prev_rewards,
        }
        return gym.spaces.Dict(
            {key: part for key, part in space.spaces.items() if counts.get(key, 1)}
        )


def env_to_module_pipeline(prev_actions: int = 0, prev_rewards: int = 0) -> Any:
    """An ``env_to_module_connector`` factory for ``config.env_runners`` (defaults turned off).

    :class:`PreviousActionsRewards` first when the previous action/reward are inputs, then
    :class:`BatchForModule` where :func:`fast_connectors_apply`, else RLlib's default pieces.
    """

    def factory(env: Any = None, spaces: Any = None, device: Any = None) -> list:
        obs_space, action_space = _single_spaces(env, spaces)
        pieces: list = []
        if prev_actions or prev_rewards:
            pieces.append(
                PreviousActionsRewards(n_prev_actions=prev_actions, n_prev_rewards=prev_rewards)
            )
        if obs_space is not None and fast_connectors_apply(obs_space, action_space):
            return [*pieces, BatchForModule(device=device)]
        from ray.rllib.connectors.env_to_module import (
            AddObservationsFromEpisodesToBatch,
            AddStatesFromEpisodesToBatch,
            AddTimeDimToBatchAndZeroPad,
            BatchIndividualItems,
            NumpyToTensor,
        )

        return [  # RLlib 2.60's defaults (AlgorithmConfig.build_env_to_module_connector)
            *pieces,
            AddObservationsFromEpisodesToBatch(),
            AddTimeDimToBatchAndZeroPad(),
            AddStatesFromEpisodesToBatch(),
            BatchIndividualItems(multi_agent=False),
            NumpyToTensor(device=device),
        ]

    return factory


def module_to_env_pipeline(normalize_actions: bool = True, clip_actions: bool = False) -> Any:
    """A ``module_to_env_connector`` factory for ``config.env_runners`` (defaults turned off).

    Gives :class:`ActionsToEnv` where :func:`fast_connectors_apply`, else RLlib's default pieces.
    """

    def factory(env: Any = None, spaces: Any = None) -> list:
        obs_space, action_space = _single_spaces(env, spaces)
        if obs_space is not None and fast_connectors_apply(obs_space, action_space):
            return [ActionsToEnv()]
        from ray.rllib.connectors.module_to_env import (
            GetActions,
            ListifyDataForVectorEnv,
            NormalizeAndClipActions,
            RemoveSingleTsTimeRankFromBatch,
            TensorToNumpy,
            UnBatchToIndividualItems,
        )

        return [  # RLlib 2.60's defaults (AlgorithmConfig.build_module_to_env_connector)
            GetActions(),
            TensorToNumpy(),
            UnBatchToIndividualItems(),
            RemoveSingleTsTimeRankFromBatch(),
            NormalizeAndClipActions(normalize_actions=normalize_actions, clip_actions=clip_actions),
            ListifyDataForVectorEnv(),
        ]

    return factory
