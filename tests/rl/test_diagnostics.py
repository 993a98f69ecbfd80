"""The learner's diagnostics (rmc_agents.rl.diagnostics) against references written here."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rmc_agents.core import RelationalMemory
from rmc_agents.rl.diagnostics import _group_of, memory_stats, rho_value_stats, slot_spread
from rmc_agents.rl.settings import DIAGNOSTIC_KEYS, RunSettings

from .conftest import learner_and_batch


def _spread_reference(memory: np.ndarray) -> float:
    slots = memory.shape[0]
    pairs = [
        np.linalg.norm(memory[i] - memory[j]) for i, j in itertools.permutations(range(slots), 2)
    ]
    return float(np.mean(pairs) / np.sqrt(np.mean(np.sum(memory**2, axis=1))))


def test_slot_spread_is_zero_for_equal_slots_and_sqrt2_for_orthonormal_ones():
    same = torch.ones(2, 4, 8)
    assert torch.allclose(slot_spread(same), torch.zeros(2))
    eye = torch.eye(4, 8)[None]
    assert slot_spread(eye).item() == pytest.approx(2**0.5)
    assert slot_spread(torch.randn(3, 1, 5)).eq(0).all()  # one slot: nothing to compare


def test_slot_spread_matches_the_pairwise_reference_and_ignores_scale():
    gen = torch.Generator().manual_seed(0)
    memory = torch.randn(2, 3, 5, 7, generator=gen, dtype=torch.float64)
    got = slot_spread(memory)
    assert got.shape == (2, 3)
    for b, t in itertools.product(range(2), range(3)):
        assert got[b, t].item() == pytest.approx(_spread_reference(memory[b, t].numpy()), rel=1e-9)
    torch.testing.assert_close(slot_spread(memory * 10.0), got)


def test_memory_stats_use_only_the_real_steps():
    memory = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    memory[~mask] = 1000.0  # padding must not count
    stats = memory_stats(memory, mask)
    picked = memory[mask].numpy()
    assert stats["diag_memory_rms"] == pytest.approx(np.sqrt(np.mean(picked**2)))
    assert stats["diag_memory_max"] == pytest.approx(np.abs(picked).max())
    expected = np.mean([_spread_reference(m) for m in picked])
    assert stats["diag_slot_spread"] == pytest.approx(expected)
    assert memory_stats(memory, torch.zeros(2, 3, dtype=torch.bool)) == {}


def test_rho_and_value_statistics_match_the_reference():
    gen = np.random.default_rng(3)
    log_rhos = gen.normal(scale=0.5, size=(3, 6))
    values, targets = gen.normal(size=(3, 6)), gen.normal(size=(3, 6))
    mask = gen.random((3, 6)) > 0.3
    log_rhos[~mask] = 50.0  # masked steps must not count
    stats = rho_value_stats(*(torch.tensor(a) for a in (log_rhos, values, targets, mask)), 1.0)
    real = mask
    assert stats["diag_log_rho"].item() == pytest.approx(np.abs(log_rhos[real]).mean())
    assert stats["diag_rho_clipped"].item() == pytest.approx((log_rhos[real] > 0).mean())
    t, v = targets[real], values[real]
    assert stats["diag_value_ev"].item() == pytest.approx(1 - np.var(t - v) / np.var(t))
    # rho_bar 1.5: only log rho above log 1.5 is clipped; no threshold: nothing is
    at = rho_value_stats(*(torch.tensor(a) for a in (log_rhos, values, targets, mask)), 1.5)
    assert at["diag_rho_clipped"].item() == pytest.approx((log_rhos[real] > np.log(1.5)).mean())
    none = rho_value_stats(*(torch.tensor(a) for a in (log_rhos, values, targets, mask)), None)
    assert none["diag_rho_clipped"].item() == 0.0


@pytest.mark.parametrize("gate_style", ["memory", "unit"])
def test_recorded_steps_are_the_steps_gates_and_memories(gate_style):
    torch.manual_seed(0)
    core = RelationalMemory(5, 3, head_size=4, num_heads=2, gate_style=gate_style).double()
    xs = torch.randn(2, 4, 5, dtype=torch.float64)
    memory = torch.randn(2, 3, 8, dtype=torch.float64)
    assert core.record(True) is None
    _, final = core.unroll(xs, memory)
    steps = core.record(False)
    assert steps["input_gate"].shape == steps["forget_gate"].shape == (2, 4)
    assert steps["memory"].shape == (2, 4, 3, 8)
    torch.testing.assert_close(steps["memory"][:, -1], final)
    # By hand, step by step, from the equations (gates of the previous memory).
    state = memory
    for t in range(4):
        projected = core.input_projection(xs[:, t])
        gates = core.gate_memory(torch.tanh(state)) + core.gate_inputs(projected)[:, None]
        g = gates.shape[-1] // 2
        i = torch.sigmoid(gates[..., :g] + core.input_bias)
        f = torch.sigmoid(gates[..., g:] + core.forget_bias)
        torch.testing.assert_close(steps["input_gate"][:, t], i.mean(dim=(-2, -1)))
        torch.testing.assert_close(steps["forget_gate"][:, t], f.mean(dim=(-2, -1)))
        kept = (f >= 0.9).double().mean(dim=(-2, -1))
        torch.testing.assert_close(steps["forget_kept"][:, t], kept)
        _, state = core(xs[:, t], state)
        torch.testing.assert_close(steps["memory"][:, t], state)
    assert core.record(False) is None  # stopped: nothing recorded since
    # forget_kept counts the entries at or above 0.9, which the mean alone does not show: a
    # forget bias of +9 keeps nearly every entry, -9 none.
    for bias, share in ((9.0, 1.0), (-9.0, 0.0)):
        held = RelationalMemory(
            5, 3, head_size=4, num_heads=2, gate_style=gate_style, forget_bias=bias
        ).double()
        held.record(True)
        held.unroll(xs, memory)
        assert held.record(False)["forget_kept"].tolist() == [[share] * 4] * 2
    ungated = RelationalMemory(5, 3, head_size=4, gate_style=None)
    ungated.record(True)
    ungated.unroll(torch.randn(1, 2, 5), ungated.initial_state(1))
    assert set(ungated.record(False)) == {"memory"}


def test_every_trained_parameter_has_a_gradient_group():
    import gymnasium as gym

    import minipacman  # noqa: F401  (registers the game)
    from rmc_agents.rl.module import RecurrentAgentModule

    env = gym.make("MiniPacman-Viewport-v0")
    for core in ("rmc", "lstm"):
        run = RunSettings()
        run.model.core = core
        run.model.skip = True
        run.model.output_gain = 0.0
        module = RecurrentAgentModule(
            observation_space=env.observation_space,
            action_space=env.action_space,
            model_config=run.model.rllib_model_config(),
        )
        groups = {name: _group_of(name) for name, _ in module.named_parameters()}
        assert None not in groups.values(), groups
        assert set(groups.values()) == {"torso", "core", "heads"}
        assert groups["output_gain.gain"] == "heads"


def test_the_learner_logs_the_kl_of_its_own_update(ray_cluster):
    """One IMPALA update of a small RMC: the logged KL equals the KL between the policy before
    and after, recomputed here from a copy of the module; the memory and gate values are there,
    and the learned output gain as it stands after the update."""
    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical

    run = RunSettings()
    run.model.mem_slots, run.model.head_size, run.model.num_heads = 2, 8, 2
    run.resources.num_env_runners, run.resources.envs_per_runner = 0, 4
    run.training.diagnostics_every = 1
    run.model.skip, run.model.output_gain = True, 0.5
    learner, batch = learner_and_batch(run)
    module = learner.module["default_policy"]
    before = copy.deepcopy(module)
    mod_batch = batch["default_policy"]
    learner._uncompiled_update({"default_policy": mod_batch})
    stats = {
        key: float(learner.metrics.peek(("default_policy", key), default=np.nan))
        for key in DIAGNOSTIC_KEYS
    }
    with torch.no_grad():
        old = TorchCategorical.from_logits(
            before.forward_train(mod_batch)[Columns.ACTION_DIST_INPUTS]
        )
        new = TorchCategorical.from_logits(
            module.forward_train(mod_batch)[Columns.ACTION_DIST_INPUTS]
        )
        mask = mod_batch[Columns.LOSS_MASK].float()
        kl = float((old.kl(new) * mask).sum() / mask.sum())
    assert kl > 0
    assert stats["diag_policy_kl"] == pytest.approx(kl, rel=1e-4)
    for key in (
        "diag_memory_rms",
        "diag_slot_spread",
        "diag_input_gate",
        "diag_forget_gate",
        "diag_forget_kept",
    ):
        assert np.isfinite(stats[key]), key
    assert 0 < stats["diag_forget_gate"] < 1 and 0 < stats["diag_input_gate"] < 1
    for key in ("diag_grad_norm_torso", "diag_grad_norm_core", "diag_grad_norm_heads"):
        assert stats[key] > 0, key
    assert 0 <= stats["diag_rho_clipped"] <= 1 and stats["diag_log_rho"] >= 0
    gain = float(module.output_gain.gain)
    assert gain != 0.5 and stats["diag_output_gain"] == pytest.approx(gain)


def test_ppo_logs_the_values_fit_over_the_real_steps_only(ray_cluster):
    """PPO: ``diag_value_ev`` is the explained variance of the GAE targets by the values over the
    real steps, recomputed here; RLlib's ``vf_explained_var`` counts the padding and the bootstrap
    rows too, so it differs on a batch with padding."""
    run = RunSettings(env="CartPole-v1", algo="ppo")
    run.model.mem_slots, run.model.head_size, run.model.num_heads = 2, 8, 2
    run.resources.num_env_runners, run.resources.envs_per_runner = 0, 4
    learner, batch = learner_and_batch(run)
    try:
        module = learner.module["default_policy"]
        mod_batch = batch["default_policy"]
        mask = mod_batch[Columns.LOSS_MASK].bool()
        assert (~mask).any(), "no padding or bootstrap rows in the batch"
        with torch.no_grad():  # the values the update's loss sees (the weights before its step)
            values = module.compute_values(mod_batch)
        learner._uncompiled_update({"default_policy": mod_batch})
        got = float(learner.metrics.peek(("default_policy", "diag_value_ev")))
        mean_value = float(learner.metrics.peek(("default_policy", "mean_value")))
        rllib = float(learner.metrics.peek(("default_policy", "vf_explained_var")))
    finally:
        learner.shutdown()
    t = mod_batch["value_targets"][mask].double().numpy()
    v = values[mask].double().numpy()
    assert got == pytest.approx(1 - np.var(t - v) / np.var(t), rel=1e-4, abs=1e-6)
    assert mean_value == pytest.approx(v.mean(), rel=1e-4, abs=1e-6)
    assert rllib != pytest.approx(got, abs=1e-3)


def test_value_fit_measures_a_ppo_run_and_refuses_an_impala_one(tmp_path, cli_run, ray_cluster):
    """``bench/value_fit.py``: a trained PPO run's value over the real steps of batches of its own
    play (its learner chunks keep padding, so RLlib's all-rows figure differs); an IMPALA run is
    refused by name (its losses log the real-step figure already)."""
    import importlib.util

    from .conftest import CLI_TINY_YAML, ROOT, run_cli

    spec = importlib.util.spec_from_file_location("value_fit", ROOT / "bench" / "value_fit.py")
    value_fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(value_fit)

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CLI_TINY_YAML)
    out = tmp_path / "ppo"
    proc = run_cli(
        "--env", "CartPole-v1", "--config", str(cfg), "--set", "algo=ppo",
        "--stop-iterations", "1", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = value_fit.value_fit(out, steps=300, seed=5)
    assert (row["env"], row["core"], row["sample_seed"]) == ("CartPole-v1", "rmc", 5)
    assert row["steps"] >= 300
    assert 0 < row["real_share"] < 1
    assert np.isfinite(row["ev_real"]) and row["ev_real"] <= 1
    assert row["ev_rllib"] >= -1 and row["ev_rllib"] != pytest.approx(row["ev_real"], abs=1e-6)
    _, impala_run, _ = cli_run
    with pytest.raises(SystemExit, match="is an IMPALA run"):
        value_fit.value_fit(impala_run, steps=100, seed=0)
