"""Learner diagnostics: how far each update moves the policy, where the gradient goes, and what the
RMC's memory does. Logged per learner update under ``learners/<module>/diag_*`` and written by the
trainer to ``progress.csv`` and TensorBoard as the ``diag/*`` columns (docs/training.md).

Every ``learner_config_dict["diagnostics_every"]``-th update (default 5; 0 turns them off) the
learner measures, for each module:

- ``diag_policy_kl``: the mean KL divergence from the policy before the update to the policy after
  it, on the update's own batch (real steps only). One extra forward pass without gradients;
- ``diag_grad_norm_torso`` / ``_core`` / ``_heads``: the gradient's L2 norm over the torso
  (observation encoder), the core and the policy and value heads, before clipping;
- for the RMC, recorded during the extra forward pass (the updated weights on the update's batch):
  ``diag_memory_rms`` and ``diag_memory_max`` (root mean square and largest absolute entry of the
  memory), ``diag_slot_spread`` (the mean distance between two slots of one memory over the root
  mean square slot norm: about 1.4 for unrelated slots, 0 when every slot holds the same vector),
  ``diag_input_gate`` and ``diag_forget_gate`` (mean gate values; not logged without gating)
  and ``diag_forget_kept`` (the share of forget-gate entries at or above 0.9: with a gate per
  unit, the part of the memory kept, which a middling mean cannot tell from every unit half-kept);
- ``diag_output_gain``: with ``model.output_gain``, the learned scalar on the core's output.

The IMPALA and APPO losses log at every update (a few reductions of tensors they hold anyway):
``diag_log_rho`` (mean ``|log pi/mu|`` over real steps), ``diag_rho_clipped`` (the share of steps
whose importance weight V-trace clips) and ``diag_value_ev`` (the explained variance of the V-trace
targets by the value estimates: 1 is perfect, 0 no better than their mean). PPO's learner logs
``diag_value_ev`` of its GAE targets over the real steps too (:class:`rmc_agents.rl.optim.
PPOValueStats`): RLlib's own ``vf_explained_var`` counts every row of the batch, the learner
chunks' padding and the bootstrap rows included, and clips at -1.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns

from rmc_agents.rl.settings import DIAGNOSTIC_KEYS

__all__ = [
    "DIAGNOSTIC_KEYS",
    "Diagnostics",
    "memory_stats",
    "rho_value_stats",
    "slot_spread",
    "value_stats",
]

DEFAULT_EVERY = 5

_HEADS = ("pi_torso", "vf_torso", "pi", "vf")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def slot_spread(memory: torch.Tensor) -> torch.Tensor:
    """Per memory: the mean L2 distance over pairs of slots divided by the root mean square slot
    norm. ``memory`` is ``[..., S, D]``; returns ``[...]`` (0 for one slot). Unrelated random slots
    give about ``sqrt(2)``; identical slots give 0."""
    slots = memory.shape[-2]
    if slots < 2:
        return memory.new_zeros(memory.shape[:-2])
    flat = memory.reshape(-1, slots, memory.shape[-1])
    distances = torch.cdist(flat, flat)  # [N, S, S], zero diagonal
    mean_pair = distances.sum(dim=(-2, -1)) / (slots * (slots - 1))
    scale = flat.pow(2).sum(-1).mean(-1).sqrt().clamp(min=1e-12)
    return (mean_pair / scale).reshape(memory.shape[:-2])


def memory_stats(memory: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """``diag_memory_rms``, ``diag_memory_max`` and ``diag_slot_spread`` of memories
    ``[B, T, S, D]`` over the steps where ``mask`` ``[B, T]`` is true."""
    with torch.no_grad():
        valid = mask.bool()
        if not bool(valid.any()):
            return {}
        picked = memory[valid]  # [N, S, D]
        return {
            "diag_memory_rms": float(picked.pow(2).mean().sqrt()),
            "diag_memory_max": float(picked.abs().max()),
            "diag_slot_spread": float(slot_spread(picked).mean()),
        }


def rho_value_stats(
    log_rhos: torch.Tensor,
    values: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    clip_rho_threshold: float | None,
) -> dict[str, torch.Tensor]:
    """``diag_log_rho``, ``diag_rho_clipped`` and ``diag_value_ev`` over the real steps of a
    V-trace batch (all inputs ``[B, T]``)."""
    with torch.no_grad():
        valid = mask.bool()
        log_rhos = torch.where(valid, log_rhos.detach(), torch.zeros_like(log_rhos))
        stats = {"diag_log_rho": _masked_mean(log_rhos.abs(), valid)}
        if clip_rho_threshold is None:
            stats["diag_rho_clipped"] = log_rhos.new_zeros(())
        else:
            clipped = log_rhos > torch.log(torch.tensor(float(clip_rho_threshold)))
            stats["diag_rho_clipped"] = _masked_mean(clipped.float(), valid)
        stats.update(value_stats(values, targets, valid))
        return stats


def value_stats(
    values: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``diag_value_ev``: the explained variance of the value targets by the value estimates over
    the real steps (``mask``; 1 is perfect, 0 no better than the targets' mean, unbounded below),
    absent with fewer than two real steps."""
    with torch.no_grad():
        valid = mask.bool()
        t = targets.detach()[valid]
        v = values.detach()[valid]
        if t.numel() < 2:
            return {}
        var = t.var(unbiased=False)
        return {
            "diag_value_ev": torch.where(
                var > 0, 1.0 - (t - v).var(unbiased=False) / var.clamp(min=1e-12), var.new_zeros(())
            )
        }


