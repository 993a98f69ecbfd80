"""Fault-injection envs, for the tests of the fault handling (and to see it at work):
:class:`RewardFault` (rewards turn NaN/inf after a number of steps), :class:`TextObservation` and
:class:`MatrixAction` (spaces the policy cannot handle). They live in the package, not under
``tests/``, because Ray's worker processes must import them by name.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["MatrixAction", "RewardFault", "TextObservation"]


class RewardFault(gym.Env):
    """A trivial task whose rewards go bad after ``fault_after`` steps (counted per env).

    Observation: ``Box(-1, 1, (2,))``, noise. Actions: ``Discrete(2)``; reward 1 for action 0.
    After ``fault_after`` steps of this env, every reward is ``fault_reward`` (NaN by default;
    ``inf`` or ``1e38`` for overflow). Episodes are ``length`` steps long.
    """

    metadata = {"render_modes": []}

    def __init__(
        self, fault_after: int = 1000, fault_reward: float = float("nan"), length: int = 10
    ) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.fault_after = int(fault_after)
        self.fault_reward = float(fault_reward)
        self.length = int(length)
        self._steps = 0
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._steps += 1
        self._t += 1
        reward = float(int(action) == 0)
        if self._steps > self.fault_after:
            reward = self.fault_reward
        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return obs, reward, self._t >= self.length, False, {}


class TextObservation(RewardFault):
    """Like :class:`RewardFault` but observed as ``Text``: a space no torso can encode."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_space = gym.spaces.Text(max_length=8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return "hello", {}

    def step(self, action: Any) -> Any:
        _, reward, terminated, truncated, info = super().step(action)
        return "hello", reward, terminated, truncated, info


class MatrixAction(RewardFault):
    """Like :class:`RewardFault` but acting with a 2-D ``Box``: an action space the policy lacks."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32)

    def step(self, action: Any) -> Any:
        return super().step(0)
