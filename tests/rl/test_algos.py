"""APPO and PPO beside IMPALA: the same module, value targets that bootstrap at fragment cuts,
training, checkpoints, resume, rollouts and the recurrent state across learner chunks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ray.rllib.core.columns import Columns

from rmc_agents.config import load_config
from rmc_agents.rl.settings import RunSettings
from rmc_agents.rl.trainer import train

from .references import (
    Traj,
    flat_layout,
    gae_reference,
    module_values,
    rllib_layout,
    sample_learner_batch,
)
from .test_training import BROKEN_MEMORY_BOUND, CUE_SETTINGS, assert_trained_steps_rise


def test_builder_gives_each_algorithm_its_learner_and_settings():
    from ray.rllib.algorithms.appo import APPOConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.fault_tolerance import FaultTolerantAPPO, FaultTolerantIMPALA
    from rmc_agents.rl.optim import AgentAPPOLearner, AgentLearner, AgentPPOLearner

    base = {"env": "CartPole-v1", "training.lr": 0.001}
    ppo = build_algo_config(
        load_config(
            RunSettings,
            overrides={**base, "algo": "ppo", "ppo.num_epochs": 3, "ppo.gae_lambda": 0.9},
        )
    )
    assert isinstance(ppo, PPOConfig) and ppo.learner_class is AgentPPOLearner
    assert (ppo.num_epochs, ppo.lambda_, ppo.lr) == (3, 0.9, 0.001)
    appo = build_algo_config(
        load_config(RunSettings, overrides={**base, "algo": "appo", "appo.replays_per_batch": 3})
    )
    assert isinstance(appo, APPOConfig) and appo.learner_class is AgentAPPOLearner
    assert appo.algo_class is FaultTolerantAPPO and appo.circular_buffer_iterations_per_batch == 3
    impala = build_algo_config(load_config(RunSettings, overrides={**base, "algo": "impala"}))
    assert impala.learner_class is AgentLearner and impala.algo_class is FaultTolerantIMPALA


def test_auto_picks_impala_on_mini_pacman_and_ppo_elsewhere_with_each_ones_defaults():
    from ray.rllib.algorithms.impala import IMPALAConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    from rmc_agents.rl.algorithms import build_algo_config

    pacman = load_config(RunSettings)
    assert pacman.algo == "auto" and pacman.algorithm == "impala"
    config = build_algo_config(pacman)
    assert isinstance(config, IMPALAConfig) and not isinstance(config, PPOConfig)
    assert (config.lr, config.entropy_coeff, config.train_batch_size_per_learner) == (
        6e-4,
        0.01,
        640,
    )
    other = load_config(
        RunSettings, overrides={"env": "CartPole-v1", "resources.envs_per_runner": 8}
    )
    assert other.algorithm == "ppo"
    config = build_algo_config(other)
    assert isinstance(config, PPOConfig)
    # one round of fragments (1 runner x 8 envs x 20 steps), halves of it, 10 passes
    assert (config.train_batch_size_per_learner, config.minibatch_size) == (160, 80)
    assert (config.num_epochs, config.lr, config.entropy_coeff) == (10, 3e-4, 0.0)
    # explicit values win over the per-algorithm defaults
    mine = load_config(
        RunSettings,
        overrides={"env": "CartPole-v1", "algo": "impala", "training.lr": 0.01,
                   "training.entropy_coeff": 0.5, "training.train_batch_size": 320},
    )  # fmt: skip
    config = build_algo_config(mine)
    assert (config.lr, config.entropy_coeff, config.train_batch_size_per_learner) == (
        0.01,
        0.5,
        320,
    )


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("algo", "dqn", "algo"),
        ("ppo.num_epochs", 0, "num_epochs"),
        ("ppo.gae_lambda", 1.5, "gae_lambda"),
        ("appo.tau", 0.0, "tau"),
        ("ppo.minibatch_size", 10_000, "minibatch_size"),
    ],
)
def test_bad_algorithm_settings_are_refused(key, value, match):
    from rmc_agents.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        load_config(RunSettings, overrides={"algo": "ppo", key: value})


# --- PPO's GAE targets bootstrap at fragment cuts (RLlib's, checked) ----------------------------


@pytest.mark.parametrize("core", ["lstm", "mlp"])
def test_ppo_value_targets_are_gae_with_bootstrap_at_cuts(core):
    """RLlib 2.60's GAE connector on real episodes (terminations, cuts, multi-chunk fragments):
    its value targets equal GAE per fragment with ``V(x_{s+n})`` of the step after each cut."""
    run = load_config(
        RunSettings,
        overrides={
            "env": "CartPole-v1",
            "algo": "ppo",
            "seed": 5,
            "model.core": core,
            "model.hidden_size": 16,
            "model.max_seq_len": 4,
            "training.rollout_fragment_length": 10,
            "training.train_batch_size": 30,  # PPO: one fragment from each of the 3 envs
            "ppo.minibatch_size": 30,
            "ppo.gae_lambda": 0.9,
            "resources.num_env_runners": 0,
            "resources.envs_per_runner": 3,
        },
    )
    batch, info, module = sample_learner_batch(run, learner=True)
    assert sum(t for _, t, _ in info) >= 2 and sum(not t for _, t, _ in info) >= 2
    trajs = [Traj(r, np.zeros(n), 0.0, np.zeros(n), t) for n, t, r in info]
    values = module_values(module, batch).double().numpy()
    targets = np.asarray(batch[Columns.VALUE_TARGETS], np.float64)
    if core == "mlp":  # flat: episodes back to back
        _, where = flat_layout(trajs, np.random.default_rng(0))
        index = [[(i,) for i in steps] for steps in where]
        after = [(steps[-1][0] + 1,) for steps in index]
    else:
        _, where = rllib_layout(trajs, run.model.max_seq_len, np.random.default_rng(0))
        index = where
        width = values.shape[1]
        after = [(r, c + 1) if c + 1 < width else (r + 1, 0) for r, c in (s[-1] for s in where)]
    for traj, steps, boot in zip(trajs, index, after, strict=True):
        traj.values = np.array([values[s] for s in steps])
        traj.bootstrap = float(values[boot])
        want = gae_reference(traj, run.training.gamma, run.ppo.gae_lambda)
        got = np.array([targets[s] for s in steps])
        np.testing.assert_allclose(got, want, atol=1e-4)


# APPO's loss, term by term: tests/rl/test_vtrace.py::test_appo_learner_loss_is_the_appo_loss_on_these_targets


# --- training, checkpoints, resume, rollouts ---------------------------------------------------


@pytest.mark.parametrize("algo", ["appo", "ppo"])
def test_algo_trains_resumes_and_its_checkpoint_plays(ray_cluster, tmp_path, tiny, algo):
    from rmc_agents.rl.trainer import load_run_settings

    overrides = {
        **tiny,
        "env": "CartPole-v1",
        "algo": algo,
        "model.core": "rmc",
        "model.max_seq_len": 6,  # fragments of 32 steps span several learner chunks
        "training.rollout_fragment_length": 32,
        "training.train_batch_size": 256,  # 8 envs x 32 steps
        "ppo.minibatch_size": 64,
        "ppo.num_epochs": 2,
        "stop.iterations": 2,
    }
    out = tmp_path / algo
    first = train(load_config(RunSettings, overrides=overrides), out, log=lambda line: None)
    assert first["iterations"] == 2 and first["env_steps_trained"] > 0
    run = load_run_settings(out)
    assert run.algo == algo
    run.stop.iterations = 4
    second = train(run, out, resume=True, log=lambda line: None)
    assert second["iterations"] == 4 and second["env_steps"] > first["env_steps"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 4

    from rmc_agents.rollout import main as rollout_main

    assert rollout_main(["--checkpoint", str(out), "--episodes", "1", "--seed", "0"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["appo", "ppo"])
def test_memory_carries_across_chunks_with_each_algo(ray_cluster, tmp_path, tiny, algo):
    """CueRecall in chunks of 4 (see test_training): only a state carried across chunks scores
    above the broken-memory bound."""
    overrides = {
        **tiny,
        **CUE_SETTINGS,
        "algo": algo,
        "model.core": "lstm",
        "stop.timesteps": 80_000,
        "stop.reward": 0.9,
        "ppo.minibatch_size": 80,
        "ppo.num_epochs": 4,
    }
    if algo == "ppo":
        overrides["training.lr"] = 0.002
    summary = train(
        load_config(RunSettings, overrides=overrides), tmp_path / algo, log=lambda line: None
    )
    assert summary["best_episode_return_mean"] >= 0.9 > BROKEN_MEMORY_BOUND, summary
    import csv

    with (tmp_path / algo / "progress.csv").open() as f:
        assert_trained_steps_rise(list(csv.DictReader(f)))


@pytest.mark.slow
def test_popgym_table_runs_and_tabulates(tmp_path):
    """``bench/popgym_table.py`` on one POPGym env, two models, a tiny budget: a table with a
    value per model (skipped without POPGym)."""
    import subprocess
    import sys

    pytest.importorskip("popgym")
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "popgym"
    proc = subprocess.run(
        [sys.executable, str(repo / "bench" / "popgym_table.py"), "--envs", "RepeatPreviousEasy"]
        + ["--models", "lstm,mlp", "--frames", "1500", "--seeds", "0", "--out", str(out)]
        + ["--set", "min_time_s_per_iteration=0", "--set", "ppo.num_epochs=1"]
        # configs/popgym.yaml with 8 envs: batches of 160, so 52-step episodes end within budget
        + ["--set", "resources.envs_per_runner=8", "--set", "training.train_batch_size=null"]
        + ["--set", "ppo.minibatch_size=null"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = (out / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| RepeatPreviousEasy"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert len(cells) == 2 and all(c != "-" for c in cells)
    results = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in results} == {"lstm", "mlp"}
