"""Acting: one policy step at a time, the recurrent state fed back, attention probed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .checkpoints import RolloutError
from .environment import (
    ORIG_OBS_KEY,
    PREV_ACTIONS_KEY,
    PREV_REWARDS_KEY,
    _prev_inputs_layout,
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
        memory: ``False`` starts every step from the initial state, so that the policy acts on
            the present observation (and previous action/reward, where it reads them) alone:
            what its score owes to its memory (``bench/memory_use.py``).

    Raises:
        RolloutError: ``attention`` for a module without the RMC core.
    """

    def __init__(
        self,
        module: Any,
        deterministic: bool = False,
        attention: bool = False,
        memory: bool = True,
    ) -> None:
        import torch

        self.torch = torch
        self.module = module
        self.deterministic = deterministic
        self.memory = memory
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
        self.state = self._initial_state()
        self.prev_actions: list[Any] = []
        self.prev_rewards: list[float] = []

    def _initial_state(self) -> dict[str, Any]:
        torch = self.torch
        return {
            k: torch.as_tensor(np.asarray(v))[None]
            for k, v in self.module.get_initial_state().items()
        }

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
            batch[Columns.STATE_IN] = self.state if self.memory else self._initial_state()
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
