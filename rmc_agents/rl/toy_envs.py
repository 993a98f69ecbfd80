"""Small memory tasks for tests and for checking that a policy remembers.

``CueRecall``: a cue (one of ``num_cues``) is shown only at the first step; the agent is rewarded
``1 / length`` at every step where its action repeats the cue. A policy with memory gets 1 per
episode; a memoryless one ``1 / length + (1 - 1 / length) / num_cues`` (0.54 for 2 cues and 12 steps).
The reward comes at every step, so the memory can be learned inside the first ``max_seq_len``
chunk (RLlib truncates backpropagation at chunk boundaries); with ``length`` above ``max_seq_len``
the later chunks score only if the state carried across chunks (``STATE_IN``) is right: a policy
that lost its memory at the first chunk boundary would get at most
``max_seq_len / length + (1 - max_seq_len / length) / num_cues``.

``CueRecallDict``: the same task behind a ``Dict`` observation (a ``Discrete`` cue, a small image and
a ``Text`` part that encoders skip), to exercise the Dict torso.

``PaysForever``: the same observation every step and 0.01 reward per step whatever the action, cut
only by truncation. With discount ``gamma`` the true value is ``0.01 / (1 - gamma)`` (1.0 at 0.99)
at every step: a value function learns it only if its targets bootstrap across fragment cuts and
truncations (``rmc_agents.rl.vtrace``).

Use them with ``--env rmc_agents.rl.toy_envs:CueRecall``.

``StatelessCartPole-v1``: RLlib's ``StatelessCartPole`` (CartPole that shows the cart position and pole
angle but not their velocities, so a policy must infer them from the past) registered here as a
Gymnasium id with CartPole-v1's 500-step limit (RLlib's class alone never truncates):
``--env rmc_agents.rl.toy_envs:StatelessCartPole-v1``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["STATELESS_CARTPOLE_ID", "CueRecall", "CueRecallDict", "PaysForever"]

STATELESS_CARTPOLE_ID = "StatelessCartPole-v1"
if STATELESS_CARTPOLE_ID not in gym.registry:
    gym.register(
        STATELESS_CARTPOLE_ID,
        entry_point="ray.rllib.examples.envs.classes.stateless_cartpole:StatelessCartPole",
        max_episode_steps=500,
        reward_threshold=475.0,
    )


class CueRecall(gym.Env):
    """Remember a cue shown only at ``t = 0`` and repeat it at every step.

    Observation: ``Box(0, 1, (num_cues + 1,))``: the cue one-hot at ``t = 0`` (zeros after), and a
    last element that is 1 at the first step.
    Actions: ``Discrete(num_cues)``.
    Reward: ``1 / length`` at each step whose action equals the cue, else 0.
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
        if self._t == 0:
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
        reward = float(int(action) == self._cue) / self.length
        self._t += 1
        return self._obs() if not last else self._final_obs(), reward, last, False, {}

    def _final_obs(self) -> np.ndarray:
        return np.zeros(self.num_cues + 1, np.float32)


class CueRecallDict(CueRecall):
    """:class:`CueRecall` with a ``Dict`` observation.

    ``cue``: ``Discrete(num_cues + 1)`` (0 = nothing shown, ``k + 1`` = cue ``k``);
    ``first``: ``MultiBinary(1)``, 1 at the first step;
    ``image``: ``Box(0, 255, (5, 5, 3), uint8)`` with one lit cell at a random place (noise);
    ``mission``: ``Text``, a constant sentence that encoders skip (left out with ``mission=False``).
    """

    def __init__(self, num_cues: int = 2, length: int = 12, mission: bool = True) -> None:
        super().__init__(num_cues, length)
        spaces: dict[str, gym.Space] = {
            "cue": gym.spaces.Discrete(num_cues + 1),
            "first": gym.spaces.MultiBinary(1),
            "image": gym.spaces.Box(0, 255, (5, 5, 3), np.uint8),
        }
        if mission:
            spaces["mission"] = gym.spaces.Text(
                max_length=32, charset="abcdefghijklmnopqrstuvwxyz "
            )
        self.mission = mission
        self.observation_space = gym.spaces.Dict(spaces)

    def _with_mission(self, obs: dict[str, Any]) -> dict[str, Any]:
        if self.mission:
            obs["mission"] = "repeat the cue"
        return obs

    def _obs(self) -> dict[str, Any]:
        image = np.zeros((5, 5, 3), np.uint8)
        row, col = self.np_random.integers(5, size=2)
        image[row, col] = 255
        return self._with_mission(
            {
                "cue": self._cue + 1 if self._t == 0 else 0,
                "first": np.array([int(self._t == 0)], np.int8),
                "image": image,
            }
        )

    def _final_obs(self) -> dict[str, Any]:
        return self._with_mission(
            {"cue": 0, "first": np.zeros(1, np.int8), "image": np.zeros((5, 5, 3), np.uint8)}
        )


class PaysForever(gym.Env):
    """``reward`` at every step, forever: never terminated, truncated after ``length`` steps.

    Observation: ``Box(0, 1, (1,))``, always ``[1]``. Actions: ``Discrete(2)``, both alike.
    """

    metadata = {"render_modes": []}

    def __init__(self, reward: float = 0.01, length: int = 1000) -> None:
        if length < 1:
            raise ValueError(f"need length >= 1, got {length}")
        self.reward = float(reward)
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        return np.ones(1, np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        return np.ones(1, np.float32), self.reward, False, self._t >= self.length, {}
