"""User-input checks made in the driver before Ray starts."""

from __future__ import annotations

from typing import Any

__all__ = ["check_spaces"]


def check_spaces(env_spec: str, env_kwargs: dict[str, Any], run_model: Any) -> None:
    """Build one env of ``env_spec`` and check the policy can handle its spaces.

    Raises:
        ValueError (``EnvResolutionError`` or ``UnsupportedSpaceError``): the env cannot be built
            with ``env_kwargs``, or its observation or action space is unsupported; the message
            names the env and the space.
    """
    from rmc_agents.rl.encoders import UnsupportedSpaceError
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
    from rmc_agents.rl.module import action_logits_size, build_torso

    try:
        build_torso(obs_space, run_model.rllib_model_config())
    except (UnsupportedSpaceError, ValueError) as exc:
        raise UnsupportedSpaceError(
            f"env '{env_spec}': the policy cannot encode its observation space: {exc}"
        ) from None
    try:
        action_logits_size(act_space)
    except UnsupportedSpaceError as exc:
        raise UnsupportedSpaceError(f"env '{env_spec}': {exc}") from None
