"""The learner's optimizer: Adam (RLlib's default) or the IMPALA paper's RMSProp.

IMPALA (Espeholt et al. 2018) trained with TensorFlow 1's ``RMSPropOptimizer``: decay 0.99,
epsilon 0.01, momentum 0 (the paper's Atari settings). TensorFlow's variant differs from
``torch.optim.RMSprop`` in two ways that matter at epsilon 0.01:

- epsilon is added *inside* the square root: ``g / sqrt(ms + eps)`` (torch: ``g / (sqrt(ms) +
  eps)``); with ``eps = 0.01`` the denominator is at least 0.1, a step at most 10x the gradient;
- the mean square starts at 1, not 0, so the first steps are about ``lr * g`` (torch's first step
  is about ``10 * lr * sign(g)``, as its mean square starts at ``(1 - decay) * g^2``).

:class:`TFRMSprop` implements that rule; :class:`AgentLearner` (the IMPALA learner of this
project) uses it when ``training.optimizer`` is ``rmsprop``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from torch.optim import Optimizer

from rmc_agents.rl.allocator import keep_freed_memory
from rmc_agents.rl.diagnostics import Diagnostics, value_stats
from rmc_agents.rl.fault_tolerance import NonFiniteGuard
from rmc_agents.rl.settings import LR_KL_FACTOR_BOUNDS, OPTIMIZERS
from rmc_agents.rl.vtrace import BootstrapVTraceAPPOLearner, BootstrapVTraceLearner

__all__ = [
    "LEARNERS",
    "OPTIMIZERS",
    "AgentAPPOLearner",
    "AgentLearner",
    "AgentPPOLearner",
    "FactorAdam",
    "FactorTFRMSprop",
    "GroupFactors",
    "KLStepSize",
    "OptimizerChoice",
    "PPOValueStats",
    "TargetsFromConfig",
    "TFRMSprop",
    "core_param_groups",
]


class TFRMSprop(Optimizer):
    """RMSProp as TensorFlow 1 computes it (momentum 0)::

        ms <- decay * ms + (1 - decay) * g^2        (ms starts at 1)
        w  <- w - lr * g / sqrt(ms + eps)

    Args:
        params: parameters or parameter groups.
        lr: learning rate (RLlib's scheduler may change ``param_group["lr"]``).
        decay: the mean square's decay (``rho`` in TensorFlow, ``alpha`` in torch).
        eps: added to the mean square under the square root.
    """

    def __init__(self, params: Any, lr: float = 6e-4, decay: float = 0.99, eps: float = 0.01):
        if lr < 0 or not 0.0 <= decay < 1.0 or eps <= 0:
            raise ValueError(f"need lr >= 0, 0 <= decay < 1, eps > 0; got {lr}, {decay}, {eps}")
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, eps = group["lr"], group["decay"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["ms"] = torch.ones_like(param, memory_format=torch.preserve_format)
                ms = state["ms"]
                ms.mul_(decay).addcmul_(param.grad, param.grad, value=1.0 - decay)
                param.addcdiv_(param.grad, ms.add(eps).sqrt_(), value=-lr)
        return loss


class GroupFactors:
    """Optimizer mixin: each parameter group steps with its ``lr`` times its ``lr_factor`` (1
    where the group has none). RLlib's scheduler writes one ``lr`` into every group of an
    optimizer after each update; the factors stay, so the groups keep their ratio under any
    schedule (and under :class:`KLStepSize`)."""

    param_groups: list[dict]

    def step(self, closure: Any = None) -> Any:
        lrs = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            group["lr"] = group["lr"] * group.get("lr_factor", 1.0)
        try:
            return super().step(closure)  # type: ignore[misc]
        finally:
            for group, lr in zip(self.param_groups, lrs, strict=True):
                group["lr"] = lr


class FactorAdam(GroupFactors, torch.optim.Adam):
    """``torch.optim.Adam`` with a step-size factor per parameter group (:class:`GroupFactors`)."""


class FactorTFRMSprop(GroupFactors, TFRMSprop):
    """:class:`TFRMSprop` with a step-size factor per parameter group (:class:`GroupFactors`)."""


def core_param_groups(module: torch.nn.Module, core_lr_factor: float) -> list[dict]:
    """Two parameter groups of ``module``: its memory core's parameters (names under ``core.``)
    with ``lr_factor=core_lr_factor``, and all others with factor 1. Raises ``ValueError`` when
    the module has no core parameters (a memoryless model)."""
    core, rest = [], []
    for name, param in module.named_parameters():
        # (a data-parallel wrapper names them ``module.core.*``)
        (core if name.removeprefix("module.").startswith("core.") else rest).append(param)
    if not core:
        raise ValueError(
            f"training.core_lr_factor={core_lr_factor} needs a memory core with parameters; "
            "this model has none (set it to 1.0)"
        )
    groups = [{"params": core, "lr_factor": float(core_lr_factor)}]
    if rest:
        groups.append({"params": rest, "lr_factor": 1.0})
    return groups


class OptimizerChoice:
    """Mixin for a torch learner: Adam or the IMPALA paper's RMSProp, with an optional step-size
    factor for the memory core's parameters.

    ``learner_config_dict["optimizer"]``: ``adam`` (RLlib's default: ``torch.optim.Adam``) or
    ``rmsprop`` (:class:`TFRMSprop` with ``rmsprop_decay`` and ``rmsprop_eps``). The learning rate
    (constant or annealed) is RLlib's scheduler's either way. ``core_lr_factor`` (default 1):
    other than 1, the core's parameters step with the learning rate times this factor and the
    rest (torso, heads) with the learning rate (:class:`FactorAdam`, :class:`FactorTFRMSprop`;
    one optimizer, so gradient clipping still sees the whole gradient).
    """

    def configure_optimizers_for_module(self, module_id: Any, config: Any = None) -> None:
        settings = (config or self.config).learner_config_dict or {}
        name = settings.get("optimizer", "adam")
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
        core_lr_factor = float(settings.get("core_lr_factor", 1.0))
        if name == "adam" and core_lr_factor == 1.0:
            return super().configure_optimizers_for_module(module_id, config)
        module = self._module[module_id]
        params = self.get_parameters(module)
        groups: Any = params
        if core_lr_factor != 1.0:
            groups = core_param_groups(module, core_lr_factor)
        if name == "adam":
            optimizer: Optimizer = FactorAdam(groups)
        else:
            rmsprop = TFRMSprop if core_lr_factor == 1.0 else FactorTFRMSprop
            optimizer = rmsprop(
                groups,
                decay=settings.get("rmsprop_decay", 0.99),
                eps=settings.get("rmsprop_eps", 0.01),
            )
        self.register_optimizer(
            module_id=module_id,
            optimizer=optimizer,
            params=params,
            lr_or_lr_schedule=(config or self.config).lr,
        )

    def set_state(self, state: dict) -> None:
        try:
            super().set_state(state)  # type: ignore[misc]
        except ValueError as exc:
            if "parameter groups" not in str(exc):
                raise
            raise ValueError(
                "cannot restore the optimizer: the checkpoint's has another number of parameter "
                "groups than this run's (training.core_lr_factor is 1 in one and not in the "
                "other); resume with the value the checkpoint was trained with"
            ) from exc
        # torch restores each group's hyperparameters from the checkpoint: the factor of this
        # run's settings wins (a resumed run may change it)
        factor = float((self.config.learner_config_dict or {}).get("core_lr_factor", 1.0))
        for optimizer in self._named_optimizers.values():
            if isinstance(optimizer, GroupFactors):
                optimizer.param_groups[0]["lr_factor"] = factor


#: How far one measurement moves the step-size factor (multiplied or divided by it).
KL_STEP = 1.5


def next_lr_factor(
    factor: float, kl: float, target: float, bounds: tuple[float, float] = LR_KL_FACTOR_BOUNDS
) -> float:
    """The step-size factor after a measured policy KL per update: times :data:`KL_STEP` when
    ``kl`` is below ``target / 2``, divided by it above ``2 * target``, unchanged between (and
    for a non-finite ``kl``); kept within ``bounds``."""
    if not math.isfinite(kl):
        return factor
    if kl < target / 2:
        factor *= KL_STEP
    elif kl > 2 * target:
        factor /= KL_STEP
    low, high = bounds
    return min(max(factor, low), high)


class _ScaledSchedule:
    """An RLlib lr ``Scheduler`` whose values are multiplied by a module's current factor, so
    that RLlib sets (and logs) the scaled step size after every update."""

    def __init__(self, schedule: Any, factors: dict, module_id: Any):
        self.schedule, self.factors, self.module_id = schedule, factors, module_id

    def update(self, timestep: int) -> float:
        return self.schedule.update(timestep=timestep) * self.factors[self.module_id]


class KLStepSize:
    """Learner mixin (before :class:`~rmc_agents.rl.diagnostics.Diagnostics` among the bases):
    the step size follows the policy's KL per update toward a target, the same rule for every
    core. ``learner_config_dict["lr_kl_target"]`` (None: off): at each measurement of
    ``diag_policy_kl`` (every ``diagnostics_every``-th update) the module's factor is updated by
    :func:`next_lr_factor` within ``lr_kl_factor_bounds``; the step size in use is the
    configured one (constant or scheduled) times the factor, set after every update. The factor
    is logged as ``diag_lr_factor`` and kept in the learner's state (``--resume``).

    The rule is the adaptive step size of rl_games' PPO (``lr_schedule: adaptive``,
    ``kl_threshold``), with the factor relative to the configured step size.
    """

    _lr_factors: dict
    _lr_kl_target: float | None = None

    def build(self, *args: Any, **kwargs: Any) -> None:
        super().build(*args, **kwargs)
        settings = self.config.learner_config_dict or {}
        self._lr_kl_target = settings.get("lr_kl_target")
        low, high = settings.get("lr_kl_factor_bounds", LR_KL_FACTOR_BOUNDS)
        self._lr_kl_bounds = (float(low), float(high))
        self._lr_factors = {module_id: 1.0 for module_id in self.module.keys()}
        if self._lr_kl_target is None:
            return
        for name, optimizer in self._named_optimizers.items():
            schedule = self._optimizer_lr_schedules.get(optimizer)
            if schedule is None:
                raise ValueError(
                    f"lr_kl_target: the optimizer {name!r} has no learning-rate schedule to scale"
                )
            module_id = self._optimizer_name_to_module[name]
            self._optimizer_lr_schedules[optimizer] = _ScaledSchedule(
                schedule, self._lr_factors, module_id
            )

    def _policy_kl_measured(self, module_id: Any, kl: float) -> None:
        super()._policy_kl_measured(module_id, kl)
        if self._lr_kl_target is None or module_id not in self._lr_factors:
            return
        factor = next_lr_factor(
            self._lr_factors[module_id], kl, self._lr_kl_target, self._lr_kl_bounds
        )
        self._lr_factors[module_id] = factor
        self.metrics.log_value((module_id, "diag_lr_factor"), factor, window=1)

    def get_state(self, *args: Any, **kwargs: Any) -> dict:
        state = super().get_state(*args, **kwargs)
        if self._lr_kl_target is not None:
            state["lr_kl_factors"] = dict(self._lr_factors)
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        for module_id, factor in (state.get("lr_kl_factors") or {}).items():
            if module_id in self._lr_factors:
                self._lr_factors[module_id] = float(factor)


class KeepFreedMemory:
    """Learner mixin: at ``build()``, the learner's process keeps the memory it frees for the
    next update (:func:`rmc_agents.rl.allocator.keep_freed_memory`), unless
    ``learner_config_dict["keep_freed_memory"]`` is False."""

    def build(self, *args: Any, **kwargs: Any) -> None:
        if (self.config.learner_config_dict or {}).get("keep_freed_memory", True):
            keep_freed_memory()
        super().build(*args, **kwargs)


class TargetsFromConfig:
    """Learner mixin: after ``build()``, the one-pass PPO connector piece takes the ``gamma`` and
    ``lambda_`` it left open from the learner's config, the config as the algorithm was built
    (:func:`rmc_agents.rl.learner_connector.read_targets_from_config`), as RLlib's own GAE piece
    does; so a ``.training(gamma=...)`` made after the connector was set still counts."""

    def build(self, *args: Any, **kwargs: Any) -> None:
        super().build(*args, **kwargs)
        from rmc_agents.rl.learner_connector import read_targets_from_config

        read_targets_from_config(getattr(self, "_learner_connector", None), self.config)


class AgentLearner(
    KeepFreedMemory,
    KLStepSize,
    Diagnostics,
    NonFiniteGuard,
    OptimizerChoice,
    BootstrapVTraceLearner,
):
    """IMPALA's torch learner with V-trace that bootstraps at fragment cuts
    (:class:`rmc_agents.rl.vtrace.BootstrapVTraceLearner`), the non-finite guard, a choice of
    optimizer, freed memory kept for reuse, the diagnostics of :mod:`rmc_agents.rl.diagnostics`
    and the optional step size that follows the policy KL (:class:`KLStepSize`)."""


class AgentAPPOLearner(
    KeepFreedMemory,
    KLStepSize,
    Diagnostics,
    NonFiniteGuard,
    OptimizerChoice,
    BootstrapVTraceAPPOLearner,
):
    """APPO's torch learner with the same six changes as :class:`AgentLearner`."""


class PPOValueStats:
    """PPO torch learner mixin (before the loss class among the bases): logs ``diag_value_ev``
    (the explained variance of the GAE value targets by the value estimates) and ``mean_value``
    over the batch's real steps at every update. RLlib's PPO loss logs ``vf_explained_var`` over
    every row instead, the learner chunks' padding (zero targets beside whatever the value head
    gives on padded observations) and the bootstrap rows included, and clips it at -1: rows that
    are not steps weigh in, and more of them in unpacked batches (LSTM, GRU) than in packed ones
    (RMC), so its figure is not comparable between cores."""

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict, fwd_out: dict
    ) -> Any:
        loss = super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
        )
        targets = batch.get("value_targets")
        if config.use_critic and targets is not None:
            with torch.no_grad():
                module = self.module[module_id].unwrapped()
                values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
                mask = batch.get(Columns.LOSS_MASK)
                if mask is None:
                    mask = torch.ones_like(values, dtype=torch.bool)
                mask = mask.bool()
                stats: dict[str, Any] = dict(value_stats(values, targets, mask))
                if mask.any():
                    stats["mean_value"] = values[mask].mean()
                self.metrics.log_dict(stats, key=module_id, window=1)
        return loss


class AgentPPOLearner(
    TargetsFromConfig,
    KeepFreedMemory,
    KLStepSize,
    Diagnostics,
    NonFiniteGuard,
    OptimizerChoice,
    PPOValueStats,
    PPOTorchLearner,
):
    """PPO's torch learner with the non-finite guard, a choice of optimizer, freed memory kept,
    the diagnostics (the value's fit over the real steps: :class:`PPOValueStats`), the
    KL-following step size and GAE's ``gamma`` / ``lambda_`` read from the config when it is
    built (:class:`TargetsFromConfig`).
    (PPO's targets are RLlib's GAE, which bootstraps correctly at fragment cuts: tested in
    tests/rl/test_algos.py.)"""


#: The learner class of each ``algo``.
LEARNERS = {"impala": AgentLearner, "appo": AgentAPPOLearner, "ppo": AgentPPOLearner}
