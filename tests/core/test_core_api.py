"""The shared core interface: make_core, state tuples, devices/dtypes, and every validation error."""

from __future__ import annotations

import pytest
import torch

from rmc_agents.core import (
    CORE_NAMES,
    DNC,
    GRUCore,
    LSTMCore,
    RelationalMemory,
    as_tuple,
    make_core,
)

RMC_KWARGS = dict(mem_slots=2, head_size=3, num_heads=2)
CORE_KWARGS = {
    "rmc": RMC_KWARGS,
    "lstm": dict(hidden_size=5),
    "gru": dict(hidden_size=5),
    "dnc": dict(hidden_size=5, memory_size=4, word_size=3, num_reads=2),
}


@pytest.mark.parametrize("name", CORE_NAMES)
def test_make_core_builds_each_core_with_the_same_calls(name: str) -> None:
    core = make_core(name, 4, **CORE_KWARGS[name])
    expected = {"rmc": RelationalMemory, "lstm": LSTMCore, "gru": GRUCore, "dnc": DNC}[name]
    assert type(core) is expected
    state = core.initial_state(3)
    out, state = core(torch.randn(3, 4), state)
    assert out.shape == (3, core.output_size)
    outs, final = core.unroll(torch.randn(3, 2, 4), state, resets=torch.zeros(3, 2))
    assert outs.shape == (3, 2, core.output_size)
    assert core.from_tuple(as_tuple(final)) is not None
    for got, want in zip(as_tuple(core.from_tuple(as_tuple(final))), as_tuple(final), strict=True):
        assert got is want


def test_output_sizes() -> None:
    assert make_core("rmc", 4, **RMC_KWARGS).output_size == 2 * 6
    assert make_core("lstm", 4, hidden_size=7).output_size == 7


def test_make_core_unknown_name() -> None:
    with pytest.raises(ValueError, match="'transformer'"):
        make_core("transformer", 4)


def test_make_core_unknown_kwarg() -> None:
    with pytest.raises(TypeError, match="mem_slot"):
        make_core("rmc", 4, mem_slot=2, head_size=3)


def test_as_tuple() -> None:
    t = torch.zeros(1)
    assert as_tuple(t) == (t,)
    assert as_tuple([t, t]) == (t, t)
    with pytest.raises(TypeError, match="state"):
        as_tuple(3)


def test_state_follows_module_dtype_and_device() -> None:
    core = RelationalMemory(3, **RMC_KWARGS).double()
    assert core.initial_state(2).dtype == torch.float64
    assert core.initial_state(2, device="cpu").device.type == "cpu"
    lstm = LSTMCore(3, hidden_size=2).double()
    assert all(s.dtype == torch.float64 for s in lstm.initial_state(2))


def test_rnn_rows_input_is_flattened() -> None:
    torch.manual_seed(0)
    core = LSTMCore(6, hidden_size=4, input_rows=3)
    x = torch.randn(2, 3, 2)
    state = core.initial_state(2)
    torch.testing.assert_close(core(x, state)[0], core(x.reshape(2, 6), state)[0])
    with pytest.raises(ValueError, match=r"xs must have shape"):
        core.unroll(torch.randn(2, 4, 2, 3), state)  # 2 rows, but input_rows=3


# ---------------------------------------------------------------------------- constructor errors

RMC_BAD_ARGS = [
    ("input_size", 0, ValueError),
    ("input_size", 2.0, TypeError),
    ("mem_slots", 0, ValueError),
    ("mem_slots", "4", TypeError),
    ("head_size", -1, ValueError),
    ("head_size", True, TypeError),
    ("num_heads", 0, ValueError),
    ("num_blocks", 0, ValueError),
    ("num_blocks", 1.5, TypeError),
    ("forget_bias", "1", TypeError),
    ("forget_bias", float("nan"), ValueError),
    ("input_bias", float("inf"), ValueError),
    ("input_bias", None, TypeError),
    ("gate_style", "units", ValueError),
    ("gate_style", 1, ValueError),
    ("attention_mlp_layers", 0, ValueError),
    ("attention_mlp_layers", 2.0, TypeError),
    ("key_size", 0, ValueError),
    ("key_size", "8", TypeError),
]


