"""Recurrent cores with one interface: the Relational Memory Core, LSTM/GRU baselines and the DNC.

Every core has ``output_size``, ``initial_state(batch_size, device=None)``, a one-step
``core(x, state) -> (output, next_state)`` and ``unroll(xs, state, resets=None)`` (``resets``:
``[B, T]`` bool, the state restarts from the initial one before a step where it is True; the
tests in ``tests/core/`` hold every core to this). States are a tensor (RMC) or a tuple of tensors (LSTM, GRU), all batch
first; :func:`as_tuple` and ``core.from_tuple`` convert between the two forms.
"""

from __future__ import annotations

import torch
from torch import nn

from rmc_agents.core.dnc import DNC
from rmc_agents.core.relational_memory import GATE_STYLES, RelationalMemory
from rmc_agents.core.rnn_cores import GRUCore, LSTMCore

State = torch.Tensor | tuple[torch.Tensor, ...]

CORE_NAMES = ("rmc", "lstm", "gru", "dnc")
_CORE_CLASSES = {"rmc": RelationalMemory, "lstm": LSTMCore, "gru": GRUCore, "dnc": DNC}


def make_core(name: str, input_size: int, **kwargs: object) -> nn.Module:
    """Build a core by name.

    Args:
        name: one of :data:`CORE_NAMES`.
        input_size: features of one input row (RMC) or of the flattened input (LSTM, GRU).
        **kwargs: the constructor arguments of that core (``RelationalMemory``: ``mem_slots``,
            ``head_size``, ...; ``LSTMCore``/``GRUCore``: ``hidden_size``, ``num_layers``,
            ``input_rows``; ``DNC``: ``hidden_size``, ``memory_size``, ``word_size``,
            ``num_reads``).

    Returns:
        The core module.

    Raises:
        ValueError: ``name`` is not a known core.
        TypeError: a keyword argument the core does not take.
    """
    if not isinstance(name, str) or name not in _CORE_CLASSES:
        raise ValueError(f"core name must be one of {CORE_NAMES}, got {name!r}")
    return _CORE_CLASSES[name](input_size, **kwargs)


def as_tuple(state: State) -> tuple[torch.Tensor, ...]:
    """Any core's state as a tuple of tensors (the RMC's memory becomes ``(memory,)``).

    Raises:
        TypeError: ``state`` is neither a tensor nor a tuple/list of tensors.
    """
    if isinstance(state, torch.Tensor):
        return (state,)
    if isinstance(state, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in state):
        return tuple(state)
    raise TypeError(f"state must be a tensor or a tuple of tensors, got {type(state).__name__}")


__all__ = [
    "CORE_NAMES",
    "DNC",
    "GATE_STYLES",
    "GRUCore",
    "LSTMCore",
    "RelationalMemory",
    "State",
    "as_tuple",
    "make_core",
]
