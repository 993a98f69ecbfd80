"""Watch a trained agent: ``python -m rmc_agents.rollout --checkpoint DIR --episodes N``.

Loads the policy (an RLlib ``RLModule``) from a checkpoint without starting Ray or a training run,
plays episodes, prints each episode's return (and the env's ``score`` where its ``info`` has one)
and length, then the means. Optionally renders every step: ``--render human`` (a pygame window)
and/or ``--video out.gif|out.mp4``. With ``--attention`` and an RMC policy each frame also shows
the memory's attention for that step (see :mod:`rmc_agents.rl.attention_view`).

``--checkpoint`` takes a training run's output directory (its final ``checkpoint/``, else the
newest checkpoint found below it), an algorithm checkpoint directory, or the RLModule directory
itself (``<ckpt>/learner_group/learner/rl_module/default_policy``). The environment and its
arguments come from the run's ``config.yaml`` (or the checkpoint's stored algorithm config);
``--env`` overrides them.

The recurrent state is fed back each step (``STATE_OUT`` of one step is ``STATE_IN`` of the
next; the module's initial state at each episode start), as RLlib's EnvRunner does. Actions are
sampled from the policy's distribution, or its most likely action with ``--deterministic``; with
``--seed`` the environment and the sampling are reproducible. Errors a user can cause print one
``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EpisodeResult",
    "LoadedPolicy",
    "PolicyStepper",
    "RolloutError",
    "find_checkpoint",
    "load_policy",
    "main",
    "make_rollout_env",
    "parse_args",
    "play",
]

MODULE_SUBDIR = Path("learner_group", "learner", "rl_module", "default_policy")
RUN_CONFIG = "config.yaml"
VIDEO_SUFFIXES = (".gif", ".mp4")
# Keys RLlib's PrevActionsPrevRewards connector puts into the observation dict.
ORIG_OBS_KEY, PREV_ACTIONS_KEY, PREV_REWARDS_KEY = "_orig_obs", "prev_n_actions", "prev_n_rewards"


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
    """Find the RLModule directory for ``path``.

    Args:
        path: a run output dir, an algorithm checkpoint dir, or an RLModule dir.

    Returns:
        ``(module_dir, algorithm_checkpoint)``; the second is None when ``path`` is a bare module
        directory not inside an algorithm checkpoint.

    Raises:
        RolloutError: the path does not exist, is not a directory, or holds no checkpoint.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise RolloutError(f"checkpoint path '{path}' does not exist")
    if not root.is_dir():
        raise RolloutError(f"checkpoint path '{path}' is not a directory")
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
    if _is_module_dir(root / "policy"):  # an exported agent (pretrained/<name>/policy)
        return root / "policy", None
    for name in ("checkpoint", "checkpoint.old"):  # the trainer's final (or mid-swap) checkpoint
        if _is_algorithm_checkpoint(root / name):
            return root / name / MODULE_SUBDIR, root / name
    newest = _newest_checkpoint_below(root)
    if newest is not None:
        return newest / MODULE_SUBDIR, newest
    raise RolloutError(
        f"no checkpoint found in '{path}' (expected a run directory with checkpoint/, a checkpoint "
        f"directory with {MODULE_SUBDIR.as_posix()}/, or an RLModule directory)"
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
    bare module dir (an exported agent), beside it and in its parent.
    """
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
    """Load the RLModule under ``path`` (see :func:`find_checkpoint`) in this process, on CPU.

    Raises:
        RolloutError: no checkpoint there, or it cannot be loaded (truncated, garbage, missing
            files, classes that cannot be imported), with the cause in one line.
    """
    module_dir, checkpoint = find_checkpoint(path)
    env = find_run_env(checkpoint, module_dir)
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


# --- acting ---------------------------------------------------------------------------------


class _AttentionProbe:
    """Captures the RMC core's attention weights from the module's own forward pass.

    While active, the core's ``unroll`` and one-step ``forward`` are wrapped (on this instance
    only) to ask for ``return_attention=True`` and keep the weights, then return what the module
    expects. So the weights come from exactly the computation that chose the action.
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        self.weights: Any = None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        core = self.core
        unroll, forward = core.unroll, core.forward
        self.weights = None

        def unroll_keeping(xs: Any, state: Any, resets: Any = None, **kwargs: Any) -> Any:
            outputs, final, weights = unroll(xs, state, resets=resets, return_attention=True)
            self.weights = weights[:, -1]  # last step: [B, blocks, heads, N, N]
            return outputs, final

        def forward_keeping(x: Any, state: Any, **kwargs: Any) -> Any:
            output, next_state, weights = forward(x, state, return_attention=True)
            self.weights = weights
            return output, next_state

        core.unroll, core.forward = unroll_keeping, forward_keeping
        try:
            yield
        finally:
            del core.unroll, core.forward  # back to the class's methods


