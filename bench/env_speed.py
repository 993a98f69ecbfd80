"""Random-action steps per second of Mini-Pacman, next to MiniGrid measured in the same run.

    python bench/env_speed.py            # about a minute (11 rows x 4 s), one core
    python bench/env_speed.py --seconds 1 --vector-sizes 1 64   # quicker look

Rows: the single environment (``gym.make``, both ids; episodes reset as they end), the vector face
(``gym.make_vec(..., vectorization_mode="vector_entry_point")``) at several sizes for both ids, and
``MiniGrid-MemoryS7-v0`` through ``gym.make`` as the reference gridworld. Actions are drawn before
timing (a numpy array), so the numbers are the environments' own cost. Ratios are against the
MiniGrid row of the same run; rows are timed round-robin in short slices, so that load from other
work on the machine slows every row alike.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import minipacman  # registers the Mini-Pacman ids

MINIGRID_ID = "MiniGrid-MemoryS7-v0"


class SingleRunner:
    """One environment from ``gym.make`` stepping random actions, resetting as episodes end."""

    def __init__(self, env_id: str, seed: int = 0):
        self.env = gym.make(env_id)
        self.env.reset(seed=seed)
        n = self.env.action_space.n
        self.actions = np.random.default_rng(seed).integers(0, n, 1 << 16).tolist()
        self.i = 0

    def run(self, seconds: float) -> tuple[int, float]:
        env, actions, steps, start = self.env, self.actions, 0, time.perf_counter()
        while True:
            for _ in range(1000):
                _, _, terminated, truncated, _ = env.step(actions[self.i])
                self.i = (self.i + 1) & 0xFFFF
                if terminated or truncated:
                    env.reset()
            steps += 1000
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return steps, elapsed


class VectorRunner:
    """The vector face stepping a pre-drawn array of random actions; counts env steps."""

    def __init__(self, env_id: str, num_envs: int, seed: int = 0):
        self.env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
        self.env.reset(seed=seed)
        self.num_envs = num_envs
        self.actions = np.random.default_rng(seed).integers(0, 5, (16, num_envs))

    def run(self, seconds: float) -> tuple[int, float]:
        calls, start = 0, time.perf_counter()
        while True:
            for a in self.actions:
                self.env.step(a)
            calls += len(self.actions)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return calls * self.num_envs, elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mini-Pacman env speed vs MiniGrid")
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per row")
    parser.add_argument("--rounds", type=int, default=4, help="round-robin passes over the rows")
    parser.add_argument("--vector-sizes", type=int, nargs="+", default=[1, 64, 1024, 4096])
    args = parser.parse_args(argv)

    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}"
    )
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    runners = [(f"{MINIGRID_ID} (gym.make)", "1", SingleRunner(MINIGRID_ID))]
    runners += [(f"{e} (gym.make)", "1", SingleRunner(e)) for e in minipacman.ENV_IDS]
    runners += [
        (f"{e} (make_vec)", str(n), VectorRunner(e, n))
        for e in minipacman.ENV_IDS
        for n in args.vector_sizes
    ]
    # Round-robin in short slices, so that a machine shared with other work slows every row alike.
    totals = {name + n: [0, 0.0] for name, n, _ in runners}
    for r in range(args.rounds):
        for name, n, runner in runners:
            steps, elapsed = runner.run(args.seconds / args.rounds)
            totals[name + n][0] += steps
            totals[name + n][1] += elapsed
        print(f"  round {r + 1}/{args.rounds} done", flush=True)
    rows = [(name, n, totals[name + n][0] / totals[name + n][1]) for name, n, _ in runners]
    base = rows[0][2]
    print()
    print("| environment | envs | steps/s | vs MiniGrid |")
    print("|---|---:|---:|---:|")
    for name, n, value in rows:
        print(f"| {name} | {n} | {value:,.0f} | {value / base:.1f}x |")


if __name__ == "__main__":
    main()
