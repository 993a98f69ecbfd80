"""The one-pass EnvRunner connectors and the lean EnvRunner against RLlib's own.

Two EnvRunners with the same seed and the same weights, one with this project's pipelines
(``rmc_agents.rl.connectors``) and one with RLlib's defaults, must record the same episodes: same
observations, actions, rewards, log-probabilities, logits and recurrent states, step for step,
across several ``sample()`` calls (continuation chunks) and episode ends (resets).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import tree
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from rmc_agents.rl.algorithms import build_algo_config, use_rllib_sampling
from rmc_agents.rl.connectors import (
    ActionsToEnv,
    BatchForModule,
    PreviousActionsRewards,
    fast_connectors_apply,
)
from rmc_agents.rl.env_runner import LeanEnvRunner
from rmc_agents.rl.settings import ModelSettings, RunSettings


class Float64CartPole(gym.Wrapper):
    """CartPole with float64 observations (RLlib's tensor conversion makes them float32)."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs.astype(np.float64), info

    def step(self, action):
        obs, *rest = self.env.step(action)
        return (obs.astype(np.float64), *rest)


_SMALL = {"mem_slots": 2, "head_size": 8, "num_heads": 2, "hidden_size": 16, "max_seq_len": 6}


def _configs(env: str, core: str, env_kwargs: dict | None = None, **model: object):
    run = RunSettings(env=env, model=ModelSettings(core=core, **{**_SMALL, **model}), seed=5)
    run.env_kwargs = dict(env_kwargs or {})
    run.resources.num_env_runners = 0
    run.resources.envs_per_runner = 4
    ours = build_algo_config(run)
    rllib = ours.copy(copy_frozen=False)
    prev = (int(run.model.prev_action), int(run.model.prev_reward))
    use_rllib_sampling(
        rllib,
        (
            (
                lambda env, spaces, device: [
                    PreviousActionsRewards(n_prev_actions=prev[0], n_prev_rewards=prev[1])
                ]
            )
            if any(prev)
            else None
        ),
    )
    return ours, rllib


def _connector_types(runner) -> tuple[list[type], list[type]]:
    return (
        [type(c) for c in runner._env_to_module.connectors],
        [type(c) for c in runner._module_to_env.connectors],
    )


def _sample(runner, calls: int, steps: int, explore: bool) -> list:
    episodes = []
    for call in range(calls):
        torch.manual_seed(100 + call)  # the same action draws for both runners
        episodes += runner.sample(num_timesteps=steps, explore=explore)
    return [e.to_numpy() for e in episodes]


def _assert_same_episodes(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.t_started, len(a), a.is_done) == (b.t_started, len(b), b.is_done)
        tree.map_structure(
            np.testing.assert_array_equal, a.get_observations(), b.get_observations()
        )
        np.testing.assert_array_equal(a.get_actions(), b.get_actions())
        assert a.get_actions().dtype == b.get_actions().dtype
        np.testing.assert_array_equal(a.get_rewards(), b.get_rewards())
        assert set(a.extra_model_outputs) == set(b.extra_model_outputs)
        for key in a.extra_model_outputs:
            got, want = a.get_extra_model_outputs(key), b.get_extra_model_outputs(key)
            tree.map_structure(
                lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6), got, want
            )
            assert tree.map_structure(lambda x: np.asarray(x).dtype, got) == tree.map_structure(
                lambda x: np.asarray(x).dtype, want
            ), key


