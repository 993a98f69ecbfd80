"""Turning the ``--env`` string into environments that RLlib's EnvRunners can build.

Three forms are accepted:

- a registered Gymnasium id (``CartPole-v1``, ``MiniPacman-Viewport-v0``; ``minipacman`` is
  imported first so this project's ids are known);
- Gymnasium's ``module:EnvId`` (``minigrid:MiniGrid-MemoryS7-v0``,
  ``minipacman:MiniPacman-Full-v0``): the module is imported (it registers the id), then the id is
  made. ``envs:MiniPacman-...``, the game's name before it was installed as ``minipacman``, still
  reads as ``minipacman:MiniPacman-...`` where no module ``envs`` of the user's can be imported;
- ``package.module:ClassName``: a ``gymnasium.Env`` subclass, built with the ``env_config`` kwargs.

All of them go through one RLlib-registered creator, :func:`make_env`, so that EnvRunners (other
processes) rebuild the env from plain data. An id registered with a ``vector_entry_point`` (the
Mini-Pacman vector face) is built whole as a ``VectorEnv`` in each EnvRunner
(``gym_env_vectorize_mode="vector_entry_point"``); anything else is vectorised by Gymnasium's
``SyncVectorEnv``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

__all__ = ["EnvResolutionError", "ResolvedEnv", "make_env", "register_rllib_env", "resolve_env"]

RLLIB_ENV_NAME = "rmc_agents_env"


class EnvResolutionError(ValueError):
    """The ``--env`` string names nothing that can be built."""


@dataclass(frozen=True)
class ResolvedEnv:
    """What :func:`resolve_env` found.

    Attributes:
        spec: the string as given.
        module: module to import first (``""`` if none).
        target: a Gymnasium id, or a class name inside ``module``.
        is_class: ``target`` is a class, not an id.
        has_vector_face: the id has a ``vector_entry_point`` (built whole as a ``VectorEnv``).
    """

    spec: str
    module: str
    target: str
    is_class: bool
    has_vector_face: bool


def _import_project_envs() -> tuple[str, ...]:
    """Register the game's ids; returns them."""
    import minipacman

    return minipacman.ENV_IDS


def _import_module(module: str, target: str, project_ids: tuple[str, ...]) -> Any:
    """Import the module named before the ``:``; an old ``envs:MiniPacman-...`` reads as
    ``minipacman:...`` when no module ``envs`` of the user's exists."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if module == "envs" and exc.name == "envs" and target in project_ids:
            return importlib.import_module("minipacman")
        raise


def resolve_env(spec: str) -> ResolvedEnv:
    """Check that ``spec`` names a buildable env and say how to build it.

    Raises:
        EnvResolutionError: unknown id, unimportable module or missing class, with the name.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise EnvResolutionError(f"--env must name an environment, got {spec!r}")
    project_ids = _import_project_envs()
    module, _, target = spec.rpartition(":")
    if module:
        try:
            mod = _import_module(module, target, project_ids)
        except Exception as exc:  # ImportError, or anything the module raises while importing
            detail = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
            raise EnvResolutionError(
                f"cannot import module '{module}' named in --env '{spec}': {detail}"
            ) from None
        attr = getattr(mod, target, None)
        if isinstance(attr, type) and issubclass(attr, gym.Env):
            return ResolvedEnv(spec, module, target, True, False)
        if attr is not None:
            raise EnvResolutionError(
                f"--env '{spec}': '{target}' in module '{module}' is not a gymnasium.Env subclass"
            )
    if target not in gym.registry:
        close = difflib.get_close_matches(target, list(gym.registry), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        where = f" after importing '{module}'" if module else ""
        raise EnvResolutionError(f"unknown environment '{target}'{where}{hint}")
    has_vector = gym.registry[target].vector_entry_point is not None
    return ResolvedEnv(spec, module, target, False, has_vector)


def make_env(config: dict[str, Any]) -> gym.Env | gym.vector.VectorEnv:
    """RLlib env creator: one env, or a whole ``VectorEnv`` when ``config`` holds ``num_envs``.

    ``config`` carries ``env_spec`` (the ``--env`` string) and ``env_kwargs`` (passed to the env);
    RLlib adds ``num_envs`` when it asks for a vector env through the vector entry point.
    """
    config = dict(config)
    resolved = resolve_env(config["env_spec"])
    kwargs = dict(config.get("env_kwargs") or {})
    num_envs = config.get("num_envs")
    if resolved.is_class:
        cls = getattr(importlib.import_module(resolved.module), resolved.target)
        if num_envs is not None:
            return gym.vector.SyncVectorEnv([lambda: cls(**kwargs) for _ in range(num_envs)])
        return cls(**kwargs)
    if num_envs is not None:
        mode = "vector_entry_point" if resolved.has_vector_face else "sync"
        return gym.make_vec(resolved.target, num_envs=num_envs, vectorization_mode=mode, **kwargs)
    return gym.make(resolved.target, **kwargs)


def register_rllib_env() -> str:
    """Register :func:`make_env` with RLlib (idempotent); returns the name to use as ``env``."""
    from ray.tune.registry import register_env

    register_env(RLLIB_ENV_NAME, make_env)
    return RLLIB_ENV_NAME
