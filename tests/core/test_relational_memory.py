"""The RMC against a plain numpy reference written from the paper's equations (docs/cores.md), plus its invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmc_agents.core import RelationalMemory

# ----------------------------------------------------------------------------- numpy reference


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """LayerNorm over the last axis (one row at a time), eps 1e-5."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_step(
    p: dict, cfg: dict, x_rows: np.ndarray, memory: np.ndarray, reads: list | None = None
):
    """One RMC step from the equations.

    ``p`` maps the module's parameter names to numpy arrays (weights are ``[out, in]``).
    The qkv projection's output is laid out head by head as ``[query, key, value]``.
    Returns (next_memory [B, S, D], attention weights [B, blocks, H, N, N]). With ``reads`` a
    list, the input rows' outputs of the last block, max-pooled over the rows ``[B, D]``, are
    appended to it (the read of ``read_inputs``).
    """
    heads, key, head = cfg["num_heads"], cfg["key_size"], cfg["head_size"]
    slots, mem_size = memory.shape[1], heads * head

    def linear(name, v):
        return v @ p[f"{name}.weight"].T + p[f"{name}.bias"]

    def norm(name, v):
        return _layer_norm(v, p[f"{name}.weight"], p[f"{name}.bias"])

    projected = linear("input_projection", x_rows)  # [B, n, D]
    mx = np.concatenate([memory, projected], axis=1)  # [B, N, D]
    all_weights = []
    for b in range(cfg["num_blocks"]):
        qkv = norm(f"blocks.{b}.qkv_norm", linear(f"blocks.{b}.qkv", mx))
        if b == 0 and "slot_embedding" in p:  # each slot's own vector on its normalised qkv
            qkv[:, :slots] += p["slot_embedding"]
        attended = np.zeros_like(mx)
        block_weights = []
        for h in range(heads):
            base = h * (2 * key + head)
            # The paper's scale, or Sonnet v1's: the size of one head's whole qkv vector.
            scaled_by = key if cfg["attention_scale"] == "paper" else 2 * key + head
            q = qkv[..., base : base + key] * scaled_by**-0.5
            k = qkv[..., base + key : base + 2 * key]
            v = qkv[..., base + 2 * key : base + 2 * key + head]
            weights = _softmax(q @ k.transpose(0, 2, 1))
            attended[..., h * head : (h + 1) * head] = weights @ v
            block_weights.append(weights)
        all_weights.append(np.stack(block_weights, axis=1))
        mx = norm(f"blocks.{b}.attention_norm", mx + attended)
        hidden = mx
        for layer in range(cfg["attention_mlp_layers"]):
            if layer > 0:
                hidden = np.maximum(hidden, 0.0)
            hidden = linear(f"attention_mlp.{layer}", hidden)  # one MLP, shared by the blocks
        mx = norm(f"blocks.{b}.mlp_norm", mx + hidden)
    new_memory = mx[:, :slots]
    if reads is not None:  # every row went through every block: the input rows' max
        reads.append(mx[:, slots:].max(axis=1))
    attention = np.stack(all_weights, axis=1)
    if cfg["gate_style"] is None:
        return new_memory, attention
    g = mem_size if cfg["gate_style"] == "unit" else 1
    gates = (
        linear("gate_memory", np.tanh(memory)) + linear("gate_inputs", projected.mean(1))[:, None]
    )
    floor = cfg.get("gate_floor", 0.0)

    def squash(z: np.ndarray) -> np.ndarray:  # a sigmoid within [floor, 1 - floor]
        return floor + (1.0 - 2.0 * floor) * _sigmoid(z)

    input_gate = squash(gates[..., :g] + cfg["input_bias"])
    if cfg.get("coupled_gates"):  # the forget gate is what the input gate leaves
        return input_gate * np.tanh(new_memory) + (1.0 - input_gate) * memory, attention
    forget_gate = squash(gates[..., g:] + cfg["forget_bias"])
    return input_gate * np.tanh(new_memory) + forget_gate * memory, attention


