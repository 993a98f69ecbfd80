"""Ray for the RL tests: one small local cluster per module, always shut down; and one real
training run through ``train_agent.py`` shared by the CLI and rollout tests."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI_TINY_YAML = """\
model: {mem_slots: 2, head_size: 8, num_heads: 2}
resources: {num_env_runners: 1, envs_per_runner: 8, num_cpus: 2}
min_time_s_per_iteration: 0
min_sample_timesteps_per_iteration: 500
"""


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python train_agent.py ARGS`` as a user runs it (output captured)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "SDL_AUDIODRIVER": "dummy"}
    return subprocess.run(
        [sys.executable, str(ROOT / "train_agent.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
    """Two iterations of the RMC agent on Mini-Pacman (viewport, vector face) by the CLI:
    ``(process, output dir, config file)``. The CLI tests read it and resume it; the rollout tests
    play its checkpoint (one training run for both)."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(CLI_TINY_YAML)
    out = tmp / "run"
    proc = run_cli(
        "--env", "MiniPacman-Viewport-v0", "--config", str(cfg), "--stop-iterations", "2",
        "--output", str(out), "--set", "training.lr=0.0005",
        "--set", "training.lr_factors=[[0, 1.0], [1, 0.5]]",
        "--set", "training.entropy_factors=[[0, 1.0], [1, 0.25]]",
    )  # fmt: skip
    return proc, out, cfg


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if ray.is_initialized():  # pragma: no cover - left over from elsewhere
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


# Small models and budgets shared by the training tests.
_TINY = {
    "model.mem_slots": 2,
    "model.head_size": 16,
    "model.num_heads": 2,
    "model.hidden_size": 32,
    "resources.num_env_runners": 1,
    "resources.envs_per_runner": 8,
    "min_time_s_per_iteration": 0,
    "min_sample_timesteps_per_iteration": 1000,
    "stall_seconds": 300,
}


@pytest.fixture
def tiny() -> dict:
    """Overrides for a small model, one EnvRunner and short iterations."""
    return dict(_TINY)


def learner_and_batch(run):
    """A learner built from ``run`` (a ``RunSettings``, ``num_env_runners`` 0) and one train batch
    of its own play, as tensors keyed by module id: what a test needs to call
    ``learner._uncompiled_update(batch)`` by hand. The caller shuts the learner down."""
    import numpy as np
    import torch
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rmc_agents.rl.algorithms import build_algo_config

    config = build_algo_config(run)
    runner = SingleAgentEnvRunner(config=config)
    try:
        episodes = [e.to_numpy() for e in runner.sample(random_actions=False)]
        learner = config.build_learner(
            spaces={"default_policy": runner.get_spaces()["__env_single__"]}
        )
    finally:
        runner.stop()
    batch = learner._learner_connector(
        rl_module=learner.module, batch={}, episodes=episodes, shared_data={}
    )
    tensors = {
        k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v)
        for k, v in batch["default_policy"].items()
    }
    return learner, {"default_policy": tensors}
