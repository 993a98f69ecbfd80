"""``policy_spec()`` / ``learner_class()``: the policy in a user's own RLlib config, no train_agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rmc_agents.rl import learner_class, learner_pipeline, policy_spec


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"memslots": 4}, "unknown setting.*memslots"),
        ({"mem_slots": 0}, "mem_slots must be > 0"),
        ({"gate_style": "lstm"}, "gate_style"),
        ({"core": "tcn"}, "core must be one of"),
    ],
)
def test_bad_settings_are_refused_with_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=f"policy_spec: .*{match}"):
        policy_spec(**kwargs)


def test_learner_pipeline_gives_the_one_pass_pieces_whatever_was_imported_before():
    import rmc_agents.rl.learner_connector  # noqa: F401  (the module of the same family of names)
    from rmc_agents.rl import learner_pipeline as from_package

    assert from_package is learner_pipeline
    pieces = learner_pipeline("ppo", gamma=0.9, lambda_=0.8)(None, None)
    assert [type(p).__name__ for p in pieces] == [
        "EpisodesToTrainBatch",
        "AdvantagesFromTrainBatch",
    ]
    assert (pieces[1].gamma, pieces[1].lambda_) == (0.9, 0.8)
    assert [type(p).__name__ for p in learner_pipeline("impala")(None, None)] == [
        "EpisodesToTrainBatch"
    ]
    with pytest.raises(ValueError, match="^learner_pipeline: algo must be one of"):
        learner_pipeline("dqn")


def test_learner_class_names_the_algorithms():
    from rmc_agents.rl.optim import AgentAPPOLearner, AgentLearner, AgentPPOLearner

    assert learner_class() is AgentLearner
    assert learner_class("appo") is AgentAPPOLearner and learner_class("ppo") is AgentPPOLearner
    with pytest.raises(ValueError, match="algo must be one of"):
        learner_class("dqn")


@pytest.mark.parametrize("core", ["rmc", "lstm", "gru", "mlp"])
def test_spec_builds_with_defaults_filled_in(core):
    spec = policy_spec(core)
    spec.observation_space = gym.spaces.Box(0, 1, (5, 5, 3), np.float32)
    spec.action_space = gym.spaces.Discrete(5)
    module = spec.build()
    assert module.model_config["max_seq_len"] == 22
    state = module.get_initial_state()
    batch = {Columns.OBS: torch.zeros(2, 1, 5, 5, 3)}
    if core == "mlp":
        batch = {Columns.OBS: torch.zeros(2, 5, 5, 3)}
    else:
        batch[Columns.STATE_IN] = {
            k: torch.as_tensor(v)[None].repeat(2, *[1] * v.ndim) for k, v in state.items()
        }
    out = module.forward_inference(batch)
    assert out[Columns.ACTION_DIST_INPUTS].shape[-1] == 5


def test_gate_bias_settings_reach_the_built_core():
    """model.forget_bias (LSTM) and model.update_bias (GRU) set the built module's starting biases;
    the GRU's default keeps PyTorch's initialisation."""
    built = {}
    for core, extra in (("lstm", {"forget_bias": 2.0}), ("gru", {"update_bias": 2.0}), ("gru", {})):
        spec = policy_spec(core, hidden_size=8, **extra)
        spec.observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
        spec.action_space = gym.spaces.Discrete(2)
        built[core, bool(extra)] = spec.build().core.rnn.bias_hh_l0.detach()
    assert built["lstm", True][8:16].tolist() == [2.0] * 8
    assert built["gru", True].tolist() == [0.0] * 8 + [2.0] * 8 + [0.0] * 8
    assert (built["gru", False] != 0).all()
    with pytest.raises(ValueError, match="update_bias must be a number or None"):
        policy_spec("gru", update_bias="high")


def test_module_without_core_kwargs_takes_the_default_size():
    """The model config a user might write by hand, with no core_kwargs, builds an RMC."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rmc_agents.rl.module import RecurrentAgentModule

    spec = RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=gym.spaces.Box(-1, 1, (4,), np.float32),
        action_space=gym.spaces.Discrete(2),
        model_config={"core": "rmc"},
    )
    module = spec.build()
    assert module.core.mem_slots == 4 and module.model_config["max_seq_len"] == 22


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "appo", "impala"])
def test_a_plain_rllib_script_trains_with_the_spec(ray_cluster, algo):
    """What a user writes: RLlib's own config class, our spec, learner and learner connector,
    two iterations."""
    from ray.rllib.algorithms.appo import APPOConfig
    from ray.rllib.algorithms.impala import IMPALAConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    config_cls = {"ppo": PPOConfig, "appo": APPOConfig, "impala": IMPALAConfig}[algo]
    config = (
        config_cls()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=1, num_envs_per_env_runner=4, num_cpus_per_env_runner=0.5)
        .learners(num_learners=0, learner_class=learner_class(algo))
        .training(train_batch_size_per_learner=256)
        .rl_module(rl_module_spec=policy_spec("rmc", mem_slots=2, head_size=8, max_seq_len=22))
        .reporting(min_time_s_per_iteration=0, min_sample_timesteps_per_iteration=500)
    )
    if algo == "ppo":
        config.training(minibatch_size=64, num_epochs=2)
    config.learners(
        learner_connector=learner_pipeline(algo, gamma=config.gamma, lambda_=config.lambda_)
        if algo == "ppo"
        else learner_pipeline(algo),
        add_default_connectors_to_learner_pipeline=False,
    )
    algo_obj = config.build_algo()
    try:
        trained = []
        for _ in range(2):
            result = algo_obj.train()
            trained.append(result["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"])
        pipeline = algo_obj.learner_group._learner._learner_connector.connectors
    finally:
        algo_obj.stop()
    assert trained[-1] > 0
    assert type(pipeline[0]).__name__ == "EpisodesToTrainBatch" and pipeline[0].fallbacks == 0