def _randomise(module: torch.nn.Module, seed: int) -> dict:
    """Random values for every parameter (LayerNorm scales and all biases too); numpy copies."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen, dtype=param.dtype) * 0.5)
    return {name: t.detach().numpy().copy() for name, t in module.named_parameters()}


def _make(seed: int = 0, **kwargs) -> tuple[RelationalMemory, dict, dict]:
    defaults = dict(
        input_size=5,
        mem_slots=3,
        head_size=4,
        num_heads=2,
        num_blocks=1,
        forget_bias=1.0,
        input_bias=0.0,
        gate_style="unit",
        attention_mlp_layers=2,
        key_size=None,
        attention_scale="paper",
    )
    defaults.update(kwargs)
    torch.manual_seed(seed)
    module = RelationalMemory(**defaults).double()
    params = _randomise(module, seed)
    cfg = dict(defaults, key_size=defaults["key_size"] or defaults["head_size"])
    return module, params, cfg


# One config per line; together they cover every case the issue lists.
REFERENCE_CASES = [
    dict(gate_style="unit"),
    dict(gate_style="memory", num_heads=1),
    dict(gate_style=None, num_blocks=2),
    dict(gate_style="unit", num_blocks=3, num_heads=3, key_size=2),
    dict(gate_style="memory", num_heads=4, head_size=2, key_size=5, mem_slots=5),  # D < S
    dict(gate_style="unit", mem_slots=2, head_size=3, num_heads=4),  # D > S
    dict(gate_style="unit", rows=4, num_blocks=2, forget_bias=-0.5, input_bias=0.7),
    dict(gate_style=None, rows=3, num_heads=2, key_size=6, attention_mlp_layers=1),
    dict(gate_style="memory", rows=2, num_blocks=3, attention_mlp_layers=3, mem_slots=1),
    dict(gate_style="memory", rows=3, attention_scale="sonnet"),
    dict(gate_style="unit", num_blocks=2, key_size=3, attention_scale="sonnet"),
    dict(gate_style="memory", rows=3, slot_embeddings=True),
    dict(gate_style=None, num_blocks=2, mem_slots=4, slot_embeddings=True),
    dict(gate_style="unit", rows=3, coupled_gates=True, input_bias=-0.5),
    dict(gate_style="memory", num_blocks=2, coupled_gates=True),
    dict(gate_style="unit", rows=3, coupled_gates=True, gate_floor=0.05),
    dict(gate_style="memory", forget_bias=3.0, gate_floor=0.2),
]


@pytest.mark.parametrize(
    ("index", "case"),
    list(enumerate(REFERENCE_CASES)),
    ids=["-".join(f"{k}={v}" for k, v in case.items()) for case in REFERENCE_CASES],
)
def test_step_matches_numpy_reference(index: int, case: dict) -> None:
    case = dict(case)
    rows = case.pop("rows", None)
    module, params, cfg = _make(seed=100 + index, **case)
    rng = np.random.default_rng(1)
    batch = 3
    x_shape = (batch, cfg["input_size"]) if rows is None else (batch, rows, cfg["input_size"])
    x = rng.normal(size=x_shape)
    # A random memory (not only the identity) so the gates see varied values.
    memory = rng.normal(size=(batch, cfg["mem_slots"], module.mem_size))

    output, next_memory, attention = module(
        torch.from_numpy(x), torch.from_numpy(memory), return_attention=True
    )
    x_rows = x[:, None] if rows is None else x
    expected_memory, expected_attention = reference_step(params, cfg, x_rows, memory)

    np.testing.assert_allclose(next_memory.detach().numpy(), expected_memory, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        output.detach().numpy(), expected_memory.reshape(batch, -1), atol=1e-5, rtol=0
    )
    np.testing.assert_allclose(attention.detach().numpy(), expected_attention, atol=1e-5, rtol=0)
    # Without attention weights the module takes a shorter path; same result.
    output_fast, _ = module(torch.from_numpy(x), torch.from_numpy(memory))
    np.testing.assert_allclose(output_fast.detach().numpy(), output.detach().numpy(), atol=1e-12)


def test_float32_step_matches_reference_from_initial_state() -> None:
    module, params, cfg = _make(seed=3, num_blocks=2, num_heads=2)
    module = module.float()
    x = np.random.default_rng(0).normal(size=(4, cfg["input_size"])).astype(np.float32)
    state = module.initial_state(4)
    output, _ = module(torch.from_numpy(x), state)
    expected, _ = reference_step(params, cfg, x[:, None].astype(np.float64), state.double().numpy())
    np.testing.assert_allclose(output.detach().numpy(), expected.reshape(4, -1), atol=1e-5)


@pytest.mark.parametrize(("slots", "head_size", "heads"), [(3, 2, 3), (4, 2, 1), (2, 5, 1)])
def test_initial_state_is_identity_padded_or_cut(slots: int, head_size: int, heads: int) -> None:
    module = RelationalMemory(4, mem_slots=slots, head_size=head_size, num_heads=heads)
    state = module.initial_state(2)
    mem_size = head_size * heads
    assert state.shape == (2, slots, mem_size)
    assert state.dtype == torch.float32
    expected = np.zeros((slots, mem_size), dtype=np.float32)
    for i in range(min(slots, mem_size)):
        expected[i, i] = 1.0
    np.testing.assert_array_equal(state[0].numpy(), expected)
    np.testing.assert_array_equal(state[1].numpy(), expected)


@pytest.mark.parametrize("rows", [None, 3])
@pytest.mark.parametrize("float_resets", [False, True])
def test_unroll_with_resets_equals_stepping_by_hand(rows: int | None, float_resets: bool) -> None:
    module, _, cfg = _make(seed=5, num_blocks=2, gate_style="unit")
    batch, steps = 3, 6
    gen = torch.Generator().manual_seed(0)
    shape = (batch, steps, cfg["input_size"]) if rows is None else (batch, steps, rows, 5)
    xs = torch.randn(shape, generator=gen, dtype=torch.float64)
    start = torch.randn(
        batch, cfg["mem_slots"], module.mem_size, generator=gen, dtype=torch.float64
    )
    resets = torch.zeros(batch, steps, dtype=torch.bool)
    resets[0, 0] = resets[1, 2] = resets[1, 3] = resets[2, 5] = True

    outputs, final, attention = module.unroll(
        xs, start, resets.double() if float_resets else resets, return_attention=True
    )

    memory = start
    for t in range(steps):
        for b in range(batch):
            if resets[b, t]:
                memory = memory.clone()
                memory[b] = module.initial_state(1)[0]
        out_t, memory, att_t = module(xs[:, t], memory, return_attention=True)
        torch.testing.assert_close(outputs[:, t], out_t, atol=1e-12, rtol=0)
        torch.testing.assert_close(attention[:, t], att_t, atol=1e-12, rtol=0)
    torch.testing.assert_close(final, memory, atol=1e-12, rtol=0)

    outputs_plain, final_plain = module.unroll(xs, start, resets)
    torch.testing.assert_close(outputs_plain, outputs, atol=1e-12, rtol=0)
    torch.testing.assert_close(final_plain, final, atol=1e-12, rtol=0)


def test_unroll_without_resets_carries_the_state() -> None:
    module, _, _ = _make(seed=2)
    xs = torch.randn(2, 4, 5, dtype=torch.float64)
    state = module.initial_state(2)
    full, final = module.unroll(xs, state)
    first, middle = module.unroll(xs[:, :2], state)
    second, final_split = module.unroll(xs[:, 2:], middle)
    torch.testing.assert_close(torch.cat([first, second], 1), full, atol=1e-12, rtol=0)
    torch.testing.assert_close(final_split, final, atol=1e-12, rtol=0)
    assert full.shape == (2, 4, module.output_size)


@pytest.mark.parametrize("gate_style", ["unit", "memory", None])
def test_gradients_reach_every_parameter(gate_style: str | None) -> None:
    torch.manual_seed(0)
    module = RelationalMemory(
        6, mem_slots=3, head_size=4, num_heads=2, num_blocks=2, gate_style=gate_style, key_size=3
    )
    xs = torch.randn(2, 3, 2, 6)
    outputs, final = module.unroll(xs, module.initial_state(2))
    (outputs.square().sum() + final.sum()).backward()
    for name, param in module.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_gradient_flows_back_through_the_memory() -> None:
    torch.manual_seed(0)
    module = RelationalMemory(4, mem_slots=2, head_size=4)
    state = module.initial_state(2).requires_grad_(True)
    outputs, _ = module.unroll(torch.randn(2, 5, 4), state)
    outputs[:, -1].sum().backward()
    assert state.grad is not None and state.grad.abs().sum() > 0


def test_parameter_count_does_not_depend_on_mem_slots() -> None:
    counts = {
        slots: sum(
            p.numel()
            for p in RelationalMemory(7, mem_slots=slots, head_size=8, num_heads=2).parameters()
        )
        for slots in (1, 4, 16)
    }
    assert len(set(counts.values())) == 1, counts


def test_parameter_count_matches_the_layers() -> None:
    inp, d, heads, key, head, mlp = 7, 8, 2, 3, 4, 2
    module = RelationalMemory(
        inp, mem_slots=3, head_size=head, num_heads=heads, key_size=key, attention_mlp_layers=mlp
    )
    assert d == head * heads
    qkv = heads * (2 * key + head)
    block = d * qkv + qkv + 2 * qkv + mlp * (d * d + d) + 2 * (2 * d)
    gates = 2 * (d * 2 * d + 2 * d)
    expected = inp * d + d + block + gates
    assert sum(p.numel() for p in module.parameters()) == expected


def test_gate_biases_are_constants_not_parameters() -> None:
    module = RelationalMemory(4, mem_slots=2, head_size=3, forget_bias=2.5, input_bias=-1.5)
    names = [name for name, _ in module.named_parameters()]
    assert all("_gate_bias" not in name for name in names)
    assert "_gate_bias" not in module.state_dict()
    gate_bias = dict(module.named_buffers())["_gate_bias"]
    assert not gate_bias.requires_grad
    np.testing.assert_array_equal(gate_bias.numpy(), [-1.5] * 3 + [2.5] * 3)
    # An optimiser over parameters() leaves it untouched.
    opt = torch.optim.SGD(module.parameters(), lr=1.0)
    out, _ = module.unroll(torch.randn(2, 3, 4), module.initial_state(2))
    out.sum().backward()
    opt.step()
    np.testing.assert_array_equal(gate_bias.numpy(), [-1.5] * 3 + [2.5] * 3)


def test_forget_bias_changes_the_output() -> None:
    torch.manual_seed(0)
    low = RelationalMemory(4, mem_slots=2, head_size=3, forget_bias=-3.0)
    torch.manual_seed(0)
    high = RelationalMemory(4, mem_slots=2, head_size=3, forget_bias=3.0)
    x = torch.randn(2, 4)
    assert not torch.allclose(low(x, low.initial_state(2))[0], high(x, high.initial_state(2))[0])


@pytest.mark.parametrize("rows", [None, 4])
def test_attention_weights_shape_and_rows_sum_to_one(rows: int | None) -> None:
    torch.manual_seed(0)
    module = RelationalMemory(5, mem_slots=3, head_size=2, num_heads=4, num_blocks=2)
    shape = (2, 6, 5) if rows is None else (2, 6, rows, 5)
    outputs, _, attention = module.unroll(
        torch.randn(shape), module.initial_state(2), return_attention=True
    )
    n = 3 + (1 if rows is None else rows)
    assert attention.shape == (2, 6, 2, 4, n, n)
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 6, 2, 4, n))
    _, _, step_attention = module(torch.randn(shape[:1] + shape[2:]), module.initial_state(2), True)
    assert step_attention.shape == (2, 2, 4, n, n)


def test_sonnet_style_initialisation() -> None:
    torch.manual_seed(0)
    module = RelationalMemory(64, mem_slots=2, head_size=64, num_heads=2)
    weight = module.input_projection.weight
    std = 1 / 64**0.5
    assert weight.abs().max() <= 2 * std + 1e-6
    assert 0.7 * std < weight.std() < 0.95 * std  # truncated at 2 std: about 0.88 std
    assert module.input_projection.bias.abs().max() == 0
    assert (module.blocks[0].mlp_norm.weight == 1).all()


def test_unroll_backward_has_no_per_step_index_of_the_time_axis() -> None:
    """Indexing ``[:, t]`` of the precomputed inputs would make the backward quadratic in T."""
    module, _, _ = _make(seed=1, num_blocks=2)
    outputs, _ = module.unroll(torch.randn(2, 6, 5, dtype=torch.float64), module.initial_state(2))
    seen, stack, names = set(), [outputs.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert "UnbindBackward0" in names
    assert not [name for name in names if name.startswith("SelectBackward")]


@pytest.mark.parametrize("width", [1, 5, 13, 15, 16, 21])
def test_padded_cpu_softmax_equals_softmax_with_its_gradient(width: int) -> None:
    """The attention softmax pads a short last axis with -inf on the CPU (a faster kernel there)."""
    from rmc_agents.core.relational_memory import _softmax_last

    x = torch.randn(3, 2, 4, width, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 2, 4, width, dtype=torch.float64)
    got = _softmax_last(x)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), x)
    want = torch.softmax(x, dim=-1)
    (grad_want,) = torch.autograd.grad((want * weights).sum(), x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    torch.testing.assert_close(grad_got, grad_want, rtol=0, atol=1e-14)


def test_blocks_share_one_attention_mlp_as_in_sonnet():
    """Sonnet v1 builds the attention MLP once, before its block loop: a second block adds its
    own qkv projection and LayerNorms, not another MLP."""
    one = RelationalMemory(input_size=5, mem_slots=3, head_size=4, num_heads=2, num_blocks=1)
    two = RelationalMemory(input_size=5, mem_slots=3, head_size=4, num_heads=2, num_blocks=2)
    per_block = sum(p.numel() for p in two.blocks[1].parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(two) == count(one) + per_block
    assert not any(".mlp." in name for name, _ in two.named_parameters())
    assert sum(1 for n, _ in two.named_parameters() if n.startswith("attention_mlp.")) == 4


def test_gate_biases_are_exact_in_the_modules_dtype():
    module = RelationalMemory(
        input_size=3, mem_slots=2, head_size=4, forget_bias=0.7, input_bias=0.3
    ).double()
    gate_size = module.mem_size
    bias = module._gate_bias.to(torch.float64)
    assert bias[0].item() == 0.3 and bias[gate_size].item() == 0.7  # not 0.7 - 1.2e-8
    assert module.float().double()._gate_bias[gate_size].item() == 0.7  # round trips too
    x = torch.zeros(1, 3, dtype=torch.float64)
    memory = module.initial_state(1)
    with torch.no_grad():
        module.gate_inputs.weight.zero_()
        module.gate_inputs.bias.zero_()
        module.gate_memory.weight.zero_()
        module.gate_memory.bias.zero_()
        _, _, gates = module._precompute_inputs(x[:, None])
    assert gates.dtype == torch.float64 and gates[0, gate_size].item() == 0.7
    assert memory.dtype == torch.float64


def test_a_state_dict_saved_with_a_per_block_mlp_still_loads():
    """Checkpoints saved before the MLP was shared name it ``blocks.0.mlp.*``."""
    module = RelationalMemory(input_size=5, mem_slots=3, head_size=4, num_heads=2)
    old = {
        (k.replace("attention_mlp.", "blocks.0.mlp.") if k.startswith("attention_mlp.") else k): v
        for k, v in module.state_dict().items()
    }
    fresh = RelationalMemory(input_size=5, mem_slots=3, head_size=4, num_heads=2)
    fresh.load_state_dict(old)  # strict: every key placed
    x = torch.randn(2, 5)
    state = module.initial_state(2)
    out_a, _ = module(x, state)
    out_b, _ = fresh(x, state)
    torch.testing.assert_close(out_a, out_b)


def test_a_state_dict_with_later_blocks_mlps_loads_block_0s_and_says_what_it_dropped():
    """Two-block checkpoints of the per-block layout: block 1's MLP has no place and is dropped
    with a warning that counts it; block 0's becomes the shared MLP."""
    module = RelationalMemory(input_size=5, mem_slots=3, head_size=4, num_heads=2, num_blocks=2)
    old = {}
    for k, v in module.state_dict().items():
        if k.startswith("attention_mlp."):
            old[k.replace("attention_mlp.", "blocks.0.mlp.")] = v
            old[k.replace("attention_mlp.", "blocks.1.mlp.")] = torch.randn_like(v)
        else:
            old[k] = v
    dropped = sum(k.startswith("blocks.1.mlp.") for k in old)
    fresh = RelationalMemory(input_size=5, mem_slots=3, head_size=4, num_heads=2, num_blocks=2)
    with pytest.warns(UserWarning, match=f"dropping {dropped} per-block MLP weights"):
        fresh.load_state_dict(old)  # strict: a key left over would fail
    for key, value in module.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)


