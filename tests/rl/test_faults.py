"""Faults a long run meets: a killed EnvRunner, a killed driver, a half-written checkpoint,
non-finite losses and gradients."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cluster.procs import descendants, wait_gone

from rmc_agents.rl.checkpoints import MODULE_STATE, checkpoint_weights, verify_checkpoint
from rmc_agents.rl.errors import CheckpointError, NonFiniteUpdateError
from rmc_agents.rl.fault_tolerance import FaultTolerantIMPALA
from rmc_agents.rl.trainer import TrainingError, _save_checkpoint, prepare_output

REPO = Path(__file__).resolve().parents[2]

TINY_YAML = """\
env: CartPole-v1
algo: impala
model: {core: gru, hidden_size: 16, mlp_hiddens: [16]}
training: {train_batch_size: 80, rollout_fragment_length: 20}
resources: {num_env_runners: 1, envs_per_runner: 2, num_cpus: 2}
min_time_s_per_iteration: 0
min_sample_timesteps_per_iteration: 200
stall_seconds: 120
"""


def env_for_subprocess() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(SDL_AUDIODRIVER="dummy", RAY_USAGE_STATS_ENABLED="0")
    return env


def read_rows(output: Path) -> list[dict[str, str]]:
    with (output / "progress.csv").open() as f:
        return list(csv.DictReader(f))


# --- checkpoints are atomic ------------------------------------------------------------------


def fake_checkpoint(path: Path, env_steps: int) -> Path:
    """A checkpoint with the files the trainer writes (tiny, readable contents)."""
    for rel in ("rllib_checkpoint.json", "trainer_progress.json"):
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
    (path / "rllib_checkpoint.json").write_text(json.dumps({"checkpoint_version": "2.1"}))
    (path / "trainer_progress.json").write_text(json.dumps({"env_steps": env_steps}))
    (path / "algorithm_state.pkl").write_bytes(pickle.dumps({"training_iteration": 1}))
    (path / MODULE_STATE).parent.mkdir(parents=True, exist_ok=True)
    (path / MODULE_STATE).write_bytes(pickle.dumps({"w": np.full(3, float(env_steps))}))
    return path


class CrashingAlgo:
    """Writes part of a checkpoint, then dies (like a driver killed in the middle of a save)."""

    def save_to_path(self, path: str) -> None:
        Path(path, "learner_group").mkdir(parents=True)
        Path(path, "learner_group", "state.pkl").write_bytes(b"\x80\x04half")
        raise KeyboardInterrupt("killed while saving")


def test_a_save_that_dies_halfway_leaves_the_last_checkpoint_in_place(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    fake_checkpoint(run / "checkpoint", env_steps=500)
    before = (run / "checkpoint" / "trainer_progress.json").read_text()
    with pytest.raises(KeyboardInterrupt):
        _save_checkpoint(CrashingAlgo(), run, {"env_steps": 900})
    assert (run / "checkpoint.tmp").is_dir()  # the half-written one is there ...
    assert (run / "checkpoint" / "trainer_progress.json").read_text() == before
    assert prepare_output(run, resume=True, overwrite=False) == run / "checkpoint"  # ... unused
    assert verify_checkpoint(run / "checkpoint")["env_steps"] == 500


def test_a_half_written_checkpoint_alone_is_never_resumed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    partial = fake_checkpoint(run / "checkpoint.tmp", env_steps=900)
    (partial / "trainer_progress.json").unlink()  # the trainer writes this file last
    with pytest.raises(TrainingError, match="no checkpoint"):
        prepare_output(run, resume=True, overwrite=False)


def test_a_crash_between_the_renames_resumes_the_previous_checkpoint(tmp_path):
    # _save_checkpoint: checkpoint -> checkpoint.old, then checkpoint.tmp -> checkpoint.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    fake_checkpoint(run / "checkpoint.old", env_steps=500)
    fake_checkpoint(run / "checkpoint.tmp", env_steps=900)
    assert prepare_output(run, resume=True, overwrite=False) == run / "checkpoint.old"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda c: (c / MODULE_STATE).write_bytes(b"\x80\x04\x95trunc"), "module_state.pkl"),
        (lambda c: (c / "algorithm_state.pkl").unlink(), "algorithm_state.pkl is missing"),
        (lambda c: (c / "rllib_checkpoint.json").write_text("{"), "rllib_checkpoint.json"),
        (lambda c: (c / "trainer_progress.json").write_text("[]"), "env_steps"),
    ],
    ids=["truncated_weights", "missing_state", "bad_json", "bad_progress"],
)
def test_verify_checkpoint_names_the_damaged_file(tmp_path, damage, message):
    ckpt = fake_checkpoint(tmp_path / "checkpoint", env_steps=10)
    assert verify_checkpoint(ckpt)["env_steps"] == 10
    damage(ckpt)
    with pytest.raises(CheckpointError, match=message):
        verify_checkpoint(ckpt)


# --- the driver SIGKILLed, then --resume -----------------------------------------------------

RESUME_PROBE = """\
import pickle, sys
from ray.rllib.algorithms.algorithm import Algorithm

