"""The Differentiable Neural Computer (Graves et al. 2016, *Hybrid computing using a neural network
with dynamic external memory*, Nature 538), the RMC paper's other Nth Farthest baseline.

An LSTM controller reads the input and the previous step's read vectors, and emits an interface
vector that drives one write head and ``num_reads`` read heads over an ``N x W`` memory (the
paper's Methods, "Interface parameters" to "Read weighting"):

- content addressing ``C(M, k, beta) = softmax(beta * cos(M[i], k))``;
- usage ``u = (u' + w_w' - u' * w_w') * prod_i (1 - f_i * w_r'^i)`` (free gates ``f``);
- allocation ``a[phi_j] = (1 - u[phi_j]) * prod_{l<j} u[phi_l]`` with ``phi`` the slots by
  ascending usage;
- write weighting ``w_w = g_w * (g_a * a + (1 - g_a) * C(M', k_w, beta_w))``;
- memory ``M = M' * (1 - w_w e^T) + w_w v^T``;
- link matrix ``L[i, j] = (1 - w_w[i] - w_w[j]) * L'[i, j] + w_w[i] * p'[j]`` (zero diagonal),
  precedence ``p = (1 - sum(w_w)) * p' + w_w``;
- read weighting ``w_r^i = pi_1 * L^T w_r'^i + pi_2 * C(M, k_r^i, beta_r^i) + pi_3 * L w_r'^i``
  (backward, content, forward) and read vectors ``r^i = M^T w_r^i``.

Primes are the previous step's values. The output is ``[h, r^1 .. r^R]`` (the controller's output
and this step's reads; the paper's output layer is a linear map of this, left to the model's head).
The state is the tuple ``(h, c, memory, usage, precedence, link, write_weights, read_weights,
reads)``, batch first, all zeros at the start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rmc_agents.core._validation import (
    check_batch_size,
    check_filled_and_dtype,
    check_positive_int,
    check_resets,
    check_tensor,
)

__all__ = ["DNC"]

_EPS = 1e-6


def _oneplus(x: torch.Tensor) -> torch.Tensor:
    return 1.0 + F.softplus(x)


def content_weights(
    memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor
) -> torch.Tensor:
    """``softmax_i(beta * cos(M[i], k))`` for keys ``[B, H, W]`` on memory ``[B, N, W]``: ``[B, H, N]``."""
    dot = torch.einsum("bhw,bnw->bhn", keys, memory)
    norms = keys.norm(dim=-1, keepdim=True) * memory.norm(dim=-1).unsqueeze(1)
    return torch.softmax(strengths.unsqueeze(-1) * dot / (norms + _EPS), dim=-1)


def allocation_weights(usage: torch.Tensor) -> torch.Tensor:
    """``a[phi_j] = (1 - u[phi_j]) * prod_{l<j} u[phi_l]``, ``phi`` = slots by ascending usage."""
    sorted_usage, order = torch.sort(usage, dim=-1, stable=True)  # ties: lower slot first
    ones = torch.ones_like(sorted_usage[..., :1])
    before = torch.cumprod(torch.cat([ones, sorted_usage[..., :-1]], dim=-1), dim=-1)
    sorted_alloc = (1.0 - sorted_usage) * before
    return torch.zeros_like(usage).scatter(-1, order, sorted_alloc)


class DNC(nn.Module):
    """Differentiable Neural Computer with an LSTM controller; the cores' common interface.

    Args:
        input_size: features of one (flattened) input.
        hidden_size: LSTM controller units.
        memory_size: ``N``, memory slots.
        word_size: ``W``, features per slot.
        num_reads: ``R``, read heads.

    Raises:
        TypeError, ValueError: an argument is not a positive int (the message names it).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        memory_size: int = 16,
        word_size: int = 16,
        num_reads: int = 2,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.memory_size = check_positive_int("memory_size", memory_size)
        self.word_size = check_positive_int("word_size", word_size)
        self.num_reads = check_positive_int("num_reads", num_reads)
        r, w = self.num_reads, self.word_size
        self.output_size = self.hidden_size + r * w
        self.controller = nn.LSTMCell(self.input_size + r * w, self.hidden_size)
        # read keys R*W, read strengths R, write key W, write strength 1, erase W, write vector W,
        # free gates R, allocation gate 1, write gate 1, read modes 3R
        self._splits = [r * w, r, w, 1, w, w, r, 1, 1, 3 * r]
        self.interface = nn.Linear(self.hidden_size, sum(self._splits))

    # ----------------------------------------------------------------------------- public API

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, ...]:
        """All zeros: ``(h, c, memory, usage, precedence, link, write_weights, read_weights,
        reads)`` with shapes ``[B, hidden]`` x2, ``[B, N, W]``, ``[B, N]`` x2, ``[B, N, N]``,
        ``[B, N]``, ``[B, R, N]``, ``[B, R * W]``."""
        b = check_batch_size(batch_size)
        weight = self.interface.weight
        device = weight.device if device is None else device
        n, w, r, h = self.memory_size, self.word_size, self.num_reads, self.hidden_size
        shapes = [
            (b, h),
            (b, h),
            (b, n, w),
            (b, n),
            (b, n),
            (b, n, n),
            (b, n),
            (b, r, n),
            (b, r * w),
        ]
        return tuple(torch.zeros(s, dtype=weight.dtype, device=device) for s in shapes)

    def from_tuple(self, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Inverse of :func:`rmc_agents.core.as_tuple` (the state already is a tuple)."""
        if not isinstance(state, (tuple, list)) or len(state) != 9:
            raise ValueError("state for DNC must be a tuple of 9 tensors (see initial_state)")
        return tuple(state)

    def _check_state(self, state: object, batch: int) -> tuple[torch.Tensor, ...]:
        state = self.from_tuple(state)
        n, w, r, h = self.memory_size, self.word_size, self.num_reads, self.hidden_size
        shapes = [(h,), (h,), (n, w), (n,), (n,), (n, n), (n,), (r, n), (r * w,)]
        for index, (tensor, shape) in enumerate(zip(state, shapes, strict=True)):
            check_tensor(f"state[{index}]", tensor)
            if tuple(tensor.shape) != (batch, *shape):
                raise ValueError(
                    f"state[{index}] must have shape {[batch, *shape]}, got {list(tensor.shape)}"
                )
        return state

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One step: ``x`` ``[B, input_size]`` (or rows ``[B, n, input_size // n]``)."""
        x = self._flat(x, "x", time=False)
        return self._step(x, self._check_state(state, x.shape[0]))

    def unroll(
        self,
        xs: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        resets: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run over ``xs`` ``[B, T, input_size]``; where ``resets[b, t]`` is True the state of
        batch element ``b`` is the initial (zero) state before step ``t``."""
        if return_attention:
            raise ValueError("return_attention: only the RMC has attention weights")
        xs = self._flat(xs, "xs", time=True)
        batch, steps = xs.shape[:2]
        resets = check_resets(resets, batch, steps)
        state = self._check_state(state, batch)
        outputs = []
        for t in range(steps):
            if resets is not None:
                keep = ~resets[:, t].to(xs.device)
                state = tuple(s * keep.view(-1, *[1] * (s.dim() - 1)).to(s.dtype) for s in state)
            out, state = self._step(xs[:, t], state)
            outputs.append(out)
        return torch.stack(outputs, dim=1), state

    # ------------------------------------------------------------------------------ internals

    def _step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        h, c, memory, usage, precedence, link, write_w, read_w, reads = state
        b, r, w = x.shape[0], self.num_reads, self.word_size
        h, c = self.controller(torch.cat([x, reads], dim=-1), (h, c))
        parts = torch.split(self.interface(h), self._splits, dim=-1)
        read_keys = parts[0].view(b, r, w)
        read_strengths = _oneplus(parts[1])
        write_key = parts[2].view(b, 1, w)
        write_strength = _oneplus(parts[3])
        erase = torch.sigmoid(parts[4])
        write_vector = parts[5]
        free_gates = torch.sigmoid(parts[6])
        alloc_gate = torch.sigmoid(parts[7])
        write_gate = torch.sigmoid(parts[8])
        read_modes = torch.softmax(parts[9].view(b, r, 3), dim=-1)

        retention = torch.prod(1.0 - free_gates.unsqueeze(-1) * read_w, dim=1)
        usage = (usage + write_w - usage * write_w) * retention
        write_content = content_weights(memory, write_key, write_strength)[:, 0]
        write_w = write_gate * (
            alloc_gate * allocation_weights(usage) + (1.0 - alloc_gate) * write_content
        )
        memory = memory * (1.0 - write_w.unsqueeze(-1) * erase.unsqueeze(1)) + write_w.unsqueeze(
            -1
        ) * write_vector.unsqueeze(1)
        link = (1.0 - write_w.unsqueeze(-1) - write_w.unsqueeze(1)) * link + write_w.unsqueeze(
            -1
        ) * precedence.unsqueeze(1)
        link = link * (1.0 - torch.eye(self.memory_size, dtype=link.dtype, device=link.device))
        precedence = (1.0 - write_w.sum(-1, keepdim=True)) * precedence + write_w
        forward = torch.einsum("bij,brj->bri", link, read_w)  # L w
        backward = torch.einsum("bji,brj->bri", link, read_w)  # L^T w
        read_content = content_weights(memory, read_keys, read_strengths)
        read_w = (
            read_modes[..., 0:1] * backward
            + read_modes[..., 1:2] * read_content
            + read_modes[..., 2:3] * forward
        )
        reads = torch.einsum("brn,bnw->brw", read_w, memory).reshape(b, r * w)
        out = torch.cat([h, reads], dim=-1)
        return out, (h, c, memory, usage, precedence, link, write_w, read_w, reads)

    def _flat(self, x: object, name: str, time: bool) -> torch.Tensor:
        check_tensor(name, x)
        lead = 2 if time else 1
        if x.dim() == lead + 2 and x.shape[-2] * x.shape[-1] == self.input_size:
            x = x.flatten(lead)
        if x.dim() != lead + 1 or x.shape[-1] != self.input_size:
            shape = "[B, T, " if time else "[B, "
            raise ValueError(
                f"{name} must have shape {shape}{self.input_size}], got {list(x.shape)}"
            )
        check_filled_and_dtype(name, x, self.interface.weight.dtype)
        return x