@pytest.mark.parametrize(("arg", "value", "error"), RMC_BAD_ARGS)
def test_rmc_constructor_validates_every_argument(arg: str, value: object, error: type) -> None:
    kwargs = dict(input_size=4, mem_slots=2, head_size=3)
    kwargs[arg] = value
    with pytest.raises(error, match=arg):
        RelationalMemory(**kwargs)


@pytest.mark.parametrize("cls", [LSTMCore, GRUCore])
@pytest.mark.parametrize(
    ("arg", "value", "error"),
    [
        ("input_size", 0, ValueError),
        ("hidden_size", 0, ValueError),
        ("hidden_size", 2.5, TypeError),
        ("num_layers", 0, ValueError),
        ("input_rows", 0, ValueError),
        ("input_rows", 3, ValueError),  # 4 inputs cannot be split into 3 rows
    ],
)
def test_rnn_constructor_validates_every_argument(
    cls: type, arg: str, value: object, error: type
) -> None:
    kwargs = dict(input_size=4, hidden_size=3)
    kwargs[arg] = value
    with pytest.raises(error, match=arg):
        cls(**kwargs)


# ------------------------------------------------------------------------------- call errors


@pytest.mark.parametrize("name", CORE_NAMES)
def test_call_errors_name_the_bad_argument(name: str) -> None:
    core = make_core(name, 4, **CORE_KWARGS[name])
    state = core.initial_state(2)
    with pytest.raises(ValueError, match="batch_size"):
        core.initial_state(0)
    with pytest.raises(TypeError, match="batch_size"):
        core.initial_state(2.0)
    with pytest.raises(ValueError, match=r"^x must have shape"):
        core(torch.randn(2, 5), state)
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor"):
        core([[0.0] * 4], state)
    with pytest.raises(TypeError, match="x must have dtype"):
        core(torch.randn(2, 4, dtype=torch.float64), state)
    with pytest.raises(ValueError, match="^state"):
        core(torch.randn(3, 4), state)  # batch 3, state batch 2
    with pytest.raises(ValueError, match=r"^xs must have shape"):
        core.unroll(torch.randn(2, 4), state)
    with pytest.raises(ValueError, match="^xs must not have an empty"):
        core.unroll(torch.randn(2, 0, 4), state)
    with pytest.raises(ValueError, match="^resets must have shape"):
        core.unroll(torch.randn(2, 3, 4), state, resets=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="^resets must be a torch.Tensor"):
        core.unroll(torch.randn(2, 3, 4), state, resets=[[0, 0, 0]] * 2)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_attention_is_rmc_only(name: str) -> None:
    core = make_core(name, 4, hidden_size=3)
    with pytest.raises(ValueError, match="return_attention"):
        core.unroll(torch.randn(1, 2, 4), core.initial_state(1), return_attention=True)


def test_rmc_state_errors() -> None:
    core = RelationalMemory(4, **RMC_KWARGS)
    with pytest.raises(ValueError, match=r"state must have shape \[B, mem_slots, mem_size\]"):
        core(torch.randn(2, 4), torch.zeros(2, 3, 6))
    with pytest.raises(TypeError, match="^state must be a torch.Tensor"):
        core(torch.randn(2, 4), (torch.zeros(2, 2, 6),))
    with pytest.raises(ValueError, match="tuple of one tensor"):
        core.from_tuple((torch.zeros(1), torch.zeros(1)))


def test_rnn_state_errors() -> None:
    core = LSTMCore(4, hidden_size=3)
    with pytest.raises(ValueError, match="tuple of 2 tensors"):
        core(torch.randn(2, 4), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match=r"state\[1\] must have shape"):
        core(torch.randn(2, 4), (torch.zeros(2, 1, 3), torch.zeros(2, 1, 4)))
