"""``train_agent.py`` as a user runs it: a subprocess smoke run, --resume, and user errors."""

from __future__ import annotations

import json

import pytest

from .conftest import run_cli


@pytest.fixture
def smoke_run(cli_run):
    """The shared CLI run (``conftest.cli_run``): two iterations, then resumed by one test here."""
    return cli_run


def test_smoke_run_writes_every_output(smoke_run):
    proc, out, _ = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done:" in proc.stdout and "iter" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "env_steps",
        "episode_return_mean",
        "best_episode_return_mean",
        "frames_per_second",
        "trained_frames_per_second",
    ):
        assert key in summary
    assert summary["stopped_because"].startswith("iterations")
    assert summary["env_steps"] >= 1000 and summary["env_steps_trained"] > 0
    assert summary["frames_per_second"] > 0
    written = summary["written_with"]  # what the run was made with
    assert {"commit", "dirty"} <= set(written) and written["versions"]["torch"]
    # Both rates share the run's time: their ratio is trained / sampled steps (a fresh run).
    assert summary["trained_frames_per_second"] / summary["frames_per_second"] == pytest.approx(
        summary["env_steps_trained"] / summary["env_steps"], rel=0.02
    )
    assert "MiniPacman-Viewport-v0" in (out / "config.yaml").read_text()
    assert "lr: 0.0005" in (out / "config.yaml").read_text()  # --set reached the run
    assert len((out / "progress.csv").read_text().strip().splitlines()) == 1 + 2
    # the learner's diagnostics (rmc_agents.rl.diagnostics): the first update logs them
    import csv

    rows = list(csv.DictReader((out / "progress.csv").open()))
    for column in ("diag/policy_kl", "diag/slot_spread", "diag/forget_gate", "diag/value_ev"):
        assert any(row[column] not in ("", None) for row in rows), column
    # the schedules reached the learner: lr and the entropy bonus (IMPALA's 0.01) x their last
    # factors from the first frame on
    assert [float(row["lr"]) for row in rows] == pytest.approx([0.00025, 0.00025])
    assert [float(row["entropy_coeff"]) for row in rows] == pytest.approx([0.0025, 0.0025])
    assert any((out / "tb").iterdir())
    module_dir = out / "checkpoint" / "learner_group" / "learner" / "rl_module" / "default_policy"
    assert module_dir.is_dir()
    assert not (out / "checkpoint.tmp").exists()
    # the best iteration's policy, beside the last checkpoint
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["episode_return_mean"] == summary["best_episode_return_mean"]
    assert (out / "best" / "policy" / "module_state.pkl").is_file()
    assert (out / "best" / "config.yaml").read_text() == (out / "config.yaml").read_text()


def test_the_best_policy_plays(smoke_run):
    from rmc_agents.rollout import main as rollout_main

    _, out, _ = smoke_run
    assert rollout_main(["--checkpoint", str(out / "best"), "--episodes", "1", "--seed", "0"]) == 0


def test_start_up_says_nothing_that_does_not_concern_the_user(smoke_run):
    from rmc_agents.rl.quiet import NOISE

    proc, _, _ = smoke_run
    text = proc.stdout + proc.stderr
    for line in NOISE:
        assert line not in text, line
    assert "DeprecationWarning" not in text
    assert "Started a local Ray instance" not in text  # Ray's information only with --verbose


def test_resume_continues_the_step_counters(smoke_run):
    proc, out, _ = smoke_run
    assert proc.returncode == 0
    before = json.loads((out / "summary.json").read_text())
    again = run_cli("--output", str(out), "--resume", "--stop-iterations", "3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stdout
    after = json.loads((out / "summary.json").read_text())
    assert after["iterations"] == 3
    assert after["env_steps"] > before["env_steps"]
    assert after["env_steps_trained"] > before["env_steps_trained"]
    assert len((out / "progress.csv").read_text().strip().splitlines()) == 1 + 3


def test_output_dir_with_a_run_is_refused(smoke_run):
    _, out, cfg = smoke_run
    proc = run_cli("--env", "CartPole-v1", "--config", str(cfg), "--output", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "--overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
        (["--env", "no_such_module:Env-v0"], "cannot import module 'no_such_module'"),
        (["--env", "CartPole-v1", "--config", "missing.yaml"], "config file not found"),
        (["--env", "CartPole-v1", "--envs-per-runner", "0"], "envs_per_runner must be > 0"),
        (["--resume", "--output", "/nonexistent/run"], "no run in /nonexistent/run"),
        (["--env", "CartPole-v1", "--set", "training.no_such=1"], "unknown config key"),
        (["--env", "CartPole-v1", "--set", "training.lr"], "--set expects KEY=VALUE"),
        (["--env", "CartPole-v1", "--set", "training.gamma=2"], "gamma"),
    ],
)
def test_user_errors_print_one_line(args, message, tmp_path):
    proc = (
        run_cli(*args, "--output", str(tmp_path / "x"))
        if "--output" not in args
        else run_cli(*args)
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and message in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the answer on a machine without a GPU"
)
def test_gpu_learner_without_gpus_fails_fast_and_keeps_the_old_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("env: CartPole-v1\n")  # a run --overwrite would replace
    (out / "progress.csv").write_text("iteration\n1\n")
    proc = run_cli(
        "--env", "CartPole-v1", "--num-learners", "1", "--gpus-per-learner", "1",
        "--num-cpus", "2", "--output", str(out), "--overwrite", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1]
    assert last.startswith("error:") and "asks for 1 GPU(s), but the Ray cluster has 0" in last
    assert (out / "progress.csv").read_text() == "iteration\n1\n"  # nothing was cleared