restore = Algorithm.restore_from_path

def probed(self, path, *args, **kwargs):
    out = restore(self, path, *args, **kwargs)
    learner = self.learner_group.get_weights()["default_policy"]
    optimizer = self.learner_group.get_state(components="learner/optimizer")
    sampled = self.env_runner_group.foreach_env_runner(
        lambda r: r.get_state()["num_env_steps_sampled_lifetime"], local_env_runner=False
    )
    with open(sys.argv[1], "wb") as f:
        pickle.dump({"weights": {k: v.detach().cpu().numpy() if hasattr(v, "detach") else v
                                 for k, v in learner.items()},
                     "optimizer": optimizer["learner"]["optimizer"],
                     "sampled": sampled}, f)
    return out

Algorithm.restore_from_path = probed
from rmc_agents.rl.cli import main
sys.exit(main(sys.argv[2:]))
"""


def wait_for_checkpoint(output: Path, proc: subprocess.Popen, count: int, timeout: float) -> None:
    """Wait until the run has written ``count`` checkpoints (seen by their progress files)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    progress = output / "checkpoint" / "trainer_progress.json"
    while time.monotonic() < deadline and len(seen) < count:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early with {proc.returncode}")
        try:
            seen.add(progress.read_text())
        except OSError:
            pass
        time.sleep(0.2)
    assert len(seen) >= count, f"only {len(seen)} checkpoints in {timeout:.0f} s"


