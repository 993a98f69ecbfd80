"""Playing episodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .acting import PolicyStepper
from .checkpoints import LoadedPolicy
from .frames import _attention_view_for, _frame

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
    on_state: Callable[[int, int, dict[str, Any]], None] | None = None,
    memory: bool = True,
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
        on_state: called with (episode index, steps so far, the policy's recurrent state after
            the step: ``{name: tensor [1, ...]}``, empty for a stateless policy) after every step.
        memory: ``False`` gives the policy its initial state at every step instead of the one
            its last step left (see :class:`PolicyStepper`).

    Returns:
        One :class:`EpisodeResult` per finished episode.

    Raises:
        RolloutError: see :class:`PolicyStepper` and frame rendering.
    """
    import torch

    stepper = PolicyStepper(
        policy.module, deterministic=deterministic, attention=attention, memory=memory
    )
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
            # weights None: an episode's first frame, nothing attended yet (the panel says so)
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
                if on_state is not None:
                    on_state(index, steps, stepper.state if stepper.stateful else {})
            score = info.get("score") if isinstance(info, dict) else None
            result = EpisodeResult(
                total, steps, float(score) if isinstance(score, (int, float)) else None, cut
            )
            results.append(result)
            if on_episode is not None:
                on_episode(index, result)
    return results
