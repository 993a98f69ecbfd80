"""The bench scripts' shared pieces: the seeds' mean curve, and the ablation table with its plot
run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
        rows = ["env_steps,episode_return_mean"]
        rows += [f"{step},{slope * step / 100}" for step in range(100, 1100, 100)]
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
