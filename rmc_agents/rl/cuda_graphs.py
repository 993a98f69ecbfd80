"""The learner's core unroll replayed as CUDA graphs (GPU learners only).

A core unroll over ``T`` steps is hundreds of small kernels (the RMC's attention, MLP, LayerNorms
and gates at every step, forward and backward). On a GPU each costs a launch of a few
microseconds while the arithmetic is tiny, so the learner waits on launches: measured on an H200
(``bench/gpu_check.py``), the default RMC's forward + backward over 32 x 22 steps took 55 ms
against 4.5 ms for a cuDNN LSTM. :class:`GraphedUnroll` captures ``core.unroll`` (forward and
backward, via :func:`torch.cuda.make_graphed_callables`) once per input shape and replays it.

* Shapes: a graph is fixed to its input shapes. The time dimension is the learner's
  ``max_seq_len`` (RLlib pads every chunk to it); the number of chunks varies from batch to batch,
  so it is padded up to a multiple of ``bucket`` (the padding rows are dropped from the outputs
  and get no gradient), and one graph is kept per padded size.
* Only on CUDA, only with gradients on and the input requiring them (the learner's update); any
  other call (EnvRunner acting, ``no_grad`` evaluation, CPU) runs the core eagerly.
* A graph's outputs live in static buffers that the next replay overwrites: fine for a learner,
  which runs backward before its next forward.
* If capturing fails, a warning names the reason and this object runs eagerly from then on.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from rmc_agents.core import as_tuple

__all__ = ["GraphedUnroll"]


class _Unroll(nn.Module):
    """``(xs, *state) -> (outputs, *next_state)`` of ``core.unroll`` with no resets."""

    def __init__(self, core: nn.Module) -> None:
        super().__init__()
        self.core = core

    def forward(self, xs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, next_state = self.core.unroll(xs, self.core.from_tuple(state), resets=None)
        return (outputs, *as_tuple(next_state))


class GraphedUnroll:
    """``core.unroll(xs, state, resets=None)``, replayed from CUDA graphs where it can be.

    Not an ``nn.Module`` on purpose: it holds the core without registering it a second time.
    """

    def __init__(self, core: nn.Module, bucket: int = 8) -> None:
        self.core = core
        self.bucket = bucket
        self.graphs: dict[tuple, Any] = {}
        self.failed: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Captured graphs cannot be copied or pickled; a copy captures its own when used.
        return {**self.__dict__, "graphs": {}}

    @staticmethod
    def _capturable(xs: torch.Tensor) -> bool:
        return xs.is_cuda

    def usable(self, xs: torch.Tensor) -> bool:
        """A learner update on CUDA: gradients on, the input needs them, no autocast."""
        return (
            self.failed is None
            and self._capturable(xs)
            and xs.requires_grad
            and torch.is_grad_enabled()
            and not torch.is_autocast_enabled()
        )

    def __call__(self, xs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if not self.usable(xs):
            return self.core.unroll(xs, state, resets=None)
        parts = as_tuple(state)
        batch = xs.shape[0]
        padded = -(-batch // self.bucket) * self.bucket
        if padded != batch:
            extra = padded - batch
            xs = torch.cat([xs, xs.new_zeros((extra, *xs.shape[1:]))])
            # Copies of the first state, not zeros: the padding rows run real, finite numbers.
            parts = tuple(torch.cat([p, p[:1].expand(extra, *p.shape[1:])]) for p in parts)
        key = (
            tuple(xs.shape),
            xs.dtype,
            xs.device,
            tuple((tuple(p.shape), p.requires_grad) for p in parts),
            self.core.training,
        )
        graphed = self.graphs.get(key)
        if graphed is None:
            try:
                graphed = self._capture(xs, parts)
            except Exception as exc:  # noqa: BLE001 (any capture failure: fall back, say why)
                self.failed = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"CUDA graph capture of the core unroll failed, running it eagerly: {self.failed}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return self.core.unroll(xs[:batch], state, resets=None)
            self.graphs[key] = graphed
        out = graphed(xs, *parts)
        outputs, next_parts = out[0][:batch], tuple(p[:batch] for p in out[1:])
        return outputs, self.core.from_tuple(next_parts)

    def _capture(self, xs: torch.Tensor, parts: tuple[torch.Tensor, ...]) -> Any:
        samples = (
            xs.detach().clone().requires_grad_(xs.requires_grad),
            *(p.detach().clone().requires_grad_(p.requires_grad) for p in parts),
        )
        return torch.cuda.make_graphed_callables(_Unroll(self.core), samples)
