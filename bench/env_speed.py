"""Random-action steps per second of Mini-Pacman, next to MiniGrid measured in the same run.

    python bench/env_speed.py            # about a minute on one core
    python bench/env_speed.py --seconds 1 --vector-sizes 1 64   # quicker look

Rows: the single environment (``gym.make``, both ids; episodes reset as they end), the vector face
(``gym.make_vec(..., vectorization_mode="vector_entry_point")``) at several sizes for both ids, and
``MiniGrid-MemoryS7-v0`` through ``gym.make`` as the reference gridworld. Actions are drawn before
timing (a numpy array), so the numbers are the environments' own cost. Ratios are against the
MiniGrid row of the same run.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the Mini-Pacman ids)

MINIGRID_ID = "MiniGrid-MemoryS7-v0"


def time_single(env_id: str, seconds: float, seed: int = 0) -> float:
    """Steps/s of one environment stepping random actions for about ``seconds``."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, 1 << 16).tolist()
    steps, start, i = 0, time.perf_counter(), 0
    while True:
        for _ in range(2000):
            _, _, terminated, truncated, _ = env.step(actions[i])
            i = (i + 1) & 0xFFFF
            if terminated or truncated:
                env.reset()
        steps += 2000
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            env.close()
            return steps / elapsed


def time_vector(env_id: str, num_envs: int, seconds: float, seed: int = 0) -> float:
    """Env steps/s (steps x num_envs) of the vector face stepping random actions."""
    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    venv.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 5, (64, num_envs))
    calls, start = 0, time.perf_counter()
    while True:
        for a in actions:
            venv.step(a)
        calls += len(actions)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            venv.close()
            return calls * num_envs / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mini-Pacman env speed vs MiniGrid")
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per row")
    parser.add_argument("--vector-sizes", type=int, nargs="+", default=[1, 64, 1024, 4096])
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, float]] = []

    def measure(name: str, n: str, fn) -> None:
        value = fn()
        rows.append((name, n, value))
        print(f"  measured {name:<32} {n:>6}: {value:>12,.0f} steps/s", flush=True)

    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}"
    )
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    measure(f"{MINIGRID_ID} (gym.make)", "1", lambda: time_single(MINIGRID_ID, args.seconds))
    for env_id in envs.ENV_IDS:
        measure(f"{env_id} (gym.make)", "1", lambda e=env_id: time_single(e, args.seconds))
    for env_id in envs.ENV_IDS:
        for n in args.vector_sizes:
            measure(
                f"{env_id} (make_vec)",
                str(n),
                lambda e=env_id, n=n: time_vector(e, n, args.seconds),
            )
    base = rows[0][2]
    print()
    print("| environment | envs | steps/s | vs MiniGrid |")
    print("|---|---:|---:|---:|")
    for name, n, value in rows:
        print(f"| {name} | {n} | {value:,.0f} | {value / base:.1f}x |")


if __name__ == "__main__":
    main()
