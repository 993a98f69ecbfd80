"""A Markdown table of runs side by side: returns per fifth of the frames and the diagnostics.

Each argument is ``NAME=PATH``, PATH a run folder (or its ``progress.csv``). Per run: the frames,
the mean return over the last 20% of the frames (as ``bench/learning.py`` measures it), the mean
return in each fifth of the frames, and the means over the first and the last fifth of the learner's
diagnostics (``diag/*``, docs/training.md): the KL of one update, the mean |log rho|, the slot
spread, the forget gate, and of the step size in use (``lr``: it moves with
``training.lr_kl_target``).

    python bench/ablation_table.py rmc=runs/a lstm=runs/b
    python bench/ablation_table.py --records bench/records/rmc_ablations   # every CSV there
    python bench/ablation_table.py --records bench/records/viewport_long --plot curves.png
    python bench/ablation_table.py --records bench/records/viewport_long --frames 2000000

``--frames N`` reads each run only up to N frames (the first 2M of a 5M run, to set it beside
2M runs).

Runs that evaluated during training (``evaluation.every``: the ``eval/return_mean`` column) get a
third table: per run, the evaluations in the last 20% of the frames (their number, mean and
lowest) and over the whole run.

``--plot FILE`` also draws every variant's return curves: each seed thin, their mean (over the
frames all seeds reached) thick.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import re
import sys
from pathlib import Path

DIAGNOSTICS = {
    "KL/update": "diag/policy_kl",
    "abs log rho": "diag/log_rho",
    "slot spread": "diag/slot_spread",
    "forget gate": "diag/forget_gate",
    "step size": "lr",
}


def _csv(path: Path) -> Path:
    return path if path.suffix == ".csv" else path / "progress.csv"


def _rows(path: Path, frames: int | None = None) -> list[dict]:
    """The run's ``progress.csv`` rows, up to ``frames`` env steps when given."""
    with _csv(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if frames is not None:
        rows = [r for r in rows if float(r["env_steps"]) <= frames]
    if not rows:
        raise SystemExit(f"{path}: no rows" + (f" up to {frames:,} frames" if frames else ""))
    return rows


def _variant(name: str) -> tuple[str, str] | None:
    """``(variant, seed)`` of a run named ``<variant>-seed<N>...``; None for another name."""
    match = re.match(r"(.*)-seed(\d+)", name)
    return (match.group(1), match.group(2)) if match else None


def fifths(rows: list[dict], column: str) -> list[float]:
    """Mean of ``column`` over the rows of each fifth of the frames (NaN where it is empty)."""
    last = float(rows[-1]["env_steps"])
    out = []
    for q in range(5):
        lo, hi = last * q / 5, last * (q + 1) / 5
        values = [
            float(r[column])
            for r in rows
            if r.get(column) not in (None, "") and lo <= float(r["env_steps"]) <= hi
        ]
        out.append(sum(values) / len(values) if values else math.nan)
    return out


def last20(rows: list[dict]) -> float:
    """The run's mean return over the last 20% of its frames: ``rmc_agents.tune.trial.late_mean``,
    the measure of ``bench/learning.py`` and of every sweep's ``return_last20``."""
    from rmc_agents.tune.trial import late_mean, returns_of_rows

    return late_mean(*returns_of_rows(rows))


def _fmt(x: float, digits: int = 1) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:.{digits}f}" if abs(x) >= 0.01 or x == 0 else f"{x:.1e}"


#: Each run's name and its ``progress.csv`` rows (read once, up to ``--frames``; see :func:`_rows`).
Runs = list[tuple[str, list[dict]]]


def table(runs: Runs, digits: int = 1) -> str:
    head = ["run", "frames", "last 20%", "per fifth"]
    for name in DIAGNOSTICS:
        head.append(f"{name} first / last fifth")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rows in runs:
        returns = fifths(rows, "episode_return_mean")
        cells = [name, f"{int(float(rows[-1]['env_steps'])):,}", _fmt(last20(rows), digits)]
        cells.append(" / ".join(_fmt(v, digits - 1) for v in returns))
        for column in DIAGNOSTICS.values():
            if column in rows[0]:
                values = fifths(rows, column)
                cells.append(f"{_fmt(values[0], 3)} / {_fmt(values[-1], 3)}")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bootstrap_interval(values: list[float], level: float = 0.95, draws: int = 10_000) -> tuple:
    """The ``level`` percentile interval of the mean of ``values`` over ``draws`` resamples
    (seeded: the same values give the same interval)."""
    rng = random.Random(0)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(draws))
    cut = (1.0 - level) / 2.0
    return means[int(cut * draws)], means[min(draws - 1, int((1.0 - cut) * draws))]