class PolicyStepper:
    """Chooses actions one step at a time, carrying the recurrent state between steps.

    Args:
        module: a torch RLModule (this project's or any RLlib one with the usual columns).
        deterministic: take the distribution's most likely action instead of sampling.
        attention: also return the RMC's attention weights each step.

    Raises:
        RolloutError: ``attention`` for a module without the RMC core.
    """

    def __init__(self, module: Any, deterministic: bool = False, attention: bool = False) -> None:
        import torch

        self.torch = torch
        self.module = module
        self.deterministic = deterministic
        self.stateful = bool(module.get_initial_state())
        self.probe: _AttentionProbe | None = None
        if attention:
            core_name = getattr(module, "core_name", None)
            if core_name != "rmc":
                what = (
                    f"its core is '{core_name}'"
                    if core_name
                    else f"it is a {type(module).__name__}"
                )
                raise RolloutError(
                    f"--attention needs a policy with the RMC core, but {what}; "
                    "drop --attention for this checkpoint"
                )
            self.probe = _AttentionProbe(module.core)
        self.prev = _prev_inputs_layout(module.observation_space)
        if deterministic:
            self.dist_cls = module.get_inference_action_dist_cls()
        else:
            self.dist_cls = module.get_exploration_action_dist_cls()
        self.reset()

    def reset(self) -> None:
        """Start a new episode: the module's initial state, no previous action/reward."""
        torch = self.torch
        self.state = {
            k: torch.as_tensor(np.asarray(v))[None]
            for k, v in self.module.get_initial_state().items()
        }
        self.prev_actions: list[Any] = []
        self.prev_rewards: list[float] = []

    def observe_reward(self, action: Any, reward: float) -> None:
        """Record the step's action and reward (inputs of policies trained with them)."""
        self.prev_actions.append(action)
        self.prev_rewards.append(float(reward))

    def _with_prev_inputs(self, obs: Any) -> Any:
        """The observation dict RLlib's ``PrevActionsPrevRewards`` connector made in training:
        the last actions (one-hot for discrete spaces; zeros before the episode's start) and
        rewards, oldest first."""
        _, n_acts, n_rews = self.prev
        space = self.module.action_space
        out: dict[str, Any] = {ORIG_OBS_KEY: obs}
        if n_acts:
            per = int(space.n) if hasattr(space, "n") else int(np.prod(space.shape))
            k = max(1, n_acts // per)
            vectors = []
            for j in range(len(self.prev_actions) - k, len(self.prev_actions)):
                vec = np.zeros(per, np.float32)
                if j >= 0:
                    a = self.prev_actions[j]
                    if hasattr(space, "n"):
                        vec[int(a)] = 1.0
                    else:
                        vec[:] = np.asarray(a, np.float32).ravel()
                vectors.append(vec)
            out[PREV_ACTIONS_KEY] = np.concatenate(vectors)
        if n_rews:
            rews = [0.0] * n_rews + self.prev_rewards
            out[PREV_REWARDS_KEY] = np.asarray(rews[-n_rews:], np.float32)
        return out

    def act(self, obs: Any) -> tuple[Any, np.ndarray | None]:
        """The action for ``obs`` (and ``[blocks, heads, N, N]`` attention with ``attention``)."""
        import tree
        from ray.rllib.core.columns import Columns

        torch = self.torch
        if self.prev is not None:
            obs = self._with_prev_inputs(obs)
        lead = (1, 1) if self.stateful else (1,)
        batch: dict[str, Any] = {
            Columns.OBS: tree.map_structure(
                lambda x: torch.as_tensor(np.asarray(x)).reshape(*lead, *np.shape(x)), obs
            )
        }
        if self.stateful:
            batch[Columns.STATE_IN] = self.state
        probe = self.probe.active() if self.probe is not None else contextlib.nullcontext()
        with torch.no_grad(), probe:
            if self.deterministic:
                out = self.module.forward_inference(batch)
            else:
                out = self.module.forward_exploration(batch)
        logits = out[Columns.ACTION_DIST_INPUTS]
        if self.stateful:
            logits = logits[:, 0]
            self.state = out[Columns.STATE_OUT]
        self.last_dist_inputs = logits  # [1, ...]: the action-distribution inputs of this step
        dist = self.dist_cls.from_logits(logits)
        if self.deterministic:
            dist = dist.to_deterministic()
        action = _to_env_action(dist.sample()[0], self.module.action_space)
        weights = None
        if self.probe is not None:
            if self.probe.weights is None:
                raise RolloutError(
                    "--attention: the policy's forward pass did not go through its RMC core"
                )
            weights = self.probe.weights[0].cpu().numpy()
        return action, weights


def _to_env_action(sample: Any, space: Any) -> Any:
    """A sampled action as the env takes it, as RLlib's default module-to-env pipeline makes it
    (``normalize_actions``: a float Box policy acts in [-1, 1], mapped onto the bounds)."""
    import gymnasium as gym

    a = sample.cpu().numpy() if hasattr(sample, "cpu") else np.asarray(sample)
    if isinstance(space, gym.spaces.Discrete):
        return int(a)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return a.astype(space.dtype).reshape(space.shape)
    if isinstance(space, gym.spaces.Box):
        a = np.asarray(a).reshape(space.shape)
        if np.all(space.bounded_below) and np.all(space.bounded_above):
            if np.issubdtype(space.dtype, np.floating):
                a = space.low + (a + 1.0) * (space.high - space.low) / 2.0
                a = np.clip(a, space.low, space.high)
            elif np.issubdtype(space.dtype, np.integer):
                a = space.low + a
        return a.astype(space.dtype)
    return a


# --- frames ---------------------------------------------------------------------------------


class _VideoWriter:
    """Writes frames to a GIF (pillow) or an MP4 (ffmpeg, H.264).

    MP4 frames are streamed to ffmpeg. A GIF is written when closed; each frame is reduced to a
    256-colour palette (fast octree, no dithering) as it arrives, so a frame waits in memory at one
    byte per pixel.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.is_gif = path.suffix.lower() == ".gif"
        self.frames = 0
        self._gif_frames: list[Any] = []
        self._mp4 = None
        if not self.is_gif:
            import imageio.v2 as imageio

            self._mp4 = imageio.get_writer(
                path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1
            )

    def add(self, frame: np.ndarray) -> None:
        if self.is_gif:
            from PIL import Image

            image = Image.fromarray(frame, mode="RGB")
            self._gif_frames.append(
                image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            )
        else:
            if frame.shape[0] % 2 or frame.shape[1] % 2:  # yuv420p needs even sides
                padded = np.zeros((frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2, 3), np.uint8)  # fmt: skip
                padded[: frame.shape[0], : frame.shape[1]] = frame
                frame = padded
            self._mp4.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        if self._mp4 is not None:
            self._mp4.close()
            self._mp4 = None
        elif self._gif_frames:
            first, *rest = self._gif_frames
            first.save(
                self.path,
                save_all=True,
                append_images=rest,
                duration=round(1000.0 / self.fps),
                loop=0,
            )
            self._gif_frames = []


class _WindowClosed(Exception):
    """The person closed the pygame window."""


class _Window:
    """A pygame window showing frames at ``fps``."""

    def __init__(self, fps: float, title: str) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        self.fps, self.title = fps, title
        self.screen = None
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray) -> None:
        pg = self.pg
        if self.screen is None or self.screen.get_size() != (frame.shape[1], frame.shape[0]):
            pg.display.init()
            self.screen = pg.display.set_mode((frame.shape[1], frame.shape[0]))
            pg.display.set_caption(self.title)
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key == pg.K_ESCAPE):
                raise _WindowClosed
        pg.surfarray.blit_array(self.screen, frame.transpose(1, 0, 2))
        pg.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.screen is not None:
            self.pg.display.quit()
            self.screen = None


def _attention_view_for(module: Any, frame_height: int) -> Any:
    """An :class:`AttentionView` sized for ``module``'s RMC core and observation encoder."""
    from rmc_agents.rl.attention_view import AttentionView

    core, encoder = module.core, module.encoder
    mem_slots = int(core.mem_slots)
    input_rows = int(encoder.num_rows) if getattr(encoder, "rows", False) else 1
    grid = None
    images = getattr(encoder, "images", None)
    if images is not None and len(images) == 1 and input_rows > 1:
        coords = getattr(images[0], "coords", None)  # [2, H', W'] coordinate maps of the cells
        if coords is not None and coords.ndim == 3:
            grid = (int(coords.shape[1]), int(coords.shape[2]))
            if grid[0] * grid[1] > input_rows:
                grid = None
    return AttentionView(
        mem_slots,
        mem_slots + input_rows,
        int(core.num_heads),
        int(core.num_blocks),
        image_grid=grid,
        height=frame_height,
    )


def _frame(env: Any, spec: str) -> np.ndarray:
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] < 3:
        raise RolloutError(
            f"environment '{spec}' did not return an RGB frame from render() (got "
            f"{type(frame).__name__}); --video, --render and --attention need rgb_array rendering"
        )
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


