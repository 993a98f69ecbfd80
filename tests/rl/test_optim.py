"""The learner's optimizer choice: TensorFlow-1-style RMSProp (IMPALA paper) against its equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmc_agents.config import ConfigError, load_config
from rmc_agents.rl.optim import AgentLearner, TFRMSprop
from rmc_agents.rl.settings import RunSettings

from .conftest import learner_and_batch


def _reference(w: np.ndarray, grads: list[np.ndarray], lr: float, decay: float, eps: float):
    """TF1 RMSPropOptimizer, momentum 0: ms starts at 1, eps under the square root."""
    ms = np.ones_like(w)
    for g in grads:
        ms = decay * ms + (1 - decay) * g * g
        w = w - lr * g / np.sqrt(ms + eps)
    return w


def test_tf_rmsprop_follows_tensorflow_1s_rule():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) * scale for scale in (0.1, 1.0, 10.0, 0.5, 3.0)]
    param = torch.nn.Parameter(torch.tensor(w0))
    opt = TFRMSprop([param], lr=0.05, decay=0.9, eps=0.01)
    for g in grads:
        param.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(param.detach().numpy(), _reference(w0, grads, 0.05, 0.9, 0.01))
    # Not torch's RMSprop (eps outside the root, mean square from 0): a different trajectory.
    other = torch.nn.Parameter(torch.tensor(w0))
    torch_opt = torch.optim.RMSprop([other], lr=0.05, alpha=0.9, eps=0.01)
    for g in grads:
        other.grad = torch.tensor(g)
        torch_opt.step()
    assert not np.allclose(other.detach().numpy(), param.detach().numpy(), atol=1e-3)


def test_tf_rmsprop_skips_parameters_without_gradients_and_checks_its_arguments():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = TFRMSprop([a, b], lr=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and not torch.equal(a.detach(), torch.ones(2))
    for bad in ({"lr": -1.0}, {"decay": 1.0}, {"eps": 0.0}):
        with pytest.raises(ValueError):
            TFRMSprop([a], **bad)


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("rmsprop", TFRMSprop)])
def test_training_optimizer_setting_reaches_the_learner(name, cls):
    from rmc_agents.rl.algorithms import build_algo_config

    run = load_config(
        RunSettings,
        overrides={
            "env": "CartPole-v1",
            "algo": "impala",
            "model.core": "gru",
            "model.hidden_size": 8,
            "training.optimizer": name,
            "training.rmsprop_eps": 0.02,
            "training.lr": 0.003,
            "resources.num_env_runners": 0,
        },
    )
    config = build_algo_config(run)
    assert config.learner_class is AgentLearner
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    config.environment(observation_space=env.observation_space, action_space=env.action_space)
    learner = config.build_learner()
    try:
        (optimizer,) = [opt for _, opt in learner.get_optimizers_for_module("default_policy")]
        assert type(optimizer) is cls
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.003)
        if cls is TFRMSprop:
            assert optimizer.param_groups[0]["eps"] == 0.02
            assert optimizer.param_groups[0]["decay"] == 0.99
    finally:
        learner.shutdown()


def test_bad_optimizer_settings_name_the_key():
    for key, value in (
        ("training.optimizer", "sgd"),
        ("training.rmsprop_decay", 1.5),
        ("training.rmsprop_eps", 0.0),
    ):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            load_config(RunSettings, overrides={key: value})


# --- the step size that follows the policy KL (KLStepSize) --------------------------------------


def test_next_lr_factor_follows_the_rule_within_its_bounds():
    from rmc_agents.rl.optim import next_lr_factor

    target = 0.01
    assert next_lr_factor(1.0, 0.004, target) == pytest.approx(1.5)  # below target / 2
    assert next_lr_factor(1.0, 0.021, target) == pytest.approx(1 / 1.5)  # above 2 x target
    for kl in (0.005, 0.01, 0.02):  # within [target / 2, 2 x target]: unchanged
        assert next_lr_factor(0.7, kl, target) == 0.7
    assert next_lr_factor(1.0, float("nan"), target) == 1.0
    assert next_lr_factor(1.0, float("inf"), target) == 1.0
    assert next_lr_factor(9.0, 0.0, target, (0.1, 10.0)) == 10.0
    assert next_lr_factor(0.12, 1.0, target, (0.1, 10.0)) == 0.1


def _kl_learner(**training):
    """A small GRU IMPALA learner on CartPole with ``training`` settings, and one batch of its
    own play."""
    overrides = {
        "env": "CartPole-v1",
        "algo": "impala",
        "model.core": "gru",
        "model.hidden_size": 8,
        "training.lr": 0.003,
        "training.diagnostics_every": 1,
        "resources.num_env_runners": 0,
        "resources.envs_per_runner": 4,
    }
    overrides.update({f"training.{key}": value for key, value in training.items()})
    return learner_and_batch(load_config(RunSettings, overrides=overrides))


def _lr(learner) -> float:
    ((_, optimizer),) = learner.get_optimizers_for_module("default_policy")
    return optimizer.param_groups[0]["lr"]


def _step(learner, batch, frames: int = 0) -> float:
    """One update and RLlib's after-update hook; the KL the diagnostics logged."""
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    learner._uncompiled_update(batch)
    learner.after_gradient_based_update(timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: frames})
    return float(learner.metrics.peek(("default_policy", "diag_policy_kl")))