@pytest.mark.slow
def test_driver_killed_mid_run_resumes_from_its_last_checkpoint(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_YAML + "checkpoint_every_seconds: 0.5\n")
    out = tmp_path / "run"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        [sys.executable, str(REPO / "train_agent.py"), "--config", str(cfg)]
        + ["--output", str(out), "--stop-iterations", "100000", "--seed", "5"],
        env=env_for_subprocess(),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    ray_procs: list[int] = []
    try:
        wait_for_checkpoint(out, first, count=2, timeout=240)
        ray_procs = descendants(first.pid)  # the local Ray it started: GCS, raylet, workers
        assert ray_procs, "the driver should have started Ray processes"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        # Nothing of that run survives (they shared its session); end any straggler by pid.
        left = wait_gone(ray_procs, 20)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not wait_gone(left, 10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        for pid in wait_gone(ray_procs, 0):
            os.kill(pid, signal.SIGKILL)
        log.close()

    # A checkpoint may have been mid-save when the driver died: resume picks the last whole one.
    kept = prepare_output(out, resume=True, overwrite=False)
    saved = verify_checkpoint(kept)
    saved_weights = checkpoint_weights(kept)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(kept, snapshot)
    rows_before = read_rows(out)
    assert saved["env_steps"] > 0 and saved["iterations"] >= 1
    # The killed run may or may not have logged past its last checkpoint: make sure it did, with a
    # row from "after" the checkpoint (as a run killed later would leave), which must not survive.
    stale = dict(rows_before[-1], iteration=str(int(rows_before[-1]["iteration"]) + 1))
    stale["env_steps"] = str(int(rows_before[-1]["env_steps"]) + 10**6)
    with (out / "progress.csv").open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows_before[0])).writerow(stale)
    rows_before = read_rows(out)
    assert len(rows_before) > saved["iterations"]

    probe = tmp_path / "probe.py"
    probe.write_text(RESUME_PROBE)
    restored_path = tmp_path / "restored.pkl"
    stop_at = saved["iterations"] + 2
    second = subprocess.run(
        [sys.executable, str(probe), str(restored_path), "--output", str(out), "--resume"]
        + ["--stop-iterations", str(stop_at)],
        env=env_for_subprocess(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"at {saved['env_steps']:,} env steps" in second.stdout

    # Weights, optimizer state (Adam's moments and step) and the EnvRunner's counter right after
    # the restore are the checkpoint's, exactly.
    probe_out = pickle.loads(restored_path.read_bytes())
    restored = probe_out["weights"]
    assert set(restored) == set(saved_weights)
    for name, value in saved_weights.items():
        np.testing.assert_array_equal(np.asarray(restored[name]), value, err_msg=name)
    saved_learner = pickle.loads((snapshot / "learner_group/learner/state.pkl").read_bytes())
    want_opt = saved_learner["optimizer"]["default_policy_default_optimizer"]["state"]
    got_opt = probe_out["optimizer"]["default_policy_default_optimizer"]["state"]
    assert set(got_opt["state"]) == set(want_opt["state"]) and want_opt["state"]
    for pid, moments in want_opt["state"].items():
        for key, value in moments.items():
            np.testing.assert_array_equal(
                np.asarray(got_opt["state"][pid][key]), np.asarray(value), err_msg=f"{pid}/{key}"
            )
    runner_state = pickle.loads((snapshot / "env_runner/state.pkl").read_bytes())
    assert probe_out["sampled"] and all(
        n >= runner_state["num_env_steps_sampled_lifetime"] for n in probe_out["sampled"]
    )

    # Counters continue from the checkpoint: iterations and env steps go on rising.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == stop_at
    assert summary["env_steps"] > saved["env_steps"]
    new_rows = read_rows(out)[saved["iterations"] :]
    assert [int(r["iteration"]) for r in new_rows] == list(
        range(saved["iterations"] + 1, stop_at + 1)
    )
    steps = [int(r["env_steps"]) for r in new_rows]
    assert steps[0] > saved["env_steps"] and steps == sorted(steps)
    assert verify_checkpoint(out / "checkpoint")["env_steps"] == summary["env_steps"]
    # The record never goes back in time: rows written after the checkpoint (the killed run went
    # on past it) are gone; iterations and env steps rise strictly through the kill and resume,
    # and progress.csv ends where summary.json does.
    rows = read_rows(out)
    assert [int(r["iteration"]) for r in rows] == list(range(1, stop_at + 1))
    all_steps = [int(r["env_steps"]) for r in rows]
    assert all(a < b for a, b in zip(all_steps[:-1], all_steps[1:], strict=True)), all_steps
    assert rows[: saved["iterations"]] == rows_before[: saved["iterations"]]
    assert (
        all_steps[-1] == summary["env_steps"]
        and int(rows[-1]["iteration"]) == summary["iterations"]
    )
    assert summary["resumed_from_env_steps"] == saved["env_steps"]
    assert summary["session_env_steps"] == summary["env_steps"] - saved["env_steps"]
    assert "env steps in all" in second.stdout and "of them in this session" in second.stdout
    assert verify_checkpoint(snapshot) == saved  # the copy we compared against was whole


# --- an EnvRunner killed mid-run -------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_env_runner_is_restarted_and_training_goes_on(
    ray_cluster, tmp_path, tiny, monkeypatch
):
    import rmc_agents.rl.algorithms as impala
    from rmc_agents.config import load_config
    from rmc_agents.rl.settings import RunSettings
    from rmc_agents.rl.trainer import train

    kill_after = 3
    events: dict[str, object] = {"pids": []}

    def runner_pids(algorithm) -> list[int]:
        return algorithm.env_runner_group.foreach_env_runner(
            lambda runner: os.getpid(), local_env_runner=False
        )

    def on_train_result(*, algorithm, result, **kwargs) -> None:
        pids = runner_pids(algorithm)
        events["pids"].append(pids)
        if result["training_iteration"] == kill_after:
            events["killed"] = pids[0]
            os.kill(pids[0], signal.SIGKILL)  # the EnvRunner's process ends, no goodbye

    build = impala.build_algo_config

    def with_callback(run):
        config = build(run).callbacks(on_train_result=on_train_result)
        assert config.algo_class is FaultTolerantIMPALA  # without it the run dies at the kill
        return config

    monkeypatch.setattr(impala, "build_algo_config", with_callback)
    run = load_config(
        RunSettings,
        overrides={
            **tiny,
            "env": "CartPole-v1",
            "algo": "impala",
            "model.core": "gru",
            "stop.iterations": 8,
        },  # fmt: skip
    )
    run.resources.envs_per_runner = 2
    run.min_sample_timesteps_per_iteration = 200
    summary = train(run, tmp_path / "run", log=lambda line: None)

    assert summary["stopped_because"].startswith("iterations")
    killed = events["killed"]
    after = events["pids"][kill_after:]
    assert after and after[-1] and killed not in after[-1], events  # a new process took over
    rows = read_rows(tmp_path / "run")
    steps = [int(r["env_steps"]) for r in rows]
    trained = [int(r["env_steps_trained"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] > steps[kill_after - 1], steps
    assert trained[-1] > trained[kill_after - 1], trained  # the learner got the new samples


# --- non-finite loss or gradients ------------------------------------------------------------


@pytest.fixture(scope="module")
def guard_learner():
    """A built :class:`NonFiniteGuardLearner` (no Ray needed) for a tiny policy."""
    import gymnasium as gym
    from ray.rllib.algorithms.impala import IMPALAConfig

    from rmc_agents.rl.algorithms import module_spec
    from rmc_agents.rl.fault_tolerance import NonFiniteGuardLearner
    from rmc_agents.rl.settings import RunSettings

    run_settings = RunSettings()
    run_settings.model.core = "mlp"
    run_settings.model.hidden_size = 8
    config = (
        IMPALAConfig()
        .environment(
            observation_space=gym.spaces.Box(-1, 1, (3,), np.float32),
            action_space=gym.spaces.Discrete(2),
        )
        .rl_module(rl_module_spec=module_spec(run_settings))
        .learners(learner_class=NonFiniteGuardLearner)
    )
    learner = config.build_learner()
    yield learner
    learner.shutdown()


def _weights(learner) -> dict[str, np.ndarray]:
    module = learner.module["default_policy"]
    return {k: v.detach().clone().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_guard_refuses_a_non_finite_loss_and_keeps_the_weights(guard_learner, bad):
    guard_learner._non_finite = None
    module = guard_learner.module["default_policy"]
    before = _weights(guard_learner)
    loss = sum(p.sum() for p in module.parameters()) * bad
    with pytest.raises(NonFiniteUpdateError, match="non-finite loss .* not applied"):
        guard_learner.compute_gradients({"default_policy": loss})
    assert all(p.grad is None for p in module.parameters())
    for name, value in _weights(guard_learner).items():
        np.testing.assert_array_equal(value, before[name])


def test_guard_refuses_a_non_finite_gradient_and_names_the_parameter(guard_learner):
    import torch

    module = guard_learner.module["default_policy"]
    guard_learner._non_finite = None
    weight = module.pi.weight
    # finite at the forward pass, infinite slope: d sqrt(x)/dx at x = 0
    loss = torch.sqrt((weight * 0.0).sum().abs())
    with pytest.raises(
        NonFiniteUpdateError, match="gradient in parameter 'default_policy/pi.weight'"
    ):
        guard_learner.compute_gradients({"default_policy": loss})
    guard_learner._non_finite = None


def test_non_finite_cause_is_found_behind_a_remote_error():
    from ray.exceptions import RayTaskError

    from rmc_agents.rl.errors import non_finite_cause

    inner = NonFiniteUpdateError("non-finite loss (nan)")
    wrapped = RayTaskError("update", "traceback text", inner)
    assert non_finite_cause(wrapped) is inner
    assert non_finite_cause(wrapped.as_instanceof_cause()) is inner  # how ray.get raises it
    try:
        try:
            raise inner
        except NonFiniteUpdateError as exc:
            raise RuntimeError("train() failed") from exc
    except RuntimeError as outer:
        assert non_finite_cause(outer) is inner
    assert non_finite_cause(ValueError("other")) is None


def test_guard_passes_finite_updates(guard_learner):
    module = guard_learner.module["default_policy"]
    guard_learner._non_finite = None
    loss = sum((p**2).sum() for p in module.parameters())
    grads = guard_learner.compute_gradients({"default_policy": loss})
    assert grads and all(g is None or np.isfinite(g.numpy()).all() for g in grads.values())


NAN_YAML = """\
env: rmc_agents.rl.fault_envs:RewardFault
env_kwargs: {fault_after: 300, fault_reward: .nan}
model: {core: gru, hidden_size: 16, mlp_hiddens: [16]}
training: {train_batch_size: 40, rollout_fragment_length: 20}
ppo: {minibatch_size: 20, num_epochs: 2}
resources: {num_env_runners: 1, envs_per_runner: 2, num_cpus: 2}
min_time_s_per_iteration: 0
min_sample_timesteps_per_iteration: 100
checkpoint_every_seconds: 0.01
stall_seconds: 120
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "learners, algo",
    [("0", "impala"), ("1", "impala"), ("0", "appo"), ("0", "ppo")],
    ids=["learner_in_driver", "remote_learner", "appo", "ppo"],
)
def test_nan_rewards_stop_the_run_with_a_clear_error_and_a_finite_checkpoint(
    tmp_path, learners, algo
):
    cfg = tmp_path / "nan.yaml"
    cfg.write_text(NAN_YAML)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_agent.py"), "--config", str(cfg), "--output", str(out)]
        + ["--stop-iterations", "200", "--num-learners", learners, "--algo", algo],
        env=env_for_subprocess(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite loss" in errors[0], proc.stderr[-3000:]
    assert not (out / "summary.json").exists()
    progress = verify_checkpoint(out / "checkpoint")  # the last good one, whole
    assert 0 < progress["env_steps"]
    weights = checkpoint_weights(out / "checkpoint")
    assert weights and all(np.isfinite(w).all() for w in weights.values())