def test_image_projection_setting_reaches_the_torso_and_is_checked():
    """``image_projection`` (``model.image_projection``) gives the LSTM a P-wide input (its input
    weights 4 x hidden x (P + hidden)); the RMC takes it only with one flat input row."""
    space = gym.spaces.Box(0, 1, (9, 7, 3), np.float32)  # conv map 7 x 5: 910 features
    spec = policy_spec("lstm", image_projection=10, hidden_size=16)
    spec.observation_space, spec.action_space = space, gym.spaces.Discrete(5)
    module = spec.build()
    assert (module.encoder.num_rows, module.encoder.out_size) == (0, 10)
    assert module.core.rnn.weight_ih_l0.shape == (4 * 16, 10)
    state = {
        k: torch.as_tensor(v)[None].repeat(2, *[1] * v.ndim)
        for k, v in module.get_initial_state().items()
    }
    out = module.forward_inference(
        {Columns.OBS: torch.rand(2, 3, 9, 7, 3), Columns.STATE_IN: state}
    )
    assert out[Columns.ACTION_DIST_INPUTS].shape == (2, 3, 5)
    rmc = policy_spec("rmc", image_projection=10, image_rows=False)
    rmc.observation_space, rmc.action_space = space, gym.spaces.Discrete(5)
    assert rmc.build().encoder.out_size == 10
    with pytest.raises(ValueError, match="image_projection is for a flat input"):
        policy_spec("rmc", image_projection=10)
    with pytest.raises(ValueError, match="image_projection must be > 0"):
        policy_spec("lstm", image_projection=0)


def test_image_pool_setting_reaches_the_torso_and_is_checked():
    """``image_pool`` (``model.image_pool`` in a run config) shrinks the flattened input an LSTM
    reads and the rows an RMC attends over; a bad value is one clear error."""
    space = gym.spaces.Box(0, 1, (9, 7, 3), np.float32)  # conv map 7 x 5
    sizes = {}
    for pool in (1, 3):
        for core in ("lstm", "rmc"):
            spec = policy_spec(core, image_pool=pool)
            spec.observation_space, spec.action_space = space, gym.spaces.Discrete(5)
            module = spec.build()
            sizes[core, pool] = (module.encoder.num_rows, module.encoder.out_size)
            logits = module.forward_inference(
                {
                    Columns.OBS: torch.zeros(2, 1, 9, 7, 3),
                    Columns.STATE_IN: {
                        k: torch.as_tensor(v)[None].repeat(2, *[1] * v.ndim)
                        for k, v in module.get_initial_state().items()
                    },
                }
            )[Columns.ACTION_DIST_INPUTS]
            assert logits.shape == (2, 1, 5)
    assert sizes["lstm", 1] == (0, 7 * 5 * 26) and sizes["lstm", 3] == (0, 3 * 2 * 26)
    assert sizes["rmc", 1] == (7 * 5, 26) and sizes["rmc", 3] == (3 * 2, 26)
    with pytest.raises(ValueError, match="image_pool must be > 0"):
        policy_spec(image_pool=0)
