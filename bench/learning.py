"""Learning curves: RMC vs LSTM (vs GRU, MLP) at an equal env-frame budget, over several seeds.

Each (model, seed) trains with ``train_agent``'s trainer into ``<out>/<model>-seed<seed>``, one run
after another in one Ray session. A run whose ``summary.json`` shows the budget reached is kept and
not trained again; a run folder left unfinished (a killed queue) is continued with ``--resume``'s
logic. So the same command, run again, finishes a queue. Then, from each run's ``progress.csv``:

- ``<out>/curves.png``: mean episode return against env frames, each seed thin, the seeds' mean bold;
- a Markdown table: per model, the mean and spread (min-max) over seeds of the mean return over the
  last 20% of the frames and of the best mean return, with the per-seed values;
- ``<out>/table.md`` and ``<out>/results.json`` (the same numbers).

    python bench/learning.py --frames 300000                          # Mini-Pacman viewport, defaults
    python bench/learning.py --config configs/stateless_cartpole.yaml --models rmc,lstm,mlp \\
        --seeds 0,1,2 --frames 1000000 --out results/stateless_cartpole
    python bench/learning.py --configs configs/minipacman_viewport_rmc.yaml \\
        configs/minipacman_viewport_lstm.yaml --seeds 0,1,2 --frames 3000000 --out results/viewport
    python bench/learning.py --report-only --out results/viewport    # tables/figure of what is there

``--config`` is one base YAML whose ``model.core`` each of ``--models`` replaces; ``--configs``
gives one YAML per model (its ``model.core`` names it). ``--set KEY=VALUE`` (repeatable) changes a
setting for every run, after its config file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

from rmc_agents.tune.trial import late_mean, read_returns

warnings.filterwarnings("ignore", category=DeprecationWarning)


def read_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    """(env steps, episode_return_mean) of a run's ``progress.csv`` rows that have a return."""
    return read_returns(run_dir / "progress.csv")


def run_name(model: str, seed: int) -> str:
    return f"{model}-seed{seed}"


def _finished(run_dir: Path, frames: int) -> bool:
    path = run_dir / "summary.json"
    if not path.is_file():
        return False
    return json.loads(path.read_text()).get("env_steps", 0) >= frames


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def report(out: Path) -> list[dict]:
    """Per model: seeds, last-20% and best returns; writes the figure, table.md, results.json."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from seed_curves import draw

    groups: dict[str, list[Path]] = {}
    for run_dir in sorted(out.glob("*-seed*")):
        if (run_dir / "progress.csv").is_file():
            groups.setdefault(run_dir.name.rsplit("-seed", 1)[0], []).append(run_dir)
    results, env = [], ""
    drawn: dict[str, list[tuple[list[int], list[float]]]] = {}
    for model, dirs in groups.items():
        lates, bests, seeds, frames, curves = [], [], [], [], []
        for run_dir in dirs:
            steps, returns = read_curve(run_dir)
            if not steps:
                continue
            summary_path = run_dir / "summary.json"
            if summary_path.is_file():
                env = json.loads(summary_path.read_text()).get("env", env)
            seeds.append(int(run_dir.name.rsplit("-seed", 1)[1]))
            lates.append(late_mean(steps, returns))
            bests.append(max(returns))
            frames.append(steps[-1])
            curves.append((steps, returns))
        drawn[model] = curves
        if not curves:
            continue
        results.append(
            {
                "model": model,
                "seeds": seeds,
                "frames": frames,
                "last20": lates,
                "best": bests,
                "last20_mean": statistics.mean(lates),
                "best_mean": statistics.mean(bests),
            }
        )
    draw(drawn, out / "curves.png", env, size=(7, 4.5))
    lines = [
        "| model | seeds | frames each | last 20% of frames: mean (min-max) | per seed "
        "| best: mean (min-max) | per seed |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {','.join(map(str, r['seeds']))} | {min(r['frames']):,} "
            f"| {_spread(r['last20'])} | {' / '.join(f'{v:.1f}' for v in r['last20'])} "
            f"| {_spread(r['best'])} | {' / '.join(f'{v:.1f}' for v in r['best'])} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))
    print(f"curves: {out / 'curves.png'}")
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default=None, help="the env (default: the config's, else Mini-Pacman)")
    p.add_argument("--models", default="rmc,lstm", help="cores, with --config or the defaults")
    p.add_argument("--config", help="base YAML for every model (model.core set per --models)")
    p.add_argument("--configs", nargs="*", help="one YAML per model (its model.core names it)")
    p.add_argument("--frames", type=int, default=300_000, help="env frames per run")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--out", default="results/learning")
    p.add_argument("--report-only", action="store_true", help="only tabulate the runs in --out")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting for every run, e.g. --set training.entropy_coeff=0.0",
    )
    args = p.parse_args()
    out = Path(args.out)
    if args.report_only:
        if not out.is_dir():
            p.error(f"--out {out} does not exist")
        report(out)
        return

    from rmc_agents.config import ConfigError, load_config, parse_set_items

    try:
        extra = parse_set_items(args.set)
        seeds = [int(s) for s in args.seeds.split(",")]
    except (ConfigError, ValueError) as exc:
        p.error(str(exc))
    if args.env:
        extra["env"] = args.env
    extra["stop.timesteps"] = args.frames
    extra["stop.seconds"] = None

    import ray

    from rmc_agents.rl.settings import RunSettings
    from rmc_agents.rl.trainer import load_run_settings, train

    if args.configs:
        runs = [load_config(RunSettings, c, overrides=extra, skip_none=False) for c in args.configs]
    else:
        runs = [
            load_config(
                RunSettings, args.config, overrides={**extra, "model.core": core}, skip_none=False
            )
            for core in args.models.split(",")
        ]
    queue = [(run, seed) for seed in seeds for run in runs]
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        for run, seed in queue:
            run_dir = out / run_name(run.model.core, seed)
            if _finished(run_dir, args.frames):
                print(f"== {run_dir.name}: done already", flush=True)
                continue
            resume = (run_dir / "checkpoint").is_dir()
            if resume:
                saved = load_run_settings(run_dir)
                saved.stop.timesteps = args.frames
                run_seeded = saved
            else:
                run.seed = seed
                run_seeded = run
            print(f"== {run_dir.name} on {run.env}, {args.frames:,} frames", flush=True)
            train(run_seeded, run_dir, resume=resume, overwrite=not resume)
    finally:
        ray.shutdown()
    report(out)


if __name__ == "__main__":
    main()
