"""The bench scripts' shared pieces: the seeds' mean curve, and the ablation table with its plot
run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from seed_curves import mean_curve  # noqa: E402


def test_the_mean_curve_averages_the_seeds_over_the_frames_all_reached():
    # seed a: return = frames / 10 up to 100 frames; seed b: flat 4, up to 50 frames
    grid, mean = mean_curve([([0, 100], [0.0, 10.0]), ([0, 20, 50], [4.0, 4.0, 4.0])], points=6)
    assert grid == pytest.approx([0, 10, 20, 30, 40, 50])
    assert mean == pytest.approx([(g / 10 + 4) / 2 for g in grid])


def test_the_ablation_table_and_its_plot_from_records(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    for name, slope in (("rmc-seed1", 1.0), ("rmc-seed2", 3.0), ("lstm-seed1", 2.0)):
        rows = ["env_steps,episode_return_mean,lr"]
        rows += [f"{step},{slope * step / 100},{step * 1.6e-5}" for step in range(100, 1100, 100)]
        (records / f"{name}.csv").write_text("\n".join(rows) + "\n")
    png = tmp_path / "curves.png"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "ablation_table.py"), "--records", str(records)]
        + ["--plot", str(png), "--title", "t"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # the last 20% of frames (the rows from 800 on): rmc seeds 9 and 27, lstm 18
    rmc = next(line for line in proc.stdout.splitlines() if line.startswith("| rmc |"))
    assert rmc == "| rmc | 1,2 | 9.0 / 27.0 | 18.0 | 9.0-27.0 |"
    # the per-run table: a run's step size over its first and last fifth (rows 100-200: 2.4e-3;
    # rows 800-1000: 1.44e-2), "-" for a diagnostic the run did not log
    run = next(line for line in proc.stdout.splitlines() if line.startswith("| rmc-seed1 |"))
    assert run.endswith("| - | - | - | - | 2.4e-03 / 0.014 |"), run
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ablation_table_reads_runs_up_to_a_frame_budget(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    for name, slope in (("rmc-seed1", 1.0), ("rmc-seed2", 3.0)):
        rows = ["env_steps,episode_return_mean"]
        rows += [f"{step},{slope * step / 100}" for step in range(100, 1100, 100)]
        (records / f"{name}.csv").write_text("\n".join(rows) + "\n")
    command = [sys.executable, str(BENCH / "ablation_table.py"), "--records", str(records)]
    proc = subprocess.run(
        command + ["--frames", "500"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    # up to 500 frames, the last 20% are the rows at 400 and 500: seed 1 4.5, seed 2 13.5
    lines = proc.stdout.splitlines()
    assert "| rmc | 1,2 | 4.5 / 13.5 | 9.0 | 4.5-13.5 |" in lines
    assert any(line.startswith("| rmc-seed1 | 500 | 4.5 |") for line in lines)
    proc = subprocess.run(command + ["--frames", "50"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no rows up to 50 frames" in proc.stderr


def test_the_ablation_table_shows_small_returns_with_more_digits(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    for name, level in (("rmc-seed1", -0.482), ("rmc-seed2", -0.461)):
        rows = ["env_steps,episode_return_mean"] + [f"{s},{level}" for s in range(100, 1100, 100)]
        (records / f"{name}.csv").write_text("\n".join(rows) + "\n")
    command = [sys.executable, str(BENCH / "ablation_table.py"), "--records", str(records)]
    proc = subprocess.run(command + ["--digits", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # the mean of the two seeds, and a negative interval written with "to"
    assert "| rmc | 1,2 | -0.482 / -0.461 | -0.472 | -0.482 to -0.461 |" in lines
    run = next(line for line in lines if line.startswith("| rmc-seed1 |"))
    assert run.startswith("| rmc-seed1 | 1,000 | -0.482 | -0.48 / -0.48 / -0.48 / -0.48 / -0.48 |")
    proc = subprocess.run(command + ["--digits", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--digits must be at least 1, got 0" in proc.stderr


def test_the_ablation_table_lists_the_evaluations_of_the_runs_that_made_them(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    # evaluations every other row (steps 200, 400, ..., 1000); the last 20% are those from 800 on
    rows = ["env_steps,episode_return_mean,eval/return_mean"]
    rows += [f"{s},{s / 10},{500 - s / 10 if s % 200 == 0 else ''}" for s in range(100, 1100, 100)]
    (records / "rmc-seed1.csv").write_text("\n".join(rows) + "\n")
    (records / "lstm-seed1.csv").write_text("env_steps,episode_return_mean\n100,1\n200,2\n")
    command = [sys.executable, str(BENCH / "ablation_table.py"), "--records", str(records)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # last 20%: 420 (800) and 400 (1,000); the whole run: 480, 460, 440, 420, 400
    assert "| rmc-seed1 | 2 | 410.0 | 400.0 | 5 | 440.0 |" in lines
    assert not any(line.startswith("| lstm-seed1 | 0") for line in lines)
    # without an evaluation in any run there is no such table
    (records / "rmc-seed1.csv").unlink()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "evaluations, last 20%" not in proc.stdout


def _recall_probe():
    """bench/recall_probe.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("recall_probe", BENCH / "recall_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    return probe


def test_the_recall_probe_targets_the_symbol_lag_steps_back_and_trains_each_core(tmp_path):
    probe = _recall_probe()
    x, y = probe.make_batch(torch.Generator().manual_seed(0), batch=3, length=9, symbols=4, lag=4)
    assert x.shape == (3, 9, 4) and y.shape == (3, 5)
    assert torch.equal(x.sum(-1), torch.ones(3, 9))  # one-hot
    # the target at step t (t >= lag) is the symbol shown at t - lag
    assert torch.equal(y, x.argmax(-1)[:, :5])
    # each core as the POPGym sweep files set it, read from them
    assert probe.sweep_model_settings("gru") == {"hidden_size": 146, "skip": True}
    assert probe.sweep_model_settings("rmc")["slot_embeddings"] is True
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "recall_probe.py"), "--cores", "rmc,gru", "--steps", "4"]
        + ["--every", "2", "--length", "6", "--lag", "2", "--batch", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rmc step 2 accuracy " in proc.stdout and "gru step 4 accuracy " in proc.stdout
    results = json.loads(out.read_text())["results"]
    assert [r["core"] for r in results] == ["rmc", "gru"]
    assert all(len(r["curve"]) == 2 and 0 <= r["curve"][-1][1] <= 1 for r in results)
    assert results[1]["params"] == 4 * 64 + 64 + 3 * (64 * 146 + 146 * 146 + 2 * 146) + 4 * 210 + 4
    proc = subprocess.run(
        [sys.executable, str(BENCH / "recall_probe.py"), "--cores", "rmc,transformer"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--cores: unknown transformer" in proc.stderr


def test_the_count_probe_targets_how_many_of_the_querys_kind_were_dealt(tmp_path):
    probe = _recall_probe()
    gen = torch.Generator().manual_seed(0)
    x, y = probe.make_count_batch(gen, batch=3, length=10, symbols=2, deck=10)
    assert x.shape == (3, 10, 4) and y.shape == (3, 10)
    dealt, query = x[..., :2].argmax(-1), x[..., 2:].argmax(-1)
    assert torch.equal(x.sum(-1), torch.full((3, 10), 2.0))  # two one-hot parts
    # a whole deck dealt: five of each kind, in each row, for dealt cards and queries alike
    assert torch.equal(dealt.sum(1), torch.full((3,), 5)) and torch.equal(
        query.sum(1), dealt.sum(1)
    )
    for b in range(3):
        for t in range(10):  # the count includes the card dealt at t
            assert y[b, t] == int((dealt[b, : t + 1] == query[b, t]).sum())
    assert int(y[:, -1].min()) == 5  # at the end every kind has been dealt five times
    # --chunk: the same outputs, the gradient stopped between pieces (truncated backpropagation)
    torch.manual_seed(0)
    model = probe.Probe("rmc", 4, classes=6)
    x = torch.randn(2, 10, 4, requires_grad=True)
    assert torch.allclose(model(x), model(x, 3), atol=1e-5)
    model(x, 3)[:, -1].sum().backward()
    assert float(x.grad[:, :9].abs().sum()) == 0 and float(x.grad[:, 9].abs().sum()) > 0
    x.grad = None
    model(x)[:, -1].sum().backward()
    assert float(x.grad[:, 0].abs().sum()) > 0
    # the RMC's settings from a named sweep file; a file of another core is refused
    assert probe.sweep_model_settings("rmc", "popgym_sized_rmc_unitgates_read")["rmc_input_read"]
    with pytest.raises(ValueError, match="sets model.core 'gru', not 'rmc'"):
        probe.sweep_model_settings("rmc", "popgym_sized_gru")
    out = tmp_path / "count.json"
    command = [sys.executable, str(BENCH / "recall_probe.py"), "--task", "count", "--symbols", "2"]
    proc = subprocess.run(
        command
        + ["--deck", "8", "--length", "7", "--cores", "rmc,lstm", "--steps", "2", "--every", "1"]
        + ["--batch", "4", "--chunk", "3", "--files", "rmc=popgym_sized_rmc_unitgates_read"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results["settings"]["files"] == {"rmc": "popgym_sized_rmc_unitgates_read"}
    assert [len(r["curve"]) for r in results["results"]] == [2, 2]
    # 5 answers (0-4 of a kind): the LSTM's head reads its 124 units and the 64 torso features
    assert results["results"][1]["params"] == 4 * 64 + 64 + 4 * 124 * (64 + 124 + 2) + 5 * 189
    for bad, message in (
        (["--files", "rmc=popgym_sized_gru"], "sets model.core 'gru', not 'rmc'"),
        (["--files", "cnn=x"], "--files: expected CORE=NAME"),
        (["--deck", "9"], "must hold the same number of each of --symbols (2) kinds"),
        (["--length", "60"], "--length must be 1 to --deck (52), got 60"),
        (["--chunk", "0"], "--chunk must be at least 1, got 0"),
    ):
        proc = subprocess.run(command + bad, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def _fake_sweep(root: Path, trials: dict[str, tuple[dict, str]]) -> Path:
    """A sweep output folder: trial id -> (its config.yaml settings, summary's stopped_because)."""
    import json

    import yaml

    output = root / "sweep"
    for trial_id, (config, stopped) in trials.items():
        folder = output / "trials" / trial_id
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        (folder / "progress.csv").write_text(
            f"env_steps,episode_return_mean\n100,{len(trial_id)}\n"
        )
        if stopped:
            (folder / "summary.json").write_text(json.dumps({"stopped_because": stopped}))
    return output


def _sweep_records(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH / "sweep_records.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sweep_records_copies_finished_trials_under_names_from_their_settings(tmp_path):
    env = "popgym:popgym-RepeatFirstEasy-v0"
    output = _fake_sweep(
        tmp_path,
        {
            "t1": ({"env": env, "seed": 0, "model": {"core": "rmc"}}, "timesteps 300000 reached"),
            "t22": ({"env": env, "seed": 1, "model": {"core": "rmc"}}, "timesteps 300000 reached"),
            "t333": ({"env": env, "seed": 2, "model": {"core": "rmc"}}, "interrupted"),
            "t4444": ({"env": env, "seed": 3, "model": {"core": "rmc"}}, ""),
        },
    )
    records = tmp_path / "records"
    proc = _sweep_records(output, "--records", records, "--name", "{env}-{model.core}-seed{seed}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in records.iterdir()) == [
        "popgym-RepeatFirstEasy-v0-rmc-seed0.csv",
        "popgym-RepeatFirstEasy-v0-rmc-seed1.csv",
    ]
    # each record is its trial's curve, byte for byte
    assert (records / "popgym-RepeatFirstEasy-v0-rmc-seed1.csv").read_text().endswith("100,3\n")
    assert "t333 (not finished" in proc.stderr and "t4444 (not finished" in proc.stderr
    # run again: nothing changes; --partial adds the two that did not finish
    assert (
        "already there"
        in _sweep_records(
            output, "--records", records, "--name", "{env}-{model.core}-seed{seed}"
        ).stdout
    )
    proc = _sweep_records(
        output, "--records", records, "--name", "{env}-{model.core}-seed{seed}", "--partial"
    )
    assert proc.returncode == 0, proc.stderr
    assert len(list(records.iterdir())) == 4


def test_sweep_records_refuses_clashes_and_unknown_fields_before_writing(tmp_path):
    done = "timesteps 1000 reached"
    output = _fake_sweep(
        tmp_path,
        {"a": ({"seed": 1, "env": "X-v0"}, done), "bb": ({"seed": 1, "env": "Y-v0"}, done)},
    )
    records = tmp_path / "records"
    # two trials, one name: an error naming both, and no file written
    proc = _sweep_records(output, "--records", records, "--name", "rmc-seed{seed}")
    assert proc.returncode == 1
    assert "two trials get the record name rmc-seed1.csv: a and bb" in proc.stderr
    assert not records.exists()
    # a field the settings do not have
    proc = _sweep_records(output, "--records", records, "--name", "{model.core}-seed{seed}")
    assert proc.returncode == 1 and "no setting model.core" in proc.stderr
    # a name with no field at all, a brace that is no field, a path instead of a name
    proc = _sweep_records(output, "--records", records, "--name", "rmc")
    assert proc.returncode == 2 and "no {field}" in proc.stderr
    proc = _sweep_records(output, "--records", records, "--name", "{model-core}-{seed}")
    assert proc.returncode == 2 and "a brace that is not a {dotted.key} field" in proc.stderr
    proc = _sweep_records(output, "--records", records, "--name", "../{env}-{seed}")
    assert proc.returncode == 2 and "a file name, not a path" in proc.stderr
    assert not (tmp_path / "X-v0-1.csv").exists()
    # an existing record with other contents is kept unless --overwrite
    records.mkdir()
    (records / "X-v0-seed1.csv").write_text("mine\n")
    proc = _sweep_records(output, "--records", records, "--name", "{env}-seed{seed}")
    assert proc.returncode == 1 and "X-v0-seed1.csv" in proc.stderr
    assert (records / "X-v0-seed1.csv").read_text() == "mine\n"
    assert not (records / "Y-v0-seed1.csv").exists()
    proc = _sweep_records(output, "--records", records, "--name", "{env}-seed{seed}", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert (records / "X-v0-seed1.csv").read_text().endswith("100,1\n")
    # not a sweep folder
    proc = _sweep_records(tmp_path / "nowhere", "--records", records, "--name", "{seed}")
    assert proc.returncode == 1 and "no trials/" in proc.stderr


def _bench(script: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python bench/<script> ARGS``, its output captured."""
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _popgym_table(*args: str) -> subprocess.CompletedProcess:
    return _bench("popgym_table.py", *args)


def test_the_popgym_table_from_records_gives_each_runs_best_running_mean(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    curves = {  # running means per iteration; the MMER is their maximum
        "popgym-RepeatFirstEasy-v0-rmc-seed0": [-0.5, 0.9, 0.8],
        "popgym-RepeatFirstEasy-v0-rmc-seed1": [-0.5, 0.7, 0.6],
        "popgym-RepeatFirstEasy-v0-lstm-seed0": [-0.5, 0.2, ""],
        "popgym-RepeatFirstEasy-v0-gru-seed0": [-0.5, 0.4, 0.5],
        "popgym-HigherLowerEasy-v0-rmc-seed0": [0.1, 0.3],
        "popgym-HigherLowerEasy-v0-lstm-seed0": [0.4, 0.5],
        "popgym-HigherLowerEasy-v0-gru-seed0": [0.2, 0.45],
    }
    for name, means in curves.items():
        rows = ["env_steps,episode_return_mean"]
        rows += [f"{100 * (i + 1)},{m}" for i, m in enumerate(means)]
        (records / f"{name}.csv").write_text("\n".join(rows) + "\n")
    proc = _popgym_table("--records", str(records), "--models", "rmc,lstm,gru")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        "| RepeatFirstEasy | 0.80 (0.70 to 0.90) [seeds 0,1] | 0.20 [seeds 0] | 0.50 [seeds 0] |"
        in lines
    )
    assert "| HigherLowerEasy | 0.30 [seeds 0] | 0.50 [seeds 0] | 0.45 [seeds 0] |" in lines
    assert lines[-1] == "rmc at or above the best of lstm, gru: 1 of 2 envs (RepeatFirstEasy)"
    # without --models and --envs: every model and env found, the RMC first
    proc = _popgym_table("--records", str(records))
    assert proc.returncode == 0, proc.stderr
    assert "| env | rmc | gru | lstm |" in proc.stdout.splitlines()
    assert proc.stdout.splitlines()[-1].startswith("rmc at or above the best of gru, lstm: 1 of 2")
    # a run that logged no return is left out, and says so
    (records / "popgym-HigherLowerEasy-v0-gru-seed1.csv").write_text(
        "env_steps,episode_return_mean\n100,nan\n200,\n"
    )
    proc = _popgym_table("--records", str(records))
    assert "left out popgym-HigherLowerEasy-v0-gru-seed1.csv" in proc.stderr
    assert "| HigherLowerEasy | 0.30 [seeds 0] | 0.45 [seeds 0] | 0.50 [seeds 0] |" in proc.stdout
    # a file not named as a record is an error naming it
    (records / "notes.csv").write_text("x\n")
    proc = _popgym_table("--records", str(records))
    assert (
        proc.returncode == 1
        and "notes.csv: not named popgym-<Env>-v0-<model>-seed<N>.csv" in proc.stderr
    )


def test_the_popgym_table_picks_each_cores_best_setting_per_env(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    curves = {  # MMER = the best running mean of a run
        "popgym-RepeatFirstEasy-v0-rmc-seed0": [0.2],
        "popgym-RepeatFirstEasy-v0-rmc-seed1": [0.4],
        "popgym-RepeatFirstEasy-v0-rmc_out01-seed0": [0.1],
        "popgym-RepeatFirstEasy-v0-lstm-seed0": [0.5],
        "popgym-RepeatFirstEasy-v0-lstm_out01-seed0": [0.2],
        "popgym-HigherLowerEasy-v0-rmc-seed0": [0.3],
        "popgym-HigherLowerEasy-v0-rmc_out01-seed0": [0.6],
        "popgym-HigherLowerEasy-v0-rmc_out01-seed1": [0.4],
        "popgym-HigherLowerEasy-v0-lstm-seed0": [0.45],
    }
    for name, means in curves.items():
        rows = ["env_steps,episode_return_mean"]
        rows += [f"{100 * (i + 1)},{m}" for i, m in enumerate(means)]
        (records / f"{name}.csv").write_text("\n".join(rows) + "\n")
    proc = _popgym_table("--records", str(records), "--pick")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1] == "settings per core: rmc rmc, rmc_out01; lstm lstm, lstm_out01"
    assert "| env | rmc | lstm |" in lines
    # the RMC's base (mean 0.30) beats its out01 (0.10) on RepeatFirst; out01 (0.50) on HigherLower
    assert (
        "| RepeatFirstEasy | 0.30 (0.20 to 0.40) [base; seeds 0,1] | 0.50 [base; seeds 0] |"
        in lines
    )
    assert (
        "| HigherLowerEasy | 0.50 (0.40 to 0.60) [out01; seeds 0,1] | 0.45 [base; seeds 0] |"
        in lines
    )
    assert lines[-1] == "rmc at or above the best of lstm: 1 of 2 envs (HigherLowerEasy)"
    # --digits: the means and their spread with more decimals (0.495 shows as 0.495, not 0.50)
    (records / "popgym-HigherLowerEasy-v0-lstm-seed0.csv").write_text(
        "env_steps,episode_return_mean\n100,0.495\n"
    )
    proc = _popgym_table("--records", str(records), "--pick", "--digits", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        "| RepeatFirstEasy | 0.300 (0.200 to 0.400) [base; seeds 0,1] | 0.500 [base; seeds 0] |"
        in lines
    )
    assert (
        "| HigherLowerEasy | 0.500 (0.400 to 0.600) [out01; seeds 0,1] | 0.495 [base; seeds 0] |"
        in lines
    )
    proc = _popgym_table("--records", str(records), "--digits", "9")
    assert proc.returncode == 2 and "--digits must be 0 to 6, got 9" in proc.stderr
    # without --records there is nothing to pick from
    proc = _popgym_table("--pick")
    assert proc.returncode == 2 and "--pick needs --records" in proc.stderr


def _saved_policy(path: Path, core: str, core_kwargs: dict) -> Path:
    import gymnasium as gym
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    import envs  # noqa: F401  (registers the Mini-Pacman ids)
    from rmc_agents.policy_file import save_policy
    from rmc_agents.rl.module import RecurrentAgentModule

    env = gym.make("MiniPacman-Viewport-v0")
    module = RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config={"core": core, "core_kwargs": core_kwargs, "max_seq_len": 4},
    ).build()
    env.close()
    return save_policy(module, path, env="MiniPacman-Viewport-v0")


def test_memory_use_scores_a_policy_with_and_without_its_state(tmp_path):
    import json

    import gymnasium as gym

    from rmc_agents.export import evaluate
    from rmc_agents.rollout import load_policy, play

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    policy = _saved_policy(
        tmp_path / "rmc", "rmc", {"mem_slots": 2, "head_size": 4, "num_heads": 2}
    )
    out = tmp_path / "use.json"
    command = [sys.executable, str(BENCH / "memory_use.py"), "--checkpoint", str(policy)]
    proc = subprocess.run(
        command + ["--episodes", "3", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    # playing with the memory is the cards' measure: the same episodes as export's evaluation
    assert result["with_memory"]["mean"] == pytest.approx(sum(evaluate(policy, 3)) / 3)
    # and the other play is the one with the state reset before every step
    env = gym.make("MiniPacman-Viewport-v0")
    reset = play(load_policy(policy), env, 3, seed=0, memory=False)
    assert result["state_reset_every_step"]["mean"] == pytest.approx(
        sum(r.episode_return for r in reset) / 3
    )
    for key in ("with_memory", "state_reset_every_step", "random_policy"):
        assert result[key]["episodes"] == 3
    assert "| state reset before every step |" in proc.stdout


def test_the_share_kept_without_memory_is_of_the_gain_over_random_play():
    from memory_use import kept_share

    def result(memory, reset, rand):
        return {
            "with_memory": {"mean": memory},
            "state_reset_every_step": {"mean": reset},
            "random_policy": {"mean": rand},
        }

    assert kept_share(result(110.0, 60.0, 10.0)) == pytest.approx(0.5)
    assert kept_share(result(-0.2, -0.6, -1.0)) == pytest.approx(0.5)  # negative returns
    assert kept_share(result(5.0, 7.0, 10.0)) is None  # no better than random: nothing to keep


def test_memory_use_names_a_policy_without_a_memory(tmp_path):
    policy = _saved_policy(tmp_path / "mlp", "mlp", {"hidden_size": 8})
    proc = subprocess.run(
        [sys.executable, str(BENCH / "memory_use.py"), "--checkpoint", str(policy)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert (
        f"error: {policy}: the policy has no recurrent state (its core is 'mlp'), so there is "
        "no memory to take away"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_imitation_chunks_lie_inside_one_episode():
    import numpy as np
    from imitation_speed import Play

    play = Play(np.zeros((12, 1)), np.zeros((12, 2)), starts=[0, 5, 7], returns=[0, 0, 0])
    # episodes [0, 5), [5, 7), [7, 12): runs of 2 steps start at 0, 2 | 5 | 7, 9
    assert play.chunks(2).tolist() == [0, 2, 5, 7, 9]
    assert play.chunks(3).tolist() == [0, 7]
    assert play.chunks(6).tolist() == []


def _small_student(tmp_path, core: str):
    from imitation_speed import student_settings

    sizes = {"rmc": "mem_slots: 2\n  head_size: 8\n  num_heads: 2", "lstm": "hidden_size: 16"}
    path = tmp_path / f"{core}.yaml"
    path.write_text(
        "env: MiniPacman-Viewport-v0\nmodel:\n  skip: true\n  core: " + core + "\n  " + sizes.get(core, "hidden_size: 32")
        + "\ntraining:\n  grad_clip: 1.0\n"
    )  # fmt: skip
    return student_settings(str(path))


@pytest.mark.parametrize("core", ["rmc", "lstm", "mlp"])
def test_a_student_chunk_starts_from_the_initial_state_as_a_fresh_stepper_does(tmp_path, core):
    import gymnasium as gym
    import numpy as np
    from imitation_speed import _logits, build_student

    import minipacman  # noqa: F401  (registers the game)
    from rmc_agents.rollout.acting import PolicyStepper

    torch = pytest.importorskip("torch")
    env = gym.make("MiniPacman-Viewport-v0")
    module = build_student(
        _small_student(tmp_path, core), env.observation_space, env.action_space, seed=0
    )
    obs = [env.reset(seed=3)[0]]
    for a in (0, 1, 2, 3):
        obs.append(env.step(a)[0])

    def stepped(observations, warm_up=()):
        stepper = PolicyStepper(module)
        for o in warm_up:  # carried into the steps below: a state other than the initial one
            stepper.act(o)
        out = []
        for o in observations:
            stepper.act(o)
            out.append(stepper.last_dist_inputs[0])
        return torch.stack(out)

    batch = torch.as_tensor(np.stack([obs, obs[::-1]]), dtype=torch.float32)
    with torch.no_grad():
        logits = _logits(module, batch)
    assert logits.shape == (2, 5, 5)
    # each chunk is its own episode from the initial state
    torch.testing.assert_close(logits[0], stepped(obs), rtol=0, atol=1e-6)
    torch.testing.assert_close(logits[1], stepped(obs[::-1]), rtol=0, atol=1e-6)
    if core != "mlp":  # and the check can fail: from another state the logits differ
        assert not torch.allclose(logits[0], stepped(obs, warm_up=obs[::-1]), atol=1e-4)


def test_imitation_loss_is_the_kl_from_the_teacher():
    from imitation_speed import _kl

    torch = pytest.importorskip("torch")
    probs = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]])
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]])
    q = torch.softmax(logits, -1)
    by_hand = sum(float((probs[0, t] * (probs[0, t] / q[0, t]).log()).sum()) for t in range(2)) / 2
    assert float(_kl(logits, probs)) == pytest.approx(by_hand, rel=1e-6)
    assert float(_kl(probs.log(), probs)) == pytest.approx(0.0, abs=1e-7)


def test_the_imitation_table_marks_each_students_best_step_and_never_a_diverged_one():
    from imitation_speed import summary_table

    def run(student, lr, seed, kls):
        curve = [
            {"updates": u, "kl": k, "agreement": 0.5} for u, k in zip((0, 10), kls, strict=True)
        ]
        return {"student": student, "lr": lr, "seed": seed, "parameters": 10, "curve": curve}

    nan = float("nan")
    results = [
        run("a", 0.01, 0, (1.5, nan)),  # diverged, and first: must not be marked
        run("a", 0.001, 0, (1.5, 0.4)),
        run("a", 0.003, 0, (1.5, 0.2)),
        run("b", 0.001, 0, (1.5, 0.3)),
        run("b", 0.001, 1, (1.5, 0.5)),
    ]
    lines = summary_table(results, [0, 10]).splitlines()[2:]
    marked = [line for line in lines if "**" in line]
    assert [line.split(" | ")[:3] for line in marked] == [
        ["| a", "10", "0.003"],
        ["| b", "10", "0.001"],
    ]
    assert "| b | 10 | 0.001 | 0,1 | 1.500 | **0.400** | 0.500 |" in lines


@pytest.mark.parametrize("core", ["rmc", "lstm", "mlp"])
def test_a_student_learns_a_reactive_teacher(tmp_path, core):
    """A teacher whose action is read off the observation (the colour of the window's centre
    cell, each cell one of three colours): every core's held-out KL falls and its choices match
    the teacher's far above chance."""
    import gymnasium as gym
    import numpy as np
    from imitation_speed import Play, build_student, train

    import minipacman  # noqa: F401  (registers the game)

    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the script runs (small ops: more threads only wait)
    env = gym.make("MiniPacman-Viewport-v0")
    rng = np.random.default_rng(0)

    def play(n):
        colour = rng.integers(0, 3, size=(n, *env.observation_space.shape[:2]))
        obs = np.eye(3, dtype=np.float32)[colour]
        action = colour[:, 2, 2]  # 0-2 of 5 actions
        probs = np.full((n, 5), 0.01, np.float32)
        probs[np.arange(n), action] = 0.96
        return Play(obs, probs, starts=list(range(0, n, 40)), returns=[0.0] * (n // 40))

    module = build_student(
        _small_student(tmp_path, core), env.observation_space, env.action_space, seed=0
    )
    try:
        curve = train(module, play(1600), play(400), 3e-3, 1.0, 150, 16, 8, 0, [0, 150])
    finally:
        torch.set_num_threads(threads)
    assert [r["updates"] for r in curve] == [0, 150]
    assert curve[1]["kl"] < 0.5 * curve[0]["kl"]
    assert curve[1]["agreement"] > 0.8 > curve[0]["agreement"]


def test_imitation_speed_runs_from_a_saved_teacher(tmp_path):
    import json

    import numpy as np

    policy = _saved_policy(tmp_path / "teacher", "lstm", {"hidden_size": 8})
    config = tmp_path / "mlp.yaml"
    config.write_text("env: MiniPacman-Viewport-v0\nmodel:\n  core: mlp\n  hidden_size: 16\n")
    out = tmp_path / "out.json"
    command = [
        sys.executable, str(BENCH / "imitation_speed.py"), "--teacher", str(policy),
        "--student", f"small={config}", "--episodes", "2", "--test-episodes", "1",
        "--max-steps", "60", "--updates", "4", "--batch", "4", "--unroll", "5",
        "--lrs", "0.01", "--seeds", "0,1", "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    # the teacher's play as recorded in this process (same seeds): what the students learnt from
    from imitation_speed import load_teacher, record

    teacher = load_teacher(str(policy))
    first, again, held = (
        record(teacher, 2, 0, 60),
        record(teacher, 2, 0, 60),
        record(teacher, 1, 10_000, 60),
    )
    assert result["steps"] == len(first.obs) <= 120 and result["test_steps"] == len(held.obs) <= 60
    np.testing.assert_array_equal(first.obs, again.obs)  # reproducible from the seed
    np.testing.assert_array_equal(first.probs, again.probs)
    assert not np.array_equal(first.obs[: len(held.obs)], held.obs)  # held-out play is other play
    assert [(r["student"], r["lr"], r["seed"]) for r in result["results"]] == [
        ("small", 0.01, 0),
        ("small", 0.01, 1),
    ]
    assert [c["updates"] for c in result["results"][0]["curve"]] == [0, 1, 2, 4]
    assert "| small | " in proc.stdout
    bad = subprocess.run(
        command[:4] + ["--student", "nameonly"], capture_output=True, text=True, timeout=600
    )
    assert bad.returncode == 2 and "--student wants NAME=CONFIG, got 'nameonly'" in bad.stderr
    short = subprocess.run(
        command[:6] + ["--episodes", "1", "--test-episodes", "1", "--max-steps", "3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert short.returncode == 1 and "Traceback" not in short.stderr
    assert "error: the teacher's play holds 0 chunks of 20 steps to learn from" in short.stderr


def test_the_popgym_mmer_pools_logged_means_into_blocks_of_episodes(tmp_path):
    """A logged mean of fewer episodes is noisier and its best reads higher by chance, so the MMER
    of --records is the best mean over blocks of at least --window-episodes episodes."""
    records = tmp_path / "records"
    records.mkdir()
    spiky = [0.9, 0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3]  # 16 episodes a mean: blocks of 4 means

    def write(name, header, rows):
        lines = [header] + [",".join(str(x) for x in row) for row in rows]
        (records / f"popgym-RepeatFirstEasy-v0-{name}-seed0.csv").write_text("\n".join(lines))

    # 64 episodes a mean (the episodes column): each mean is a block, the best of them is the MMER
    write(
        "lstm",
        "env_steps,episode_return_mean,episode_len_mean,episodes",
        [(3264 * (i + 1), m, 51, 64) for i, m in enumerate([0.1, 0.5, 0.2])],
    )
    # 16 episodes a mean (the column), and empty rows between: blocks (0.9+0.1*3)/4, 0.3*4/4
    rows = []
    for i, m in enumerate(spiky):
        rows += [(408 * (2 * i + 1), "", "", 0), (408 * (2 * i + 2), m, 51, 16)]
    write("rmc", "env_steps,episode_return_mean,episode_len_mean,episodes", rows)
    # no episodes column: 8 means over 6,528 steps of 51-step episodes = 16 episodes a mean
    write(
        "gru",
        "env_steps,episode_return_mean,episode_len_mean",
        [(816 * (i + 1), m, 51) for i, m in enumerate(spiky)],
    )
    # 4 means of 8 episodes: too short for one block of 64, so the mean of all it logged
    write(
        "mlp",
        "env_steps,episode_return_mean,episode_len_mean,episodes",
        [(408 * (i + 1), m, 51, 8) for i, m in enumerate([0.2, 0.8, 0.2, 0.4])],
    )
    proc = _popgym_table("--records", str(records), "--models", "rmc,gru,lstm,mlp")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("MMER (max mean episode return: the best mean over blocks of at")
    assert "| RepeatFirstEasy | 0.30 [seeds 0] | 0.30 [seeds 0] | 0.50 [seeds 0] | 0.40" in (
        proc.stdout
    )
    assert lines[-1] == "rmc at or above the best of gru, lstm, mlp: 0 of 1 envs (none)"
    # blocks of 32: (0.9+0.1)/2 is the RMC's best; 0: the best logged mean, as POPGym's MMER
    proc = _popgym_table("--records", str(records), "--window-episodes", "32")
    assert "| RepeatFirstEasy | 0.50 [seeds 0] | 0.50 [seeds 0] | 0.50 [seeds 0] | 0.40" in (
        proc.stdout
    )
    proc = _popgym_table("--records", str(records), "--window-episodes", "0")
    assert "best logged mean of a run" in proc.stdout.splitlines()[0]
    assert "| RepeatFirstEasy | 0.90 [seeds 0] | 0.90 [seeds 0] | 0.50 [seeds 0] | 0.80" in (
        proc.stdout
    )
    assert proc.stdout.splitlines()[-1].startswith("rmc at or above the best of gru, lstm, mlp: 1")
    proc = _popgym_table("--records", str(records), "--window-episodes", "-1")
    assert proc.returncode == 2 and "--window-episodes must be 0 or more, got -1" in proc.stderr


def _levels(*args: str) -> subprocess.CompletedProcess:
    return _bench("higherlower_levels.py", *args, timeout=300)


def test_the_higherlower_levels_put_counting_above_the_memoryless_best_above_random(tmp_path):
    out = tmp_path / "levels.json"
    proc = _levels("--episodes", "300", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    levels = {k: v["mean"] for k, v in json.loads(out.read_text())["players"].items()}
    # about 0, 0.50 and 0.53 (bench/records/higherlower_levels.json, 20,000 episodes); the
    # players see the same decks (the same env seeds), so their gap is far surer than either mean
    assert abs(levels["random"]) < 0.03
    assert 0.48 < levels["memoryless"] < 0.52
    assert 0.02 < levels["counting"] - levels["memoryless"] < 0.04
    # the MMER a run would log for a player: the best of 47 means of 64 episodes (too few here)
    assert all("mmer" not in v for v in json.loads(out.read_text())["players"].values())
    proc = _levels(
        "--episodes", "256", "--blocks", "2", "--players", "memoryless,counting", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    players = json.loads(out.read_text())["players"]
    # 4 means of 64 in 2 pairs: the mean of each pair's best is at least the mean of all four
    assert all(v["mmer"] >= v["mean"] > 0.4 for v in players.values())
    proc = _levels("--players", "oracle")
    assert proc.returncode == 2 and "--players: unknown oracle" in proc.stderr
