"""The Relational Memory Core (Santoro et al. 2018), following DeepMind Sonnet v1's module.

The memory is a set of ``mem_slots`` vectors of ``mem_size = num_heads * head_size`` features. Each
step the input is projected to one or more extra rows, every row attends over all rows
(multi-head dot-product attention followed by a row-wise MLP, both with residual connections and
row-wise LayerNorm), the input rows are dropped again (``read_inputs`` keeps their max-pooled read
for the output), and LSTM-style input and forget gates mix the attended memory with the previous
one. docs/cores.md gives the equations' sources.

Speed: ``unroll`` computes everything that does not depend on the memory for all time steps at
once (the input projection, the first block's queries/keys/values of the input rows, and the input
half of the gates, constant biases included). In the last block only the memory rows are carried
through the MLP, since the input rows are dropped afterwards; the results are the same. With few
input features per row (image cells), the input projection is folded into the first block's qkv
Linear (one affine map), and the gates' input half projects the mean row only (the mean commutes
with the affine projection): the same function with a fraction of the products.

With one block (the default) the input rows are only ever keys and values: no input row queries.
Their queries, keys and values are a LayerNorm of one affine map of the row, so each input row's
key and value are ``K @ xi`` and ``V @ xi`` for ``xi = [x, 1] / sigma(x)`` (with a 1 appended for
the LayerNorm's bias), where ``sigma(x)`` is the row's LayerNorm scale, computed from ``x`` through
the Gram matrix of the centred affine map. Attention then runs in the input's own feature space: a
memory query is mapped to ``K^T q`` once per step and dotted with every row's ``xi``, and the
weighted sum of the rows' ``xi`` is mapped through ``V`` once. With few features per row (image
cells: 26 against 384 queries, keys and values per row) that replaces the widest products of a
step and of the learner's unroll (``_factor_inputs``; the same function, to float rounding, and the
same gradients; tests/core/test_relational_memory.py). It is used from ``_FACTOR_MIN_ROWS`` input
rows on (the full board's 221 image cells: 4.4x faster learner updates; the viewport's 9: even, so
written there; docs/cores.md). Asked for its attention weights, or with several blocks, the core
computes the rows' queries, keys and values as they are written.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rmc_agents.core._validation import (
    check_batch_size,
    check_filled_and_dtype,
    check_finite_float,
    check_positive_int,
    check_resets,
    check_tensor,
    reset_times,
)

GATE_STYLES = ("unit", "memory", None)
#: How queries are scaled before the dot product: ``paper`` by ``key_size ** -0.5`` (the paper's
#: equation), ``sonnet`` by ``(2 * key_size + head_size) ** -0.5`` (Sonnet v1's code, which scales
#: by the size of the whole per-head qkv vector; 1.73x softer at key_size = head_size).
ATTENTION_SCALES = ("paper", "sonnet")
#: What a step outputs: ``memory``, the next memory (Sonnet v1, the paper), or ``attended``, the
#: attended memory before the gates mix in the old one (ours; docs/cores.md).
OUTPUTS = ("memory", "attended")

#: A forget-gate entry at or above this keeps its memory entry (``record``'s ``forget_kept``).
KEPT_GATE = 0.9

# Below this many entries in the last axis, CPU softmax takes a slow path in torch 2.13 (measured
# on this AVX-512 machine: [64, 4, 4, 13] took 228 us against 22 us at 16 entries).
_SOFTMAX_MIN_WIDTH = 16

# The attention over the input rows through their features (see module) adds a few small products
# per step; it pays from about this many input rows on (measured here, 2 CPUs, one thread, the
# default agent's core at batch 32: neutral at 9 rows, the 3x3 cells of the viewport torso; 1.2x
# for the learner's unroll at 16 rows, 4x at the full board's 221; bench/rmc_step_speed.py).
_FACTOR_MIN_ROWS = 12


def _softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis; on the CPU a short axis is padded with -inf first (the same
    numbers: the pads get weight 0), which is several times faster there."""
    width = x.shape[-1]
    if x.device.type != "cpu" or width >= _SOFTMAX_MIN_WIDTH:
        return torch.softmax(x, dim=-1)
    padded = F.pad(x, (0, _SOFTMAX_MIN_WIDTH - width), value=float("-inf"))
    return torch.softmax(padded, dim=-1)[..., :width]


def _init_linear(layer: nn.Linear) -> None:
    """Sonnet v1's default: weights ~ truncated normal (2 std) with std 1/sqrt(fan_in), bias 0."""
    std = 1.0 / math.sqrt(layer.in_features)
    nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)
    nn.init.zeros_(layer.bias)


