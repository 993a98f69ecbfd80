"""Forward+backward cost of a core unroll: the RMC vs LSTM baselines vs a straightforward RMC.

Every contender runs in the same process, with repetitions interleaved (round robin) so that a
busy machine slows all of them alike; the table reports the median time per unroll and its ratio
to the RMC. Not a test: run it by hand.

    python bench/core_speed.py                       # every size, 1 thread
    python bench/core_speed.py --threads 2 --nth-batch 200 --repeats 5

Sizes:
  * ``rl``: T=40, B=32, the Mini-Pacman agent's core: 4 memories, 4 heads x 64 (mem_size 256,
    1024 state features), memory gating, 1 block; input the 3x3 conv cells as 9 rows of 26
    features (``rl-rows``) or one 256-feature vector (``rl-vector``).
  * ``nth``: the Nth Farthest core: T=8, 8 memories, 8 heads x 256 (mem_size 2048, 16384 state
    features), unit gating, 1 block, 40 inputs per step, batch ``--nth-batch`` (the paper's 1600
    is too slow on a small CPU; the LSTMs gain relatively with batch size, being memory-bound
    at small batches).

Baselines:
  * "equal-state LSTM": ``hidden_size = mem_slots * mem_size``, the same number of state features
    (and output features) as the RMC. For ``nth`` that LSTM would hold 1.07 billion weights
    (4.3 GB; 18 GB peak while training), so there it runs only with ``--nth-equal-state`` (use a
    small ``--nth-batch``); by default the nth size compares an LSTM with hidden = mem_size (2048)
    and an LSTM with about the RMC's parameter count.
  * "naive RMC": the same equations and the same weights, written plainly per step: the input
    projected every step, a Python loop over heads, every row through every MLP, the gate biases
    added every step. Its outputs are checked against the module before timing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rmc_agents.core import LSTMCore, RelationalMemory


def naive_unroll(
    core: RelationalMemory, xs: torch.Tensor, memory: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A straightforward per-step RMC (same parameters as ``core``); xs ``[B, T, n, I]``."""
    heads, key, head = core.num_heads, core.key_size, core.head_size
    outputs = []
    for t in range(xs.shape[1]):
        projected = core.input_projection(xs[:, t])
        rows = torch.cat([memory, projected], dim=1)
        for block in core.blocks:
            qkv = block.qkv_norm(block.qkv(rows))
            per_head = []
            for h in range(heads):
                base = h * (2 * key + head)
                q = qkv[..., base : base + key] * key**-0.5
                k = qkv[..., base + key : base + 2 * key]
                v = qkv[..., base + 2 * key : base + 2 * key + head]
                per_head.append(torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v)
            rows = block.attention_norm(rows + torch.cat(per_head, dim=-1))
            hidden = rows
            for index, layer in enumerate(core.attention_mlp):
                hidden = layer(F.relu(hidden) if index else hidden)
            rows = block.mlp_norm(rows + hidden)
        attended = rows[:, : core.mem_slots]
        gates = core.gate_memory(torch.tanh(memory)) + core.gate_inputs(
            projected.mean(dim=1)
        ).unsqueeze(1)
        input_gate, forget_gate = gates.chunk(2, dim=-1)
        input_gate = torch.sigmoid(input_gate + core.input_bias)
        forget_gate = torch.sigmoid(forget_gate + core.forget_bias)
        memory = input_gate * torch.tanh(attended) + forget_gate * memory
        outputs.append(memory.flatten(1))
    return torch.stack(outputs, dim=1), memory


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _lstm_hidden_for_params(params: int, input_size: int) -> int:
    """Hidden size whose one-layer LSTM has about ``params`` parameters: 4H(H + I + 2) = params."""
    b = input_size + 2
    return int((-b + math.sqrt(b * b + params)) / 2)


