"""RLlib classes that keep a long run alive or stop it cleanly (used by :mod:`rmc_agents.rl.algorithms`).

- :class:`FaultTolerantIMPALA`: IMPALA that waits for its EnvRunners to be restarted when all of
  them are down. (RLlib 2.60's IMPALA then samples in the driver, whose EnvRunner has no env when
  remote runners exist: a run died with "doesn't have an env" as soon as its only EnvRunner was
  lost.)
- :class:`NonFiniteGuardLearner`: IMPALA's torch learner, but a non-finite loss or gradient stops
  the update *before* any weight changes, with an error naming the module and the parameter.
  (RLlib's default turns NaN/inf gradients into zeros or huge numbers and steps anyway, silently.)
- :class:`GuardedPPO`: RLlib's PPO with what the two above add besides the waiting: the checks and
  settings that :func:`rmc_agents.rl.configure` leaves to the moment the algorithm is built, and a
  refused non-finite update raised from ``train()`` (and from every later call).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from ray.rllib.algorithms.appo import APPO
from ray.rllib.algorithms.impala import IMPALA
from ray.rllib.algorithms.impala.torch.impala_torch_learner import IMPALATorchLearner
from ray.rllib.algorithms.ppo import PPO

from rmc_agents.rl.errors import NonFiniteUpdateError, non_finite_cause

__all__ = [
    "FaultTolerantAPPO",
    "FaultTolerantIMPALA",
    "GuardedPPO",
    "NonFiniteGuard",
    "NonFiniteGuardLearner",
    "non_finite_cause",
]


class _WaitForEnvRunners:
    """(Mixin of IMPALA and its subclass APPO, which share this sampling step.)

    RLlib's IMPALA, but a moment with every remote EnvRunner down is waited out, not fatal.

    Ray restarts a lost EnvRunner actor (``max_restarts``, from ``restart_failed_env_runners``)
    and RLlib brings it back into service before each training step; until then this returns no
    samples (and sleeps briefly, so the driver does not spin) instead of calling ``sample()`` on
    the driver's EnvRunner, which has no env.
    """

    #: Seconds to sleep per training step while no EnvRunner is in service.
    wait_s = 0.1

    def _sample_and_get_connector_states(self) -> Any:
        group = self.env_runner_group
        local = self.env_runner
        if (
            self.config.num_env_runners > 0
            and group.num_healthy_remote_workers() == 0
            and (local is None or getattr(local, "env", None) is None)
        ):
            time.sleep(self.wait_s)
            return [], [], [], set()
        return super()._sample_and_get_connector_states()


class _AgentAlgorithm:
    """(Mixin of the algorithms that :func:`rmc_agents.rl.configure` sets.)

    - Before RLlib validates and freezes the config,
      :func:`rmc_agents.rl.agent_config.prepare_for_build` checks it against what ``configure()``
      set and fills in what depends on settings made after that call.
    - A non-finite update refused by the learner (:class:`NonFiniteGuard`) comes out of
      ``train()`` as the :class:`NonFiniteUpdateError` itself, also when a remote learner raised
      it (RLlib then reports a ``RayTaskError`` and takes that learner out of service), and every
      later ``train()`` raises it again at once: a user's own loop stops with the cause instead of
      going on with a learner that no longer learns.
    """

    _refused_update: str | None = None  # the refused update's message (no traceback kept: a
    # traceback holds this algorithm's frames, and the cycle would keep it alive until after
    # Ray shut down, when its learner group can no longer stop cleanly)

    def __init__(self, config: Any = None, *args: Any, **kwargs: Any) -> None:
        from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

        if isinstance(config, AlgorithmConfig):
            from rmc_agents.rl.agent_config import prepare_for_build

            prepare_for_build(config)
        super().__init__(config, *args, **kwargs)

    def step(self) -> Any:
        if self._refused_update is None:
            try:
                return super().step()
            except Exception as exc:
                cause = non_finite_cause(exc)
                if cause is None:
                    raise
                self._refused_update = str(cause)
        raise NonFiniteUpdateError(self._refused_update)


class FaultTolerantIMPALA(_AgentAlgorithm, _WaitForEnvRunners, IMPALA):
    """RLlib's IMPALA; a moment with every remote EnvRunner down is waited out, not fatal."""


class FaultTolerantAPPO(_AgentAlgorithm, _WaitForEnvRunners, APPO):
    """RLlib's APPO; a moment with every remote EnvRunner down is waited out, not fatal."""


class GuardedPPO(_AgentAlgorithm, PPO):
    """RLlib's PPO, its config checked and completed when it is built, a refused non-finite
    update raised from every ``train()`` after it (see the mixin)."""


class NonFiniteGuard:
    """Mixin for a torch learner (put it first among the bases): raises
    :class:`NonFiniteUpdateError` instead of stepping on a non-finite loss or gradient, so the
    weights (and every later checkpoint) stay finite.

    In IMPALA and APPO the error ends the learner thread, and the learner's ``update`` (which
    the algorithm's ``training_step`` calls) raises it: the call under way is woken if it waits
    for that thread, and every later one raises it before queueing anything. So a learner in the
    driver (``num_learners: 0``) raises it out of ``algo.train()`` in the caller's thread, in a
    user's own loop as in the trainer's, instead of leaving ``train()`` to block or to keep
    returning; a remote learner (``num_learners >= 1``) raises it from its ``update``, so that the
    driver gets it as the cause of a ``RayTaskError`` (see :func:`non_finite_cause`). In PPO, whose
    update runs in the caller, the error comes straight out of ``train()`` (or a remote learner's
    ``RayTaskError``).
    """

    _non_finite: NonFiniteUpdateError | None = None

    def compute_gradients(self, loss_per_module: dict[str, Any], **kwargs: Any) -> Any:
        for module_id, loss in loss_per_module.items():
            if not torch.isfinite(loss).all():
                self._fail(
                    f"non-finite loss ({float(loss.detach().reshape(-1)[0])}) for module "
                    f"'{module_id}'"
                )
        grads = super().compute_gradients(loss_per_module, **kwargs)
        for pid, grad in grads.items():
            if grad is not None and not torch.isfinite(grad).all():
                name = self._param_name(pid)
                for optim in self._optimizer_parameters:
                    optim.zero_grad(set_to_none=True)
                self._fail(f"non-finite gradient in parameter '{name}' (the loss was finite)")
        return grads

    def update(self, *args: Any, **kwargs: Any) -> Any:
        if self._non_finite is None:
            result = super().update(*args, **kwargs)
            if self._non_finite is None:
                return result
        raise NonFiniteUpdateError(str(self._non_finite))  # (a new one: no traceback grows)

    def _param_name(self, pid: Any) -> str:
        param = self._params.get(pid)
        for module_id, module in self.module.items():
            for name, p in module.named_parameters():
                if p is param:
                    return f"{module_id}/{name}"
        return str(pid)

    def _fail(self, what: str) -> None:
        self._non_finite = NonFiniteUpdateError(
            f"{what}; the update was not applied (weights unchanged). Check the rewards and "
            "observations for NaN/inf or huge values, or lower training.lr"
        )
        event = getattr(self, "_agg_event", None)
        if event is not None:  # wake `update` if it waits for this (the learner) thread
            event.set()
        raise self._non_finite


class NonFiniteGuardLearner(NonFiniteGuard, IMPALATorchLearner):
    """IMPALA's torch learner with :class:`NonFiniteGuard`."""