class _AttentionBlock(nn.Module):
    """The weights of one attention block: qkv projection and three row-wise LayerNorms.

    The qkv Linear's output is laid out head by head, each head as ``[query, key, value]``
    (``key_size, key_size, head_size`` features), as in Sonnet v1. The attention MLP is not the
    block's: Sonnet v1 builds one before its block loop and applies it in every block.
    """

    def __init__(self, mem_size: int, qkv_size: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(mem_size, qkv_size)
        self.qkv_norm = nn.LayerNorm(qkv_size)
        self.attention_norm = nn.LayerNorm(mem_size)
        self.mlp_norm = nn.LayerNorm(mem_size)

    def project_qkv(self, rows: torch.Tensor) -> torch.Tensor:
        """Row-wise ``LayerNorm(Linear(rows))``: the queries, keys and values of every head."""
        return self.qkv_norm(self.qkv(rows))


def _load_per_block_mlp(
    module: nn.Module, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
) -> None:
    """Load a state dict saved when each block had its own MLP (``blocks.<i>.mlp.*``): block 0's
    becomes the shared ``attention_mlp``. (With one block, the only layout that was trained, the
    two are the same function.) Later blocks' MLPs have no place in the shared layout and are
    dropped with a warning."""
    old = prefix + "blocks.0.mlp."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "attention_mlp." + key[len(old) :]] = state_dict.pop(key)
    later = [k for k in state_dict if k.startswith(prefix + "blocks.") and ".mlp." in k]
    if later:
        warnings.warn(
            f"RelationalMemory: dropping {len(later)} per-block MLP weights of blocks after the "
            "first (saved before the MLP was shared across blocks, as in Sonnet v1)",
            stacklevel=2,
        )
        for key in later:
            del state_dict[key]