def _forward_flops(run: Callable[[], object]) -> int:
    """Matmul FLOPs (2 per multiply-add) of one forward call, counted by torch."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def _lstm_flops(batch: int, steps: int, input_size: int, hidden: int) -> int:
    """Matmul FLOPs of a one-layer LSTM forward (torch's fused kernel is not counted by torch)."""
    return 2 * batch * steps * 4 * hidden * (input_size + hidden)


def _train_step(core: torch.nn.Module, xs: torch.Tensor, unroll: Callable) -> Callable[[], None]:
    state = core.initial_state(xs.shape[0])

    def run() -> None:
        core.zero_grad(set_to_none=True)
        outputs, _ = unroll(xs, state)
        outputs.square().mean().backward()

    return run


def _time_all(contenders: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each contender, repetitions interleaved."""
    for run in contenders.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_size(
    label: str,
    batch: int,
    steps: int,
    rows: int,
    row_size: int,
    rmc_kwargs: dict,
    lstm_hiddens: dict[str, int],
    repeats: int,
) -> list[tuple[str, str, int, float, float]]:
    """Build the contenders of one size, check the naive RMC agrees, time all; return rows."""
    torch.manual_seed(0)
    rmc = RelationalMemory(row_size, **rmc_kwargs)
    xs_rows = torch.randn(batch, steps, rows, row_size)
    state = rmc.initial_state(batch)
    with torch.no_grad():
        fast_out, _ = rmc.unroll(xs_rows, state)
        naive_out, _ = naive_unroll(rmc, xs_rows, state)
    error = (fast_out - naive_out).abs().max().item()
    if error > 1e-4:
        raise AssertionError(f"{label}: naive RMC disagrees with the module by {error}")

    rmc_flops = _forward_flops(lambda: rmc.unroll(xs_rows, state))
    naive_flops = _forward_flops(lambda: naive_unroll(rmc, xs_rows, state))
    contenders = {
        "RMC (rmc_agents.core)": (rmc, rmc_flops, _train_step(rmc, xs_rows, rmc.unroll)),
        "RMC naive per-step": (
            rmc,
            naive_flops,
            _train_step(rmc, xs_rows, lambda x, s: naive_unroll(rmc, x, s)),
        ),
    }
    xs_flat = xs_rows.flatten(2)
    for name, hidden in lstm_hiddens.items():
        lstm = LSTMCore(rows * row_size, hidden_size=hidden)
        flops = _lstm_flops(batch, steps, rows * row_size, hidden)
        contenders[f"LSTM {name}, hidden {hidden}"] = (
            lstm,
            flops,
            _train_step(lstm, xs_flat, lstm.unroll),
        )

    medians = _time_all({name: run for name, (_, _, run) in contenders.items()}, repeats)
    base = medians["RMC (rmc_agents.core)"]
    # fwd+bwd of a matmul costs about 3x its forward FLOPs.
    return [
        (
            label,
            name,
            _count(module),
            flops,
            medians[name] * 1e3,
            medians[name] / base,
            3 * flops / medians[name] / 1e9,
        )
        for name, (module, flops, _) in contenders.items()
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per contender")
    parser.add_argument("--nth-batch", type=int, default=32, help="batch of the nth size")
    parser.add_argument(
        "--nth-equal-state",
        action="store_true",
        help="also time the nth equal-state LSTM (hidden 16384; about 18 GB of memory at peak)",
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["rl-rows", "rl-vector", "nth"], help="which sizes to run"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rl_rmc = dict(mem_slots=4, head_size=64, num_heads=4, gate_style="memory")
    for size in args.sizes:
        if size == "rl-rows":
            config = dict(rows=9, row_size=26, rmc_kwargs=rl_rmc)
            label, batch, steps = "rl-rows T=40 B=32", 32, 40
            hiddens = {"equal-state": 4 * 256}
        elif size == "rl-vector":
            config = dict(rows=1, row_size=256, rmc_kwargs=rl_rmc)
            label, batch, steps = "rl-vector T=40 B=32", 32, 40
            hiddens = {"equal-state": 4 * 256}
        elif size == "nth":
            nth_rmc = dict(mem_slots=8, head_size=256, num_heads=8)
            config = dict(rows=1, row_size=40, rmc_kwargs=nth_rmc)
            label, batch, steps = f"nth T=8 B={args.nth_batch}", args.nth_batch, 8
            params = _count(RelationalMemory(40, **nth_rmc))
            hiddens = {
                "hidden=mem_size": 2048,
                "equal-params": _lstm_hidden_for_params(params, 40),
            }
            if args.nth_equal_state:
                hiddens["equal-state"] = 8 * 2048
        else:
            parser.error(f"unknown size {size!r}; choose from rl-rows, rl-vector, nth")
        start = time.perf_counter()
        rows = bench_size(label, batch, steps, repeats=args.repeats, lstm_hiddens=hiddens, **config)
        for row in rows:
            print(f"  {row[0]:22s} {row[1]:34s} {row[4]:9.1f} ms  x{row[5]:.2f}", flush=True)
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        results.extend(rows)

    print()
    print(
        "| size | core | parameters | fwd GFLOP per unroll | fwd+bwd ms per unroll "
        "| time / RMC | GFLOP/s (3x fwd / time) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, name, params, flops, ms, ratio, rate in results:
        print(
            f"| {label} | {name} | {params:,} | {flops / 1e9:.2f} | {ms:.1f} | {ratio:.2f} "
            f"| {rate:.0f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
