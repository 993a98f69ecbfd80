"""Rollout cost per step: policy only, with frames, with the RMC attention panel, and encoding.

    python bench/rollout_speed.py [--env MiniPacman-Viewport-v0] [--steps 300] [--repeats 3]

Builds an untrained RMC policy with the default model settings (4 slots, 4 heads; the weights do
not change the cost), plays ``--steps`` steps per setting (one episode, cut at ``--steps`` or
restarted until that many steps are done) and reports milliseconds per step (best of
``--repeats``) and the ratio to the policy-only baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MiniPacman-Viewport-v0")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import torch
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rmc_agents.rl.module import RecurrentAgentModule
    from rmc_agents.rl.settings import ModelSettings
    from rmc_agents.rollout import LoadedPolicy, _VideoWriter, make_rollout_env, play

    torch.set_num_threads(1)
    env = make_rollout_env(args.env, {}, frames=True)
    module = RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config=ModelSettings().rllib_model_config(),
    ).build()
    module.eval()
    policy = LoadedPolicy(module, Path("."), None, args.env)
    tmp = Path(tempfile.mkdtemp())

    def run(frames: bool, attention: bool, video: str | None) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            writer = _VideoWriter(tmp / f"b.{video}", 8) if video else None
            on_frame = writer.add if writer else (lambda f: None) if frames else None
            steps = 0
            start = time.perf_counter()
            while steps < args.steps:
                results = play(
                    policy, env, 1, seed=steps, max_steps=args.steps - steps,
                    attention=attention, on_frame=on_frame, env_spec=args.env,
                )  # fmt: skip
                steps += sum(r.length for r in results)
            if writer:
                writer.close()
            best = min(best, (time.perf_counter() - start) / steps * 1000)
        return best

    settings = [
        ("policy only", False, False, None),
        ("+ frames (env.render)", True, False, None),
        ("+ frames + attention panel", True, True, None),
        ("+ frames + attention + GIF", True, True, "gif"),
        ("+ frames + attention + MP4", True, True, "mp4"),
    ]
    base = None
    print(f"| {args.env}, {args.steps} steps | ms/step | steps/s | x policy only |")
    print("|---|---:|---:|---:|")
    for name, frames, attention, video in settings:
        ms = run(frames, attention, video)
        base = base or ms
        print(f"| {name} | {ms:.2f} | {1000 / ms:,.0f} | {ms / base:.1f} |", flush=True)


if __name__ == "__main__":
    main()
