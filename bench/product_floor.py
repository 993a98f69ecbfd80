"""What a piece of code's matrix products alone cost: the floor its arithmetic sets on this CPU.

:func:`matrix_products` runs a function once under ``torch.profiler`` with shapes recorded and
returns a replay of every matrix product it called (``mm``, ``addmm``, ``bmm``, forward and
backward alike), in the same order, on fresh operands of the same shapes, nothing else. Timing
the function and the replay side by side says how far the function is from its products (used by
``bench/acting_speed.py`` and ``bench/learner_floor.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Products:
    replay: Callable[[], None]  # calls every product once, in the captured order
    calls: int  # products per call of the function
    flops: float  # their floating-point operations (2 per multiply-add)
    profile: Any  # the profiler of the captured call (``.key_averages()`` for a table)


def matrix_products(fn: Callable[[], Any]) -> Products:
    """Capture the matrix products of one call of ``fn`` (run it a few times first to warm up)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    ops = {"aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm}
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    calls, flops = [], 0.0
    for event in prof.events():
        op = ops.get(event.name)
        if op is None:
            continue
        shapes = [list(s) for s in event.input_shapes if s]
        # addmm's operands are (bias, a, b); the bias is broadcast over the rows
        operands = [torch.randn(s) for s in shapes[: 3 if event.name == "aten::addmm" else 2]]
        a, b = operands[-2], operands[-1]
        flops += 2 * a.numel() * b.shape[-1]
        calls.append((op, operands))

    def replay() -> None:
        for op, operands in calls:
            op(*operands)

    return Products(replay, len(calls), flops, prof)