# --- playing --------------------------------------------------------------------------------


@dataclass
class EpisodeResult:
    """One episode: summed reward, the env's own ``score`` (if its info has one), steps."""

    episode_return: float
    length: int
    score: float | None = None
    truncated_by_max_steps: bool = False


def play(
    policy: LoadedPolicy,
    env: Any,
    episodes: int,
    seed: int | None = None,
    deterministic: bool = False,
    max_steps: int | None = None,
    attention: bool = False,
    on_frame: Callable[[np.ndarray], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_episode: Callable[[int, EpisodeResult], None] | None = None,
    env_spec: str = "",
) -> list[EpisodeResult]:
    """Play ``episodes`` episodes of ``policy`` in ``env``.

    Args:
        seed: seeds the env (first reset) and the action sampling; the caller's torch random
            state is left as it was.
        max_steps: end an episode after this many steps (counted as truncated).
        attention: put the RMC's attention panel beside every frame.
        on_frame: called with each RGB frame (the reset's, then one per step); frames are only
            rendered when this is given.
        on_step: called with (episode index, steps so far) after every step.
        on_episode: called with (episode index, result) after every episode.

    Returns:
        One :class:`EpisodeResult` per finished episode.

    Raises:
        RolloutError: see :class:`PolicyStepper` and frame rendering.
    """
    import torch

    stepper = PolicyStepper(policy.module, deterministic=deterministic, attention=attention)
    view = None
    results: list[EpisodeResult] = []

    def emit(weights: np.ndarray | None, step: int) -> None:
        nonlocal view
        if on_frame is None:
            return
        frame = _frame(env, env_spec)
        if attention:
            from rmc_agents.rl.attention_view import side_by_side

            if view is None:
                view = _attention_view_for(policy.module, frame.shape[0])
            if weights is None:  # an episode's first frame: nothing attended yet
                weights = np.zeros((view.num_blocks, view.num_heads, view.num_keys, view.num_keys))
            frame = side_by_side(frame, view.draw(weights, step))
        on_frame(frame)

    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        for index in range(episodes):
            stepper.reset()
            obs, info = env.reset(seed=seed if index == 0 else None)
            emit(None, 0)
            total, steps, done, cut = 0.0, 0, False, False
            while not done:
                action, weights = stepper.act(obs)
                obs, reward, terminated, truncated, info = env.step(action)
                stepper.observe_reward(action, reward)
                total += float(reward)
                steps += 1
                done = bool(terminated or truncated)
                if max_steps is not None and steps >= max_steps and not done:
                    done = cut = True
                emit(weights, steps)
                if on_step is not None:
                    on_step(index, steps)
            score = info.get("score") if isinstance(info, dict) else None
            result = EpisodeResult(
                total, steps, float(score) if isinstance(score, (int, float)) else None, cut
            )
            results.append(result)
            if on_episode is not None:
                on_episode(index, result)
    return results


# --- the command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m rmc_agents.rollout",
        description="Play episodes with a trained policy, print the scores, and optionally watch "
        "them (window or GIF/MP4), with the RMC's attention beside the game.",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a run output directory, a checkpoint directory, or an RLModule directory",
    )
    p.add_argument("--episodes", type=int, default=1, help="episodes to play (default 1)")
    p.add_argument("--video", help="write the frames to this .gif or .mp4 file")
    p.add_argument("--render", choices=["human"], help="'human': show the game in a window")
    p.add_argument(
        "--attention", action="store_true", help="show the RMC's attention beside each frame"
    )
    p.add_argument(
        "--deterministic", action="store_true", help="take the most likely action (default: sample)"
    )
    p.add_argument("--seed", type=int, help="seed for the env and the sampling (default: random)")
    p.add_argument("--env", help="play this env instead of the one the run trained on")
    p.add_argument("--max-steps", type=int, help="end each episode after at most M steps")
    p.add_argument(
        "--fps", type=float, help="frames per second of the window/video (default: the env's)"
    )
    return p.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
    if args.episodes < 1:
        raise RolloutError(f"--episodes must be >= 1, got {args.episodes}")
    if args.max_steps is not None and args.max_steps < 1:
        raise RolloutError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.fps is not None and not args.fps > 0:
        raise RolloutError(f"--fps must be > 0, got {args.fps}")
    if args.video:
        video = Path(args.video)
        if video.suffix.lower() not in VIDEO_SUFFIXES:
            raise RolloutError(f"--video must end in .gif or .mp4, got '{args.video}'")
        if not video.parent.resolve().is_dir():
            raise RolloutError(f"--video: directory '{video.parent}' does not exist")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def _format_result(index: int, episodes: int, r: EpisodeResult) -> str:
    parts = [f"episode {index + 1}/{episodes}:", f"return {r.episode_return:.2f}"]
    if r.score is not None:
        parts.append(f"score {r.score:g}")
    parts.append(
        f"length {r.length}" + (" (cut by --max-steps)" if r.truncated_by_max_steps else "")
    )
    return "  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rmc_agents.rollout`` and ``rmc-rollout``; returns the status."""
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    args = parse_args(argv)
    try:
        _check_args(args)
        return _run(args)
    except RolloutError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    started = time.monotonic()
    torch.set_num_threads(1)  # one env, batch 1: threads only add overhead (and contention)
    policy = load_policy(args.checkpoint)
    spec = args.env or policy.env_spec
    if spec is None:
        raise RolloutError(
            f"cannot tell which environment '{args.checkpoint}' was trained on (no config.yaml "
            "next to the checkpoint); pass --env ID"
        )
    kwargs = policy.env_kwargs if (args.env is None or args.env == policy.env_spec) else {}
    frames = bool(args.video or args.render or args.attention)
    if args.attention and not (args.video or args.render):
        raise RolloutError("--attention draws on frames: add --video FILE or --render human")
    if args.attention:
        PolicyStepper(policy.module, attention=True)  # fail before building env/writers
    env = make_rollout_env(spec, kwargs, frames=frames)
    check_compatible(policy.module, env, spec)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    fps = args.fps or float(getattr(env, "metadata", {}).get("render_fps") or 10)
    core = policy.core_name or type(policy.module).__name__
    print(
        f"policy: {core} from {policy.module_dir} ({time.monotonic() - started:.1f} s); "
        f"env: {spec}; seed {seed}; {'deterministic' if args.deterministic else 'sampled'} actions",
        flush=True,
    )

    writer = _VideoWriter(Path(args.video), fps) if args.video else None
    window = _Window(fps, f"rmc-rollout: {spec}") if args.render == "human" else None
    bar = tqdm(
        total=args.episodes * args.max_steps if args.max_steps else None,
        unit="step",
        desc=f"episode 1/{args.episodes}",
        disable=None,  # only on a terminal
        leave=False,
    )

    def on_frame(frame: np.ndarray) -> None:
        if writer is not None:
            writer.add(frame)
        if window is not None:
            window.show(frame)

    def on_step(index: int, steps: int) -> None:
        bar.update(1)

    def on_episode(index: int, result: EpisodeResult) -> None:
        tqdm.write(_format_result(index, args.episodes, result))
        if index + 1 < args.episodes:
            bar.set_description(f"episode {index + 2}/{args.episodes}")

    results: list[EpisodeResult] = []  # filled as episodes end, so a closed window keeps them
    closed = False
    t0 = time.monotonic()
    try:
        play(
            policy,
            env,
            args.episodes,
            seed=seed,
            deterministic=args.deterministic,
            max_steps=args.max_steps,
            attention=args.attention,
            on_frame=on_frame if frames else None,
            on_step=on_step,
            on_episode=lambda i, r: (results.append(r), on_episode(i, r)),
            env_spec=spec,
        )
    except _WindowClosed:
        closed = True
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if window is not None:
            window.close()
        env.close()
    elapsed = time.monotonic() - t0
    if closed:
        print(f"window closed after {len(results)} finished episode(s)")
    if results:
        rets = np.array([r.episode_return for r in results])
        lens = np.array([r.length for r in results])
        line = (
            f"mean over {len(results)} episode(s): return {rets.mean():.2f} (std {rets.std():.2f})"
        )
        scores = [r.score for r in results if r.score is not None]
        if len(scores) == len(results):
            line += f"  score {np.mean(scores):.2f}"
        line += f"  length {lens.mean():.1f}  ({lens.sum() / max(elapsed, 1e-9):,.0f} steps/s)"
        print(line)
    if writer is not None:
        print(f"video: {writer.path} ({writer.frames} frames at {fps:g} fps)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
