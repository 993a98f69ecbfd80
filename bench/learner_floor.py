"""The RMC's learner unroll (forward and backward) against its own matrix products alone: how far
the learner's core is from the limit its arithmetic sets on this CPU.

The unroll runs once under ``torch.profiler`` with shapes recorded; every matrix product it calls
(``mm``, ``addmm``, ``bmm``, forward and backward) is then replayed alone, on fresh operands of the
same shapes, in the same order (``bench/product_floor.py``). The two take turns ``--rounds``
times in one process, one thread, so that a change in the machine's load hits both alike;
milliseconds per unroll, median of the rounds. ``--profile`` adds the unroll's top operators by
self time.

Sizes: ``default``, the default agent's core on Mini-Pacman's viewport (4 memories x 4 heads x
32, memory gating, 9 input rows of 26 features: the 3x3 torso cells) over a packed learner batch
(32 chunks x 22 steps: 20-step fragments, a bootstrap step and a row of slack); ``paper``, the
paper-size core of ``configs/minipacman_viewport_rmc.yaml`` (4 x 4 x 64, 32 chunks x 42 steps).

    python bench/learner_floor.py
    python bench/learner_floor.py --sizes default --rounds 9 --profile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

SIZES = {
    "default": {"head_size": 32, "steps": 22},
    "paper": {"head_size": 64, "steps": 42},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="default,paper")
    p.add_argument("--batch", type=int, default=32, help="chunks per learner batch")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--profile", action="store_true", help="print the unroll's top operators")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    print(
        f"one thread, {args.batch} chunks; ms per unroll (forward + backward), median of "
        f"{args.rounds} rounds"
    )
    print(
        "| size | steps | unroll | its matrix products alone | products per unroll | "
        "products' GFLOP/s | unroll / products |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        _measure(size, args)
    # what one thread of this CPU does on a product large enough to run near its peak
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    print(
        f"\na 1024 x 1024 x 1024 product on this thread: {2 * 1024**3 / min(times) / 1e9:.0f} GFLOP/s"
    )


def _measure(size: str, args: argparse.Namespace) -> None:
    import torch

    from rmc_agents.core.relational_memory import RelationalMemory

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from product_floor import matrix_products

    spec = SIZES[size]
    torch.manual_seed(0)
    core = RelationalMemory(26, 4, spec["head_size"], 4, gate_style="memory")
    xs = torch.randn(args.batch, spec["steps"], 9, 26)
    state = core.initial_state(args.batch)

    def unroll() -> None:
        core.zero_grad(set_to_none=True)
        outputs, memory = core.unroll(xs, state)
        (outputs.square().mean() + memory.square().mean()).backward()

    for _ in range(3):
        unroll()
    captured = matrix_products(unroll)
    products = captured.replay
    for _ in range(3):
        products()
    full, floor = [], []
    for _ in range(args.rounds):
        for fn, acc in ((unroll, full), (products, floor)):
            start = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - start) * 1e3)
    a, b = statistics.median(full), statistics.median(floor)
    print(
        f"| {size} | {spec['steps']} | {a:.1f} | {b:.1f} | {captured.calls} | "
        f"{captured.flops / b / 1e6:.0f} | {a / b:.2f}x |",
        flush=True,
    )
    if args.profile:
        print(captured.profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
