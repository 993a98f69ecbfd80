"""Nth Farthest: RMC vs LSTM at the same training-time budget, run side by side, with curves.

Both cores train at once, one CPU thread each (the two cores of this machine), with the same
``train.time_budget_s`` (training time, evaluation excluded), from the same config and seed. Each run
is a plain ``python -m rmc_agents.supervised nth-farthest`` command (printed before it starts) writing
to ``<out>/<core>``; afterwards the evaluation accuracy of both is plotted against training time and
against steps (``<out>/curves.png``) and a table is printed. The "trivial plateau" line is the
accuracy of a model that only answers the question whose answer is the reference itself
(``n = num_vectors``): ``1/k + (1 - 1/k)/(k - 1)`` for ``k`` vectors.

    python bench/nth_farthest_race.py --minutes 15                      # the small config: 3 x 2
    python bench/nth_farthest_race.py --minutes 55 --set task.num_vectors=4 --set task.vector_dim=4
    python bench/nth_farthest_race.py --plot-only results/nth_farthest_race  # redraw finished runs
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORES = ("rmc", "lstm", "dnc")  # the paper's Nth Farthest models (its Table: RMC, LSTM, DNC)


def command(core: str, out: Path, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "rmc_agents.supervised", "nth-farthest"]
    cmd += ["--config", args.config, "--model", core, "--steps", "10000000"]
    cmd += ["--output", str(out / core), "--overwrite", "--threads", "1", "--no-progress"]
    sets = [
        f"train.batch_size={args.batch_size}",
        f"train.time_budget_s={args.minutes * 60:g}",
        f"train.eval_every={args.eval_every}",
        "train.checkpoint_every=5000",
        "train.log_every=250",
        *args.set,
    ]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def read_eval(run_dir: Path) -> tuple[list[int], list[float], list[float]]:
    steps, seconds, accuracy = [], [], []
    with (run_dir / "eval.csv").open() as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            seconds.append(float(row["train_time_s"]))
            accuracy.append(float(row["accuracy"]))
    return steps, seconds, accuracy


def _result(run_dir: Path) -> dict:
    """``results.json`` of a finished run; for a run stopped early, the same keys from its CSVs."""
    path = run_dir / "results.json"
    if path.is_file():
        return json.loads(path.read_text())
    with (run_dir / "train.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    steps, _, accuracy = read_eval(run_dir)
    return {
        "parameters": None,
        "steps": int(last["step"]),
        "train_time_s": float(last["train_time_s"]),
        "final_eval": {"accuracy": accuracy[-1]},
    }


def report(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    from rmc_agents.supervised.nth_farthest import trivial_plateau

    cores = [c for c in CORES if (out / c / "eval.csv").is_file()]
    results = {c: _result(out / c) for c in cores}
    k = int(yaml.safe_load((out / cores[0] / "config.yaml").read_text())["task"]["num_vectors"])
    fig, (by_time, by_step) = plt.subplots(1, 2, figsize=(10, 4))
    for core in cores:
        steps, seconds, accuracy = read_eval(out / core)
        by_time.plot([s / 60 for s in seconds], accuracy, label=core)
        by_step.plot(steps, accuracy, label=core)
    plateau = trivial_plateau(k)
    for ax in (by_time, by_step):
        ax.axhline(plateau, color="grey", linestyle=":", label="trivial plateau")
    by_time.set_xlabel("training time (min, one thread each)")
    by_step.set_xlabel("training steps")
    for ax in (by_time, by_step):
        ax.set_ylabel("eval accuracy")
        ax.legend()
    fig.suptitle(f"Nth Farthest: {' vs '.join(c.upper() for c in cores)}, same training time")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    print(f"{k} vectors; trivial plateau {plateau:.3f}")
    print(
        "| core | params | steps | training time (s) | final eval accuracy | best eval accuracy |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for core in cores:
        r = results[core]
        params = "-" if r["parameters"] is None else f"{r['parameters']:,}"
        best = max(read_eval(out / core)[2])
        print(
            f"| {core} | {params} | {r['steps']:,} | {r['train_time_s']:.0f} | "
            f"{r['final_eval']['accuracy']:.3f} | {best:.3f} |"
        )
    print(f"curves: {out / 'curves.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/nth_farthest_small.yaml")
    p.add_argument("--minutes", type=float, default=55.0, help="training time of each core")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=2500)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=REPO / "results" / "nth_farthest_race")
    p.add_argument("--plot-only", type=Path, help="only redraw and tabulate runs in this folder")
    p.add_argument("--cores", default=",".join(CORES), help="cores raced side by side")
    args = p.parse_args()
    cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    unknown = sorted(set(cores) - set(CORES))
    if unknown or not cores:
        p.error(f"--cores: unknown {unknown}; choose from {', '.join(CORES)}")
    if args.plot_only:
        report(args.plot_only)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    procs = []
    for core in cores:
        cmd = command(core, args.out, args)
        print("$", " ".join(shlex.quote(c) for c in ["python", *cmd[1:]]), flush=True)
        log = (args.out / f"{core}.log").open("w")
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
    codes = [proc.wait() for proc in procs]
    if any(codes):
        sys.exit(f"a run failed (exit codes {codes}); see {args.out}/*.log")
    report(args.out)


if __name__ == "__main__":
    main()
