"""The shipped RL configs load, name an env that resolves, and keep one learner chunk per unroll."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmc_agents.config import load_config
from rmc_agents.rl.envs import resolve_env
from rmc_agents.rl.settings import RunSettings

REPO = Path(__file__).resolve().parents[2]
SUPERVISED = ("nth_farthest", "learning_to_execute", "language_model")
RL_CONFIGS = sorted(
    p for p in (REPO / "configs").glob("*.yaml") if not p.stem.startswith(SUPERVISED)
)


def test_there_are_rl_configs() -> None:
    names = {p.stem for p in RL_CONFIGS}
    assert {"impala_default", "minipacman_viewport_rmc", "minipacman_viewport_lstm"} <= names


@pytest.mark.parametrize("path", RL_CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_is_consistent(path: Path) -> None:
    run = load_config(RunSettings, path)
    resolve_env(run.env)  # raises EnvResolutionError for an id that does not resolve
    # An EnvRunner fragment can hold one step more than the unroll and IMPALA's learner appends a
    # bootstrap step: a shorter max_seq_len splits every fragment into two padded chunks.
    assert run.model.max_seq_len >= run.training.rollout_fragment_length + 2
    if run.training.anneal_lr:  # the schedule ends at stop.timesteps: it must be set
        assert run.stop.timesteps


@pytest.mark.parametrize(
    "factors, anneal, match",
    [
        ([[0, 1.0]], False, "two or more"),
        ([[5, 1.0], [10, 2.0]], False, "start at frame 0, got 5"),
        ([[0, 1.0], [10, 2.0], [10, 3.0]], False, r"frames must increase, got \[0, 10, 10\]"),
        ([[0, 1.0], [10, -2.0]], False, "factors must be >= 0"),
        ([[0, 1.0], [10, 2.0]], True, "lr_factors or training.anneal_lr, not both"),
    ],
)
def test_a_bad_lr_schedule_is_refused_with_what_is_wrong(factors, anneal, match) -> None:
    from rmc_agents.rl.settings import TrainingSettings

    with pytest.raises(ValueError, match=match):
        TrainingSettings(lr_factors=factors, anneal_lr=anneal).validate()
    if not anneal:  # the entropy schedule is checked the same way
        with pytest.raises(ValueError, match="training.entropy_factors"):
            TrainingSettings(entropy_factors=factors).validate()


def test_lr_and_entropy_factors_become_rllibs_schedules_in_absolute_values() -> None:
    from rmc_agents.rl.algorithms import build_algo_config

    run = RunSettings()
    run.training.lr = 2e-3
    run.training.lr_factors = [(0, 1.0), (1000, 0.5), (3000, 2.0)]
    run.training.entropy_coeff = 0.02
    run.training.entropy_factors = [(0, 1.0), (2000, 0.25)]
    run.validate()
    config = build_algo_config(run)
    assert config.lr == [[0, 2e-3], [1000, 1e-3], [3000, 4e-3]]
    assert config.entropy_coeff == [[0, 0.02], [2000, 0.005]]


def test_the_default_file_holds_the_built_in_values() -> None:
    """...and lists every key, as its header says (a new setting is documented there too)."""
    import yaml

    from rmc_agents.config import config_to_dict

    path = REPO / "configs" / "impala_default.yaml"
    assert load_config(RunSettings, path) == RunSettings()

    def keys(mapping: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in mapping.items():
            out.add(prefix + key)
            if isinstance(value, dict) and key != "env_kwargs":  # env_kwargs: the user's keys
                out |= keys(value, f"{prefix}{key}.")
        return out

    assert keys(config_to_dict(RunSettings())) == keys(yaml.safe_load(path.read_text()))


def test_runner_requests_and_driver_threads_reach_rllib_and_torch() -> None:
    import torch

    from rmc_agents.config import ConfigError
    from rmc_agents.rl.algorithms import build_algo_config, set_driver_threads

    run = load_config(
        RunSettings,
        overrides={"resources.requests_in_flight_per_runner": 2, "resources.driver_threads": 2},
    )
    assert build_algo_config(run).max_requests_in_flight_per_env_runner == 2
    before = torch.get_num_threads()
    try:
        set_driver_threads(run)
        assert torch.get_num_threads() == 2
        run.resources.driver_threads = 1
        set_driver_threads(run)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for key in ("resources.driver_threads", "resources.requests_in_flight_per_runner"):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            load_config(RunSettings, overrides={key: 0})


@pytest.mark.parametrize(
    "env, scale, want",
    [
        ("MiniPacman-Viewport-v0", None, 0.1),
        ("MiniPacman-Full-v0", None, 0.1),
        ("minipacman:MiniPacman-Full-v0", None, 0.1),
        ("envs:MiniPacman-Full-v0", None, 0.1),  # the prefix from before the rename
        ("CartPole-v1", None, 1.0),
        ("MiniPacman-Viewport-v0", 0.5, 0.5),
    ],
)
def test_value_targets_settings_reach_the_learner(env, scale, want) -> None:
    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.optim import AgentLearner
    from rmc_agents.rl.vtrace import BootstrapVTraceLearner

    run = load_config(
        RunSettings, overrides={"env": env, "algo": "impala", "training.reward_scale": scale}
    )
    config = build_algo_config(run)
    assert issubclass(config.learner_class, BootstrapVTraceLearner)
    assert config.learner_class is AgentLearner
    assert config.learner_config_dict["reward_scale"] == want
    assert config.learner_config_dict["vtrace"] == "bootstrap"


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("training.vtrace", "stock", "vtrace"),
        ("training.reward_scale", 0.0, "reward_scale"),
        ("training.reward_scale", -1.0, "reward_scale"),
    ],
)
def test_bad_value_target_settings_are_refused(key, value, match) -> None:
    from rmc_agents.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        load_config(RunSettings, overrides={key: value})