def test_the_step_size_shrinks_and_grows_with_the_measured_kl():
    # A target far below any update's KL: every measurement divides the step size by 1.5.
    learner, batch = _kl_learner(lr_kl_target=1e-12)
    try:
        for k in range(1, 4):
            assert _step(learner, batch) > 2e-12
            assert learner._lr_factors["default_policy"] == pytest.approx(1.5**-k)
            assert _lr(learner) == pytest.approx(0.003 * 1.5**-k)
            logged = learner.metrics.peek(("default_policy", "diag_lr_factor"))
            assert float(logged) == pytest.approx(1.5**-k)
    finally:
        learner.shutdown()
    # A target far above: times 1.5 per measurement, up to the upper bound.
    learner, batch = _kl_learner(lr_kl_target=1e3, lr_kl_factor_bounds=[0.5, 2.0])
    try:
        _step(learner, batch)
        assert _lr(learner) == pytest.approx(0.003 * 1.5)
        _step(learner, batch)
        assert _lr(learner) == pytest.approx(0.003 * 2.0)
    finally:
        learner.shutdown()


def test_the_factor_scales_a_scheduled_step_size_without_compounding():
    learner, batch = _kl_learner(lr_kl_target=1e-12, lr_factors=[[0, 1.0], [1000, 0.5]])
    try:
        _step(learner, batch, frames=1000)
        assert _lr(learner) == pytest.approx(0.0015 / 1.5)
        # The hook again without a new measurement: the same step size, not scaled twice.
        learner.after_gradient_based_update(timesteps={})
        assert _lr(learner) == pytest.approx(0.003 / 1.5)  # frame 0 of the schedule, same factor
    finally:
        learner.shutdown()


def test_the_factor_survives_the_learners_checkpoint(tmp_path):
    learner, batch = _kl_learner(lr_kl_target=1e-12)
    try:
        _step(learner, batch)
        _step(learner, batch)
        assert learner.get_state()["lr_kl_factors"] == {"default_policy": pytest.approx(1.5**-2)}
        learner.save_to_path(tmp_path / "learner")
    finally:
        learner.shutdown()
    fresh, batch = _kl_learner(lr_kl_target=1e-12)
    try:
        assert fresh._lr_factors["default_policy"] == 1.0
        fresh.restore_from_path(tmp_path / "learner")
        assert fresh._lr_factors["default_policy"] == pytest.approx(1.5**-2)
        _step(fresh, batch)
        assert _lr(fresh) == pytest.approx(0.003 * 1.5**-3)
    finally:
        fresh.shutdown()


def test_without_a_kl_target_the_step_size_is_the_configured_one():
    learner, batch = _kl_learner()
    try:
        for _ in range(2):
            assert _step(learner, batch) > 0
        assert _lr(learner) == pytest.approx(0.003)
        with pytest.raises(KeyError):
            learner.metrics.peek(("default_policy", "diag_lr_factor"))
        assert "lr_kl_factors" not in learner.get_state()
    finally:
        learner.shutdown()


