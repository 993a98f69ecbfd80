"""The shared trainer through its command line: smoke runs, resume, reproducibility, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rmc_agents.config import load_config
from rmc_agents.supervised import get_task
from rmc_agents.supervised.__main__ import main

from .conftest import write_corpus

REPO = Path(__file__).resolve().parents[2]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter, which must never import Ray."""
    code = (
        "import sys\n"
        "from rmc_agents.supervised.__main__ import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert 'ray' not in sys.modules, 'the supervised trainers must not import Ray'\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


@pytest.mark.parametrize("task", ["nth-farthest", "learning-to-execute", "language-model"])
def test_cli_smoke_run_writes_every_artifact(task, tiny_config_file, tmp_path: Path) -> None:
    out = tmp_path / "run"
    extra = ["--data", str(write_corpus(tmp_path / "corpus"))] if task == "language-model" else []
    result = run_cli(
        task, "--config", str(tiny_config_file(task)), "--steps", "3", "--output", str(out), *extra
    )
    assert result.returncode == 0, result.stderr
    assert "final eval" in result.stdout
    for name in ("config.yaml", "checkpoint.pt", "train.csv", "eval.csv", "curves.png"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 3 and results["stopped_by"] == "steps"
    assert [r["step"] for r in rows(out / "train.csv")] == ["1", "2", "3"]
    assert [r["step"] for r in rows(out / "eval.csv")] == ["2", "3"]
    cfg = load_config(get_task(task).config_class, out / "config.yaml")
    assert cfg.train.steps == 3
    if task == "language-model":
        assert "test_perplexity" in results["final_eval"]
        assert rows(out / "eval.csv")[0]["test_perplexity"] == ""  # only the final row has it


@pytest.mark.parametrize("task", ["nth-farthest", "learning-to-execute", "language-model"])
def test_resume_continues_exactly(task, tiny_config_file, tmp_path: Path) -> None:
    config = str(tiny_config_file(task))
    extra = ["--data", str(write_corpus(tmp_path / "corpus"))] if task == "language-model" else []
    common = ["--config", config, "--no-progress", *extra]
    assert main([task, *common, "--steps", "5", "--output", str(tmp_path / "straight")]) == 0
    assert main([task, *common, "--steps", "3", "--output", str(tmp_path / "split")]) == 0
    # As a run killed after its step-3 checkpoint would leave them: rows for steps past it.
    for name in ("train.csv", "eval.csv"):
        path = tmp_path / "split" / name
        last = path.read_text().splitlines()[-1].split(",")
        path.write_text(path.read_text() + ",".join(["4", *last[1:]]) + "\n")
    assert (
        main([task, *common, "--steps", "5", "--output", str(tmp_path / "split"), "--resume"]) == 0
    )
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    split = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    assert split["step"] == 5
    for key, value in straight["model"].items():
        torch.testing.assert_close(split["model"][key], value, rtol=0, atol=0)

    def losses(run: str) -> list[tuple[str, str]]:
        return [(r["step"], r["loss"]) for r in rows(tmp_path / run / "train.csv")]

    assert losses("split") == losses("straight")

    # eval.csv: the fake step-4 row is gone; steps rise; the evaluations after the resume are
    # the straight run's (the split run also evaluated at its end, step 3).
    def evals(run: str) -> dict[str, dict]:
        return {
            r["step"]: {k: v for k, v in r.items() if k != "train_time_s"}
            for r in rows(tmp_path / run / "eval.csv")
        }

    steps = [int(r["step"]) for r in rows(tmp_path / "split" / "eval.csv")]
    assert steps == sorted(set(steps))
    assert evals("split")["4"] == evals("straight")["4"]
    assert evals("split")["5"] == evals("straight")["5"]


def test_same_seed_same_run_other_seed_other_run(tiny_config_file, tmp_path: Path) -> None:
    config = str(tiny_config_file("learning-to-execute"))

    def run(name: str, seed: str) -> list[str]:
        out = tmp_path / name
        args = ["learning-to-execute", "--config", config, "--seed", seed, "--no-progress"]
        assert main([*args, "--steps", "3", "--output", str(out)]) == 0
        return [r["loss"] for r in rows(out / "train.csv")]

    first = run("a", "1")
    assert run("b", "1") == first
    assert run("c", "2") != first


def test_output_dir_holding_a_run_is_not_overwritten(tiny_config_file, tmp_path, capsys) -> None:
    args = ["nth-farthest", "--config", str(tiny_config_file("nth-farthest")), "--no-progress"]
    out = ["--output", str(tmp_path / "run"), "--steps", "2"]
    assert main([*args, *out]) == 0
    before = (tmp_path / "run" / "train.csv").read_text()
    assert main([*args, *out]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "train.csv").read_text() == before
    assert main([*args, *out, "--overwrite"]) == 0
    assert main([*args, *out, "--resume"]) == 2  # already at step 2
    assert "pass --steps larger than 2" in capsys.readouterr().err
    assert main([*args, *out, "--resume", "--model", "lstm", "--steps", "4"]) == 2
    assert "'model.core.name' is 'lstm' but the run" in capsys.readouterr().err
    assert (
        main(["nth-farthest", "--output", str(tmp_path / "run"), "--resume", "--steps", "3"]) == 0
    )
    assert json.loads((tmp_path / "run" / "results.json").read_text())["steps"] == 3


def test_time_budget_stops_training(tiny_config_file, tmp_path: Path) -> None:
    args = ["nth-farthest", "--config", str(tiny_config_file("nth-farthest")), "--no-progress"]
    out = tmp_path / "run"
    assert (
        main([*args, "--steps", "1000", "--set", "train.time_budget_s=0.01", "--output", str(out)])
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["stopped_by"] == "time_budget" and results["steps"] < 1000
    # --set KEY=null clears a key set by the config file (here the budget, back to none).
    budget = tiny_config_file("nth-farthest", **{"train.time_budget_s": 1e-6})
    out2 = tmp_path / "run2"
    args2 = ["nth-farthest", "--config", str(budget), "--no-progress", "--steps", "3"]
    assert main([*args2, "--set", "train.time_budget_s=null", "--output", str(out2)]) == 0
    assert json.loads((out2 / "results.json").read_text())["steps"] == 3
    out3 = tmp_path / "run3"  # (and without the --set, the file's budget stops it at once)
    assert main([*args2, "--output", str(out3)]) == 0
    assert json.loads((out3 / "results.json").read_text())["stopped_by"] == "time_budget"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sudoku"], "unknown task 'sudoku'"),
        (["nth-farthest", "--model", "transformer"], "'model.core.name' must be one of"),
        (["nth-farthest", "--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["nth-farthest", "--set", "task.colour=3"], "unknown config key 'task.colour'"),
        (["nth-farthest", "--set", "novalue"], "--set expects KEY=VALUE"),
        (["nth-farthest", "--steps", "0"], "steps must be >= 1"),
        (["nth-farthest", "--data", "x"], "--data is only used by language-model"),
        (["language-model"], "language-model needs --data DIR"),
        (["language-model", "--data", "no/such/dir"], "data directory not found: no/such/dir"),
        (["nth-farthest", "--set", "model.core.rmc.gate_style=bogus"], "gate_style"),
    ],
)
def test_user_errors_are_one_line(argv, message, tmp_path: Path, capsys) -> None:
    assert main([*argv, "--output", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_bad_config_file_and_empty_corpus(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rate: fast\n")
    assert main(["nth-farthest", "--config", str(bad)]) == 2
    assert "'train.learning_rate' must be a number" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
        (empty / name).write_text("")
    assert main(["language-model", "--data", str(empty), "--output", str(tmp_path / "r")]) == 2
    assert "is empty" in capsys.readouterr().err


def test_cli_user_error_has_no_traceback() -> None:
    result = run_cli("language-model", "--data", "/no/such/dir", "--output", "/no/such/run")
    assert result.returncode == 2
    assert (
        result.stderr.startswith("error: data directory not found")
        and "Traceback" not in result.stderr
    )


def test_shipped_configs_load_and_defaults_match_the_paper_yaml() -> None:
    for task, stem in [
        ("nth-farthest", "nth_farthest"),
        ("learning-to-execute", "learning_to_execute"),
        ("language-model", "language_model"),
    ]:
        cls = get_task(task).config_class
        assert load_config(cls, REPO / "configs" / f"{stem}.yaml") == cls()
        small = load_config(cls, REPO / "configs" / f"{stem}_small.yaml")
        assert small.train.steps < cls().train.steps


def test_progress_in_a_log_is_plain_lines(tiny_config_file, tmp_path: Path, capsys) -> None:
    """Not a terminal (a log file, CI): one line per logged step, no bar's carriage returns."""
    config = str(tiny_config_file("nth-farthest"))
    out = tmp_path / "run"
    assert main(["nth-farthest", "--config", config, "--steps", "4", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    lines = [line for line in captured.out.splitlines() if line.startswith("step ")]
    assert lines and lines[-1].startswith("step 4/4")
