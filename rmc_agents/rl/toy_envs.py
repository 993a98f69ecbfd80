"""Small memory tasks for tests and for checking that a policy remembers.

``CueRecall``: a cue (one of ``num_cues``) is shown only at the first step; the agent must repeat it
at the last step of an episode of ``length`` steps (reward 1 if right, else 0). A memoryless policy
gets ``1 / num_cues`` on average; a policy with memory gets 1. With ``length`` above ``max_seq_len``
the cue must survive RLlib's chunk boundaries (state carried as ``STATE_IN``).

``CueRecallDict``: the same task behind a ``Dict`` observation (a ``Discrete`` cue, a small image and
a ``Text`` part that encoders skip), to exercise the Dict torso.

Use them with ``--env rmc_agents.rl.toy_envs:CueRecall``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["CueRecall", "CueRecallDict"]


class CueRecall(gym.Env):
    """Remember a cue shown only at ``t = 0`` and repeat it at the last step.

    Observation: ``Box(0, 1, (num_cues + 1,))``: the cue one-hot at ``t = 0`` (zeros after), and a
    last element that is 1 at the final step ("answer now").
    Actions: ``Discrete(num_cues)``; only the action at the final step matters.
    Reward: 1 at the final step if the action equals the cue, else 0.
    Episode end: terminated after ``length`` steps.
    """

    metadata = {"render_modes": []}

    def __init__(self, num_cues: int = 2, length: int = 12) -> None:
        if num_cues < 2 or length < 2:
            raise ValueError(f"need num_cues >= 2 and length >= 2, got {num_cues}, {length}")
        self.num_cues = num_cues
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (num_cues + 1,), np.float32)
        self.action_space = gym.spaces.Discrete(num_cues)
        self._cue = 0
        self._t = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.num_cues + 1, np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        if self._t == self.length - 1:
            obs[-1] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(self.num_cues))
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        last = self._t == self.length - 1
        reward = float(last and int(action) == self._cue)
        self._t += 1
        return self._obs() if not last else self._final_obs(), reward, last, False, {}

    def _final_obs(self) -> np.ndarray:
        return np.zeros(self.num_cues + 1, np.float32)


class CueRecallDict(CueRecall):
    """:class:`CueRecall` with a ``Dict`` observation.

    ``cue``: ``Discrete(num_cues + 1)`` (0 = nothing shown, ``k + 1`` = cue ``k``);
    ``answer``: ``MultiBinary(1)``, 1 at the final step;
    ``image``: ``Box(0, 255, (5, 5, 3), uint8)`` with one lit cell at a random place (noise);
    ``mission``: ``Text``, a constant sentence that encoders skip.
    """

    def __init__(self, num_cues: int = 2, length: int = 12) -> None:
        super().__init__(num_cues, length)
        self.observation_space = gym.spaces.Dict(
            {
                "cue": gym.spaces.Discrete(num_cues + 1),
                "answer": gym.spaces.MultiBinary(1),
                "image": gym.spaces.Box(0, 255, (5, 5, 3), np.uint8),
                "mission": gym.spaces.Text(max_length=32, charset="abcdefghijklmnopqrstuvwxyz "),
            }
        )

    def _obs(self) -> dict[str, Any]:
        image = np.zeros((5, 5, 3), np.uint8)
        row, col = self.np_random.integers(5, size=2)
        image[row, col] = 255
        return {
            "cue": self._cue + 1 if self._t == 0 else 0,
            "answer": np.array([int(self._t == self.length - 1)], np.int8),
            "image": image,
            "mission": "repeat the cue",
        }

    def _final_obs(self) -> dict[str, Any]:
        return {
            "cue": 0,
            "answer": np.zeros(1, np.int8),
            "image": np.zeros((5, 5, 3), np.uint8),
            "mission": "repeat the cue",
        }
