"""Does ``torch.compile`` pay for the RMC on a CPU? Eager vs compiled unroll, forward+backward.

The RL agent's default core (4 memories x 4 heads x 32, memory gating, 1 block) over ``T`` steps of
9 input rows of 26 features (the 3x3 conv cells of Mini-Pacman's viewport), batch ``B``. Prints the
compile time, the time of the first call at two new batch sizes (RLlib's learner batch varies from
update to update), the largest output difference to eager, then eager and compiled times taking
turns. Not a test: run it by hand (it takes several minutes, mostly compiling).

    python bench/compile_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from rmc_agents.core.relational_memory import RelationalMemory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=22, help="T: max_seq_len of the default config")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, t, rows, features = args.batch, args.steps, 9, 26
    core = RelationalMemory(features, 4, 32, 4, 1, gate_style="memory")

    def fwd_bwd(fn, xs, state, resets) -> None:
        out, _ = fn(xs, state, resets)
        out.sum().backward()

    def inputs(batch: int):
        resets = torch.zeros(batch, t, dtype=torch.bool)
        resets[0, t // 2] = True
        return torch.randn(batch, t, rows, features), core.initial_state(batch), resets

    xs, state, resets = inputs(b)
    compiled = torch.compile(core.unroll, dynamic=True)
    start = time.perf_counter()
    fwd_bwd(compiled, xs, state, resets)
    print(f"compile + first call: {time.perf_counter() - start:.1f} s", flush=True)
    with torch.no_grad():
        diff = (core.unroll(xs, state, resets)[0] - compiled(xs, state, resets)[0]).abs().max()
    print(f"largest |eager - compiled| output: {diff.item():.2e}")
    for other in (b + 8, b + 9):
        start = time.perf_counter()
        fwd_bwd(compiled, *inputs(other))
        print(f"first call at batch {other}: {time.perf_counter() - start:.1f} s", flush=True)
    for _ in range(args.repeats):
        for name, fn in (("eager", core.unroll), ("compiled", compiled)):
            start = time.perf_counter()
            for _ in range(10):
                fwd_bwd(fn, xs, state, resets)
            ms = (time.perf_counter() - start) / 10 * 1000
            print(f"{name:>8}: {ms:6.1f} ms per forward+backward", flush=True)


if __name__ == "__main__":
    main()