def groups(runs: Runs, digits: int = 1) -> str:
    """Per variant (a run's name without its ``-seedN...`` part): the seeds' last-20% returns,
    their mean and a 95% bootstrap interval of the mean (a repeated seed counts once: its first)."""
    by_group: dict[str, dict[str, float]] = {}
    for name, rows in runs:
        variant = _variant(name)
        if variant is None:
            continue
        if variant[1] not in by_group.setdefault(variant[0], {}):
            by_group[variant[0]][variant[1]] = last20(rows)
    lines = ["| variant | seeds | last 20% per seed | mean | 95% bootstrap interval |"]
    lines.append("|---|---|---|---|---|")
    for group, seeds in by_group.items():
        values = [seeds[s] for s in sorted(seeds, key=int)]
        low, high = bootstrap_interval(values)
        sep = " to " if low < 0 else "-"  # "-0.48 to -0.46", not "-0.48--0.46"
        lines.append(
            f"| {group} | {','.join(sorted(seeds, key=int))} | "
            f"{' / '.join(_fmt(v, digits) for v in values)} | "
            f"{_fmt(sum(values) / len(values), digits)} | {_fmt(low, digits)}{sep}{_fmt(high, digits)} |"
        )
    return "\n".join(lines)


EVAL = "eval/return_mean"


def evaluations(runs: Runs, digits: int = 1) -> str:
    """Per run with evaluations: those in the last 20% of its frames (count, mean, lowest), and
    the count and mean of all; "" when no run evaluated."""
    lines = [
        "| run | evaluations, last 20% | their mean | their lowest | evaluations, whole run "
        "| their mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in runs:
        last = float(rows[-1]["env_steps"])
        found = [
            (float(r["env_steps"]), float(r[EVAL])) for r in rows if r.get(EVAL) not in (None, "")
        ]
        if not found:
            continue
        late = [v for steps, v in found if steps >= 0.8 * last]
        every = [v for _, v in found]
        cells = [name, str(len(late))]
        cells += (
            [_fmt(sum(late) / len(late), digits), _fmt(min(late), digits)] if late else ["-", "-"]
        )
        cells += [str(len(every)), _fmt(sum(every) / len(every), digits)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot(runs: Runs, out: Path, title: str) -> None:
    """Return curves per variant (grouped as in :func:`groups`): seeds thin, their mean thick."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from seed_curves import draw

    from rmc_agents.tune.trial import returns_of_rows

    curves: dict[str, list[tuple[list[int], list[float]]]] = {}
    for name, rows in runs:
        variant = _variant(name)
        curves.setdefault(variant[0] if variant else name, []).append(returns_of_rows(rows))
    draw(curves, out, title)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", help="NAME=PATH (a run folder or a progress.csv)")
    p.add_argument("--records", help="a folder of CSV files: one row each, named by the file")
    p.add_argument("--plot", type=Path, help="also draw the return curves into this PNG file")
    p.add_argument("--title", default="", help="the plot's title")
    p.add_argument("--frames", type=int, help="read each run only up to this many frames")
    p.add_argument(
        "--digits",
        type=int,
        default=1,
        help="decimals of the returns (default 1; per fifth one fewer), e.g. 3 for returns in [-1, 1]",
    )
    args = p.parse_args()
    runs = []
    for item in args.runs:
        name, _, path = item.partition("=")
        runs.append((name, Path(path)))
    if args.records:
        runs += [(f.stem, f) for f in sorted(Path(args.records).glob("*.csv"))]
    if not runs:
        p.error("give NAME=PATH runs or --records")
    if args.digits < 1:
        p.error(f"--digits must be at least 1, got {args.digits}")
    loaded = [(name, _rows(path, args.frames)) for name, path in runs]
    print(table(loaded, args.digits))
    print()
    print(groups(loaded, args.digits))
    evaluated = evaluations(loaded, args.digits)
    if evaluated:
        print()
        print(evaluated)
    if args.plot:
        plot(loaded, args.plot, args.title)


if __name__ == "__main__":
    main()
