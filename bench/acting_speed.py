"""Acting cost per vector step (the EnvRunner's forward pass) of three choices, each against the
alternative it replaced, in one process, taking turns.

* the image torso: 2x2 convolutions as Linears over each cell's neighbours (``encoders.py``) vs
  torch's ``conv2d`` with the same weights;
* the RMC's folded input projection: kept between acting steps until a weight changes
  (``RelationalMemory._folded_qkv``) vs computed at every step;
* drawing the actions: ``connectors.sample_categorical`` vs RLlib's ``TorchCategorical``
  (``from_logits``, ``sample``, ``logp``), the same numbers.

Then the RMC step against its own matrix products alone (every ``mm``, ``addmm`` and ``bmm`` the
step calls, replayed on operands of the same shapes, nothing else: ``bench/product_floor.py``):
how far the step is from the limit its arithmetic sets on this CPU.
``--profile`` adds the step's top operators (torch.profiler, self time).

The default model on Mini-Pacman's viewport, ``--batch`` observations (one EnvRunner's vector
step: 32 envs), no gradients, one thread; microseconds per call, best of ``--repeats``.

    python bench/acting_speed.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _best_us(fn, calls: int, repeats: int) -> float:
    for _ in range(20):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="print the RMC step's top operators")
    args = p.parse_args()

    import gymnasium as gym
    import numpy as np
    import torch
    import torch.nn.functional as F
    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    import minipacman  # noqa: F401  (registers Mini-Pacman)
    from rmc_agents.rl.connectors import sample_categorical
    from rmc_agents.rl.module import RecurrentAgentModule

    torch.set_num_threads(1)
    torch.manual_seed(0)
    env = gym.make("MiniPacman-Viewport-v0")
    module = RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config={"core": "rmc"},
    ).build()
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(args.batch)]))
    encoder, core = module.encoder, module.core
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]

    torso = next(m for m in encoder.modules() if type(m).__name__ == "_ImageTorso")

    def conv_torso() -> torch.Tensor:  # the torso as it was: conv2d, coordinates, rows
        y = obs.float().permute(0, 3, 1, 2) * torso.scale
        for conv in convs:
            y = torch.relu(F.conv2d(y, conv.weight, conv.bias))
        coords = torso.coords.unsqueeze(0).expand(y.shape[0], -1, -1, -1)
        return torch.cat([y, coords], dim=1).flatten(2).transpose(1, 2)

    feats = encoder(obs)[:, None]
    state = core.initial_state(args.batch)

    def fresh_fold() -> tuple[torch.Tensor, torch.Tensor]:
        qkv, proj = core.blocks[0].qkv, core.input_projection
        return qkv.weight @ proj.weight, torch.addmv(qkv.bias, qkv.weight, proj.bias)

    kept_fold = core._folded_qkv

    def unroll_fresh() -> None:
        core._folded_qkv = fresh_fold
        try:
            core.unroll(feats, state)
        finally:
            core._folded_qkv = kept_fold

    logits = module.pi(torch.randn(args.batch, 1, module.pi.in_features))

    def rllib_draw() -> None:
        dist = TorchCategorical.from_logits(logits)
        dist.logp(dist.sample())

    pairs = {
        "image torso": (lambda: torso(obs), conv_torso),
        "RMC step": (lambda: core.unroll(feats, state), unroll_fresh),
        "action draw": (lambda: sample_categorical(logits), rllib_draw),
    }
    print(f"batch {args.batch}, no gradients, one thread; us per call (best of {args.repeats})")
    print("| part | now | before | ratio |")
    print("|---|---:|---:|---:|")
    with torch.no_grad():
        now_us = {}
        for name, (now, before) in pairs.items():
            a = now_us[name] = _best_us(now, args.calls, args.repeats)
            b = _best_us(before, args.calls, args.repeats)
            print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x |", flush=True)
        step = now_us["RMC step"]  # the step as timed above
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from product_floor import matrix_products

        products = matrix_products(lambda: core.unroll(feats, state))
        floor = _best_us(products.replay, args.calls, args.repeats)
        print("\n| RMC step | its matrix products alone | step / products |")
        print("|---:|---:|---:|")
        print(f"| {step:.1f} | {floor:.1f} | {step / floor:.2f}x |", flush=True)
        if args.profile:
            from torch.profiler import profile

            with profile() as prof:
                for _ in range(args.calls):
                    core.unroll(feats, state)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
            print(table)


if __name__ == "__main__":
    main()