class RelationalMemory(nn.Module):
    """Relational Memory Core: a recurrent core whose state is a matrix of memory slots.

    Args:
        input_size: features of one input row (the whole flattened input when it is a vector).
        mem_slots: number of memory slots (rows of the memory matrix).
        head_size: value size of one attention head; ``mem_size = head_size * num_heads``.
        num_heads: number of attention heads.
        num_blocks: number of attention blocks applied per step. Each block has its own qkv
            projection and LayerNorms; the attention MLP is one, shared by all blocks (Sonnet v1).
        forget_bias: constant added to the forget gate before its sigmoid (not trained).
        input_bias: constant added to the input gate before its sigmoid (not trained).
        gate_style: ``"unit"`` (a gate per memory element), ``"memory"`` (a scalar gate per slot)
            or ``None`` (no gating: the attended memory replaces the old one).
        coupled_gates: the forget gate is one minus the input gate **(ours)**, as in a GRU:
            ``M' = i * tanh(M~) + (1 - i) * M``, a convex mix that keeps every memory entry within
            [-1, 1] (the initial memory is there), where the paper's independent gates bound it
            only by ``i / (1 - f)``. Only the input half of the gate Linears exists then, and
            ``forget_bias`` is unused (``input_bias`` sets the starting mix).
        gate_floor: each gate is ``floor + (1 - 2 * floor) * sigmoid(.)`` **(ours)**, within
            ``[floor, 1 - floor]``: a gate never shuts or opens fully, so the memory is always
            written a little and kept a little, and the loss's gradient always reaches the
            attention through the write. ``0`` (the default) is the paper's sigmoid. With
            independent gates it also bounds the memory by ``(1 - floor) / floor``.
        attention_mlp_layers: Linear layers of width ``mem_size`` in the attention MLP.
        key_size: size of queries and keys per head; ``None`` means ``head_size``.
        attention_scale: ``"paper"`` (queries times ``key_size ** -0.5``) or ``"sonnet"`` (times
            ``(2 * key_size + head_size) ** -0.5``, as Sonnet v1's code has it).
        output: what a step outputs: ``"memory"`` (the next memory, as Sonnet v1 and the paper)
            or ``"attended"`` (the attended memory ``M~`` before gating, **ours**: like an LSTM's
            ``h`` beside its cell, it answers this step while the gates decide what is kept; the
            state is the gated memory either way, and without gating the two are the same).
        slot_embeddings: give each slot a learned vector of its own that is added to its row's
            normalised queries, keys and values in the first block **(ours)**: slots that hold the
            same content still ask different questions, at a scale the memory's size cannot drown.
            Off in the paper's core (whose parameter count then does not depend on
            ``mem_slots``).
        read_inputs: the input rows are queries too in the (last) attention block, and their
            block outputs, max-pooled over the rows, are appended to every step's output
            (``output_size = (mem_slots + 1) * mem_size``) **(ours)**: a read of the memory
            keyed by the present input, as the entities of Zambaldi et al.'s relational agent
            (2019) are max-pooled after their attention blocks. The paper's core drops the
            input rows' outputs. It adds no parameters (the rows share the block's weights) and
            the memory's update is unchanged; the attention over the input rows through their
            features (see module) is not used with it.

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument has an impossible value (the message names it).

    With a set of input rows ``[B, n, input_size]`` each row is projected and appended to the
    memory for attention, and the input half of the gates is computed from the mean of the
    projected rows **(ours)**; with one row this is exactly Sonnet's module.
    """

    def __init__(
        self,
        input_size: int,
        mem_slots: int,
        head_size: int,
        num_heads: int = 1,
        num_blocks: int = 1,
        forget_bias: float = 1.0,
        input_bias: float = 0.0,
        gate_style: str | None = "unit",
        coupled_gates: bool = False,
        attention_mlp_layers: int = 2,
        key_size: int | None = None,
        attention_scale: str = "paper",
        slot_embeddings: bool = False,
        output: str = "memory",
        read_inputs: bool = False,
        gate_floor: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.mem_slots = check_positive_int("mem_slots", mem_slots)
        self.head_size = check_positive_int("head_size", head_size)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.num_blocks = check_positive_int("num_blocks", num_blocks)
        self.forget_bias = check_finite_float("forget_bias", forget_bias)
        self.input_bias = check_finite_float("input_bias", input_bias)
        if not any(gate_style is style or gate_style == style for style in GATE_STYLES):
            raise ValueError(f"gate_style must be one of {GATE_STYLES}, got {gate_style!r}")
        self.gate_style = gate_style
        if not isinstance(coupled_gates, bool):
            raise TypeError(f"coupled_gates must be a bool, got {coupled_gates!r}")
        self.coupled_gates = coupled_gates
        self.gate_floor = check_finite_float("gate_floor", gate_floor)
        if not 0.0 <= self.gate_floor < 0.5:
            raise ValueError(f"gate_floor must be in [0, 0.5), got {gate_floor!r}")
        self.attention_mlp_layers = check_positive_int("attention_mlp_layers", attention_mlp_layers)
        self.key_size = head_size if key_size is None else check_positive_int("key_size", key_size)
        if attention_scale not in ATTENTION_SCALES:
            raise ValueError(
                f"attention_scale must be one of {ATTENTION_SCALES}, got {attention_scale!r}"
            )
        self.attention_scale = attention_scale
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        if not isinstance(read_inputs, bool):
            raise TypeError(f"read_inputs must be a bool, got {read_inputs!r}")
        self.read_inputs = read_inputs
        scaled_by = self.key_size if attention_scale == "paper" else 2 * self.key_size + head_size
        self._query_scale = scaled_by**-0.5

        self.mem_size = self.head_size * self.num_heads
        self.output_size = (self.mem_slots + int(read_inputs)) * self.mem_size
        self._head_qkv_size = 2 * self.key_size + self.head_size
        qkv_size = self.num_heads * self._head_qkv_size
        # Fold the input projection into the first block's qkv Linear when that is cheaper per
        # row (see _precompute_inputs).
        self._fold_input_qkv = (
            self.input_size * qkv_size < self.input_size * self.mem_size + self.mem_size * qkv_size
        )

        # Attend over the input rows in their own feature space (see module) when that costs fewer
        # products per row than their queries, keys, values and LayerNorm.
        factored_cost = (self.input_size + 1) ** 2 + 2 * (
            self.mem_slots * self.num_heads * (self.input_size + 2)
        )
        written_cost = (
            self.input_size * qkv_size
            + 5 * qkv_size
            + (self.mem_slots * self.num_heads * (self.key_size + self.head_size))
        )
        self._factor_inputs = (
            self.num_blocks == 1 and not read_inputs and factored_cost < written_cost
        )
        self._factor_min_rows = _FACTOR_MIN_ROWS  # per call: with fewer rows, as written

        self.input_projection = nn.Linear(self.input_size, self.mem_size)
        self.blocks = nn.ModuleList(
            _AttentionBlock(self.mem_size, self.num_heads * self._head_qkv_size)
            for _ in range(self.num_blocks)
        )
        self.attention_mlp = nn.ModuleList(
            nn.Linear(self.mem_size, self.mem_size) for _ in range(self.attention_mlp_layers)
        )
        self.register_load_state_dict_pre_hook(_load_per_block_mlp)
        self.slot_embedding = (
            nn.Parameter(torch.empty(self.mem_slots, qkv_size)) if slot_embeddings else None
        )
        if self.gate_style is None:
            self.gate_inputs = None
            self.gate_memory = None
        else:
            gate_size = self.mem_size if self.gate_style == "unit" else 1
            gates = 1 if self.coupled_gates else 2  # coupled: the input gate only
            self.gate_inputs = nn.Linear(self.mem_size, gates * gate_size)
            self.gate_memory = nn.Linear(self.mem_size, gates * gate_size)
            self._gate_bias_values = [self.input_bias] * gate_size + (
                [] if self.coupled_gates else [self.forget_bias] * gate_size
            )
            # Kept in float64 whatever the module's dtype (see _apply), cast where it is added.
            self.register_buffer(
                "_gate_bias",
                torch.tensor(self._gate_bias_values, dtype=torch.float64),
                persistent=False,
            )
        eye = torch.eye(self.mem_slots, max(self.mem_slots, self.mem_size))
        self.register_buffer("_initial_memory", eye[:, : self.mem_size], persistent=False)
        self.reset_parameters()

    def _apply(self, fn: Any, recurse: bool = True) -> RelationalMemory:
        # A dtype change (``.float()``, ``.double()``, ``.to(dtype)``) would round the constant
        # gate biases through it (0.7 in float32 is 0.7 - 1.2e-8): rebuild them exactly.
        super()._apply(fn, recurse)
        if self.gate_style is not None:
            self._gate_bias = torch.tensor(
                self._gate_bias_values, dtype=torch.float64, device=self._initial_memory.device
            )
        return self

    def reset_parameters(self) -> None:
        """Initialise like Sonnet v1: truncated-normal Linear weights, zero biases, unit LayerNorms."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                _init_linear(module)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        if self.slot_embedding is not None:  # the scale of the normalised qkv it is added to
            nn.init.trunc_normal_(self.slot_embedding, std=1.0, a=-2.0, b=2.0)

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, mem_slots={self.mem_slots}, "
            f"head_size={self.head_size}, num_heads={self.num_heads}, "
            f"num_blocks={self.num_blocks}, key_size={self.key_size}, "
            f"gate_style={self.gate_style!r}, coupled_gates={self.coupled_gates}, "
            f"forget_bias={self.forget_bias}, "
            f"input_bias={self.input_bias}, gate_floor={self.gate_floor}, "
            f"attention_mlp_layers={self.attention_mlp_layers}, "
            f"attention_scale={self.attention_scale!r}, "
            f"slot_embeddings={self.slot_embedding is not None}, output={self.output!r}, "
            f"read_inputs={self.read_inputs}"
        )

    # ----------------------------------------------------------------------------- public API

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """The starting memory: the identity, zero padded (or cut) to ``mem_size`` columns.

        Args:
            batch_size: number of independent memories.
            device: where to put it; defaults to the device of the module's parameters.

        Returns:
            Tensor ``[batch_size, mem_slots, mem_size]`` in the parameters' dtype.

        Raises:
            TypeError, ValueError: ``batch_size`` is not a positive int.
        """
        batch_size = check_batch_size(batch_size)
        memory = self._initial_memory.expand(batch_size, -1, -1).clone()
        return memory if device is None else memory.to(device)

    def record(self, on: bool) -> dict[str, torch.Tensor] | None:
        """Start (``on``) or stop recording what every step does (diagnostics).

        Returns, when stopping, a dict of detached tensors over the steps since recording started
        (in call order; ``T`` counts :meth:`unroll` steps and :meth:`forward` calls): ``memory``
        ``[B, T, mem_slots, mem_size]`` (each step's next memory) and, with gating,
        ``input_gate`` and ``forget_gate`` ``[B, T]`` (each step's mean over slots and units) and
        ``forget_kept`` ``[B, T]`` (the share of forget-gate entries at or above 0.9: the part of
        the memory a step keeps); None if no step ran.
        """
        record = self.__dict__.get("_record")
        self.__dict__["_record"] = [] if on else None
        if on or not record:
            return None
        columns = zip(*record, strict=True)
        names = ("memory", "input_gate", "forget_gate", "forget_kept")
        return {
            name: torch.stack(values, dim=1)
            for name, values in zip(names, columns, strict=False)
            if values[0] is not None
        }

    def from_tuple(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Inverse of :func:`rmc_agents.core.as_tuple` for this core: ``(memory,) -> memory``."""
        if not isinstance(state, (tuple, list)) or len(state) != 1:
            raise ValueError("state for the RMC must be a tuple of one tensor (the memory)")
        return state[0]

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, return_attention: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """One step.

        Args:
            x: ``[B, input_size]`` or a set of rows ``[B, n, input_size]``.
            state: memory ``[B, mem_slots, mem_size]``.
            return_attention: also return this step's attention weights.

        Returns:
            ``(output, next_state)`` with output ``[B, output_size]`` (the next memory, or the
            attended memory with ``output="attended"``, flattened; with ``read_inputs`` the
            input rows' read after it) and the next memory
            ``[B, mem_slots, mem_size]``; with ``return_attention`` a third element, the weights
            ``[B, num_blocks, num_heads, N, N]`` (``N = mem_slots + n``; rows are queries).

        Raises:
            TypeError, ValueError: ``x`` or ``state`` has the wrong type or shape.
        """
        rows = self._as_rows(x, "x", time=False)
        self._check_state(state, rows.shape[0])
        maps = self._maps_if_factored(rows, return_attention)
        inputs, input_qkv, gate_inputs = self._precompute_inputs(rows, maps)
        next_memory, output, attention = self._step(
            state, inputs, input_qkv, gate_inputs, return_attention, maps
        )
        if return_attention:
            return output, next_memory, torch.stack(attention, dim=1)
        return output, next_memory

    def unroll(
        self,
        xs: torch.Tensor,
        state: torch.Tensor,
        resets: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Run over a time dimension, restarting from the initial memory where ``resets`` says.

        Args:
            xs: ``[B, T, input_size]`` or rows ``[B, T, n, input_size]``.
            state: memory ``[B, mem_slots, mem_size]`` before the first step.
            resets: optional bool (or 0/1 float) ``[B, T]``; True at ``t`` replaces the memory of
                that batch element with the initial state before step ``t`` (an episode start).
            return_attention: also return the attention weights of every step.

        Returns:
            ``(outputs, final_state)`` with outputs ``[B, T, output_size]``; with
            ``return_attention`` a third element ``[B, T, num_blocks, num_heads, N, N]``.

        Raises:
            TypeError, ValueError: ``xs``, ``state`` or ``resets`` has the wrong type or shape.
        """
        rows = self._as_rows(xs, "xs", time=True)
        batch_size, steps = rows.shape[:2]
        self._check_state(state, batch_size)
        resets = check_resets(resets, batch_size, steps)
        reset_at = reset_times(resets)
        if resets is not None:
            resets = resets.to(state.device)
            initial = self._initial_memory.to(state.dtype)

        maps = self._maps_if_factored(rows, return_attention)
        inputs, input_qkv, gate_inputs = self._precompute_inputs(rows, maps)
        # unbind, not [:, t]: indexing would give every step a backward that writes a zeroed
        # tensor of the full [B, T, ...] size, which is quadratic in T.
        per_step = zip(
            [None] * steps if inputs is None else inputs.unbind(1),
            input_qkv.unbind(1),
            [None] * steps if gate_inputs is None else gate_inputs.unbind(1),
            strict=True,
        )
        memory = state
        outputs, attention = [], []
        for t, (inputs_t, input_qkv_t, gate_inputs_t) in enumerate(per_step):
            if reset_at and reset_at[t]:
                memory = torch.where(resets[:, t, None, None], initial, memory)
            memory, output, weights = self._step(
                memory, inputs_t, input_qkv_t, gate_inputs_t, return_attention, maps
            )
            outputs.append(output)
            if return_attention:
                attention.append(torch.stack(weights, dim=1))
        outputs = torch.stack(outputs, dim=1)
        if return_attention:
            return outputs, memory, torch.stack(attention, dim=1)
        return outputs, memory

    # ---------------------------------------------------------------------------- the equations

    def _precompute_inputs(
        self, rows: torch.Tensor, maps: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Work that does not depend on the memory, for any number of leading dims.

        Args:
            rows: ``[..., n, input_size]``.
            maps: :meth:`_input_maps`, to give the rows' ``xi`` instead of their queries, keys and
                values (one block only; see module).

        Returns:
            The projected rows ``[..., n, mem_size]`` (None with one block and no
            ``read_inputs``: only a later block or the rows' own read needs them, as its
            residual), their first-block queries/keys/values
            ``[..., n, num_heads * (2 * key_size + head_size)]`` (with ``maps``: their ``xi``
            ``[..., n, input_size + 2]``) and the input half of the gates with the constant biases
            added ``[..., 2 * gate_size]`` (None without gating).
        """
        first = self.blocks[0]
        proj = self.input_projection
        if maps is not None:
            return None, self._input_xi(rows, maps[0]), self._gate_input_half(rows, None)
        # The projected rows themselves are only needed as a residual where they are queries too:
        # in a block that a later block follows, or in every block with read_inputs.
        inputs = proj(rows) if self.num_blocks > 1 or self.read_inputs else None
        if inputs is None and self._fold_input_qkv:
            # qkv(proj(x)) is one affine map of x: with few input features (image cells) the
            # folded [qkv_size, input_size] weight costs a fraction of the two products per row.
            weight, bias = self._folded_qkv()
            input_qkv = first.qkv_norm(F.linear(rows, weight, bias))
        else:
            input_qkv = first.project_qkv(proj(rows) if inputs is None else inputs)
        return inputs, input_qkv, self._gate_input_half(rows, inputs)

    def _gate_input_half(
        self, rows: torch.Tensor, inputs: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The gates' input half, constant biases added (None without gating)."""
        if self.gate_inputs is None:
            return None
        # The mean over rows commutes with the affine projection: project the mean row only.
        proj = self.input_projection
        mean_input = inputs.mean(dim=-2) if inputs is not None else proj(rows.mean(dim=-2))
        gate_inputs = self.gate_inputs(mean_input)
        return gate_inputs + self._gate_bias.to(gate_inputs.dtype)

    def _input_xi(self, rows: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
        """``xi = [x, 1] / sigma(x), 1`` of every row ``[..., n, input_size + 2]`` (see module):
        ``sigma(x)`` is the scale the first block's qkv LayerNorm divides the row's affine map
        by, ``sqrt(var + eps)``, with the variance over the features as the quadratic form of the
        centred map's Gram matrix (``gram``, from :meth:`_input_maps`)."""
        ones = rows.new_ones(rows.shape[:-1] + (1,))
        x1 = torch.cat([rows, ones], dim=-1)
        variance = (torch.matmul(x1, gram) * x1).sum(dim=-1, keepdim=True)
        scaled = x1 * torch.rsqrt(variance + self.blocks[0].qkv_norm.eps)
        return torch.cat([scaled, ones], dim=-1)

    def _maps_if_factored(
        self, rows: torch.Tensor, return_attention: bool
    ) -> tuple[torch.Tensor, ...] | None:
        """:meth:`_input_maps` where this call attends over the input rows through their
        features (one block, cheaper per row, enough rows, no weights asked for), else None."""
        if self._factor_inputs and not return_attention and rows.shape[-2] >= self._factor_min_rows:
            return self._input_maps()
        return None

    def _input_maps(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(gram, keys, values)`` of the factored input attention, from the weights: the Gram
        matrix ``[input_size + 1]^2`` of the centred affine map (over the qkv features, divided by
        their number), and, block-diagonal over the heads, the map of the queries into ``xi``'s
        space (the transposed map from ``xi`` to the normalised keys) ``[num_heads * key_size,
        num_heads * (input_size + 2)]`` and the map from ``xi`` to the normalised values
        ``[num_heads * (input_size + 2), num_heads * head_size]`` (LayerNorm gain and bias
        included). Kept between acting steps until a
        weight changes, like :meth:`_folded_qkv`."""
        first = self.blocks[0]
        params = (
            first.qkv.weight,
            first.qkv.bias,
            self.input_projection.weight,
            self.input_projection.bias,
            first.qkv_norm.weight,
            first.qkv_norm.bias,
        )
        return self._kept("_maps", params, self._compute_input_maps)

    def _compute_input_maps(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        first = self.blocks[0]
        weight, bias = self._folded_qkv()
        affine = torch.cat([weight, bias[:, None]], dim=1)  # [qkv_size, input_size + 1]
        centred = affine - affine.mean(dim=0, keepdim=True)
        gram = centred.t() @ centred / centred.shape[0]
        k, per_head = self.key_size, self._head_qkv_size
        by_head = centred.view(self.num_heads, per_head, -1)
        gain = first.qkv_norm.weight.view(self.num_heads, per_head, 1)
        shift = first.qkv_norm.bias.view(self.num_heads, per_head, 1)
        maps = torch.cat([gain * by_head, shift], dim=-1)  # [heads, 2k + v, input_size + 2]
        # block-diagonal over the heads: [H * k, H * (input_size + 2)] from a query to xi's space,
        # [H * (input_size + 2), H * v] from a weighted sum of xi to the values
        key_block = torch.block_diag(*maps[:, k : 2 * k])
        value_block = torch.block_diag(*maps[:, 2 * k :].transpose(1, 2))
        return gram, key_block, value_block

    def _kept(self, name: str, params: tuple[torch.Tensor, ...], compute: Any) -> Any:
        """``compute()``, kept without gradients until one of ``params`` changes (a new tensor, an
        in-place update or a loaded state bumps its version); with gradients computed afresh."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return compute()
        # The cache holds the weights it was made from (so their memory cannot be reused by other
        # tensors) and their version counters (shared with the parameters).
        cached = self.__dict__.get(name)
        if cached is None or not all(
            held.data_ptr() == p.data_ptr() and held.dtype == p.dtype and version == p._version
            for held, version, p in zip(cached[0], cached[1], params, strict=True)
        ):
            with torch.no_grad():
                value = compute()
            held = tuple(p.detach() for p in params)
            cached = (held, tuple(p._version for p in params), value)
            self.__dict__[name] = cached
        return cached[2]

    def _folded_qkv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The input projection folded into the first block's qkv Linear: ``(weight, bias)``.

        Without gradients (acting) the product is kept until a weight changes (a new tensor, an
        in-place update or a loaded state bumps its version), so an EnvRunner computes it once per
        weight sync instead of at every step."""
        qkv, proj = self.blocks[0].qkv, self.input_projection
        params = (qkv.weight, qkv.bias, proj.weight, proj.bias)

        def fold() -> tuple[torch.Tensor, torch.Tensor]:
            return qkv.weight @ proj.weight, torch.addmv(qkv.bias, qkv.weight, proj.bias)

        return self._kept("_folded", params, fold)

    def _step(
        self,
        memory: torch.Tensor,
        inputs: torch.Tensor | None,
        input_qkv: torch.Tensor,
        gate_inputs: torch.Tensor | None,
        return_attention: bool,
        maps: tuple[torch.Tensor, ...] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One step from precomputed input terms: attend, then gate.

        Returns (next memory, output, weights): the output is the next memory or, with
        ``output="attended"``, the attended memory before gating, flattened ``[B, S * mem_size]``,
        and with ``read_inputs`` the input rows' read ``[B, mem_size]`` after it."""
        attended, read, attention = self._attend_over_memory(
            memory, inputs, input_qkv, return_attention, maps
        )
        record = self.__dict__.get("_record")
        if gate_inputs is None:
            if record is not None:
                record.append((attended.detach(), None, None, None))
            return attended, self._with_read(attended, read), attention
        input_gate, forget_gate = self._create_gates(gate_inputs, memory)
        next_memory = input_gate * torch.tanh(attended) + forget_gate * memory
        if record is not None:
            record.append(
                (
                    next_memory.detach(),
                    input_gate.detach().mean(dim=(-2, -1)),
                    forget_gate.detach().mean(dim=(-2, -1)),
                    (forget_gate.detach() >= KEPT_GATE).to(memory.dtype).mean(dim=(-2, -1)),
                )
            )
        output = attended if self.output == "attended" else next_memory
        return next_memory, self._with_read(output, read), attention

    @staticmethod
    def _with_read(output: torch.Tensor, read: torch.Tensor | None) -> torch.Tensor:
        """``output`` ``[B, S, mem_size]`` flattened, the read ``[B, mem_size]`` (if any) after."""
        flat = output.flatten(1)
        return flat if read is None else torch.cat([flat, read], dim=1)

    def _attend_over_memory(
        self,
        memory: torch.Tensor,
        inputs: torch.Tensor | None,
        input_qkv: torch.Tensor,
        return_attention: bool,
        maps: tuple[torch.Tensor, ...] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """Apply the attention blocks to memory plus input rows; return the memory rows.

        Args:
            memory: ``[B, S, mem_size]``.
            inputs: projected input rows ``[B, n, mem_size]`` (None with one block).
            input_qkv: first-block queries/keys/values of the input rows (with ``maps``: their
                ``xi``, :meth:`_input_xi`).
            return_attention: collect each block's weights ``[B, num_heads, N, N]``.
            maps: :meth:`_input_maps`: attend over the input rows through ``xi`` (one block, no
                weights).

        Returns:
            The attended memory rows ``[B, S, mem_size]``, with ``read_inputs`` the input rows'
            outputs of the last block max-pooled over the rows ``[B, mem_size]`` (else None), and
            the list of weights (empty unless asked for).
        """
        slots = self.mem_slots
        rows = None
        attention = []
        for index, block in enumerate(self.blocks):
            if index == 0:
                memory_qkv = block.project_qkv(memory)
                if self.slot_embedding is not None:
                    memory_qkv = memory_qkv + self.slot_embedding
                if maps is not None:
                    attended = self._factored_attention(memory_qkv, input_qkv, maps)
                    rows = block.attention_norm(memory + attended)
                    return block.mlp_norm(rows + self._run_mlp(rows)), None, attention
                qkv = torch.cat([memory_qkv, input_qkv], dim=1)
            else:
                qkv = block.project_qkv(rows)
            last = index == self.num_blocks - 1
            # The input rows are dropped after the last block: only memory rows need an output
            # (unless their read is asked for).
            if last and not self.read_inputs:
                residual = memory if index == 0 else rows[:, :slots]
                queries = slots
            else:
                residual = torch.cat([memory, inputs], dim=1) if index == 0 else rows
                queries = residual.shape[1]
            attended, weights = self._multihead_attention(qkv, queries, return_attention)
            if weights is not None:
                attention.append(weights)
            rows = block.attention_norm(residual + attended)
            rows = block.mlp_norm(rows + self._run_mlp(rows))
        if self.read_inputs:
            return rows[:, :slots], rows[:, slots:].amax(dim=1), attention
        return rows, None, attention

    def _run_mlp(self, rows: torch.Tensor) -> torch.Tensor:
        """The attention MLP (shared by all blocks): ReLU between layers, none after the last."""
        hidden = rows
        for index, layer in enumerate(self.attention_mlp):
            if index > 0:
                hidden = F.relu(hidden)
            hidden = layer(hidden)
        return hidden

    def _multihead_attention(
        self, qkv: torch.Tensor, num_queries: int, return_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scaled dot-product attention of every head over all rows.

        Args:
            qkv: ``[B, N, num_heads * (2 * key_size + head_size)]``, normalised.
            num_queries: output only for the first ``num_queries`` rows.
            return_weights: also return the weights of all ``N`` query rows.

        Returns:
            Heads concatenated ``[B, num_queries, mem_size]`` and the weights
            ``[B, num_heads, N, N]`` (or None).
        """
        batch, rows, _ = qkv.shape
        per_head = qkv.view(batch, rows, self.num_heads, self._head_qkv_size).transpose(1, 2)
        query, key, value = per_head.split([self.key_size, self.key_size, self.head_size], dim=-1)
        scale = self._query_scale
        weights = None
        if return_weights:
            weights = _softmax_last(torch.matmul(query * scale, key.transpose(-2, -1)))
            out = torch.matmul(weights[:, :, :num_queries], value)
        else:
            query = query[:, :, :num_queries]
            weights_q = _softmax_last(torch.matmul(query * scale, key.transpose(-2, -1)))
            out = torch.matmul(weights_q, value)
        return out.transpose(1, 2).reshape(batch, num_queries, self.mem_size), weights

    def _factored_attention(
        self, memory_qkv: torch.Tensor, xi: torch.Tensor, maps: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """The memory rows' attention over themselves and the input rows, the input rows' keys
        and values taken through ``xi`` (see module). ``memory_qkv`` ``[B, S, qkv_size]``, ``xi``
        ``[B, n, input_size + 2]``, ``maps`` from :meth:`_input_maps`; returns
        ``[B, S, mem_size]``.

        The input side keeps the (slot, head) pairs as rows of one matrix per batch element and
        maps all heads at once through block-diagonal matrices, so that no operand is broadcast
        (a broadcast matmul copies it out first)."""
        batch, slots, _ = memory_qkv.shape
        heads, width = self.num_heads, xi.shape[-1]
        _, key_block, value_block = maps
        per_head = memory_qkv.view(batch, slots, heads, self._head_qkv_size)
        query, key, value = per_head.split([self.key_size, self.key_size, self.head_size], dim=-1)
        query = query * self._query_scale  # [B, S, H, k]
        # the input rows' logits: each (slot, head) query mapped to xi's space, then one product
        mapped = torch.matmul(query.reshape(batch, slots, -1), key_block)  # [B, S, H * width]
        logits_in = torch.bmm(mapped.view(batch, slots * heads, width), xi.transpose(1, 2))
        logits_in = logits_in.view(batch, slots, heads, -1).transpose(1, 2)  # [B, H, S, n]
        value = value.transpose(1, 2)  # [B, H, S, v]
        logits_memory = torch.matmul(query.transpose(1, 2), key.permute(0, 2, 3, 1))
        weights = _softmax_last(torch.cat([logits_memory, logits_in], dim=-1))
        out = torch.matmul(weights[..., :slots], value).transpose(1, 2)  # [B, S, H, v]
        weights_in = weights[..., slots:].transpose(1, 2).reshape(batch, slots * heads, -1)
        mixed = torch.bmm(weights_in, xi).view(batch, slots, heads * width)
        return out.reshape(batch, slots, self.mem_size) + torch.matmul(mixed, value_block)

    def _create_gates(
        self, gate_inputs: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and forget gates from the precomputed input half and ``tanh`` of the memory.

        Args:
            gate_inputs: ``[B, 2 * gate_size]``, input Linear plus the constant biases.
            memory: previous memory ``[B, S, mem_size]``.

        Returns:
            ``(input_gate, forget_gate)``, each ``[B, S, gate_size]`` (broadcasts over features).
        """
        gates = torch.sigmoid(self.gate_memory(torch.tanh(memory)) + gate_inputs.unsqueeze(1))
        if self.gate_floor:
            gates = self.gate_floor + (1.0 - 2.0 * self.gate_floor) * gates
        if self.coupled_gates:
            return gates, 1.0 - gates
        return gates.chunk(2, dim=-1)

    # ------------------------------------------------------------------------------- checks

    def _as_rows(self, x: object, name: str, time: bool) -> torch.Tensor:
        """Check ``x`` and return it with an explicit rows dimension."""
        check_tensor(name, x)
        lead = 2 if time else 1
        lead_names = "[B, T, " if time else "[B, "
        if x.dim() not in (lead + 1, lead + 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name} must have shape {lead_names}{self.input_size}] or "
                f"{lead_names}n, {self.input_size}], got {list(x.shape)}"
            )
        check_filled_and_dtype(name, x, self.input_projection.weight.dtype)
        return x.unsqueeze(-2) if x.dim() == lead + 1 else x

    def _check_state(self, state: object, batch_size: int) -> None:
        check_tensor("state", state)
        expected = (batch_size, self.mem_slots, self.mem_size)
        if tuple(state.shape) != expected:
            raise ValueError(
                f"state must have shape [B, mem_slots, mem_size] = {list(expected)}, "
                f"got {list(state.shape)}"
            )
