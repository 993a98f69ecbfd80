"""What memory is worth on POPGym's HigherLowerEasy: the mean return of three fixed players.

The game (POPGym, Morad et al., ICLR 2023): one 52-card deck is dealt a card at a time; the
agent sees the card just dealt (its rank) and guesses whether the next one is higher or lower:
+1/52 for a right guess, -1/52 for a wrong one, 0 when the ranks tie. Every player here plays
POPGym's own env (``popgym:popgym-HigherLowerEasy-v0``) from what it observes:

- ``random``: a fair coin;
- ``memoryless``: the best play that sees the present card only (higher below the middle rank,
  lower above it, higher at the middle);
- ``counting``: the cards seen so far counted (the memory the game asks for), then the guess
  with more cards left that win it (higher on a tie), which is what a memory can add.

The returns are the mean over ``--episodes`` episodes (env seeds ``--seed`` on), with their
standard error: the gap between ``memoryless`` and ``counting`` is all an agent's memory can win
on this env, to set against an RL run's return. Beside it, the MMER the same player would be
given by a run's log: the episodes cut into consecutive means of ``--block-episodes`` (64: one
logged mean of ``configs/popgym.yaml``'s 64 envs), the best of ``--blocks`` such means in a row
(47: the logged means in the second half of a 300k-step run), averaged over the groups of
``--blocks`` the episodes make. A learner that has reached a player's play logs that MMER, not
the player's mean.

    pip install popgym
    python bench/higherlower_levels.py                      # 20,000 episodes per player
    python bench/higherlower_levels.py --episodes 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ENV = "popgym:popgym-HigherLowerEasy-v0"
RANKS = 13
HIGHER, LOWER = 0, 1  # the env's actions: 0 guesses that the next card is higher


def guess(player: str, card: int, left: list[int], coin) -> int:
    """The action of ``player`` on seeing rank ``card`` with ``left[r]`` cards of rank r unseen."""
    if player == "random":
        return HIGHER if coin.random() < 0.5 else LOWER
    if player == "memoryless":
        return HIGHER if card <= RANKS // 2 else LOWER
    higher, lower = sum(left[card + 1 :]), sum(left[:card])
    return HIGHER if higher >= lower else LOWER


def play(player: str, episodes: int, seed: int) -> list[float]:
    """The returns of ``episodes`` episodes of ``player``, the env reset with seeds ``seed..``."""
    import random

    import gymnasium as gym
    import popgym  # noqa: F401  (registers the ids)

    env = gym.make(ENV.split(":", 1)[1])
    coin = random.Random(seed)
    returns = []
    for episode in range(episodes):
        card, _ = env.reset(seed=seed + episode)
        card = int(card)
        left = [4] * RANKS
        left[card] -= 1
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(guess(player, card, left, coin))
            total += float(reward)
            card, done = int(obs), terminated or truncated
            left[card] -= 1
        returns.append(total)
    env.close()
    return returns


def logged_mmer(returns: list[float], block_episodes: int, blocks: int) -> float | None:
    """The best of ``blocks`` consecutive means of ``block_episodes`` returns each, averaged over
    the groups of ``blocks`` the returns make (None: too few returns for one group)."""
    means = [
        statistics.fmean(returns[i : i + block_episodes])
        for i in range(0, len(returns) - block_episodes + 1, block_episodes)
    ]
    groups = [means[i : i + blocks] for i in range(0, len(means) - blocks + 1, blocks)]
    return statistics.fmean(max(g) for g in groups) if groups else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=20_000, help="episodes per player")
    p.add_argument("--seed", type=int, default=0, help="the first env seed")
    p.add_argument("--players", default="random,memoryless,counting")
    p.add_argument("--block-episodes", type=int, default=64, help="episodes per logged mean")
    p.add_argument("--blocks", type=int, default=47, help="logged means the MMER is the best of")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.episodes < 2:
        p.error(f"--episodes must be at least 2, got {args.episodes}")
    if args.block_episodes < 1 or args.blocks < 1:
        p.error("--block-episodes and --blocks must be at least 1")
    players = [x.strip() for x in args.players.split(",") if x.strip()]
    unknown = [x for x in players if x not in ("random", "memoryless", "counting")]
    if unknown or not players:
        p.error(f"--players: unknown {', '.join(unknown) or '(none given)'}; "
                "choose from random, memoryless, counting")  # fmt: skip
    try:
        import popgym  # noqa: F401
    except ImportError:
        p.error("POPGym is not installed: pip install popgym")
    results = {}
    print(
        f"{ENV}: mean episode return over {args.episodes:,} episodes (env seeds {args.seed}..); "
        f"MMER: the best of {args.blocks} means of {args.block_episodes} episodes"
    )
    for player in players:
        returns = play(player, args.episodes, args.seed)
        mean = statistics.fmean(returns)
        error = statistics.stdev(returns) / math.sqrt(len(returns))
        results[player] = {"mean": mean, "standard_error": error, "episodes": len(returns)}
        mmer = logged_mmer(returns, args.block_episodes, args.blocks)
        line = f"  {player:<10} {mean:.4f} +- {error:.4f}"
        if mmer is not None:
            results[player]["mmer"] = mmer
            line += f"   MMER as a run logs it: {mmer:.4f}"
        print(line, flush=True)
    if args.json:
        setup = {"block_episodes": args.block_episodes, "blocks": args.blocks}
        args.json.write_text(
            json.dumps({"env": ENV, "mmer": setup, "players": results}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
