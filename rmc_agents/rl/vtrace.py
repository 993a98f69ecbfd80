"""V-trace that bootstraps at every fragment cut, and the IMPALA loss that uses it.

**Why this is ours.** RLlib 2.60's IMPALA appends one phantom step to each episode fragment
(``AddOneTsToEpisodesAndTruncate``): the next observation, so that its value ``V(x_{s+n})`` can be
computed, with ``loss_mask = False``. Its loss then builds ``discounts = gamma * (1 - terminated) *
loss_mask`` and runs V-trace over the phantom step as over any other. The phantom step's discount
is 0 but its ``delta = rho_b * (0 + 0 - V_b)`` is not, and the recursion carries it into the last
real step::

    v_{L-1} - V_{L-1} = delta_{L-1} + gamma * c_{L-1} * (-rho_b * V_b)

so the target at every cut is ``r + gamma * (1 - rho_b) * V_b`` (with ``rho_{L-1} = c_{L-1} = 1``)
instead of ``r + gamma * V_b``. With ``rho_b`` near 1 every fragment cut acts like a terminal state
and the error flows back through the fragment: on an env paying 0.01 per step forever (gamma 0.99,
true value 1.0) the stock loss trains the value to about 0.1-0.15. ``bench/vtrace_check.py`` shows it
on one small batch.

**What this module does instead** (the IMPALA paper's equations, Espeholt et al. 2018, eq. 1)::

    v_s = V(x_s) + sum_{t=s}^{s+n-1} gamma^{t-s} (prod_{i=s}^{t-1} c_i) rho_t (r_t + gamma V(x_{t+1}) - V(x_t))
    A_s = rho^pg_s (r_s + gamma v_{s+1} - V(x_s)),        v_{s+n} = V(x_{s+n})

Masked steps (the phantom bootstrap step, zero padding) contribute nothing: their ``rho`` and ``c``
are 0, so the bootstrap value enters only as ``V(x_{s+n})`` of the last real step. A termination
stops bootstrapping (``gamma`` is 0 after a terminal step); a Gymnasium truncation and a fragment cut
bootstrap from the value of the next observation (the phantom step). A fragment longer than a learner
chunk (``max_seq_len`` below the fragment length) spans several rows of the batch: the recursion
carries on from one row into the next, so every step gets the whole fragment's V-trace target (the
stock loss restarts the recursion at each row).

Everything else of RLlib's IMPALA loss is kept as it is (policy-gradient, value and entropy terms,
their means over real steps, the logged metrics): :class:`BootstrapVTraceLearner` overrides only
``compute_loss_for_module``. RLlib's APPO loss makes the same V-trace call (against its target
policy): :class:`BootstrapVTraceAPPOLearner` is the same change there.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.appo.appo import (
    LEARNER_RESULTS_CURR_KL_COEFF_KEY,
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_MEAN_IS_KEY,
    LEARNER_RESULTS_VAR_IS_KEY,
)
from ray.rllib.algorithms.appo.torch.appo_torch_learner import APPOTorchLearner
from ray.rllib.algorithms.impala.torch.impala_torch_learner import IMPALATorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY
from ray.rllib.core.rl_module.apis.target_network_api import TARGET_NETWORK_ACTION_DIST_INPUTS

from rmc_agents.rl.diagnostics import rho_value_stats

__all__ = [
    "VTRACE_MODES",
    "BootstrapVTraceAPPOLearner",
    "BootstrapVTraceLearner",
    "batch_rows",
    "vtrace_rows",
]

#: ``training.vtrace``: ``bootstrap`` (this module) or ``rllib`` (RLlib 2.60's stock loss, kept for
#: comparisons and to reproduce the defect).
VTRACE_MODES = ("bootstrap", "rllib")


def vtrace_rows(
    *,
    log_rhos: torch.Tensor,
    values: torch.Tensor,
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    mask: torch.Tensor,
    clip_rho_threshold: float | None = 1.0,
    clip_c_threshold: float | None = 1.0,
    clip_pg_rho_threshold: float | None = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets ``vs`` and policy-gradient advantages over a batch of rows.

    All inputs are ``[B, T]``, batch-major, in the batch's order: step ``(b, t)`` is followed by
    ``(b, t + 1)``, and the last step of row ``b`` by the first of row ``b + 1`` (RLlib lays an
    episode's chunks one after another; an episode fragment always ends with its masked bootstrap
    step, so a row whose last step is real continues in the next row).

    Args:
        log_rhos: ``log pi(a|x) - log mu(a|x)``, target minus behaviour policy.
        values: ``V(x_t)`` of the target policy's value function.
        rewards: ``r_t``.
        discounts: ``gamma * (1 - terminated_t)``: the discount from ``t`` to ``t + 1``.
        mask: True (or 1) at real steps; False at bootstrap steps and padding, which take part
            only as the ``V(x_{t+1})`` of the step before them.
        clip_rho_threshold: ``rho_bar`` for the targets (None: no clipping).
        clip_c_threshold: ``c_bar`` for the trace (None: no clipping).
        clip_pg_rho_threshold: the clip of ``rho`` in the policy-gradient advantage.

    Returns:
        ``(vs, pg_advantages)``, both ``[B, T]``, without gradients. At masked steps ``vs`` equals
        ``values`` and the advantage is 0.
    """
    with torch.no_grad():
        valid = mask.bool()
        values = values.detach()
        zero = torch.zeros_like(values)
        rhos = torch.exp(torch.where(valid, log_rhos.detach(), zero))

        def clipped(threshold: float | None) -> torch.Tensor:
            r = rhos if threshold is None else torch.clamp(rhos, max=threshold)
            return torch.where(valid, r, zero)

        rho, c, pg_rho = (
            clipped(clip_rho_threshold),
            clipped(clip_c_threshold),
            clipped(clip_pg_rho_threshold),
        )
        # (rho = c = 0 at masked steps: their delta, trace and advantage are 0 whatever their
        # reward and discount.)
        disc, rewards = discounts.to(values.dtype), rewards.to(values.dtype)

        def successor(x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1)
            return torch.cat([flat[1:], flat.new_zeros(1)]).reshape(x.shape)

        deltas = rho * (rewards + disc * successor(values) - values)
        trace = disc * c
        b, t_len = values.shape
        # Backward recursion within each row (as if the row ended the trajectory) ...
        local = torch.empty_like(values)
        gain = torch.empty_like(values)
        acc = values.new_zeros(b)
        prod = values.new_ones(b)
        for t in reversed(range(t_len)):
            acc = deltas[:, t] + trace[:, t] * acc
            prod = trace[:, t] * prod
            local[:, t] = acc
            gain[:, t] = prod
        # ... then carry each row's start into the row before it, where that row ends on a real
        # step (its trace product is not 0): v_t - V_t = local_t + gain_t * (v - V at next row start).
        carry = values.new_zeros(b)
        row_gain = gain[:, 0]
        if b > 1 and bool((row_gain[:-1] != 0).any()):
            starts, gains = local[:, 0].tolist(), row_gain.tolist()
            carried, following = [0.0] * b, 0.0
            for row in reversed(range(b)):
                carried[row] = following
                following = starts[row] + gains[row] * following
            carry = torch.tensor(carried, dtype=values.dtype, device=values.device)
        vs = values + local + gain * carry[:, None]
        pg_advantages = pg_rho * (rewards + disc * successor(vs) - values)
    return vs, pg_advantages


