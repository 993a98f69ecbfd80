"""Learning curves: RMC vs LSTM (vs MLP) at an equal env-frame budget, one after another.

Each model trains with ``train_agent``'s trainer into ``<out>/<model>``; the curves (mean episode
return against env frames, from each run's ``progress.csv``) go to ``<out>/curves.png`` and a table
of final/best returns is printed.

    python bench/learning.py --frames 300000                          # Mini-Pacman viewport, defaults
    python bench/learning.py --configs configs/minipacman_viewport_rmc.yaml \\
        configs/minipacman_viewport_lstm.yaml --frames 5000000 --out results/viewport
    python bench/learning.py --env rmc_agents.rl.toy_envs:StatelessCartPole-v1 --models rmc,lstm,mlp \\
        --frames 1000000 --set training.entropy_coeff=0.003 --set training.vf_loss_coeff=0.05 \\
        --set training.lr=0.0005 --set training.anneal_lr=true \\
        --set resources.envs_per_runner=16                        # configs/stateless_cartpole.yaml

``--set KEY=VALUE`` (repeatable) changes a setting for every run, after its config file.
"""

from __future__ import annotations

import argparse
import csv
import json
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)


def read_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    steps, returns = [], []
    with (run_dir / "progress.csv").open() as f:
        for row in csv.DictReader(f):
            if row["episode_return_mean"]:
                steps.append(int(row["env_steps"]))
                returns.append(float(row["episode_return_mean"]))
    return steps, returns


def late_mean(steps: list[int], returns: list[float], fraction: float = 0.2) -> float:
    """Mean of the logged returns over the last ``fraction`` of the frames (RLlib's running mean
    swings a lot between iterations; this is the steadier number to compare)."""
    if not steps:
        return float("nan")
    start = steps[-1] * (1.0 - fraction)
    late = [r for s, r in zip(steps, returns, strict=True) if s >= start]
    return sum(late) / len(late)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="MiniPacman-Viewport-v0")
    p.add_argument("--models", default="rmc,lstm", help="used when --configs is not given")
    p.add_argument("--configs", nargs="*", help="one YAML per run (its model.core names it)")
    p.add_argument("--frames", type=int, default=300_000, help="env frames per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--out", default="results/learning")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting for every run, e.g. --set training.entropy_coeff=0.0",
    )
    args = p.parse_args()

    from rmc_agents.config import ConfigError, load_config, parse_set_items

    try:
        extra = parse_set_items(args.set)
    except ConfigError as exc:
        p.error(str(exc))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import ray

    from rmc_agents.rl.settings import RunSettings
    from rmc_agents.rl.trainer import train

    out = Path(args.out)
    runs = []
    if args.configs:
        for path in args.configs:
            runs.append(
                load_config(
                    RunSettings,
                    path,
                    overrides={**extra, "stop.timesteps": args.frames},
                    skip_none=False,  # --set KEY=null sets null
                )
            )
    else:
        for core in args.models.split(","):
            runs.append(
                load_config(
                    RunSettings,
                    overrides={
                        **extra,
                        "env": args.env,
                        "model.core": core,
                        "stop.timesteps": args.frames,
                    },
                    skip_none=False,
                )
            )
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    summaries = []
    try:
        for run in runs:
            run.seed = args.seed
            run.stop.seconds = None
            name = run.model.core
            print(f"== {name} on {run.env}, {args.frames:,} frames", flush=True)
            summary = train(run, out / name, overwrite=True)
            summaries.append(summary)
    finally:
        ray.shutdown()

    fig, ax = plt.subplots(figsize=(6, 4))
    for summary in summaries:
        steps, returns = read_curve(out / summary["model"])
        ax.plot(steps, returns, label=summary["model"])
    ax.set_xlabel("env frames")
    ax.set_ylabel("mean episode return")
    ax.set_title(summaries[0]["env"] if summaries else "")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    (out / "summaries.json").write_text(json.dumps(summaries, indent=2))
    print(
        "| model | env frames | time (s) | frames/s | last return | best return "
        "| mean return, last 20% of frames |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in summaries:
        late = late_mean(*read_curve(out / s["model"]))
        print(
            f"| {s['model']} | {s['env_steps']:,} | {s['time_s']:.0f} | {s['frames_per_second']:,.0f} "
            f"| {s['episode_return_mean']:.1f} | {s['best_episode_return_mean']:.1f} | {late:.1f} |"
        )
    print(f"curves: {out / 'curves.png'}")


if __name__ == "__main__":
    main()
