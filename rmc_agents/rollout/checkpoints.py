"""Finding and loading a trained policy (without starting Ray).

Two kinds of policy directory load here. An exported policy (``model.safetensors`` and
``policy.json``: ``python -m rmc_agents.export``, ``pretrained/``) is rebuilt from data alone
(:func:`rmc_agents.policy_file.load_policy`: nothing is unpickled). An RLlib checkpoint (a run's
``checkpoint/``, or its RLModule directory) is a set of pickles: loading one runs code named in
the files, so load only checkpoints you made or trust; ``--env`` aside, the env it was trained on
is read from the run's ``config.yaml`` or, failing that, from RLlib's pickled algorithm config.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODULE_SUBDIR = Path("learner_group", "learner", "rl_module", "default_policy")
RUN_CONFIG = "config.yaml"


class RolloutError(RuntimeError):
    """Something the user can fix: a bad path, checkpoint, env, or option."""


# --- finding and loading the policy -----------------------------------------------------------


def _is_algorithm_checkpoint(path: Path) -> bool:
    return (path / MODULE_SUBDIR).is_dir()


def _is_module_dir(path: Path) -> bool:
    return (path / "class_and_ctor_args.pkl").is_file() and any(path.glob("module_state*"))


def _newest_checkpoint_below(root: Path, depth: int = 3) -> Path | None:
    """The algorithm checkpoint below ``root`` (up to ``depth`` levels) written last."""
    found: list[tuple[float, Path]] = []
    level = [root]
    for _ in range(depth):
        next_level = []
        for directory in level:
            try:
                children = [p for p in directory.iterdir() if p.is_dir()]
            except OSError:
                continue
            for child in children:
                if _is_algorithm_checkpoint(child):
                    states = list((child / MODULE_SUBDIR).glob("module_state*"))
                    mtime = max((s.stat().st_mtime for s in states), default=0.0)
                    found.append((mtime, child))
                else:
                    next_level.append(child)
        level = next_level
    return max(found)[1] if found else None


def find_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """Find the policy directory for ``path``.

    Args:
        path: an exported policy (``model.safetensors`` and ``policy.json``), a run output dir,
            an algorithm checkpoint dir, or an RLModule dir.

    Returns:
        ``(module_dir, algorithm_checkpoint)``: ``module_dir`` is the exported policy's directory
        or the RLModule directory; the second is None for an exported policy and for a bare
        module directory not inside an algorithm checkpoint.

    Raises:
        RolloutError: the path does not exist, is not a directory, or holds no checkpoint.
    """
    from rmc_agents.policy_file import is_policy_dir

    root = Path(path).expanduser()
    if not root.exists():
        raise RolloutError(f"checkpoint path '{path}' does not exist")
    if not root.is_dir():
        raise RolloutError(f"checkpoint path '{path}' is not a directory")
    if is_policy_dir(root):  # an exported policy: no pickles
        return root, None
    if _is_algorithm_checkpoint(root):
        return root / MODULE_SUBDIR, root
    if _is_module_dir(root):
        parents = root.resolve().parents
        algo = parents[3] if len(parents) > 3 else None
        if algo is not None and (algo / MODULE_SUBDIR).resolve() == root.resolve():
            return root, algo
        return root, None
    if _is_module_dir(root / "default_policy"):  # the multi-module dir .../rl_module
        return find_checkpoint(root / "default_policy")
    if _is_module_dir(root / "policy"):  # a run's best/ (or an agent exported in RLlib's format)
        return root / "policy", None
    for name in ("checkpoint", "checkpoint.old"):  # the trainer's final (or mid-swap) checkpoint
        if _is_algorithm_checkpoint(root / name):
            return root / name / MODULE_SUBDIR, root / name
    newest = _newest_checkpoint_below(root)
    if newest is not None:
        return newest / MODULE_SUBDIR, newest
    raise RolloutError(
        f"no checkpoint found in '{path}' (expected an exported policy with model.safetensors "
        f"and policy.json, a run directory with checkpoint/, a checkpoint directory with "
        f"{MODULE_SUBDIR.as_posix()}/, or an RLModule directory)"
    )


def _env_from_run_config(path: Path) -> tuple[str, dict[str, Any]] | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RolloutError(f"cannot read the run config '{path}': {_one_line(exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("env"), str):
        return None
    kwargs = data.get("env_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise RolloutError(f"env_kwargs in '{path}' must be a mapping, got {kwargs!r}")
    return data["env"], dict(kwargs)


def _env_from_algorithm_config(checkpoint: Path) -> tuple[str, dict[str, Any]] | None:
    """The env an RLlib algorithm checkpoint was built with (its pickled config), if readable."""
    path = checkpoint / "class_and_ctor_args.pkl"
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
        config = data["ctor_args_and_kwargs"][0][0]
        env, env_config = config.get("env"), config.get("env_config") or {}
    except Exception:  # noqa: BLE001 - any unreadable config just means "unknown env"
        return None
    if isinstance(env_config, dict) and isinstance(env_config.get("env_spec"), str):
        return env_config["env_spec"], dict(env_config.get("env_kwargs") or {})
    if isinstance(env, str):
        return env, dict(env_config) if isinstance(env_config, dict) else {}
    return None


def find_run_env(
    checkpoint: Path | None, module_dir: Path | None = None
) -> tuple[str, dict[str, Any]] | None:
    """``(env spec, env kwargs)`` the checkpoint was trained on, or None if nothing says.

    Looks for the run's ``config.yaml`` in the checkpoint dir and its parent (the trainer writes
    ``<output>/config.yaml`` and ``<output>/checkpoint/``), then in RLlib's stored config; for a
    bare module dir, beside it and in its parent. For an exported policy: its card's env.
    """
    from rmc_agents.policy_file import PolicyFileError, is_policy_dir, read_card

    if checkpoint is None and module_dir is not None and is_policy_dir(module_dir):
        try:
            card = read_card(module_dir)
        except PolicyFileError as exc:
            raise RolloutError(str(exc)) from None
        env, kwargs = card.get("env"), card.get("env_kwargs") or {}
        return (env, dict(kwargs)) if isinstance(env, str) and isinstance(kwargs, dict) else None
    if checkpoint is None:
        for directory in () if module_dir is None else (module_dir, module_dir.parent):
            if (directory / RUN_CONFIG).is_file():
                return _env_from_run_config(directory / RUN_CONFIG)
        return None
    for directory in (checkpoint, checkpoint.parent):
        if (directory / RUN_CONFIG).is_file():
            found = _env_from_run_config(directory / RUN_CONFIG)
            if found is not None:
                return found
    return _env_from_algorithm_config(checkpoint)


@dataclass
class LoadedPolicy:
    """A policy loaded from a checkpoint, and the env it was trained on (if known)."""

    module: Any
    module_dir: Path
    checkpoint: Path | None
    env_spec: str | None
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def core_name(self) -> str | None:
        """``rmc``/``lstm``/``gru``/``mlp`` for this project's module, else None."""
        return getattr(self.module, "core_name", None)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    message = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return message if len(message) <= limit else message[: limit - 3] + "..."


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load the policy under ``path`` (see :func:`find_checkpoint`) in this process, on CPU: an
    exported policy from its safetensors and JSON card (no pickle), an RLlib checkpoint with
    RLlib (pickles: only one you trust).

    Raises:
        RolloutError: no checkpoint there, or it cannot be loaded (truncated, garbage, missing
            files, classes that cannot be imported), with the cause in one line.
    """
    from rmc_agents.policy_file import PolicyFileError, is_policy_dir
    from rmc_agents.policy_file import load_policy as load_exported

    module_dir, checkpoint = find_checkpoint(path)
    env = find_run_env(checkpoint, module_dir)
    if checkpoint is None and is_policy_dir(module_dir):
        try:
            with _quiet_rllib():
                module = load_exported(module_dir)
        except PolicyFileError as exc:
            raise RolloutError(f"cannot load the policy from '{module_dir}': {exc}") from None
        return LoadedPolicy(
            module=module,
            module_dir=module_dir,
            checkpoint=None,
            env_spec=env[0] if env else None,
            env_kwargs=env[1] if env else {},
        )
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    try:
        with _quiet_rllib():
            module = RLModule.from_checkpoint(str(module_dir.resolve()))
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable checkpoint
        raise RolloutError(
            f"cannot load the policy from '{module_dir}' (corrupt or incomplete checkpoint?): "
            f"{_one_line(exc)}"
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise RolloutError(
            f"the checkpoint in '{module_dir}' holds a {type(module).__name__}, not a torch "
            "RLModule; only torch policies can be rolled out"
        )
    module.eval()
    return LoadedPolicy(
        module=module,
        module_dir=module_dir,
        checkpoint=checkpoint,
        env_spec=env[0] if env else None,
        env_kwargs=env[1] if env else {},
    )


@contextlib.contextmanager
def _quiet_rllib() -> Iterator[None]:
    """Hide RLlib's deprecation chatter while loading (it is not about anything the user did)."""
    import logging

    loggers = [logging.getLogger(name) for name in ("ray.rllib", "ray._common.deprecation")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
