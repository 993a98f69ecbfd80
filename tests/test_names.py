"""The game installs as ``minipacman``: nothing named ``envs`` is installed, and a user's own
``envs.py`` neither hides the game nor is hidden by it (in a script and in ``rmc-train``'s Ray
processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

USER_ENVS_PY = 'WHO = "the user"\n'


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def test_nothing_named_envs_is_installed(tmp_path):
    proc = _python("import importlib.util; print(importlib.util.find_spec('envs'))", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"


def test_a_users_envs_py_and_the_game_live_side_by_side(tmp_path):
    (tmp_path / "envs.py").write_text(USER_ENVS_PY)
    code = """
import gymnasium as gym
import envs
import rmc_agents.rl
assert envs.WHO == "the user", envs
obs, _ = gym.make("MiniPacman-Viewport-v0").reset(seed=0)
assert obs.shape == (5, 5, 3), obs.shape
assert gym.make("minipacman:MiniPacman-Full-v0").reset(seed=0)[0].shape[:2] == (15, 19)
from rmc_agents.rl.envs import resolve_env
# the old prefix names the user's module here: it is imported, and the game's id still resolves
assert resolve_env("envs:MiniPacman-Full-v0").target == "MiniPacman-Full-v0"
print("ok")
"""
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


def test_the_old_envs_prefix_still_names_the_game_where_no_envs_module_exists(tmp_path):
    code = """
from rmc_agents.rl.envs import EnvResolutionError, resolve_env
resolved = resolve_env("envs:MiniPacman-Viewport-v0")
assert (resolved.target, resolved.has_vector_face) == ("MiniPacman-Viewport-v0", True)
try:
    resolve_env("envs:NotAGame-v0")  # only the game's own ids are read that way
except EnvResolutionError as exc:
    print(exc)
"""
    proc = _python(code, tmp_path)  # a folder with no envs module (the repository has one)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cannot import module 'envs' named in --env 'envs:NotAGame-v0'" in proc.stdout


@pytest.mark.slow
def test_rmc_train_runs_from_a_folder_with_its_own_envs_py(tmp_path):
    (tmp_path / "envs.py").write_text(USER_ENVS_PY)
    (tmp_path / "tiny.yaml").write_text(
        "model: {mem_slots: 2, head_size: 8, num_heads: 2}\n"
        "resources: {num_env_runners: 1, envs_per_runner: 8, num_cpus: 2}\n"
        "min_time_s_per_iteration: 0\nmin_sample_timesteps_per_iteration: 500\n"
    )
    rmc_train = Path(sys.executable).parent / "rmc-train"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(RAY_USAGE_STATS_ENABLED="0", SDL_AUDIODRIVER="dummy")
    proc = subprocess.run(
        [str(rmc_train), "--env", "MiniPacman-Viewport-v0", "--config", "tiny.yaml",
         "--stop-iterations", "1", "--output", "run"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["env_steps"] > 0
