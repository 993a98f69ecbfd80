"""LSTM and GRU cores against step-by-step numpy equations (PyTorch's gate order and layout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmc_agents.core import GRUCore, LSTMCore


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _weights(core: torch.nn.Module, layer: int) -> tuple[np.ndarray, ...]:
    rnn = core.rnn
    return tuple(
        getattr(rnn, f"{name}_l{layer}").detach().numpy()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def reference_lstm_step(core: LSTMCore, x: np.ndarray, h: np.ndarray, c: np.ndarray):
    """h, c: [B, layers, H]. Gates i, f, g, o stacked in that order."""
    hidden = core.hidden_size
    new_h, new_c = np.zeros_like(h), np.zeros_like(c)
    layer_input = x
    for layer in range(core.num_layers):
        w_ih, w_hh, b_ih, b_hh = _weights(core, layer)
        gates = layer_input @ w_ih.T + b_ih + h[:, layer] @ w_hh.T + b_hh
        i, f, g, o = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
        new_c[:, layer] = _sigmoid(f) * c[:, layer] + _sigmoid(i) * np.tanh(g)
        new_h[:, layer] = _sigmoid(o) * np.tanh(new_c[:, layer])
        layer_input = new_h[:, layer]
    return layer_input, new_h, new_c


def reference_gru_step(core: GRUCore, x: np.ndarray, h: np.ndarray):
    """h: [B, layers, H]. Gates r, z, n stacked in that order; r applies to W_hn h + b_hn."""
    hidden = core.hidden_size
    new_h = np.zeros_like(h)
    layer_input = x
    for layer in range(core.num_layers):
        w_ih, w_hh, b_ih, b_hh = _weights(core, layer)
        gi = layer_input @ w_ih.T + b_ih
        gh = h[:, layer] @ w_hh.T + b_hh
        r = _sigmoid(gi[:, :hidden] + gh[:, :hidden])
        z = _sigmoid(gi[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
        n = np.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
        new_h[:, layer] = (1 - z) * n + z * h[:, layer]
        layer_input = new_h[:, layer]
    return layer_input, new_h


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_unroll_with_resets_matches_numpy_equations(kind: str, num_layers: int) -> None:
    torch.manual_seed(num_layers)
    cls = LSTMCore if kind == "lstm" else GRUCore
    core = cls(6, hidden_size=5, num_layers=num_layers, input_rows=2).double()
    batch, steps = 3, 7
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(batch, steps, 2, 3))
    state = tuple(rng.normal(size=(batch, num_layers, 5)) for _ in core.initial_state(1))
    resets = np.zeros((batch, steps), dtype=bool)
    resets[0, 0] = resets[1, 3] = resets[2, 3] = resets[0, 5] = resets[2, 1] = True  # t=1 too

    outputs, final = core.unroll(
        torch.from_numpy(xs), tuple(map(torch.from_numpy, state)), torch.from_numpy(resets)
    )

    ref_state = [s.copy() for s in state]
    for t in range(steps):
        for s in ref_state:
            s[resets[:, t]] = 0.0
        x = xs[:, t].reshape(batch, -1)
        if kind == "lstm":
            out, *ref_state = reference_lstm_step(core, x, *ref_state)
        else:
            out, *ref_state = reference_gru_step(core, x, *ref_state)
        np.testing.assert_allclose(outputs[:, t].detach().numpy(), out, atol=1e-10)
    for got, want in zip(final, ref_state, strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-10)


@pytest.mark.parametrize("cls", [LSTMCore, GRUCore])
def test_step_equals_unroll_and_shapes(cls: type) -> None:
    torch.manual_seed(0)
    core = cls(4, hidden_size=3, num_layers=2)
    state = core.initial_state(2)
    assert isinstance(state, tuple) and len(state) == (2 if cls is LSTMCore else 1)
    assert all(s.shape == (2, 2, 3) and (s == 0).all() for s in state)
    assert core.output_size == 3
    xs = torch.randn(2, 5, 4)
    outputs, final = core.unroll(xs, state)
    assert outputs.shape == (2, 5, 3)
    for t in range(5):
        out, state = core(xs[:, t], state)
        torch.testing.assert_close(out, outputs[:, t])
    for got, want in zip(final, state, strict=True):
        assert got.shape == (2, 2, 3)
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("cls", [LSTMCore, GRUCore])
def test_gradients_reach_every_parameter(cls: type) -> None:
    core = cls(4, hidden_size=3, num_layers=2)
    resets = torch.zeros(2, 4, dtype=torch.bool)
    resets[1, 2] = True
    outputs, _ = core.unroll(torch.randn(2, 4, 4), core.initial_state(2), resets)
    outputs.sum().backward()
    for name, param in core.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_lstm_forget_bias_starts_as_in_sonnet():
    """Sonnet's LSTM (the paper's baselines): biases from 0, forget gates from forget_bias = 1."""
    core = LSTMCore(input_size=3, hidden_size=4, num_layers=2)
    for layer in range(2):
        ih = getattr(core.rnn, f"bias_ih_l{layer}").detach()
        hh = getattr(core.rnn, f"bias_hh_l{layer}").detach()
        total = (ih + hh).tolist()  # PyTorch adds the two; gate order input, forget, cell, output
        assert total == [0.0] * 4 + [1.0] * 4 + [0.0] * 8
    assert LSTMCore(3, 4, forget_bias=0.5).rnn.bias_hh_l0[4:8].tolist() == [0.5] * 4
    torch.manual_seed(0)
    default = LSTMCore(3, 4, forget_bias=None).rnn.bias_ih_l0.detach()
    assert (default != 0).all()  # PyTorch's uniform initialisation, untouched
    with pytest.raises(ValueError, match="forget_bias"):
        LSTMCore(3, 4, forget_bias=float("nan"))


def test_gru_update_bias_sets_the_kept_share_at_the_start():
    """update_bias: every bias 0 but the update gate's, whose sigmoid is the old state's share."""
    core = GRUCore(input_size=3, hidden_size=4, num_layers=2, update_bias=2.0)
    for layer in range(2):
        ih = getattr(core.rnn, f"bias_ih_l{layer}").detach()
        hh = getattr(core.rnn, f"bias_hh_l{layer}").detach()
        assert (ih + hh).tolist() == [0.0] * 4 + [2.0] * 4 + [0.0] * 4  # reset, update, new
    # The step keeps sigmoid(2) of the old state where the gate's weights contribute nothing.
    single = GRUCore(input_size=3, hidden_size=4, update_bias=2.0)
    with torch.no_grad():
        single.rnn.weight_ih_l0.zero_()
        single.rnn.weight_hh_l0.zero_()
    h0 = torch.tensor([[[0.5, -1.0, 2.0, 0.25]]])
    out, _ = single.unroll(torch.randn(1, 1, 3), (h0,), torch.zeros(1, 1, dtype=torch.bool))
    z = torch.sigmoid(torch.tensor(2.0))
    torch.testing.assert_close(out[0, 0], z * h0[0, 0])  # n = tanh(0) = 0
    torch.manual_seed(0)
    default = GRUCore(3, 4).rnn.bias_ih_l0.detach()
    assert GRUCore(3, 4).update_bias is None and (default != 0).all()  # PyTorch's own
    with pytest.raises(ValueError, match="^update_bias must be"):
        GRUCore(3, 4, update_bias=float("inf"))


@pytest.mark.parametrize("cls", [LSTMCore, GRUCore])
def test_defaults_and_bad_settings_are_named(cls: type) -> None:
    core = cls(6, hidden_size=5)
    assert core.num_layers == 1 and core.rnn.num_layers == 1
    for key, bad in (("input_size", 0), ("hidden_size", 0), ("num_layers", 0), ("input_rows", 0)):
        kwargs = {"input_size": 6, "hidden_size": 5, key: bad}
        with pytest.raises(ValueError, match=rf"^{key} must be"):
            cls(**kwargs)
    with pytest.raises(
        ValueError, match=r"input_size \(6\) must be input_rows \(4\) times the row size"
    ):
        cls(6, hidden_size=5, input_rows=4)
    if cls is LSTMCore:
        with pytest.raises(ValueError, match="^forget_bias must be"):
            cls(6, hidden_size=5, forget_bias=float("nan"))


@pytest.mark.parametrize("cls", [LSTMCore, GRUCore])
def test_bad_inputs_and_states_are_refused_with_the_expected_shapes(cls: type) -> None:
    core = cls(6, hidden_size=5, input_rows=2)
    state = core.initial_state(3)
    n = len(state)
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"^state for {name} must be a tuple of {n} tensors"):
        core.from_tuple([state[0]] * (n + 1))
    with pytest.raises(ValueError, match=rf"^state for {name} must be a tuple of {n} tensors"):
        core(torch.zeros(3, 6), tuple(state) + (state[0],))
    with pytest.raises(TypeError, match=rf"^state\[{n - 1}\] must be a torch.Tensor"):
        core(torch.zeros(3, 6), (*state[:-1], "not a tensor"))
    # Rows of the wrong count, or of a width that does not fill the input: the message shows both
    # accepted shapes.
    for bad in (torch.zeros(3, 3, 2), torch.zeros(3, 2, 4), torch.zeros(3, 7)):
        with pytest.raises(ValueError, match=r"x must have shape \[B, 6\] or \[B, 2, 6 // 2\]"):
            core(bad, state)
    with pytest.raises(ValueError, match=r"\[B, T, 6\] or \[B, T, 2, 6 // 2\]"):
        core.unroll(torch.zeros(3, 4, 3, 2), state)
    free = cls(6, hidden_size=5)  # no input_rows: any rows that fill the input
    out, _ = free(torch.zeros(3, 3, 2), free.initial_state(3))
    assert out.shape == (3, 5)
    with pytest.raises(ValueError, match=r"\[B, n, 6 // n\]"):
        free(torch.zeros(3, 7), free.initial_state(3))
    with pytest.raises(
        ValueError, match=f"^return_attention=True is only supported by the RMC, not {name}$"
    ):
        core.unroll(torch.zeros(3, 4, 6), state, return_attention=True)
