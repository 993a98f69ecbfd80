"""LSTM and GRU baselines with the same three calls as the RMC.

Both wrap ``torch.nn.LSTM`` / ``torch.nn.GRU`` (batch first), so an unroll runs PyTorch's fused
sequence kernel. Where ``resets`` marks an episode start inside the unroll, the sequence is cut
there: each piece between two such steps is one kernel call, and the state of the batch elements
that reset is zeroed (the initial state) before their step.
"""

from __future__ import annotations

import torch
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


class _TorchRNNCore(nn.Module):
    """Shared logic of the LSTM and GRU cores; subclasses set ``_rnn_class`` and ``_num_states``."""

    _rnn_class: type[nn.RNNBase]
    _num_states: int

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        input_rows: int | None = None,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        if input_rows is not None:
            check_positive_int("input_rows", input_rows)
            if input_size % input_rows:
                raise ValueError(
                    f"input_size ({input_size}) must be input_rows ({input_rows}) times the "
                    "row size"
                )
        self.input_rows = input_rows
        self.output_size = self.hidden_size
        self.rnn = self._rnn_class(
            self.input_size, self.hidden_size, num_layers=self.num_layers, batch_first=True
        )

    def extra_repr(self) -> str:
        return f"input_rows={self.input_rows}"

    def _start_second_gate_at(self, value: float) -> None:
        """Every bias 0 but the second gate's (the LSTM's forget, the GRU's update gate): ``value``
        (PyTorch adds ``bias_ih`` and ``bias_hh``; the value goes in ``bias_hh``)."""
        h = self.hidden_size
        with torch.no_grad():
            for layer in range(self.num_layers):
                getattr(self.rnn, f"bias_ih_l{layer}").zero_()
                bias = getattr(self.rnn, f"bias_hh_l{layer}")
                bias.zero_()
                bias[h : 2 * h] = value

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Zero state(s) ``[batch_size, num_layers, hidden_size]`` (batch first).

        Args:
            batch_size: number of independent states.
            device: where to put them; defaults to the device of the parameters.

        Returns:
            ``(h, c)`` for the LSTM, ``(h,)`` for the GRU.

        Raises:
            TypeError, ValueError: ``batch_size`` is not a positive int.
        """
        batch_size = check_batch_size(batch_size)
        weight = self.rnn.weight_hh_l0
        device = weight.device if device is None else device
        shape = (batch_size, self.num_layers, self.hidden_size)
        return tuple(
            torch.zeros(shape, dtype=weight.dtype, device=device) for _ in range(self._num_states)
        )

    def from_tuple(self, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Inverse of :func:`rmc_agents.core.as_tuple` (the state already is a tuple)."""
        if not isinstance(state, (tuple, list)) or len(state) != self._num_states:
            raise ValueError(
                f"state for {type(self).__name__} must be a tuple of {self._num_states} tensors"
            )
        return tuple(state)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One step.

        Args:
            x: ``[B, input_size]`` or rows ``[B, n, input_size // n]`` (flattened).
            state: as returned by :meth:`initial_state`.

        Returns:
            ``(output [B, hidden_size], next_state)``.

        Raises:
            TypeError, ValueError: ``x`` or ``state`` has the wrong type or shape.
        """
        flat = self._flatten_input(x, "x", time=False)
        outputs, next_state = self._run(flat.unsqueeze(1), self._to_layers_first(state, len(flat)))
        return outputs[:, 0], self._to_batch_first(next_state)

    def unroll(
        self,
        xs: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        resets: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run over a time dimension, zeroing the state where ``resets`` marks an episode start.

        Args:
            xs: ``[B, T, input_size]`` or rows ``[B, T, n, input_size // n]``.
            state: the state before the first step.
            resets: optional bool (or 0/1 float) ``[B, T]``; True at ``t`` resets that batch
                element's state to the initial (zero) state before step ``t``.
            return_attention: must be False (only the RMC has attention weights).

        Returns:
            ``(outputs [B, T, hidden_size], final_state)``.

        Raises:
            TypeError, ValueError: bad shapes or types, or ``return_attention=True``.
        """
        if return_attention:
            raise ValueError(
                f"return_attention=True is only supported by the RMC, not {type(self).__name__}"
            )
        flat = self._flatten_input(xs, "xs", time=True)
        batch_size, steps = flat.shape[:2]
        hidden = self._to_layers_first(state, batch_size)
        resets = check_resets(resets, batch_size, steps)
        reset_at = reset_times(resets)
        starts = [0] + [t for t in range(1, steps) if reset_at and reset_at[t]]
        pieces = []
        for start, end in zip(starts, starts[1:] + [steps], strict=True):
            if reset_at and reset_at[start]:
                keep = ~resets[:, start].to(flat.device)
                hidden = tuple(h * keep[None, :, None].to(h.dtype) for h in hidden)
            outputs, hidden = self._run(flat[:, start:end], hidden)
            pieces.append(outputs)
        outputs = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)
        return outputs, self._to_batch_first(hidden)

    # ------------------------------------------------------------------------------ helpers

    def _run(
        self, xs: torch.Tensor, hidden: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Call the torch RNN on ``[B, T, input_size]`` with layers-first state tuples."""
        outputs, hidden = self.rnn(xs, hidden if self._num_states > 1 else hidden[0])
        return outputs, hidden if self._num_states > 1 else (hidden,)

    def _to_layers_first(self, state: object, batch_size: int) -> tuple[torch.Tensor, ...]:
        expected = (batch_size, self.num_layers, self.hidden_size)
        if not isinstance(state, (tuple, list)) or len(state) != self._num_states:
            raise ValueError(
                f"state for {type(self).__name__} must be a tuple of {self._num_states} tensors "
                f"of shape {list(expected)}"
            )
        for index, tensor in enumerate(state):
            check_tensor(f"state[{index}]", tensor)
            if tuple(tensor.shape) != expected:
                raise ValueError(
                    f"state[{index}] must have shape [B, num_layers, hidden_size] = "
                    f"{list(expected)}, got {list(tensor.shape)}"
                )
        return tuple(tensor.transpose(0, 1).contiguous() for tensor in state)

    @staticmethod
    def _to_batch_first(hidden: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(tensor.transpose(0, 1) for tensor in hidden)

    def _flatten_input(self, x: object, name: str, time: bool) -> torch.Tensor:
        """Check ``x`` and flatten a rows dimension into the features."""
        check_tensor(name, x)
        lead = 2 if time else 1
        lead_names = "[B, T, " if time else "[B, "
        rows_ok = x.dim() == lead + 2 and x.shape[-2] * x.shape[-1] == self.input_size
        if rows_ok and self.input_rows is not None:
            rows_ok = x.shape[-2] == self.input_rows
        if not (rows_ok or (x.dim() == lead + 1 and x.shape[-1] == self.input_size)):
            rows = "n" if self.input_rows is None else str(self.input_rows)
            raise ValueError(
                f"{name} must have shape {lead_names}{self.input_size}] or {lead_names}{rows}, "
                f"{self.input_size} // {rows}], got {list(x.shape)}"
            )
        check_filled_and_dtype(name, x, self.rnn.weight_hh_l0.dtype)
        return x.flatten(lead) if x.dim() == lead + 2 else x


class LSTMCore(_TorchRNNCore):
    """LSTM baseline core; state ``(h, c)``, each ``[B, num_layers, hidden_size]``.

    Args:
        input_size: features of one (flattened) input.
        hidden_size: LSTM units per layer; also the output size.
        num_layers: stacked LSTM layers.
        input_rows: if given, inputs may come as ``[..., input_rows, input_size // input_rows]``.
        forget_bias: the forget gates' bias at the start, the others' 0, as Sonnet's LSTM (the
            paper's baselines: biases from 0 plus a constant ``forget_bias = 1`` on the forget
            gate, the same function as a trained bias that starts there). None: PyTorch's own
            initialisation (all biases uniform in +-1/sqrt(hidden_size)).

    Raises:
        TypeError, ValueError: an argument is not a positive int, or ``forget_bias`` not a finite
            number (the message names it).
    """

    _rnn_class = nn.LSTM
    _num_states = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        input_rows: int | None = None,
        forget_bias: float | None = 1.0,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, input_rows)
        self.forget_bias = (
            None if forget_bias is None else check_finite_float("forget_bias", forget_bias)
        )
        self.reset_biases()

    def reset_biases(self) -> None:
        """Set the biases as ``forget_bias`` says (PyTorch's gate order: input, forget, cell, output)."""
        if self.forget_bias is not None:
            self._start_second_gate_at(self.forget_bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}"


class GRUCore(_TorchRNNCore):
    """GRU baseline core; state ``(h,)`` with ``h`` of shape ``[B, num_layers, hidden_size]``.

    Args:
        input_size: features of one (flattened) input.
        hidden_size: GRU units per layer; also the output size.
        num_layers: stacked GRU layers.
        input_rows: if given, inputs may come as ``[..., input_rows, input_size // input_rows]``.
        update_bias: the update gates' bias at the start, the others' 0 **(ours)**: the update gate
            ``z`` is the share of the old state a step keeps (``h' = (1 - z) * n + z * h``), so
            ``update_bias = 2`` starts it near ``sigmoid(2) = 0.88``, the GRU's match for an LSTM's
            ``forget_bias``. None (the default): PyTorch's own initialisation (all biases uniform in
            +-1/sqrt(hidden_size)).

    Raises:
        TypeError, ValueError: an argument is not a positive int, or ``update_bias`` not a finite
            number (the message names it).
    """

    _rnn_class = nn.GRU
    _num_states = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        input_rows: int | None = None,
        update_bias: float | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, input_rows)
        self.update_bias = (
            None if update_bias is None else check_finite_float("update_bias", update_bias)
        )
        self.reset_biases()

    def reset_biases(self) -> None:
        """Set the biases as ``update_bias`` says (PyTorch's gate order: reset, update, new)."""
        if self.update_bias is not None:
            self._start_second_gate_at(self.update_bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, update_bias={self.update_bias}"
