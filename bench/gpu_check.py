"""The agent's learner step on a GPU: same numbers as on the CPU, and how fast.

For the Mini-Pacman viewport agent at the default size and at the paper size (RMC and LSTM cores),
this builds the RLModule once, copies it to CUDA, and on one learner batch of random observations
(``train_batch_size / rollout_fragment_length`` chunks of ``max_seq_len`` steps):

* parity: action logits, values and the gradient of a fixed loss on CUDA vs CPU (max abs
  difference, relative to the largest value; float32 on both, TF32 matmuls off);
* speed: median wall time of forward + backward + Adam step on the CPU (``--threads``), on CUDA
  eagerly, and on CUDA with the RMC's unroll replayed from CUDA graphs (``model.cuda_graphs``,
  :mod:`rmc_agents.rl.cuda_graphs`; checked for parity on a batch whose chunk count needs
  padding), and the learner's env steps/s that the faster allows (chunk steps that carry env
  frames).

Needs only torch, gymnasium and ray[rllib] (for the RLModule base class); no Ray cluster is
started. Without CUDA it times the CPU alone. Not a test: run it by hand on a GPU machine.

    python bench/gpu_check.py                  # both sizes, both cores
    python bench/gpu_check.py --repeats 20 --threads 8
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

SIZES = {
    "default": None,  # built-in defaults (configs/impala_default.yaml's values)
    "paper": "configs/minipacman_viewport_rmc.yaml",
}


def build(config_path: str | None, core: str):
    """The RLModule of ``core`` at the settings of ``config_path``, and the settings."""
    import gymnasium as gym
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    import minipacman  # noqa: F401  (registers Mini-Pacman)
    from rmc_agents.config import load_config
    from rmc_agents.rl.module import RecurrentAgentModule
    from rmc_agents.rl.settings import RunSettings

    run = load_config(RunSettings, config_path, overrides={"model.core": core})
    env = gym.make(run.env)
    spec = RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config=run.model.rllib_model_config(),
    )
    env.close()
    return spec.build(), run, env.observation_space


def make_batch(module, run, obs_space, seed: int = 0, less: int = 0) -> dict:
    """One learner batch: ``chunks - less`` x ``max_seq_len`` random observations, initial states."""
    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns

    rng = np.random.default_rng(seed)
    chunks = run.train_batch_size // run.training.rollout_fragment_length - less
    t = run.model.max_seq_len
    obs = rng.integers(0, 2, size=(chunks, t, *obs_space.shape)).astype(obs_space.dtype)
    state = {
        k: torch.as_tensor(np.repeat(v[None], chunks, axis=0))
        for k, v in module.get_initial_state().items()
    }
    return {Columns.OBS: torch.as_tensor(obs), Columns.STATE_IN: state}


def to(batch, device):
    import torch

    if isinstance(batch, dict):
        return {k: to(v, device) for k, v in batch.items()}
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch


def loss_and_outputs(module, batch, weights):
    from ray.rllib.core.columns import Columns

    out = module.forward_train(batch)
    values = module.compute_values(batch, embeddings=out[Columns.EMBEDDINGS])
    logits = out[Columns.ACTION_DIST_INPUTS]
    loss = (logits * weights["logits"]).sum() + (values * weights["values"]).sum()
    return loss, logits, values


def parity(cpu_module, gpu_module, batch, weights) -> dict[str, float]:
    """Max abs CUDA-CPU difference / max abs CPU value, for logits, values and gradients."""
    import torch

    results = {}
    cpu_module.zero_grad()
    gpu_module.zero_grad()
    loss_c, logits_c, values_c = loss_and_outputs(cpu_module, batch, weights)
    loss_c.backward()
    gbatch, gweights = to(batch, "cuda"), to(weights, "cuda")
    loss_g, logits_g, values_g = loss_and_outputs(gpu_module, gbatch, gweights)
    loss_g.backward()

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b.cpu()).abs().max() / a.abs().max().clamp_min(1e-12))

    results["logits"] = rel(logits_c.detach(), logits_g.detach())
    results["values"] = rel(values_c.detach(), values_g.detach())
    worst = 0.0
    for p_c, p_g in zip(cpu_module.parameters(), gpu_module.parameters(), strict=True):
        if p_c.grad is None:
            continue
        worst = max(worst, rel(p_c.grad, p_g.grad))
    results["grads"] = worst
    return results


def time_steps(module, batch, weights, device: str, repeats: int) -> float:
    """Median seconds of forward + backward + Adam step."""
    import torch

    batch, weights = to(batch, device), to(weights, device)
    opt = torch.optim.Adam(module.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad()
        loss, _, _ = loss_and_outputs(module, batch, weights)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="default,paper")
    p.add_argument("--cores", default="rmc,lstm")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--cpu-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the CPU timing")
    args = p.parse_args()

    import torch
    from ray.rllib.core.columns import Columns

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cuda = torch.cuda.is_available()
    print(
        f"torch {torch.__version__}, "
        + (f"CUDA on {torch.cuda.get_device_name(0)}" if cuda else "no CUDA: CPU only")
        + f", CPU timing with {args.threads} thread(s)",
        flush=True,
    )
    print(
        "| size | core | chunks x steps | CPU ms | GPU eager ms | GPU graphs ms | graphs learner "
        "steps/s | parity eager (logits / values / grads) | parity graphs, 3 chunks fewer |"
    )
    print("|---|---|---|---:|---:|---:|---:|---|---|")

    for size in args.sizes.split(","):
        for core in args.cores.split(","):
            torch.manual_seed(0)
            module, run, obs_space = build(SIZES[size], core)
            batch = make_batch(module, run, obs_space)
            chunks, t = batch[Columns.OBS].shape[:2]
            weights = random_weights(module, batch)
            cpu_s = time_steps(copy.deepcopy(module), batch, weights, "cpu", args.cpu_repeats)
            eager_s = graph_s = par = par_graph = None
            if cuda:
                eager = copy.deepcopy(module).to("cuda")
                eager.disable_cuda_graphs()  # the plain unroll
                par = parity(module, eager, batch, weights)
                eager_s = time_steps(eager, batch, weights, "cuda", args.repeats)
                if module.graphed_unroll is not None:
                    graphed = copy.deepcopy(module).to("cuda")
                    # A batch whose chunk count is not a multiple of the padding bucket.
                    odd = make_batch(module, run, obs_space, seed=1, less=3)
                    par_graph = parity(module, graphed, odd, random_weights(module, odd))
                    graph_s = time_steps(graphed, batch, weights, "cuda", args.repeats)
                    if graphed.graphed_unroll.failed:
                        print(f"graph capture failed: {graphed.graphed_unroll.failed}")
            # Env frames per learner batch: the unroll of each chunk (the rest is padding/bootstrap).
            frames = chunks * run.training.rollout_fragment_length
            best = graph_s or eager_s

            print(
                f"| {size} | {core} | {chunks} x {t} | {_ms(cpu_s)} | {_ms(eager_s)} | {_ms(graph_s)} | "
                + (f"{frames / best:,.0f}" if best else "-")
                + f" | {_parity_text(par)} | {_parity_text(par_graph)} |",
                flush=True,
            )


def _parity_text(par: dict | None) -> str:
    return f"{par['logits']:.1e} / {par['values']:.1e} / {par['grads']:.1e}" if par else "-"


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.1f}" if seconds else "-"


def random_weights(module, batch) -> dict:
    """Fixed random weights of the test loss (sum of weighted logits and values)."""
    import torch
    from ray.rllib.core.columns import Columns

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        out = module.forward_train(batch)
    return {
        "logits": torch.randn(out[Columns.ACTION_DIST_INPUTS].shape, generator=gen),
        "values": torch.randn(tuple(batch[Columns.OBS].shape[:2]), generator=gen),
    }


if __name__ == "__main__":
    main()
