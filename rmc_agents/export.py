"""Export a trained agent: its policy weights, its run config and a card with its measured score.

    python -m rmc_agents.export --run results/viewport/rmc-seed0 --to pretrained/viewport-rmc

writes ``<to>/policy/`` (the RLModule: weights only, no optimizer or RLlib state), ``<to>/config.yaml``
(the run's settings, so that a rollout knows the env), ``<to>/card.json`` and ``<to>/README.md``:
env, model, algorithm, frames trained, seed, the commit the export was made at, and the score over
``--episodes`` evaluation episodes (sampled actions, seeds 0, 1, ...) with its spread, beside a
uniformly random policy on the same seeds. ``python -m rmc_agents.rollout --checkpoint <to>`` plays it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["evaluate", "export", "main", "random_scores"]


def _algorithm(settings: dict) -> str:
    """The algorithm a saved config ran (``auto`` resolved as it was at training time)."""
    from rmc_agents.rl.settings import default_algo

    algo = settings.get("algo", "impala")
    return default_algo(settings["env"]) if algo == "auto" else algo


def _score(result: Any) -> float:
    return float(result.score if result.score is not None else result.episode_return)


def evaluate(path: str | Path, episodes: int, seed: int = 0) -> list[float]:
    """Scores of the policy under ``path`` over ``episodes`` episodes (sampled actions)."""
    from rmc_agents.rollout import load_policy, make_rollout_env, play

    policy = load_policy(path)
    env = make_rollout_env(policy.env_spec, policy.env_kwargs, frames=False)
    try:
        return [_score(r) for r in play(policy, env, episodes, seed=seed)]
    finally:
        env.close()


def random_scores(
    env_spec: str, env_kwargs: dict[str, Any], episodes: int, seed: int = 0
) -> list[float]:
    """Scores of a uniformly random policy on the same env and seeds."""
    from rmc_agents.rollout import make_rollout_env

    env = make_rollout_env(env_spec, env_kwargs, frames=False)
    env.action_space.seed(seed)
    scores = []
    try:
        obs, info = env.reset(seed=seed)
        while len(scores) < episodes:
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
                total += float(reward)
                done = terminated or truncated
            scores.append(float(info.get("score", total)))
            obs, info = env.reset()
    finally:
        env.close()
    return scores


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.mean(values),
        "std": statistics.pstdev(values),
        "min": min(values),
        "max": max(values),
    }


def export(
    run: str | Path,
    to: str | Path,
    episodes: int = 100,
    overwrite: bool = False,
    which: str = "best",
) -> dict:
    """Copy the policy and config of the run in ``run`` to ``to``, evaluate it, write its card.

    ``which``: ``best`` (the run's ``best/`` policy, the iteration with the best mean return; the
    final one where the run has none) or ``final`` (the last checkpoint's).
    """
    from rmc_agents.rollout import RolloutError, find_checkpoint

    run, to = Path(run), Path(to)
    if to.exists() and not overwrite:
        raise RolloutError(f"'{to}' exists; pass --overwrite to replace it")
    best = run / "best"
    use_best = which == "best" and (best / "policy").is_dir()
    module_dir, _ = find_checkpoint(best if use_best else run)
    config = run / "config.yaml"
    if not config.is_file():
        raise RolloutError(f"no config.yaml in '{run}' (export takes a run directory)")
    summary = (
        json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    )
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(module_dir, to / "policy")
    shutil.copy(config, to / "config.yaml")

    import yaml

    settings = yaml.safe_load(config.read_text())
    scores = evaluate(to, episodes)
    baseline = random_scores(settings["env"], settings.get("env_kwargs") or {}, episodes)
    size = sum(p.stat().st_size for p in (to / "policy").rglob("*") if p.is_file())
    best_row = json.loads((best / "best.json").read_text()) if use_best else {}
    card = {
        "policy": "best iteration" if use_best else "final checkpoint",
        "policy_env_steps": best_row.get("env_steps", summary.get("env_steps")),
        "env": settings["env"],
        "env_kwargs": settings.get("env_kwargs") or {},
        "algo": _algorithm(settings),
        "model": settings["model"],
        "seed": settings.get("seed"),
        "frames": summary.get("env_steps"),
        "training_best_return_mean": summary.get("best_episode_return_mean"),
        "commit": _commit(),
        "evaluation": {"episodes": episodes, "seeds": f"0..{episodes - 1} (sampled actions)"},
        "score": _stats(scores),
        "random_policy_score": _stats(baseline),
        "policy_bytes": size,
    }
    (to / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    m = settings["model"]
    sizes = (
        f"{m['mem_slots']} memories x {m['num_heads']} heads x {m['head_size']}"
        if m["core"] == "rmc"
        else f"hidden {m['hidden_size']}"
    )
    s, b = card["score"], card["random_policy_score"]
    (to / "README.md").write_text(
        f"# {to.name}\n\n"
        f"| | |\n|---|---|\n"
        f"| env | `{card['env']}` {card['env_kwargs'] or ''} |\n"
        f"| model | {m['core'].upper()} ({sizes}) |\n"
        f"| algorithm | {card['algo']} (settings in `config.yaml`) |\n"
        f"| frames trained | {card['frames']:,} (this policy: {card['policy']}, "
        f"at {card['policy_env_steps']:,}) |\n"
        f"| seed | {card['seed']} |\n"
        f"| exported at commit | {card['commit']} |\n"
        f"| score, {episodes} episodes (sampled actions, env seeds 0..{episodes - 1}) "
        f"| **{s['mean']:.1f}** (std {s['std']:.1f}, min {s['min']:g}, max {s['max']:g}) |\n"
        f"| random policy, same seeds | {b['mean']:.1f} (std {b['std']:.1f}) |\n"
        f"| policy size | {size / 1e6:.2f} MB |\n\n"
        f"Watch it: `python -m rmc_agents.rollout --checkpoint {to.as_posix()}"
        f"{' --attention' if m['core'] == 'rmc' else ''} --video {to.name}.gif`\n"
    )
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rmc_agents.export", description=__doc__.split("\n")[0]
    )
    p.add_argument("--run", required=True, help="a training run's output directory")
    p.add_argument("--to", required=True, help="the directory to write (e.g. pretrained/NAME)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes (default 100)")
    p.add_argument("--overwrite", action="store_true", help="replace --to if it exists")
    p.add_argument(
        "--which",
        choices=["best", "final"],
        default="best",
        help="the run's best-iteration policy (default; the final one if it has none) or its final",
    )
    args = p.parse_args(argv)
    from rmc_agents.rollout import RolloutError

    try:
        card = export(args.run, args.to, args.episodes, args.overwrite, args.which)
    except RolloutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = card["score"]
    print(
        f"{args.to}: score {s['mean']:.1f} (std {s['std']:.1f}) over {args.episodes} episodes; "
        f"random policy {card['random_policy_score']['mean']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
