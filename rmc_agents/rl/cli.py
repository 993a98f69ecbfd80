"""``python train_agent.py --env ID ...``: train an agent with the RMC (or a baseline) policy.

Settings come from the built-in defaults, then ``--config FILE`` (YAML, see ``configs/``), then the
flags given here. Errors a user can cause print one ``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="train_agent.py",
        description="Train an agent whose policy is the Relational Memory Core, or an "
        "LSTM/GRU/DNC/MLP baseline, with IMPALA, APPO or PPO on Ray RLlib (default: IMPALA on "
        "Mini-Pacman, PPO elsewhere).",
    )
    p.add_argument(
        "--env",
        help="a registered Gymnasium id (MiniPacman-Viewport-v0, CartPole-v1), 'module:EnvId' "
        "(minigrid:MiniGrid-MemoryS7-v0) or 'package.module:ClassName' (default: from the config, "
        "else MiniPacman-Viewport-v0)",
    )
    p.add_argument(
        "--model", choices=["rmc", "lstm", "gru", "dnc", "mlp"], help="the core (default rmc)"
    )
    p.add_argument(
        "--algo",
        choices=["auto", "impala", "appo", "ppo"],
        help="RLlib algorithm (default auto: impala on Mini-Pacman, ppo elsewhere): impala and "
        "appo are asynchronous actor-learner (V-trace); ppo is synchronous, several epochs per "
        "batch",
    )
    p.add_argument("--config", help="YAML settings file (see configs/)")
    p.add_argument("--stop-timesteps", type=int, help="stop after this many env steps")
    p.add_argument("--stop-reward", type=float, help="stop when the mean episode return reaches R")
    p.add_argument("--stop-seconds", type=float, help="stop after this many seconds of training")
    p.add_argument("--stop-iterations", type=int, help="stop after this many training iterations")
    p.add_argument("--num-env-runners", type=int, help="EnvRunner actors (0: sample in the driver)")
    p.add_argument("--envs-per-runner", type=int, help="envs stepped together in each EnvRunner")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--output", help="output directory (default runs/<env>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --output")
    p.add_argument(
        "--verbose", action="store_true", help="also show Ray's and RLlib's start-up information"
    )
    p.add_argument("--address", help="address of a running Ray cluster (default: start one)")
    p.add_argument("--num-cpus", type=int, help="CPUs for a Ray started here (default: all)")
    p.add_argument("--num-learners", type=int, help="learner actors (0: learn in the driver)")
    p.add_argument("--gpus-per-learner", type=float, help="GPUs per learner")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting, as in the config files (repeatable; applied last), e.g. "
        "--set training.train_batch_size=1280 --set stop.seconds=null",
    )
    return p.parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "env": args.env,
        "model.core": args.model,
        "algo": args.algo,
        "stop.timesteps": args.stop_timesteps,
        "stop.reward": args.stop_reward,
        "stop.seconds": args.stop_seconds,
        "stop.iterations": args.stop_iterations,
        "resources.num_env_runners": args.num_env_runners,
        "resources.envs_per_runner": args.envs_per_runner,
        "resources.address": args.address,
        "resources.num_cpus": args.num_cpus,
        "resources.num_learners": args.num_learners,
        "resources.gpus_per_learner": args.gpus_per_learner,
        "seed": args.seed,
    }


def _error(message: str) -> int:
    # Once Ray runs, its log forwarding writes worker output to this stderr from another thread,
    # and a forwarded traceback may end without a newline: start ours on a line of its own.
    lead = "\n" if "ray" in sys.modules else ""
    print(f"{lead}error: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``train_agent.py`` and the ``rmc-train`` script; returns the exit status."""
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    args = parse_args(argv)
    from rmc_agents.config import ConfigError, apply_overrides, load_config, parse_set_items
    from rmc_agents.rl.cluster import ClusterError
    from rmc_agents.rl.envs import EnvResolutionError
    from rmc_agents.rl.errors import CheckpointError, UnsupportedSpaceError
    from rmc_agents.rl.settings import RunSettings
    from rmc_agents.rl.trainer import TrainingError, load_run_settings, train

    try:
        if args.resume:
            if not args.output:
                raise TrainingError("--resume needs --output (the run directory to continue)")
            if not (Path(args.output) / "config.yaml").is_file():
                raise TrainingError(f"--resume: no run in {args.output}")
            run = apply_overrides(load_run_settings(Path(args.output)), _overrides(args))
        else:
            run = load_config(RunSettings, args.config, overrides=_overrides(args))
        if args.set:
            run = apply_overrides(run, parse_set_items(args.set), source="--set", skip_none=False)
        suffix = "" if run.algorithm == "impala" else f"-{run.algorithm}"
        output = args.output or os.path.join(
            "runs", f"{run.env.replace(':', '_').replace('/', '_')}-{run.model.core}{suffix}"
        )
        summary = train(
            run, output, resume=args.resume, overwrite=args.overwrite, verbose=args.verbose
        )
    except (
        ConfigError,
        EnvResolutionError,
        UnsupportedSpaceError,
        CheckpointError,
        ClusterError,
        TrainingError,
    ) as exc:
        return _error(str(exc))

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    if summary.get("resumed_from_env_steps"):
        steps = (
            f"{summary['env_steps']:,} env steps in all, {summary['session_env_steps']:,} of them "
            f"in this session of {summary['session_time_s']:.0f} s"
        )
    else:
        steps = f"{summary['env_steps']:,} env steps in {summary['time_s']:.0f} s"
    print(
        f"done: {steps} "
        f"({summary['frames_per_second']:,.0f} frames/s sampled, "
        f"{summary['trained_frames_per_second']:,.0f} trained); "
        f"return {fmt(summary['episode_return_mean'])} "
        f"(best {fmt(summary['best_episode_return_mean'])}); "
        f"stopped by {summary['stopped_because']}; "
        f"checkpoint {summary['checkpoint']}",
        flush=True,
    )
    sampled, learned = summary["frames_per_second"], summary["trained_frames_per_second"]
    if sampled > 0 and learned < 0.5 * sampled:
        print(
            f"note: the learner trained on {learned / sampled:.0%} of the sampled frames (IMPALA "
            "and APPO drop what their learner cannot take): the learner is the bottleneck, so more EnvRunners "
            "will not help; a GPU learner (--num-learners 1 --gpus-per-learner 1) or a larger "
            "training.train_batch_size may",
            flush=True,
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