def batch_rows(x: torch.Tensor, row_len: int, stateful: bool) -> torch.Tensor:
    """The learner batch's ``x`` as ``[B, T]`` rows in batch order.

    A stateful module's batch is already ``[B, T]`` (chunks of ``max_seq_len``); a stateless
    module's is flat ``[N]`` (episodes one after another), cut here into rows of ``row_len`` with
    zeros after the last (masked, as its loss mask is zero-padded the same way).
    """
    if stateful:
        return x
    pad = (-x.shape[0]) % row_len
    if pad:
        x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
    return x.reshape(-1, row_len, *x.shape[1:])


class _BatchTargets:
    """What the IMPALA and APPO losses share: the ``training.vtrace`` switch, the batch as rows,
    and :func:`vtrace_rows` on them with the batch's rewards (scaled), terminations and mask."""

    def __init__(self, config: Any, batch: dict[str, Any]) -> None:
        self.settings = config.learner_config_dict or {}
        self.mode = self.settings.get("vtrace", "bootstrap")
        if self.mode not in VTRACE_MODES:
            raise ValueError(f"training.vtrace must be one of {VTRACE_MODES}, got {self.mode!r}")
        self.config, self.batch = config, batch
        self.stateful = batch.get(Columns.SEQ_LENS) is not None

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        return batch_rows(x, self.config.get_rollout_fragment_length(), self.stateful)

    def vtrace(
        self, log_rhos: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, config = self.batch, self.config
        return vtrace_rows(
            log_rhos=log_rhos,
            values=values,
            rewards=self.rows(batch[Columns.REWARDS]) * self.settings.get("reward_scale", 1.0),
            discounts=config.gamma * (1.0 - self.rows(batch[Columns.TERMINATEDS]).float()),
            mask=mask,
            clip_rho_threshold=config.vtrace_clip_rho_threshold,
            clip_pg_rho_threshold=config.vtrace_clip_pg_rho_threshold,
        )


class BootstrapVTraceLearner(IMPALATorchLearner):
    """RLlib's IMPALA torch learner with :func:`vtrace_rows` targets (see the module docstring).

    ``learner_config_dict["vtrace"]``: ``bootstrap`` (default) or ``rllib`` (the stock loss);
    ``learner_config_dict["reward_scale"]``: rewards are multiplied by it in the loss (default 1;
    the value function then predicts scaled returns). The stock loss ignores it.
    """

    def compute_loss_for_module(
        self, *, module_id: Any, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any]
    ) -> torch.Tensor:
        targets = _BatchTargets(config, batch)
        if targets.mode == "rllib":
            return super().compute_loss_for_module(
                module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
            )
        module = self.module[module_id].unwrapped()
        rows = targets.rows

        loss_mask = batch[Columns.LOSS_MASK].float()
        size_loss_mask = torch.sum(loss_mask)
        dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        target_logp = dist.logp(batch[Columns.ACTIONS])
        values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
        mask_rows = rows(loss_mask)
        target_logp_rows = rows(target_logp)
        values_rows = rows(values)
        log_rhos = target_logp_rows - rows(batch[Columns.ACTION_LOGP])
        vs, pg_advantages = targets.vtrace(log_rhos, values_rows, mask_rows)
        # The rest is RLlib's IMPALA loss as it stands (sums over real steps, divided by their count).
        pi_loss = -torch.sum(target_logp_rows * pg_advantages * mask_rows)
        mean_pi_loss = pi_loss / size_loss_mask
        vf_loss = 0.5 * torch.sum((values_rows - vs) ** 2 * mask_rows)
        mean_vf_loss = vf_loss / size_loss_mask
        mean_entropy_loss = -torch.sum(dist.entropy() * loss_mask) / size_loss_mask
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total_loss = (
            mean_pi_loss + mean_vf_loss * config.vf_loss_coeff + mean_entropy_loss * entropy_coeff
        )
        self.metrics.log_dict(
            {
                "pi_loss": pi_loss,
                "mean_pi_loss": mean_pi_loss,
                "vf_loss": vf_loss,
                "mean_vf_loss": mean_vf_loss,
                ENTROPY_KEY: -mean_entropy_loss,
                "mean_value": torch.sum(values_rows.detach() * mask_rows) / size_loss_mask,
                "mean_vtrace_target": torch.sum(vs * mask_rows) / size_loss_mask,
                **rho_value_stats(
                    log_rhos, values_rows, vs, mask_rows, config.vtrace_clip_rho_threshold
                ),
            },
            key=module_id,
            window=1,
        )
        return total_loss


