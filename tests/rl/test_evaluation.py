"""Evaluation during training (rmc_agents.rl.evaluation): fixed seeds, columns, the best policy."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from rmc_agents.config import load_config
from rmc_agents.rl.settings import RunSettings
from rmc_agents.rl.trainer import train

SMALL = {
    "env": "CartPole-v1",
    "algo": "impala",
    "model.core": "lstm",
    "model.hidden_size": 16,
    "resources.num_env_runners": 1,
    "resources.envs_per_runner": 4,
    "min_time_s_per_iteration": 0,
    "min_sample_timesteps_per_iteration": 400,
    "evaluation.episodes": 3,
    "evaluation.max_steps": 100,
}


def test_evaluations_run_on_schedule_and_choose_the_best_policy(ray_cluster, tmp_path):
    run = load_config(RunSettings, overrides={**SMALL, "evaluation.every": 2, "stop.iterations": 5})
    out = tmp_path / "run"
    summary = train(run, out, log=lambda line: None)
    rows = list(csv.DictReader((out / "progress.csv").open()))
    evaluated = {
        int(r["iteration"]): float(r["eval/return_mean"]) for r in rows if r["eval/return_mean"]
    }
    assert sorted(evaluated) == [2, 4]
    for r in rows:
        assert (r["eval/return_std"] != "") == (int(r["iteration"]) in evaluated)
    best_iteration = max(evaluated, key=lambda i: (evaluated[i], -i))
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["iteration"] == best_iteration
    assert best["eval/return_mean"] == pytest.approx(evaluated[best_iteration])
    assert summary["best_eval_return_mean"] == pytest.approx(max(evaluated.values()))
    assert summary["eval_return_mean"] == pytest.approx(evaluated[4])


def test_an_evaluation_is_repeatable_and_follows_the_weights(ray_cluster):
    """The same weights give the same evaluation (fixed env and sampling seeds); other weights,
    another one."""
    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.evaluation import Evaluator

    run = load_config(
        RunSettings, overrides={**SMALL, "evaluation.every": 1, "evaluation.episodes": 4}
    )
    algo = build_algo_config(run).build_algo()
    try:
        evaluator = Evaluator(run, algo)
        first, again = evaluator.evaluate(), evaluator.evaluate()
        assert first == again
        weights = algo.learner_group.get_weights()
        gen = np.random.default_rng(0)
        changed = {
            mid: {k: np.asarray(v) + gen.normal(0, 0.5, np.shape(v)) for k, v in w.items()}
            for mid, w in weights.items()
        }
        changed = {
            mid: {k: v.astype(np.float32) for k, v in w.items()} for mid, w in changed.items()
        }
        algo.learner_group.set_weights(changed)
        assert evaluator.evaluate() != first
        evaluator.close()
    finally:
        algo.stop()


def test_evaluation_settings_are_checked():
    from rmc_agents.config import ConfigError

    with pytest.raises(ConfigError, match="evaluation.every must be >= 0"):
        load_config(RunSettings, overrides={"evaluation.every": -1})
    with pytest.raises(ConfigError, match="evaluation.episodes must be > 0"):
        load_config(RunSettings, overrides={"evaluation.episodes": 0})