def test_bad_kl_target_settings_name_the_key():
    for overrides, key in (
        ({"training.lr_kl_target": 0.0}, "lr_kl_target"),
        ({"training.lr_kl_factor_bounds": [2.0, 10.0]}, "lr_kl_factor_bounds"),
        ({"training.lr_kl_factor_bounds": [0.0, 10.0]}, "lr_kl_factor_bounds"),
        ({"training.lr_kl_target": 0.01, "training.diagnostics_every": 0}, "diagnostics_every"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(RunSettings, overrides=overrides)


# --- a step size for the memory core (training.core_lr_factor) ----------------------------------


@pytest.mark.parametrize("cls", ["adam", "rmsprop"])
def test_group_factors_step_each_group_as_its_own_optimizer_would(cls):
    from rmc_agents.rl.optim import FactorAdam, FactorTFRMSprop

    rng = np.random.default_rng(1)
    w0 = [rng.normal(size=(3, 2)), rng.normal(size=4)]
    grads = [[rng.normal(size=w.shape) * s for w in w0] for s in (0.3, 2.0, 0.05)]

    def make(params, lr):
        if cls == "adam":
            return torch.optim.Adam(params, lr=lr)
        return TFRMSprop(params, lr=lr)

    grouped = [torch.nn.Parameter(torch.tensor(w)) for w in w0]
    factor_cls = FactorAdam if cls == "adam" else FactorTFRMSprop
    opt = factor_cls([{"params": [grouped[0]], "lr_factor": 0.2}, {"params": [grouped[1]]}])
    for group in opt.param_groups:  # as RLlib's scheduler sets it: one lr for every group
        group["lr"] = 0.01
    single = [torch.nn.Parameter(torch.tensor(w)) for w in w0]
    refs = [make([single[0]], 0.01 * 0.2), make([single[1]], 0.01)]
    for g in grads:
        for p, q, gi in zip(grouped, single, g, strict=True):
            p.grad, q.grad = torch.tensor(gi), torch.tensor(gi)
        opt.step()
        for ref in refs:
            ref.step()
    for p, q in zip(grouped, single, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-12)
    assert [group["lr"] for group in opt.param_groups] == [0.01, 0.01]  # the lr RLlib set, kept
    assert not np.allclose(grouped[0].detach().numpy(), w0[0])


def _factor_learner(core_lr_factor: float, **training):
    """:func:`_kl_learner` with ``training.core_lr_factor``."""
    return _kl_learner(core_lr_factor=core_lr_factor, **training)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_core_lr_factor_scales_only_the_cores_first_step(optimizer):
    from rmc_agents.rl.optim import FactorAdam, FactorTFRMSprop

    scaled, batch = _factor_learner(0.25, optimizer=optimizer)
    plain, _ = _factor_learner(1.0, optimizer=optimizer)
    try:
        a, b = scaled.module["default_policy"], plain.module["default_policy"]
        b.load_state_dict(a.state_dict())
        ((_, opt),) = scaled.get_optimizers_for_module("default_policy")
        assert type(opt) is (FactorAdam if optimizer == "adam" else FactorTFRMSprop)
        assert [g["lr_factor"] for g in opt.param_groups] == [0.25, 1.0]
        core_ids = {id(p) for p in a.core.parameters()}
        assert {id(p) for p in opt.param_groups[0]["params"]} == core_ids
        before = {n: p.detach().clone() for n, p in a.named_parameters()}
        scaled._uncompiled_update(batch)
        plain._uncompiled_update(batch)
        after_b = dict(b.named_parameters())
        norms = {True: [0.0, 0.0], False: [0.0, 0.0]}  # in the core: [scaled, plain] squared
        for name, param in a.named_parameters():
            d_scaled = param.detach() - before[name]
            d_plain = after_b[name].detach() - before[name]
            # The same weights and batch give the same gradient: the first step of Adam or
            # RMSProp is linear in the step size, so the core moves a quarter as far (up to a
            # few float32 rounding steps of the weights).
            in_core = name.startswith("core.")
            expected = 0.25 if in_core else 1.0
            torch.testing.assert_close(d_scaled, expected * d_plain, rtol=1e-3, atol=5e-8)
            norms[in_core][0] += float(d_scaled.square().sum())
            norms[in_core][1] += float(d_plain.square().sum())
        assert norms[True][1] > 0 and norms[False][1] > 0
        assert (norms[True][0] / norms[True][1]) ** 0.5 == pytest.approx(0.25, rel=1e-3)
        assert (norms[False][0] / norms[False][1]) ** 0.5 == pytest.approx(1.0, rel=1e-3)
    finally:
        scaled.shutdown()
        plain.shutdown()


def test_core_lr_factor_one_keeps_rllibs_adam_and_bad_values_name_the_key():
    learner, _ = _factor_learner(1.0)
    try:
        ((_, opt),) = learner.get_optimizers_for_module("default_policy")
        assert type(opt) is torch.optim.Adam and len(opt.param_groups) == 1
    finally:
        learner.shutdown()
    for bad in (0.0, -0.5):
        with pytest.raises(ConfigError, match="core_lr_factor"):
            load_config(RunSettings, overrides={"training.core_lr_factor": bad})


def test_a_checkpoint_with_another_core_lr_factor_is_one_clear_error(tmp_path):
    saved, batch = _factor_learner(0.5)
    try:
        saved._uncompiled_update(batch)
        saved.save_to_path(tmp_path / "learner")
    finally:
        saved.shutdown()
    other, _ = _factor_learner(1.0)
    try:
        with pytest.raises(ValueError, match="training.core_lr_factor is 1 in one and not"):
            other.restore_from_path(tmp_path / "learner")
    finally:
        other.shutdown()
    same, _ = _factor_learner(0.25)  # another factor, the same two groups: restores
    try:
        same.restore_from_path(tmp_path / "learner")
        ((_, opt),) = same.get_optimizers_for_module("default_policy")
        assert [g["lr_factor"] for g in opt.param_groups] == [0.25, 1.0]  # this run's factor
        assert opt.state  # and the checkpoint's moments
    finally:
        same.shutdown()


def test_core_param_groups_refuse_a_model_without_a_core():
    from rmc_agents.rl.optim import core_param_groups

    torso = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="core_lr_factor=0.5 needs a memory core"):
        core_param_groups(torso, 0.5)

    class Agent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.core, self.pi = (torch.nn.Linear(2, 2) for _ in range(3))

    agent = Agent()
    core, rest = core_param_groups(agent, 0.5)
    assert core["params"] == list(agent.core.parameters()) and core["lr_factor"] == 0.5
    assert len(rest["params"]) == 4 and rest["lr_factor"] == 1.0