class BootstrapVTraceAPPOLearner(APPOTorchLearner):
    """RLlib's APPO torch learner (IMPACT: V-trace against a target policy, clipped surrogate,
    optional KL term) with :func:`vtrace_rows` targets. RLlib 2.60's APPO loss makes the same
    V-trace call as its IMPALA loss, with the same fault at every fragment cut.

    ``learner_config_dict``: ``vtrace`` and ``reward_scale`` as for :class:`BootstrapVTraceLearner`.
    """

    def compute_loss_for_module(
        self, *, module_id: Any, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any]
    ) -> torch.Tensor:
        targets = _BatchTargets(config, batch)
        if targets.mode == "rllib":
            return super().compute_loss_for_module(
                module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
            )
        module = self.module[module_id].unwrapped()
        rows = targets.rows

        loss_mask = batch[Columns.LOSS_MASK].float()
        size_loss_mask = torch.sum(loss_mask)
        dist_cls = module.get_train_action_dist_cls()
        dist = dist_cls.from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        old_dist = dist_cls.from_logits(
            module.forward_target(batch)[TARGET_NETWORK_ACTION_DIST_INPUTS]
        )
        actions = batch[Columns.ACTIONS]
        target_logp = rows(dist.logp(actions))
        old_logp = rows(old_dist.logp(actions))
        behaviour_logp = rows(batch[Columns.ACTION_LOGP])
        values = rows(module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS)))
        mask = rows(loss_mask)
        # V-trace of the target (old) policy against the behaviour policy, as in RLlib's APPO.
        log_rhos = old_logp - behaviour_logp
        vs, pg_advantages = targets.vtrace(log_rhos, values, mask)
        # The rest is RLlib's APPO loss as it stands.
        is_ratio = torch.clip(torch.exp(behaviour_logp - old_logp), 0.0, 2.0)
        logp_ratio = is_ratio * torch.exp(target_logp - behaviour_logp)
        surrogate = torch.minimum(
            pg_advantages * logp_ratio,
            pg_advantages * torch.clip(logp_ratio, 1 - config.clip_param, 1 + config.clip_param),
        )
        mean_is_ratio = torch.sum(is_ratio * mask) / size_loss_mask
        var_is_ratio = torch.sum((is_ratio - mean_is_ratio) ** 2 * mask) / size_loss_mask
        if config.use_kl_loss:
            mean_kl_loss = torch.sum(old_dist.kl(dist) * loss_mask) / size_loss_mask
        else:
            mean_kl_loss = torch.zeros((), device=values.device)
        mean_pi_loss = -torch.sum(surrogate * mask) / size_loss_mask
        mean_vf_loss = 0.5 * torch.sum((values - vs) ** 2 * mask) / size_loss_mask
        mean_entropy_loss = -torch.sum(dist.entropy() * loss_mask) / size_loss_mask
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        kl_coeff = self.curr_kl_coeffs_per_module[module_id]
        total_loss = (
            mean_pi_loss
            + mean_vf_loss * config.vf_loss_coeff
            + mean_entropy_loss * entropy_coeff
            + mean_kl_loss * kl_coeff
        )
        self.metrics.log_dict(
            {
                "mean_pi_loss": mean_pi_loss,
                "mean_vf_loss": mean_vf_loss,
                ENTROPY_KEY: -mean_entropy_loss,
                LEARNER_RESULTS_KL_KEY: mean_kl_loss,
                LEARNER_RESULTS_CURR_KL_COEFF_KEY: kl_coeff,
                LEARNER_RESULTS_MEAN_IS_KEY: mean_is_ratio,
                LEARNER_RESULTS_VAR_IS_KEY: var_is_ratio,
                "mean_value": torch.sum(values.detach() * mask) / size_loss_mask,
                "mean_vtrace_target": torch.sum(vs * mask) / size_loss_mask,
                **rho_value_stats(log_rhos, values, vs, mask, config.vtrace_clip_rho_threshold),
            },
            key=module_id,
            window=1,
        )
        return total_loss
