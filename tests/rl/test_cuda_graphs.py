"""GraphedUnroll: padding, slicing, gradients, fallback and copies (CPU), and real CUDA graphs.

On a CPU the capture step is replaced by the plain callable it would capture, so the wrapper's own
logic (pad the chunk count up to the bucket, drop the padding from outputs and gradients, one
graph per padded shape, eager fallback) is checked against ``core.unroll`` directly. The CUDA test
runs only where a GPU is present.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch

from rmc_agents.core import as_tuple, make_core
from rmc_agents.rl import cuda_graphs
from rmc_agents.rl.cuda_graphs import GraphedUnroll

CORES = {
    "rmc": dict(mem_slots=2, head_size=4, num_heads=2),
    "lstm": dict(hidden_size=6),
}


def _inputs(core_name: str, core, batch: int, steps: int = 3, device: str = "cpu"):
    gen = torch.Generator().manual_seed(batch)
    shape = (batch, steps, 5, 7) if core_name == "rmc" else (batch, steps, 7)
    xs = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
    state = core.initial_state(batch, device=device)
    # A state that is not the initial one, so that padding with copies of row 0 is visible.
    state = tuple(s + 0.1 * torch.randn(s.shape, generator=gen).to(device) for s in as_tuple(state))
    if core_name == "rmc":
        state = core.from_tuple(state)
    return xs, state


def _outputs_and_grads(fn, core, xs, state):
    core.zero_grad()
    xs = xs.detach().clone().requires_grad_(True)
    outputs, final = fn(xs, state)
    gen = torch.Generator().manual_seed(0)
    w_out = torch.randn(outputs.shape, generator=gen).to(outputs.device)
    loss = (outputs * w_out).sum() + sum(f.square().sum() for f in as_tuple(final))
    loss.backward()
    grads = [p.grad.clone() for p in core.parameters()]
    return outputs.detach(), [f.detach() for f in as_tuple(final)], xs.grad.clone(), grads


@pytest.fixture
def fake_capture(monkeypatch):
    """Treat CPU tensors as capturable and 'capture' the plain callable; count captures."""
    captured = []

    def capture(self, xs, parts):
        captured.append(tuple(xs.shape))
        return cuda_graphs._Unroll(self.core)

    monkeypatch.setattr(GraphedUnroll, "_capture", capture)
    monkeypatch.setattr(GraphedUnroll, "_capturable", staticmethod(lambda xs: True))
    return captured


@pytest.mark.parametrize("core_name", sorted(CORES))
def test_padded_replay_matches_plain_unroll(core_name, fake_capture):
    torch.manual_seed(0)
    core = make_core(core_name, 7, **CORES[core_name])
    graphed = GraphedUnroll(core, bucket=4)
    for batch in (5, 7, 8, 9):  # padded to 8, 8, 8, 12
        xs, state = _inputs(core_name, core, batch)
        want = _outputs_and_grads(lambda x, s: core.unroll(x, s, resets=None), core, xs, state)
        got = _outputs_and_grads(graphed, core, xs, state)
        assert got[0].shape == want[0].shape == (batch, 3, core.output_size)
        torch.testing.assert_close(got[0], want[0])
        for g, w in zip(got[1], want[1], strict=True):
            assert g.shape[0] == batch
            torch.testing.assert_close(g, w)
        torch.testing.assert_close(got[2], want[2])  # input gradient, padding rows dropped
        for g, w in zip(got[3], want[3], strict=True):  # parameter gradients
            torch.testing.assert_close(g, w)
    assert [shape[0] for shape in fake_capture] == [8, 12]
    assert len(graphed.graphs) == 2


def test_no_graph_without_gradients(fake_capture):
    core = make_core("rmc", 7, **CORES["rmc"])
    graphed = GraphedUnroll(core)
    xs, state = _inputs("rmc", core, 3)
    with torch.no_grad():
        out, _ = graphed(xs, state)
    torch.testing.assert_close(out, core.unroll(xs, state, resets=None)[0])
    assert fake_capture == [] and graphed.graphs == {}


def test_capture_failure_warns_once_and_runs_eagerly(monkeypatch):
    core = make_core("rmc", 7, **CORES["rmc"])
    graphed = GraphedUnroll(core)
    monkeypatch.setattr(GraphedUnroll, "_capturable", staticmethod(lambda xs: True))

    def broken(self, xs, parts):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(GraphedUnroll, "_capture", broken)
    xs, state = _inputs("rmc", core, 3)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture of the core unroll failed"):
        out, _ = graphed(xs, state)
    torch.testing.assert_close(out, core.unroll(xs, state, resets=None)[0])
    assert "not permitted" in graphed.failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out2, _ = graphed(xs, state)  # eager from now on, no second warning
    torch.testing.assert_close(out2, out)


def test_copies_drop_captured_graphs(fake_capture):
    core = make_core("rmc", 7, **CORES["rmc"])
    graphed = GraphedUnroll(core)
    graphed(*_inputs("rmc", core, 3))
    assert len(graphed.graphs) == 1
    assert copy.deepcopy(graphed).graphs == {}
    assert pickle.loads(pickle.dumps(graphed)).graphs == {}


def test_module_reports_and_can_turn_off_its_graphed_unroll():
    """``graphed_unroll`` (RMC only, unless ``cuda_graphs: false``) and ``disable_cuda_graphs``."""
    import gymnasium as gym
    from ray.rllib.core.columns import Columns

    from tests.rl.test_module import build, initial_state

    space = gym.spaces.Box(-1.0, 1.0, (6,), "float32")
    module = build("rmc", space)
    assert isinstance(module.graphed_unroll, GraphedUnroll)
    assert module.graphed_unroll.graphs == {} and module.graphed_unroll.failed is None
    assert build("rmc", space, cuda_graphs=False).graphed_unroll is None
    assert build("lstm", space).graphed_unroll is None
    batch = {Columns.OBS: torch.rand(2, 3, 6), Columns.STATE_IN: initial_state(module, 2)}
    before = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    module.disable_cuda_graphs()
    assert module.graphed_unroll is None
    torch.testing.assert_close(module.forward_train(batch)[Columns.ACTION_DIST_INPUTS], before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("core_name", sorted(CORES))
def test_real_cuda_graphs_match_eager(core_name):
    torch.manual_seed(0)
    core = make_core(core_name, 7, **CORES[core_name]).cuda()
    graphed = GraphedUnroll(core, bucket=4)
    for batch in (5, 8):
        xs, state = _inputs(core_name, core, batch, device="cuda")
        want = _outputs_and_grads(lambda x, s: core.unroll(x, s, resets=None), core, xs, state)
        for _ in range(2):  # capture, then replay
            got = _outputs_and_grads(graphed, core, xs, state)
            assert graphed.failed is None
            torch.testing.assert_close(got[0], want[0])
            torch.testing.assert_close(got[2], want[2])
            for g, w in zip(got[3], want[3], strict=True):
                torch.testing.assert_close(g, w)
