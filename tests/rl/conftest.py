"""Ray for the RL tests: one small local cluster per module, always shut down."""

from __future__ import annotations

import warnings

import pytest


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
