"""Random-policy episode returns of Mini-Pacman, per mode: this game against DeepMind's rules.

Not a test: run it by hand. Each episode takes uniform random actions until Pacman dies or the
frame cap (3000). Three games can be played:

  * ``env``: this project's rules (``minipacman.core.GameCore``, the single-game core the
    Gymnasium env steps; its reward is the env's reward).
  * ``transcription``: ``tests/envs/deepmind_game.py``, DeepMind's ``PillEater`` written out again
    rule by rule, fed the *same* random numbers and the *same* actions as ``env``. The two games
    of an episode are paired, so their per-episode difference has a far smaller spread than either
    return: a rule that differs shows up as a non-zero paired mean (and as episodes that differ).
    Hunt and ambush get the paper's 80-step level timer, as in ``test_golden.py``.
  * ``deepmind`` (with ``--deepmind FILE``): DeepMind's released ``common/deepmind.py`` itself
    (from the public repository higgsfield/Imagination-Augmented-Agents; it is not part of this
    repository, pass the path of a copy), on numpy's global generator seeded per episode, once as
    released (no level timer) and once with the paper's timer (80) in hunt and ambush. Independent
    samples: compare means with their standard errors.

    python bench/minipacman_random_returns.py                        # 2000 episodes per mode
    python bench/minipacman_random_returns.py --episodes 4000 --modes hunt ambush \\
        --deepmind /tmp/deepmind.py --json bench/records/minipacman_random_returns.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "envs"))

from deepmind_game import DeepMindGame  # noqa: E402

from minipacman.core import MODES, GameCore  # noqa: E402
from minipacman.rng import uniform_scalar  # noqa: E402

FRAME_CAP = 3000
PAPER_TIMER = {"hunt": 80, "ambush": 80}


def episode_key(seed: int) -> int:
    return seed * 7919 + 17


def actions_for(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 5])


def play_env(mode: str, seed: int) -> float:
    core = GameCore(mode, FRAME_CAP)
    core.set_keys(episode_key(seed))
    core.reset()
    rng = actions_for(seed)
    total = 0.0
    while True:
        reward, terminated, truncated = core.step(int(rng.integers(5)))
        total += reward
        if terminated or truncated:
            return total


def play_transcription(mode: str, seed: int) -> float:
    key = episode_key(seed)
    game = DeepMindGame(mode, lambda t, i: uniform_scalar(key, t, i), FRAME_CAP,
                        PAPER_TIMER.get(mode))  # fmt: skip
    game.rgb = lambda: None  # the picture is not needed here (and is the slow part)
    game.start()
    rng = actions_for(seed)
    total = 0.0
    while True:
        reward, pcontinue = game.step(int(rng.integers(5)))
        total += reward
        if pcontinue == 0:
            return total


def load_deepmind(path: str):
    spec = importlib.util.spec_from_file_location("deepmind_pill_eater", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PillEater


def play_deepmind(pill_eater, mode: str, seed: int, timer: int | None) -> float:
    np.random.seed(seed)  # noqa: NPY002  (the code draws from numpy's global generator)
    game = pill_eater(mode, frame_cap=FRAME_CAP)
    if timer is not None:
        game.timer_terminate = timer
    game.start()
    rng = actions_for(seed)
    total = 0.0
    while True:
        game.step(int(rng.integers(5)))
        total += game.reward
        if game.pcontinue == 0:
            return total


def summary(values) -> dict:
    x = np.asarray(values, np.float64)
    return {"mean": float(x.mean()), "se": float(x.std(ddof=1) / math.sqrt(len(x))), "n": len(x)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--deepmind", help="path of a copy of DeepMind's common/deepmind.py")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()
    pill_eater = load_deepmind(args.deepmind) if args.deepmind else None
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    results = {}
    print(f"{args.episodes} episodes per mode, seeds {seeds.start}..{seeds.stop - 1}, "
          "uniform random actions; mean +- standard error")  # fmt: skip
    for mode in args.modes:
        start = time.perf_counter()
        env = [play_env(mode, s) for s in seeds]
        tr = [play_transcription(mode, s) for s in seeds]
        diff = np.subtract(env, tr)
        row = {
            "env": summary(env),
            "transcription": summary(tr),
            "env_minus_transcription": summary(diff),
            "episodes_that_differ": int((np.abs(diff) > 1e-9).sum()),
        }
        if pill_eater is not None:
            row["deepmind_no_timer"] = summary(
                [play_deepmind(pill_eater, mode, s, None) for s in seeds]
            )
            if mode in PAPER_TIMER:
                row["deepmind_timer_80"] = summary(
                    [play_deepmind(pill_eater, mode, s, PAPER_TIMER[mode]) for s in seeds]
                )
        results[mode] = row
        parts = [f"{name} {v['mean']:+.4f} +- {v['se']:.4f}" for name, v in row.items()
                 if isinstance(v, dict)]  # fmt: skip
        print(f"{mode:8s} " + " | ".join(parts)
              + f" | differing episodes {row['episodes_that_differ']}"
              + f"  ({time.perf_counter() - start:.0f} s)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"episodes": args.episodes,
                                               "first_seed": args.first_seed,
                                               "results": results}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