def _group_of(name: str) -> str | None:
    top = name.split(".", 1)[0]
    if top == "encoder":
        return "torso"
    if top == "core":
        return "core"
    if top in _HEADS or top == "output_gain":
        return "heads"
    return None  # APPO's frozen target copy (no gradients) and anything else


class Diagnostics:
    """Torch learner mixin (before the loss class among the bases): logs the ``diag_*`` metrics of
    the module docstring every ``learner_config_dict["diagnostics_every"]``-th update."""

    _diag_updates = 0

    def _diag_every(self) -> int:
        return int((self.config.learner_config_dict or {}).get("diagnostics_every", DEFAULT_EVERY))

    def _diag_due(self) -> bool:
        every = self._diag_every()
        return every > 0 and self._diag_updates % every == 0

    def _uncompiled_update(self, batch: dict, **kwargs: Any) -> Any:
        due = self._diag_due()
        self._diag_updates += 1
        if not due:
            return super()._uncompiled_update(batch, **kwargs)
        self._diag_now = True
        try:
            fwd_out, losses, extra = super()._uncompiled_update(batch, **kwargs)
        finally:
            self._diag_now = False
        self._after_update(batch, fwd_out)
        return fwd_out, losses, extra

    def compute_gradients(self, loss_per_module: dict[str, Any], **kwargs: Any) -> Any:
        grads = super().compute_gradients(loss_per_module, **kwargs)
        if getattr(self, "_diag_now", False):
            self._log_grad_norms()
        return grads

    def _log_grad_norms(self) -> None:
        for module_id, module in self.module.items():
            squares: dict[str, float] = {"torso": 0.0, "core": 0.0, "heads": 0.0}
            for name, param in module.named_parameters():
                group = _group_of(name)
                if group is not None and param.grad is not None:
                    squares[group] += float(param.grad.detach().pow(2).sum())
            self.metrics.log_dict(
                {f"diag_grad_norm_{group}": value**0.5 for group, value in squares.items()},
                key=module_id,
                window=1,
            )

    def _after_update(self, batch: dict, fwd_out: dict) -> None:
        """KL from the policy before the update to after it, memory and gate statistics."""
        with torch.no_grad():
            for module_id, out in fwd_out.items():
                if module_id not in self.module or module_id not in batch:
                    continue
                module = self.module[module_id].unwrapped()
                mod_batch = batch[module_id]
                mask = mod_batch.get(Columns.LOSS_MASK)
                core = getattr(module, "core", None)
                recording = hasattr(core, "record")
                if recording:
                    core.record(True)
                try:
                    after = module.forward_train(mod_batch)
                finally:
                    steps = core.record(False) if recording else None
                dist_cls = module.get_train_action_dist_cls()
                before = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS].detach())
                now = dist_cls.from_logits(after[Columns.ACTION_DIST_INPUTS])
                kl = before.kl(now)
                if mask is None:
                    mask = torch.ones_like(kl, dtype=torch.bool)
                policy_kl = float(_masked_mean(kl, mask))
                stats: dict[str, float] = {"diag_policy_kl": policy_kl}
                if getattr(module, "output_gain", None) is not None:
                    stats["diag_output_gain"] = float(module.output_gain.gain)
                # The recorded steps are the update's [B, T] when the module stepped through its
                # chunks once (a module without time axis, e.g. mlp, records nothing).
                if steps and steps["memory"].shape[:2] == mask.shape:
                    stats.update(memory_stats(steps["memory"], mask))
                    if "input_gate" in steps:
                        stats["diag_input_gate"] = float(_masked_mean(steps["input_gate"], mask))
                        stats["diag_forget_gate"] = float(_masked_mean(steps["forget_gate"], mask))
                        stats["diag_forget_kept"] = float(_masked_mean(steps["forget_kept"], mask))
                self.metrics.log_dict(stats, key=module_id, window=1)
                self._policy_kl_measured(module_id, policy_kl)

    def _policy_kl_measured(self, module_id: str, kl: float) -> None:
        """Called with each measured ``diag_policy_kl`` (for :class:`rmc_agents.rl.optim.
        KLStepSize`)."""
