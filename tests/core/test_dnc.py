"""The DNC against a numpy reference written from the paper's equations (Graves et al. 2016,
Methods), one slot and one head at a time, and the cores' common interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmc_agents.core import DNC, make_core
from rmc_agents.core.dnc import allocation_weights

N, W, R, H, X = 5, 3, 2, 6, 4


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _oneplus(v):
    return 1.0 + np.log1p(np.exp(v))


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _content(memory, key, strength):
    sims = np.array(
        [
            memory[i] @ key / (np.linalg.norm(memory[i]) * np.linalg.norm(key) + 1e-6)
            for i in range(len(memory))
        ]
    )
    return _softmax(strength * sims)


def reference_step(p, x, state):
    """One step for one batch element, written from the paper (not from dnc.py)."""
    h, c, mem, usage, prec, link, ww, wr, reads = (np.array(s, dtype=np.float64) for s in state)
    inp = np.concatenate([x, reads])
    gates = (
        p["controller.weight_ih"] @ inp
        + p["controller.bias_ih"]
        + p["controller.weight_hh"] @ h
        + p["controller.bias_hh"]
    )
    i, f, g, o = np.split(gates, 4)  # PyTorch's LSTM gate order
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    xi = p["interface.weight"] @ h + p["interface.bias"]
    pos = 0

    def take(n):
        nonlocal pos
        pos += n
        return xi[pos - n : pos]

    read_keys = take(R * W).reshape(R, W)
    read_strengths = _oneplus(take(R))
    write_key = take(W)
    write_strength = _oneplus(take(1))[0]
    erase = _sigmoid(take(W))
    write_vec = take(W)
    free = _sigmoid(take(R))
    g_a = _sigmoid(take(1))[0]
    g_w = _sigmoid(take(1))[0]
    modes = np.stack([_softmax(m) for m in take(3 * R).reshape(R, 3)])
    # usage, with the free gates of the previous reads
    psi = np.ones(N)
    for head in range(R):
        psi *= 1 - free[head] * wr[head]
    usage = (usage + ww - usage * ww) * psi
    # allocation: slots by ascending usage (ties: lower index first)
    phi = sorted(range(N), key=lambda j: (usage[j], j))
    alloc = np.zeros(N)
    for j, slot in enumerate(phi):
        alloc[slot] = (1 - usage[slot]) * np.prod([usage[phi[k]] for k in range(j)])
    ww = g_w * (g_a * alloc + (1 - g_a) * _content(mem, write_key, write_strength))
    new_mem = np.zeros_like(mem)
    for slot in range(N):
        new_mem[slot] = mem[slot] * (1 - ww[slot] * erase) + ww[slot] * write_vec
    new_link = np.zeros((N, N))
    for a in range(N):
        for b in range(N):
            if a != b:
                new_link[a, b] = (1 - ww[a] - ww[b]) * link[a, b] + ww[a] * prec[b]
    prec = (1 - ww.sum()) * prec + ww
    new_wr = np.zeros((R, N))
    for head in range(R):
        forward = new_link @ wr[head]
        backward = new_link.T @ wr[head]
        content = _content(new_mem, read_keys[head], read_strengths[head])
        new_wr[head] = (
            modes[head, 0] * backward + modes[head, 1] * content + modes[head, 2] * forward
        )
    reads = np.concatenate([new_wr[head] @ new_mem for head in range(R)])
    out = np.concatenate([h, reads])
    return out, (h, c, new_mem, usage, prec, new_link, ww, new_wr, reads)


def _make(seed=0):
    torch.manual_seed(seed)
    core = DNC(X, hidden_size=H, memory_size=N, word_size=W, num_reads=R).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in core.parameters():
            param.copy_(torch.randn(param.shape, generator=gen, dtype=param.dtype) * 0.7)
    params = {k: v.detach().numpy() for k, v in core.named_parameters()}
    return core, params


def test_allocation_hand_worked():
    usage = torch.tensor([[0.5, 0.1, 0.9]], dtype=torch.float64)
    alloc = allocation_weights(usage)[0].tolist()
    assert alloc == pytest.approx([0.5 * 0.1, 0.9, 0.1 * 0.1 * 0.5])


def test_steps_match_the_reference():
    """Six steps from the zero state (the first write goes by allocation to slot 0, later ones by
    content and allocation), every state tensor compared, batch of two."""
    core, params = _make()
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(2, 6, X))
    state = core.initial_state(2)
    ref = [tuple(s[b].numpy() for s in state) for b in range(2)]
    for t in range(6):
        out, state = core(torch.as_tensor(xs[:, t]), state)
        for b in range(2):
            want_out, ref[b] = reference_step(params, xs[b, t], ref[b])
            np.testing.assert_allclose(out[b].detach().numpy(), want_out, atol=1e-10)
            for got, want in zip(state, ref[b], strict=True):
                np.testing.assert_allclose(got[b].detach().numpy(), want, atol=1e-10)
    # the memory was written and the link matrix holds an order
    assert np.abs(ref[0][2]).sum() > 0 and np.abs(ref[0][5]).sum() > 0


def test_unroll_with_resets_equals_stepping_by_hand():
    core, _ = _make(2)
    xs = torch.randn(3, 5, X, dtype=torch.float64)
    resets = torch.zeros(3, 5, dtype=torch.bool)
    resets[1, 2] = resets[2, 4] = True
    outs, final = core.unroll(xs, core.initial_state(3), resets=resets)
    for b in range(3):
        state = core.initial_state(1)
        for t in range(5):
            if resets[b, t]:
                state = core.initial_state(1)
            out, state = core(xs[b : b + 1, t], state)
            torch.testing.assert_close(outs[b, t], out[0])
        for got, want in zip(final, state, strict=True):
            torch.testing.assert_close(got[b], want[0])


def test_interface_and_gradients():
    core = make_core("dnc", 7, hidden_size=8, memory_size=4, word_size=3, num_reads=2)
    assert core.output_size == 8 + 2 * 3
    outs, state = core.unroll(torch.randn(2, 3, 7), core.initial_state(2))
    assert outs.shape == (2, 3, 14) and len(state) == 9
    outs.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in core.parameters())
    with pytest.raises(ValueError, match="memory_size"):
        DNC(3, memory_size=0)
    with pytest.raises(ValueError, match="only the RMC"):
        core.unroll(torch.randn(2, 3, 7), core.initial_state(2), return_attention=True)
    with pytest.raises(ValueError, match="xs must have shape"):
        core.unroll(torch.randn(2, 3, 6), core.initial_state(2))


def test_allocation_ties_go_to_the_lower_slot_first():
    """Equal usage (a fresh memory): the free list is in slot order, so slot 0 is allocated."""
    usage = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.5, 0.2, 0.2, 0.9]], dtype=torch.float64)
    alloc = allocation_weights(usage)
    assert alloc[0].tolist() == [1.0, 0.0, 0.0, 0.0]
    # order 1, 2 (the tie, lower slot first), 0, 3
    want = [0.5 * 0.2 * 0.2, 0.8, 0.8 * 0.2, 0.1 * 0.2 * 0.2 * 0.5]
    assert alloc[1].tolist() == pytest.approx(want)


def test_defaults_and_bad_settings_are_named():
    core = DNC(6)
    assert (core.hidden_size, core.memory_size, core.word_size, core.num_reads) == (128, 16, 16, 2)
    for key in ("input_size", "hidden_size", "memory_size", "word_size", "num_reads"):
        kwargs = {"input_size": 6, key: 0}
        with pytest.raises(ValueError, match=rf"^{key} must be"):
            DNC(**kwargs)


def test_inputs_as_rows_and_bad_inputs_and_states():
    torch.manual_seed(0)
    core = DNC(6, hidden_size=8, memory_size=4, word_size=3, num_reads=2)
    state = core.initial_state(2)
    x = torch.randn(2, 6)
    flat_out, _ = core(x, state)
    rows_out, _ = core(x.view(2, 2, 3), state)  # [B, rows, row size] is flattened
    torch.testing.assert_close(rows_out, flat_out)
    for bad in (torch.zeros(2, 2, 4), torch.zeros(2, 7), torch.zeros(2, 1, 2, 3)):
        with pytest.raises(ValueError, match=r"x must have shape \[B, 6\]"):
            core(bad, state)
    with pytest.raises(ValueError, match=r"must have shape \[B, T, 6\]"):
        core.unroll(torch.zeros(2, 3, 7), state)
    with pytest.raises(
        ValueError, match=r"^state for DNC must be a tuple of 9 tensors \(see initial_state\)$"
    ):
        core(x, state[:8])
    with pytest.raises(
        ValueError, match=r"^state for DNC must be a tuple of 9 tensors \(see initial_state\)$"
    ):
        core.from_tuple([*state, state[0]])
    with pytest.raises(TypeError, match=r"^state\[3\] must be a torch.Tensor"):
        core(x, (*state[:3], [0.0], *state[4:]))
    wrong = list(state)
    wrong[5] = torch.zeros(2, 4, 5)  # the link matrix
    with pytest.raises(
        ValueError, match=r"state\[5\] must have shape \[2, 4, 4\], got \[2, 4, 5\]"
    ):
        core(x, tuple(wrong))
    with pytest.raises(ValueError, match="^return_attention: only the RMC has attention weights$"):
        core.unroll(torch.zeros(2, 3, 6), state, return_attention=True)
