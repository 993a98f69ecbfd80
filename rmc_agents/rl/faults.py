"""Guards against the faults of a long run and the mistakes of a user, caught before they cost.

- :func:`non_finite_cause`: the :class:`NonFiniteUpdateError` behind an error (a remote learner's
  arrives wrapped in a ``RayTaskError``). The RLlib classes that raise it, and the IMPALA that
  survives losing every EnvRunner, are in :mod:`rmc_agents.rl.fault_tolerance` (this module does
  not import RLlib, so the CLI can import it cheaply).
- :func:`check_spaces`: builds one env in the driver and checks that the policy can encode its
  observation space and produce its action space, before Ray starts.
- :func:`verify_checkpoint`: checks that every file of a checkpoint is present and readable before
  a ``--resume`` touches anything (a damaged checkpoint fails with the file's name).
- :func:`checkpoint_weights`: the policy weights stored in a checkpoint, for checks and tests.
- Fault-injection envs for the tests: :class:`RewardFault` (rewards turn NaN/inf after a number
  of steps), :class:`TextObservation` and :class:`MatrixAction` (spaces the policy cannot handle).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "CheckpointError",
    "MatrixAction",
    "NonFiniteUpdateError",
    "RewardFault",
    "TextObservation",
    "check_spaces",
    "checkpoint_weights",
    "non_finite_cause",
    "verify_checkpoint",
]

#: Where RLlib keeps the policy's weights inside an algorithm checkpoint.
MODULE_STATE = Path("learner_group/learner/rl_module/default_policy/module_state.pkl")
#: Files an algorithm checkpoint written by the trainer must hold.
REQUIRED_FILES = (
    Path("rllib_checkpoint.json"),
    Path("algorithm_state.pkl"),
    Path("trainer_progress.json"),
    MODULE_STATE,
)


class NonFiniteUpdateError(FloatingPointError):
    """A loss or gradient was NaN or infinite; the update was not applied."""


class CheckpointError(ValueError):
    """A checkpoint is missing files or holds unreadable ones."""


# --- non-finite loss / gradients ------------------------------------------------------------


def non_finite_cause(exc: BaseException) -> NonFiniteUpdateError | None:
    """The :class:`NonFiniteUpdateError` behind ``exc`` (a remote learner's ``RayTaskError``, or
    a chained exception), or None."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NonFiniteUpdateError):
            # A RayTaskError made "an instance of its cause" is one too; its text is a traceback.
            inner = getattr(e, "cause", None)
            return inner if isinstance(inner, NonFiniteUpdateError) else e
        todo += [
            c
            for c in (getattr(e, "cause", None), e.__cause__, e.__context__)
            if isinstance(c, BaseException)
        ]
    return None


# --- spaces ---------------------------------------------------------------------------------


def check_spaces(env_spec: str, env_kwargs: dict[str, Any], run_model: Any) -> None:
    """Build one env of ``env_spec`` and check the policy can handle its spaces.

    Raises:
        ValueError (``EnvResolutionError`` or ``UnsupportedSpaceError``): the env cannot be built
            with ``env_kwargs``, or its observation or action space is unsupported; the message
            names the env and the space.
    """
    from rmc_agents.rl.encoders import UnsupportedSpaceError, build_encoder
    from rmc_agents.rl.envs import EnvResolutionError, make_env

    try:
        env = make_env({"env_spec": env_spec, "env_kwargs": dict(env_kwargs)})
    except EnvResolutionError:
        raise
    except Exception as exc:
        raise EnvResolutionError(
            f"cannot build env '{env_spec}' with env_kwargs {dict(env_kwargs)}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        try:
            env.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass
    rows = bool(run_model.image_rows) and run_model.core == "rmc"
    try:
        build_encoder(obs_space, run_model.conv_channels, run_model.mlp_hiddens, rows=rows)
    except (UnsupportedSpaceError, ValueError) as exc:
        raise UnsupportedSpaceError(
            f"env '{env_spec}': the policy cannot encode its observation space: {exc}"
        ) from None
    from rmc_agents.rl.module import action_logits_size

    try:
        action_logits_size(act_space)
    except UnsupportedSpaceError as exc:
        raise UnsupportedSpaceError(f"env '{env_spec}': {exc}") from None


# --- checkpoints ----------------------------------------------------------------------------


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check a trainer checkpoint without Ray; return its ``trainer_progress.json``.

    Every ``.json`` file must parse and every ``.pkl`` file must unpickle; the required files
    (see :data:`REQUIRED_FILES`) must exist.

    Raises:
        CheckpointError: naming the checkpoint and the first missing or unreadable file.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    for rel in REQUIRED_FILES:
        if not (path / rel).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {rel} is missing")
    for file in sorted(path.rglob("*")):
        if file.suffix not in (".json", ".pkl") or not file.is_file():
            continue
        try:
            if file.suffix == ".json":
                json.loads(file.read_text())
            else:
                with file.open("rb") as f:
                    pickle.load(f)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {path} is damaged: {file.relative_to(path)} cannot be read "
                f"({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
    progress = json.loads((path / "trainer_progress.json").read_text())
    if not isinstance(progress, dict) or not isinstance(progress.get("env_steps"), int):
        raise CheckpointError(
            f"checkpoint {path} is damaged: trainer_progress.json has no integer env_steps"
        )
    return progress


def checkpoint_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The policy's weights in a checkpoint, ``{parameter name: array}``."""
    with (Path(path) / MODULE_STATE).open("rb") as f:
        state = pickle.load(f)
    return {k: np.asarray(v) for k, v in state.items()}


# --- fault-injection envs -------------------------------------------------------------------


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