@pytest.mark.parametrize(
    "env, core, explore, env_kwargs, model",
    [
        ("MiniPacman-Viewport-v0", "rmc", True, {}, {}),
        ("MiniPacman-Viewport-v0", "lstm", False, {}, {}),
        ("rmc_agents.rl.toy_envs:CueRecallDict", "rmc", True, {"mission": False}, {}),
        ("CartPole-v1", "mlp", True, {}, {}),
        ("CartPole-v1", "gru", True, {}, {}),
        ("tests.rl.test_connectors:Float64CartPole", "rmc", True, {}, {}),
        ("Blackjack-v1", "lstm", True, {}, {}),  # a Tuple of Discrete parts
        ("rmc_agents.rl.toy_envs:CueRecall", "rmc", True, {}, {"prev_action": True}),
        ("rmc_agents.rl.toy_envs:CueRecall", "gru", True, {}, {"prev_reward": True}),
    ],
)
def test_one_pass_connectors_record_what_rllibs_pipelines_record(
    env, core, explore, env_kwargs, model
):
    ours_config, rllib_config = _configs(env, core, env_kwargs, **model)
    ours, theirs = LeanEnvRunner(config=ours_config), SingleAgentEnvRunner(config=rllib_config)
    try:
        first = [PreviousActionsRewards] if model else []
        assert _connector_types(ours) == ([*first, BatchForModule], [ActionsToEnv])
        assert BatchForModule not in _connector_types(theirs)[0]
        theirs.module.set_state(ours.module.get_state())
        calls, steps = 4, 23
        got = _sample(ours, calls, steps, explore)
        want = _sample(theirs, calls, steps, explore)
        if core != "mlp" and env != "Blackjack-v1":  # (a Blackjack hand lasts 1-3 steps)
            assert any(e.t_started > 0 for e in got), "no continuation chunk"
        _assert_same_episodes(got, want)
        if "Pacman" not in env:  # (Mini-Pacman's episodes outlast these 92 steps per env)
            assert sum(e.is_done for e in got) >= 2, "too few resets"
    finally:
        ours.stop()
        theirs.stop()


def test_rllibs_pipelines_are_kept_where_the_one_pass_pieces_do_not_apply():
    """Text parts and Box actions: RLlib's default pieces."""
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert not fast_connectors_apply(box, box)
    assert fast_connectors_apply(box, gym.spaces.MultiDiscrete([2, 3]))
    text = gym.spaces.Dict({"x": box, "t": gym.spaces.Text(5)})
    assert not fast_connectors_apply(text, gym.spaces.Discrete(3))
    config, _ = _configs("rmc_agents.rl.toy_envs:CueRecallDict", "rmc")  # with its Text part
    runner = SingleAgentEnvRunner(config=config)
    try:
        to_module, to_env = _connector_types(runner)
        assert BatchForModule not in to_module and ActionsToEnv not in to_env
        assert len(runner.sample(num_timesteps=20)) > 0
    finally:
        runner.stop()

    config, _ = _configs("Pendulum-v1", "gru")
    runner = SingleAgentEnvRunner(config=config)
    try:
        to_module, to_env = _connector_types(runner)
        assert BatchForModule not in to_module and ActionsToEnv not in to_env
        episodes = runner.sample(num_timesteps=12)
        actions = np.concatenate([e.to_numpy().get_actions() for e in episodes])
        assert actions.shape[1:] == (1,)
    finally:
        runner.stop()


def test_lean_env_runner_ships_no_step_infos_but_callbacks_see_them():
    seen: list[dict] = []

    def on_episode_step(*, episode, **kwargs):
        seen.append(episode.get_infos(-1))

    config, _ = _configs("MiniPacman-Viewport-v0", "rmc")
    config.callbacks(on_episode_step=on_episode_step)
    runner = config.env_runner_cls(config=config)
    try:
        assert isinstance(runner, LeanEnvRunner)
        episodes = runner.sample(num_timesteps=40)
        assert seen and all("score" in info for info in seen)
        for episode in episodes:
            infos = episode.get_infos()
            assert len(infos) == len(episode) + 1  # one per observation, as before
            assert all(info == {} for info in infos)
    finally:
        runner.stop()

    run = RunSettings(env="MiniPacman-Viewport-v0")
    run.training.step_infos_to_learner = True
    assert build_algo_config(run).env_runner_cls is not LeanEnvRunner


def test_sample_categorical_gives_rllibs_draws_and_log_probabilities():
    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical

    from rmc_agents.rl.connectors import sample_categorical

    logits = torch.randn(64, 1, 5) * 4
    logits[0, 0] = torch.tensor([30.0, -30.0, 0.0, 0.0, 1.0])  # near one-hot rows too
    torch.manual_seed(7)
    actions, logp = sample_categorical(logits)
    torch.manual_seed(7)
    dist = TorchCategorical.from_logits(logits)
    want = dist.sample()
    assert actions.shape == want.shape == (64, 1) and actions.dtype == want.dtype
    assert torch.equal(actions, want)
    assert torch.equal(logp, dist.logp(want))
    assert len(set(actions.flatten().tolist())) > 2  # (the draws vary)
