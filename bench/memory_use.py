"""How much a trained agent's score owes to its memory.

Plays ``--episodes`` episodes of a recurrent policy twice from the same first env seed and action
seed: as trained (the state each step leaves is fed to the next: the score the policy cards
report), and with the state reset to the policy's initial one before every step, so that it acts
on what it sees now (and its previous action and reward, where it reads them) alone. A uniformly
random policy from the same seed is the floor. Later episodes draw their levels from where the
env's random stream has got to, so the three are independent samples, not paired episodes.

The summary is the share of the gain over random play that is kept without the memory,
``(reset - random) / (with memory - random)``: near 1, the policy plays as a memoryless one would;
near 0 (or below), what it scores rests on what it remembers. (A state reset mid-episode is also
an input the policy never met in training, so a low share measures that shift too.)

    python bench/memory_use.py --checkpoint pretrained/viewport-rmc
    python bench/memory_use.py --checkpoint pretrained/viewport-lstm --episodes 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _summary(scores: list[float]) -> dict[str, float]:
    std = statistics.stdev(scores)  # (two episodes at least: main checks)
    return {
        "mean": statistics.fmean(scores),
        "std": std,
        "stderr": std / len(scores) ** 0.5,
        "episodes": len(scores),
    }


def kept_share(result: dict) -> float | None:
    """``(reset - random) / (with memory - random)`` of the means; None when the policy with its
    memory is no better than random play (nothing to keep)."""
    kept = result["with_memory"]["mean"] - result["random_policy"]["mean"]
    if kept <= 0:
        return None
    return (result["state_reset_every_step"]["mean"] - result["random_policy"]["mean"]) / kept


def measure(checkpoint: str, episodes: int, seed: int) -> dict:
    """Scores of the policy under ``checkpoint`` with its memory, with its state reset before
    every step, and of a random policy, over the same env seeds."""
    import torch

    from rmc_agents.export import _score, random_scores
    from rmc_agents.rollout import RolloutError, load_policy, make_rollout_env, play

    torch.set_num_threads(1)  # one observation a step: more threads only wait on each other
    policy = load_policy(checkpoint)
    if not policy.module.get_initial_state():
        core = getattr(policy.module, "core_name", None)
        what = f"its core is '{core}'" if core else f"it is a {type(policy.module).__name__}"
        raise RolloutError(
            f"{checkpoint}: the policy has no recurrent state ({what}), so there is no memory "
            "to take away"
        )
    if policy.env_spec is None:
        raise RolloutError(
            f"{checkpoint}: the env it was trained on is not recorded (no config.yaml beside a "
            "run's checkpoint, no env in a policy card)"
        )
    env = make_rollout_env(policy.env_spec, policy.env_kwargs, frames=False)
    try:
        kept = [_score(r) for r in play(policy, env, episodes, seed=seed)]
        reset = [_score(r) for r in play(policy, env, episodes, seed=seed, memory=False)]
    finally:
        env.close()
    rand = random_scores(policy.env_spec, policy.env_kwargs, episodes, seed=seed)
    result = {
        "checkpoint": checkpoint,
        "env": policy.env_spec,
        "core": getattr(policy.module, "core_name", None),
        "seed": seed,
        "with_memory": _summary(kept),
        "state_reset_every_step": _summary(reset),
        "random_policy": _summary(rand),
    }
    result["kept_without_memory"] = kept_share(result)
    return result


def _row(name: str, s: dict[str, float]) -> str:
    return f"| {name} | {s['mean']:.4g} | {s['std']:.3g} | {s['stderr']:.3g} |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a run, its best/ or a policy folder")
    p.add_argument("--episodes", type=int, default=100, help="episodes per way of playing (100)")
    p.add_argument("--seed", type=int, default=0, help="first env seed and action seed (0)")
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)
    if args.episodes < 2:
        p.error(f"--episodes must be at least 2 (for a spread), got {args.episodes}")
    from rmc_agents.rollout import RolloutError

    try:
        result = measure(args.checkpoint, args.episodes, args.seed)
    except RolloutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{result['env']}, {result['core']} policy {args.checkpoint}, {args.episodes} episodes")
    print("| play | mean score | std | std error |")
    print("|---|---:|---:|---:|")
    print(_row("with its memory", result["with_memory"]))
    print(_row("state reset before every step", result["state_reset_every_step"]))
    print(_row("random policy", result["random_policy"]))
    share = result["kept_without_memory"]
    print(
        "share of the gain over random play kept without the memory: "
        + (f"{share:.3f}" if share is not None else "- (no gain over random play)")
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
