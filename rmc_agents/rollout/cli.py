"""The command line: ``python -m rmc_agents.rollout``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from .acting import PolicyStepper
from .checkpoints import RolloutError, load_policy
from .environment import check_compatible, make_rollout_env
from .frames import VIDEO_SUFFIXES, _VideoWriter, _Window, _WindowClosed
from .playing import EpisodeResult, play

# --- the command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m rmc_agents.rollout",
        description="Play episodes with a trained policy, print the scores, and optionally watch "
        "them (window or GIF/MP4), with the RMC's attention beside the game.",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a run output directory, a checkpoint directory, or an RLModule directory",
    )
    p.add_argument("--episodes", type=int, default=1, help="episodes to play (default 1)")
    p.add_argument("--video", help="write the frames to this .gif or .mp4 file")
    p.add_argument("--render", choices=["human"], help="'human': show the game in a window")
    p.add_argument(
        "--attention", action="store_true", help="show the RMC's attention beside each frame"
    )
    p.add_argument(
        "--deterministic", action="store_true", help="take the most likely action (default: sample)"
    )
    p.add_argument("--seed", type=int, help="seed for the env and the sampling (default: random)")
    p.add_argument("--env", help="play this env instead of the one the run trained on")
    p.add_argument("--max-steps", type=int, help="end each episode after at most M steps")
    p.add_argument(
        "--fps", type=float, help="frames per second of the window/video (default: the env's)"
    )
    return p.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
    if args.episodes < 1:
        raise RolloutError(f"--episodes must be >= 1, got {args.episodes}")
    if args.max_steps is not None and args.max_steps < 1:
        raise RolloutError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.fps is not None and not args.fps > 0:
        raise RolloutError(f"--fps must be > 0, got {args.fps}")
    if args.video:
        video = Path(args.video)
        if video.suffix.lower() not in VIDEO_SUFFIXES:
            raise RolloutError(f"--video must end in .gif or .mp4, got '{args.video}'")
        if not video.parent.resolve().is_dir():
            raise RolloutError(f"--video: directory '{video.parent}' does not exist")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def _format_result(index: int, episodes: int, r: EpisodeResult) -> str:
    parts = [f"episode {index + 1}/{episodes}:", f"return {r.episode_return:.2f}"]
    if r.score is not None:
        parts.append(f"score {r.score:g}")
    parts.append(
        f"length {r.length}" + (" (cut by --max-steps)" if r.truncated_by_max_steps else "")
    )
    return "  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rmc_agents.rollout`` and ``rmc-rollout``; returns the status."""
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    args = parse_args(argv)
    try:
        _check_args(args)
        return _run(args)
    except RolloutError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    started = time.monotonic()
    torch.set_num_threads(1)  # one env, batch 1: threads only add overhead (and contention)
    policy = load_policy(args.checkpoint)
    spec = args.env or policy.env_spec
    if spec is None:
        raise RolloutError(
            f"cannot tell which environment '{args.checkpoint}' was trained on (no config.yaml "
            "next to the checkpoint); pass --env ID"
        )
    kwargs = policy.env_kwargs if (args.env is None or args.env == policy.env_spec) else {}
    frames = bool(args.video or args.render or args.attention)
    if args.attention and not (args.video or args.render):
        raise RolloutError("--attention draws on frames: add --video FILE or --render human")
    if args.attention:
        PolicyStepper(policy.module, attention=True)  # fail before building env/writers
    env = make_rollout_env(spec, kwargs, frames=frames)
    check_compatible(policy.module, env, spec)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    fps = args.fps or float(getattr(env, "metadata", {}).get("render_fps") or 10)
    core = policy.core_name or type(policy.module).__name__
    print(
        f"policy: {core} from {policy.module_dir} ({time.monotonic() - started:.1f} s); "
        f"env: {spec}; seed {seed}; {'deterministic' if args.deterministic else 'sampled'} actions",
        flush=True,
    )

    writer = _VideoWriter(Path(args.video), fps) if args.video else None
    window = _Window(fps, f"rmc-rollout: {spec}") if args.render == "human" else None
    bar = tqdm(
        total=args.episodes * args.max_steps if args.max_steps else None,
        unit="step",
        desc=f"episode 1/{args.episodes}",
        disable=None,  # only on a terminal
        leave=False,
    )

    def on_frame(frame: np.ndarray) -> None:
        if writer is not None:
            writer.add(frame)
        if window is not None:
            window.show(frame)

    def on_step(index: int, steps: int) -> None:
        bar.update(1)

    def on_episode(index: int, result: EpisodeResult) -> None:
        tqdm.write(_format_result(index, args.episodes, result))
        if index + 1 < args.episodes:
            bar.set_description(f"episode {index + 2}/{args.episodes}")

    results: list[EpisodeResult] = []  # filled as episodes end, so a closed window keeps them
    closed = False
    t0 = time.monotonic()
    try:
        play(
            policy,
            env,
            args.episodes,
            seed=seed,
            deterministic=args.deterministic,
            max_steps=args.max_steps,
            attention=args.attention,
            on_frame=on_frame if frames else None,
            on_step=on_step,
            on_episode=lambda i, r: (results.append(r), on_episode(i, r)),
            env_spec=spec,
        )
    except _WindowClosed:
        closed = True
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if window is not None:
            window.close()
        env.close()
    elapsed = time.monotonic() - t0
    if closed:
        print(f"window closed after {len(results)} finished episode(s)")
    if results:
        rets = np.array([r.episode_return for r in results])
        lens = np.array([r.length for r in results])
        line = (
            f"mean over {len(results)} episode(s): return {rets.mean():.2f} (std {rets.std():.2f})"
        )
        scores = [r.score for r in results if r.score is not None]
        if len(scores) == len(results):
            line += f"  score {np.mean(scores):.2f}"
        line += f"  length {lens.mean():.1f}  ({lens.sum() / max(elapsed, 1e-9):,.0f} steps/s)"
        print(line)
    if writer is not None:
        print(f"video: {writer.path} ({writer.frames} frames at {fps:g} fps)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
