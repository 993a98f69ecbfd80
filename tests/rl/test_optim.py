"""The learner's optimizer choice: TensorFlow-1-style RMSProp (IMPALA paper) against its equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmc_agents.config import ConfigError, load_config
from rmc_agents.rl.optim import AgentLearner, TFRMSprop
from rmc_agents.rl.settings import RunSettings


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