def test_constants_are_not_saved_in_the_state_dict():
    """The initial memory and the gate biases are rebuilt from the settings, not checkpointed."""
    module = RelationalMemory(input_size=5, mem_slots=3, head_size=4, num_heads=2)
    names = {name for name, _ in module.named_buffers()}
    assert names, "the module keeps its constants as buffers"
    assert not names & set(module.state_dict())


def test_defaults_are_sonnets():
    """Sonnet v1's RelationalMemory defaults: forget bias 1, input bias 0."""
    import inspect

    defaults = {
        name: p.default
        for name, p in inspect.signature(RelationalMemory.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    assert defaults["forget_bias"] == 1.0 and defaults["input_bias"] == 0.0
    assert defaults["attention_scale"] == "paper"  # the paper's equation (docs/cores.md)
    module = RelationalMemory(input_size=5, mem_slots=3, head_size=4)
    assert (module.forget_bias, module.input_bias) == (1.0, 0.0)
    # A gate style equal to a known one but built at run time (not the same object) is accepted.
    built = "".join(["mem", "ory"])
    assert RelationalMemory(input_size=5, mem_slots=3, head_size=4, gate_style=built).gate_style


@pytest.mark.parametrize(
    "name, bad",
    [
        ("input_size", 0),
        ("mem_slots", 0),
        ("head_size", -1),
        ("num_heads", 0),
        ("num_blocks", 0),
        ("attention_mlp_layers", 0),
        ("key_size", 0),
        ("forget_bias", float("nan")),
        ("input_bias", float("inf")),
        ("attention_scale", "sqrt"),
        ("output", "state"),
        ("read_inputs", "yes"),
    ],
)
def test_a_bad_setting_is_refused_by_name(name, bad):
    kwargs = {"input_size": 5, "mem_slots": 3, "head_size": 4, name: bad}
    with pytest.raises((TypeError, ValueError), match=rf"^{name} must be"):
        RelationalMemory(**kwargs)


def test_a_malformed_state_is_refused():
    module = RelationalMemory(input_size=5, mem_slots=3, head_size=4)
    with pytest.raises(
        ValueError, match=r"^state for the RMC must be a tuple of one tensor \(the memory\)$"
    ):
        module.from_tuple((torch.zeros(1), torch.zeros(1)))


def test_acting_reuses_the_folded_input_weights_until_a_weight_changes():
    """Without gradients the folded input projection (and the maps of the attention over the
    input rows' features) are cached; every way a weight changes (an optimizer step, a loaded
    state, new tensors) gives the new function at once."""
    torch.manual_seed(0)
    core = RelationalMemory(5, 2, 4, 2, 1, gate_style="memory")
    assert core._fold_input_qkv
    core._factor_min_rows = 1  # 4 rows here
    xs, state = torch.randn(3, 2, 4, 5), core.initial_state(3)

    def act() -> torch.Tensor:
        with torch.no_grad():
            return core.unroll(xs, state)[0]

    def fresh() -> torch.Tensor:  # with gradients on: never cached
        return core.unroll(xs, state)[0].detach()

    act()
    # A new tensor whose version counter equals the replaced one's:
    replaced, new = core.input_projection.weight, torch.nn.Parameter(torch.randn(8, 5))
    with torch.no_grad():
        while new._version < replaced._version:
            new.mul_(1.0)
    assert new._version == replaced._version
    core.input_projection.weight = new
    first = act()
    assert torch.equal(act(), first) and "_folded" in core.__dict__
    assert core._factor_inputs and "_maps" in core.__dict__  # so are the factored input maps
    torch.testing.assert_close(first, fresh())
    optimizer = torch.optim.SGD(core.parameters(), lr=0.5)
    core.unroll(xs, state)[0].square().sum().backward()
    optimizer.step()  # in-place update of every weight
    stepped = act()
    assert not torch.allclose(stepped, first)
    torch.testing.assert_close(stepped, fresh())
    other = RelationalMemory(5, 2, 4, 2, 1, gate_style="memory")
    core.load_state_dict(other.state_dict())  # copied in place
    torch.testing.assert_close(act(), other.unroll(xs, state)[0].detach())
    core.input_projection.weight = torch.nn.Parameter(torch.randn(8, 5))  # a new tensor
    torch.testing.assert_close(act(), fresh())
    core.double()  # new tensors of another dtype
    xs, state = xs.double(), state.double()
    torch.testing.assert_close(act(), fresh())


def test_sonnet_attention_scale_is_softer_by_the_qkv_size():
    """The two scales differ by sqrt((2k + v) / k): the Sonnet form's logits are that much smaller."""
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    memory = torch.randn(2, 3, 8, dtype=torch.float64)
    weights = {}
    for scale in ("paper", "sonnet"):
        torch.manual_seed(0)
        module = RelationalMemory(5, 3, head_size=4, num_heads=2, attention_scale=scale).double()
        weights[scale] = module(x, memory, return_attention=True)[2]
    logits = {k: torch.log(w) - torch.log(w).mean(-1, keepdim=True) for k, w in weights.items()}
    torch.testing.assert_close(logits["paper"], logits["sonnet"] * 3**0.5, rtol=1e-9, atol=1e-9)


def test_slot_embeddings_keep_equal_slots_apart():
    """Equal slots stay equal without slot embeddings (the weights are shared by all slots) and
    come apart with them; the embeddings are a parameter of one row per slot."""
    x = torch.randn(2, 3, 5)
    memory = torch.ones(2, 4, 8)
    spreads = {}
    for on in (False, True):
        torch.manual_seed(0)
        core = RelationalMemory(5, 4, head_size=4, num_heads=2, slot_embeddings=on)
        _, nxt = core(x, memory)
        spreads[on] = float((nxt[:, :, None] - nxt[:, None]).abs().max())
    assert spreads[False] < 1e-5 and spreads[True] > 1e-2
    assert tuple(core.slot_embedding.shape) == (4, 2 * (4 + 4 + 4))  # heads x (q, k, v)
    assert "slot_embedding" in dict(core.named_parameters())


@pytest.mark.parametrize("gate_style", ["unit", "memory", None])
def test_attended_output_is_the_memory_before_gating(gate_style):
    """output="attended": the step outputs M~ (the attention blocks' result), the state is the
    gated memory as before; without gating both are M~."""
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    memory = torch.randn(2, 3, 8, dtype=torch.float64)
    made = {}
    for output in ("memory", "attended"):
        torch.manual_seed(0)
        made[output] = RelationalMemory(
            5, 3, head_size=4, num_heads=2, gate_style=gate_style, output=output
        ).double()
    paper, ours = made["memory"], made["attended"]
    out_p, state_p = paper(x, memory)
    out_o, state_o = ours(x, memory)
    torch.testing.assert_close(state_o, state_p)  # the same state
    attended, _, _ = ours._attend_over_memory(memory, None, ours._precompute_inputs(x)[1], False)
    torch.testing.assert_close(out_o, attended.flatten(1))
    if gate_style is None:
        torch.testing.assert_close(out_o, out_p)
    else:
        assert not torch.allclose(out_o, out_p)
    xs = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    outs, final = ours.unroll(xs, memory)
    state = memory
    for t in range(4):
        out_t, state = ours(xs[:, t], state)
        torch.testing.assert_close(outs[:, t], out_t)
    torch.testing.assert_close(final, state)


FACTORED_CASES = [
    dict(gate_style="memory"),
    dict(gate_style="unit", key_size=3, attention_scale="sonnet"),
    dict(gate_style=None, output="attended"),
    dict(gate_style="memory", slot_embeddings=True, mem_slots=3, num_heads=3),
    dict(gate_style="unit", output="attended", forget_bias=-0.5, input_bias=0.7),
]


@pytest.mark.parametrize(
    "case", FACTORED_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items())
)
def test_attention_over_input_rows_through_their_features_is_the_written_attention(case):
    """One block: the input rows' keys and values taken through ``xi`` (their features scaled by
    their LayerNorm, module docstring) give the outputs, states and gradients of the rows'
    queries, keys and values as written, over an unroll with an episode restart."""
    module, _, cfg = _make(seed=7, **case)
    assert module._factor_inputs
    module._factor_min_rows = 1  # 6 rows here
    rng = np.random.default_rng(2)
    xs = torch.from_numpy(rng.normal(size=(3, 5, 6, cfg["input_size"]))).requires_grad_()
    memory = torch.from_numpy(rng.normal(size=(3, cfg["mem_slots"], module.mem_size)))
    resets = torch.zeros(3, 5, dtype=torch.bool)
    resets[1, 2] = True

    def run(factored: bool):
        module._factor_inputs = factored
        module.zero_grad()
        xs.grad = None
        outputs, final = module.unroll(xs, memory, resets=resets)
        (outputs.sin().sum() + final.square().sum()).backward()
        grads = {name: p.grad.clone() for name, p in module.named_parameters()}
        step = module(xs[:, 0].detach(), memory)
        return outputs.detach(), final.detach(), xs.grad.clone(), grads, step

    factored, written = run(True), run(False)
    for a, b in zip(factored[:3], written[:3], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert factored[3].keys() == written[3].keys()
    for name, grad in written[3].items():
        torch.testing.assert_close(factored[3][name], grad, rtol=1e-9, atol=1e-10, msg=name)
    for a, b in zip(factored[4], written[4], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_input_rows_are_attended_through_their_features_where_that_is_cheaper():
    assert RelationalMemory(26, 4, 32, 4)._factor_inputs  # the agent's image cells
    assert not RelationalMemory(26, 4, 32, 4, num_blocks=2)._factor_inputs  # rows also query
    assert not RelationalMemory(2000, 4, 32, 4)._factor_inputs  # one wide flat input
    core = RelationalMemory(26, 4, 32, 4)
    with torch.no_grad():  # few rows (the viewport's 9 cells): as written, no maps made
        core.unroll(torch.rand(2, 3, 9, 26), core.initial_state(2))
        assert "_maps" not in core.__dict__
        out, _ = core.unroll(torch.rand(2, 3, 16, 26), core.initial_state(2))  # many: factored
        assert "_maps" in core.__dict__ and out.isfinite().all()


def test_float32_attention_through_the_features_stays_within_rounding_of_float64():
    """The LayerNorm's variance comes from a Gram matrix in the factored path: in float32 it
    stays as close to the float64 function as the written path does."""
    torch.manual_seed(0)
    core = RelationalMemory(26, 4, 32, 4, gate_style="memory")
    xs = torch.relu(torch.randn(8, 6, 25, 26))
    state = core.initial_state(8) + 0.5 * torch.randn(8, 4, 128)
    want = core.double().unroll(xs.double(), state.double())[0]
    core.float()
    errors = {}
    for factored in (True, False):
        core._factor_inputs = factored
        errors[factored] = (core.unroll(xs, state)[0].double() - want).abs().max().item()
    assert errors[True] < 2e-5 and errors[True] < 4 * errors[False] + 1e-6, errors


@pytest.mark.parametrize("gate_style", ["unit", "memory"])
def test_coupled_gates_keep_the_memory_within_one(gate_style):
    """Forget gate = 1 - input gate: a convex mix of tanh(M~) and M, so the memory never leaves
    [-1, 1] however long it runs; the independent gates (forget near 1) let it grow."""
    torch.manual_seed(0)
    sizes = {"coupled": None, "independent": None}
    for name, coupled in (("coupled", True), ("independent", False)):
        # independent: the trained runs' failure, forget gates near 1 with the input gates open
        biases = {} if coupled else {"forget_bias": 6.0, "input_bias": 2.0}
        core = RelationalMemory(6, 4, 8, 2, gate_style=gate_style, coupled_gates=coupled, **biases)
        with torch.no_grad():
            _, memory = core.unroll(3 * torch.randn(2, 300, 5, 6), core.initial_state(2))
        sizes[name] = float(memory.abs().max())
    assert sizes["coupled"] <= 1.0 + 1e-6 < 5.0 < sizes["independent"], sizes
    core = RelationalMemory(6, 4, 8, 2, gate_style=gate_style, coupled_gates=True)
    gate_size = 16 if gate_style == "unit" else 1
    assert core.gate_inputs.out_features == core.gate_memory.out_features == gate_size


# ------------------------------------------------------------------------- the input rows' read

READ_CASES = [
    dict(gate_style="unit"),  # one input row: the read is that row's output
    dict(gate_style="memory", rows=4, slot_embeddings=True),
    dict(gate_style="unit", rows=3, num_blocks=2, coupled_gates=True),
    dict(gate_style=None, rows=2, num_heads=3, key_size=2),
    dict(gate_style="unit", rows=5, output="attended"),
]


@pytest.mark.parametrize(
    "case", READ_CASES, ids=["-".join(f"{k}={v}" for k, v in c.items()) for c in READ_CASES]
)
def test_input_read_matches_the_reference_and_leaves_the_memory_as_it_was(case) -> None:
    case = dict(case)
    rows = case.pop("rows", None)
    output_kind = case.pop("output", "memory")
    module, params, cfg = _make(seed=7, read_inputs=True, output=output_kind, **case)
    assert module.output_size == (cfg["mem_slots"] + 1) * module.mem_size
    rng = np.random.default_rng(2)
    batch = 3
    x_shape = (batch, cfg["input_size"]) if rows is None else (batch, rows, cfg["input_size"])
    x = rng.normal(size=x_shape)
    memory = rng.normal(size=(batch, cfg["mem_slots"], module.mem_size))
    x_rows = x[:, None] if rows is None else x
    reads: list = []
    expected_memory, expected_attention = reference_step(params, cfg, x_rows, memory, reads)

    for return_attention in (True, False):
        out = module(torch.from_numpy(x), torch.from_numpy(memory), return_attention)
        output, next_memory = out[0].detach().numpy(), out[1].detach().numpy()
        np.testing.assert_allclose(next_memory, expected_memory, atol=1e-5, rtol=0)
        np.testing.assert_allclose(output[:, -module.mem_size :], reads[0], atol=1e-5, rtol=0)
        if output_kind == "memory":
            flat = expected_memory.reshape(batch, -1)
            np.testing.assert_allclose(output[:, : -module.mem_size], flat, atol=1e-5, rtol=0)
        if return_attention:
            np.testing.assert_allclose(out[2].detach().numpy(), expected_attention, atol=1e-5)

    # The same weights without the read: the same memory and the same output before the read.
    plain = RelationalMemory(**{k: v for k, v in cfg.items() if k != "read_inputs"}).double()
    plain.load_state_dict(module.state_dict())
    plain_out, plain_memory = plain(torch.from_numpy(x), torch.from_numpy(memory))
    np.testing.assert_allclose(plain_memory.detach().numpy(), expected_memory, atol=1e-5)
    np.testing.assert_allclose(
        plain_out.detach().numpy(), output[:, : -module.mem_size], atol=1e-10, rtol=0
    )


def test_input_read_adds_no_parameters_and_the_read_depends_on_the_input() -> None:
    plain = RelationalMemory(input_size=6, mem_slots=3, head_size=4, num_heads=2)
    read = RelationalMemory(input_size=6, mem_slots=3, head_size=4, num_heads=2, read_inputs=True)
    assert sum(p.numel() for p in read.parameters()) == sum(p.numel() for p in plain.parameters())
    assert "read_inputs=True" in repr(read)
    x = torch.randn(2, 5, 6, requires_grad=True)
    output, _ = read(x, read.initial_state(2))
    output[:, -read.mem_size :].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # and the read changes with the input where the memory's rows would not tell it apart
    other, _ = read(torch.randn(2, 5, 6), read.initial_state(2))
    assert not torch.allclose(other[:, -read.mem_size :], output[:, -read.mem_size :].detach())


@pytest.mark.parametrize("rows", [None, 3, 14])
def test_input_read_unroll_with_resets_equals_stepping(rows) -> None:
    torch.manual_seed(0)
    core = RelationalMemory(input_size=6, mem_slots=2, head_size=4, num_heads=2, read_inputs=True)
    core = core.double()
    shape = (2, 5, 6) if rows is None else (2, 5, rows, 6)
    xs = torch.randn(shape, dtype=torch.float64)
    resets = torch.zeros(2, 5, dtype=torch.bool)
    resets[0, 2] = True
    outputs, final = core.unroll(xs, core.initial_state(2), resets)
    assert outputs.shape == (2, 5, core.output_size)
    memory = core.initial_state(2)
    for t in range(5):
        memory = torch.where(resets[:, t, None, None], core.initial_state(2), memory)
        out, memory = core(xs[:, t], memory)
        torch.testing.assert_close(outputs[:, t], out, atol=1e-10, rtol=0)
    torch.testing.assert_close(final, memory, atol=1e-10, rtol=0)
    # many rows would be attended through their features without the read: not with it
    assert not core._factor_inputs


def test_the_gate_floor_keeps_a_saturated_gate_writing_and_its_gradient_flowing() -> None:
    """With its gate logits driven far past saturation (the input gate shut), the paper's gate
    writes nothing and passes no gradient to the attention; with ``gate_floor`` the gate stays at
    the floor: the write goes on at that share and the attention's parameters get a gradient."""
    results = {}
    for floor in (0.0, 0.05):
        core = RelationalMemory(
            6, 3, 4, 2, gate_style="unit", coupled_gates=True, input_bias=-60.0, gate_floor=floor
        ).double()
        torch.manual_seed(0)
        x = torch.randn(2, 6, dtype=torch.float64)
        memory = core.initial_state(2).double()
        _, next_memory = core(x, memory)
        next_memory.sum().backward()
        attention_grad = sum(
            p.grad.abs().sum().item() for n, p in core.named_parameters() if "qkv" in n
        )
        results[floor] = (next_memory.detach(), attention_grad)
    shut, shut_grad = results[0.0]
    floored, floored_grad = results[0.05]
    assert torch.allclose(shut, core.initial_state(2).double())  # nothing written
    assert shut_grad < 1e-20 < 1e-3 < floored_grad  # sigmoid(-60) ~ 1e-26: no signal
    change = (floored - core.initial_state(2).double()).abs()
    assert change.max() > 1e-3  # written at the floor's share


@pytest.mark.parametrize("floor", [-0.1, 0.5, 1.0, float("nan")])
def test_a_gate_floor_outside_zero_to_one_half_is_refused(floor: float) -> None:
    with pytest.raises(ValueError, match="gate_floor"):
        RelationalMemory(6, 3, 4, 2, gate_floor=floor)
