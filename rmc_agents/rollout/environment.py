"""The environment a policy plays: building it and checking it fits the policy."""

from __future__ import annotations

from typing import Any

import numpy as np

from .checkpoints import RolloutError, _one_line

# Keys RLlib's PrevActionsPrevRewards connector puts into the observation dict.
ORIG_OBS_KEY, PREV_ACTIONS_KEY, PREV_REWARDS_KEY = "_orig_obs", "prev_n_actions", "prev_n_rewards"

# --- the environment ----------------------------------------------------------------------------


def make_rollout_env(spec: str, kwargs: dict[str, Any], frames: bool) -> Any:
    """Build one (non-vector) env from a ``--env`` string; ``frames``: with ``rgb_array`` rendering.

    Raises:
        RolloutError: the spec names nothing buildable, the env rejects its arguments, or frames
            are asked for and the env cannot render ``rgb_array``.
    """
    from rmc_agents.rl.envs import EnvResolutionError, make_env, resolve_env

    try:
        resolved = resolve_env(spec)
    except EnvResolutionError as exc:
        raise RolloutError(str(exc)) from None
    kwargs = dict(kwargs)
    if frames:
        modes = _render_modes(resolved)
        if modes is not None and "rgb_array" not in modes:
            raise RolloutError(
                f"environment '{spec}' cannot render frames (its render modes are {modes}, "
                "'rgb_array' is needed for --video, --render and --attention)"
            )
        kwargs["render_mode"] = "rgb_array"
    try:
        env = make_env({"env_spec": spec, "env_kwargs": kwargs})
    except Exception as exc:  # noqa: BLE001 - the env's own constructor errors
        raise RolloutError(f"cannot create environment '{spec}': {_one_line(exc)}") from None
    return env


def _render_modes(resolved: Any) -> list[str] | None:
    """The render modes an env declares in its metadata (None if it cannot be told before)."""
    import gymnasium as gym

    if resolved.is_class:
        import importlib

        cls = getattr(importlib.import_module(resolved.module), resolved.target)
        return list(getattr(cls, "metadata", {}).get("render_modes", []))
    spec = gym.registry[resolved.target]
    entry = spec.entry_point
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        try:
            import importlib

            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            return None
    else:
        cls = entry
    metadata = getattr(cls, "metadata", None)
    if not isinstance(metadata, dict):
        return None
    return list(metadata.get("render_modes", []))


def _space_signature(space: Any) -> Any:
    """What must match between the env's and the policy's observation spaces (shapes, kinds)."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return {k: _space_signature(s) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_space_signature(s) for s in space.spaces)
    if isinstance(space, gym.spaces.Discrete):
        return ("Discrete", int(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete):
        return ("MultiDiscrete", tuple(np.asarray(space.nvec).ravel().tolist()))
    return (type(space).__name__, tuple(space.shape or ()))


def _prev_inputs_layout(module_space: Any) -> tuple[Any, int, int] | None:
    """For a policy trained with previous actions/rewards as inputs: (obs space, n actions,
    n rewards) as RLlib's ``PrevActionsPrevRewards`` connector built them; else None."""
    import gymnasium as gym

    if not isinstance(module_space, gym.spaces.Dict) or ORIG_OBS_KEY not in module_space.spaces:
        return None
    acts = module_space.spaces.get(PREV_ACTIONS_KEY)
    rews = module_space.spaces.get(PREV_REWARDS_KEY)
    n_acts = int(np.prod(acts.shape)) if acts is not None else 0
    n_rews = int(np.prod(rews.shape)) if rews is not None else 0
    return module_space.spaces[ORIG_OBS_KEY], n_acts, n_rews


def check_compatible(module: Any, env: Any, spec: str) -> None:
    """Raise :class:`RolloutError` when ``env``'s spaces are not the ones the policy was trained on."""
    space = module.observation_space
    prev = _prev_inputs_layout(space)
    if prev is not None:
        space = prev[0]
    if space is not None and _space_signature(env.observation_space) != _space_signature(space):
        raise RolloutError(
            f"environment '{spec}' gives observations {env.observation_space}, but the policy was "
            f"trained on {space}"
        )
    act = module.action_space
    if act is not None and _space_signature(env.action_space) != _space_signature(act):
        raise RolloutError(
            f"environment '{spec}' takes actions {env.action_space}, but the policy gives {act}"
        )
