"""The RMC's acting step and learner update with the attention over the input rows taken through
their own features (``RelationalMemory._factor_inputs``; the core does it from 12 input rows on)
against the rows' queries, keys and values as written.

Both are the same function (tests/core/test_relational_memory.py); the flag is switched on the
same module, in one process, one thread, the two sides taking turns ``--rounds`` times so that a
change in the machine's load hits both alike. Per size: ``default``, the built-in run settings
(Mini-Pacman viewport, 4 x 4 x 32, batch 640: 9 input rows, the 3x3 cells after the torso);
``paper``, ``configs/minipacman_viewport_rmc.yaml`` (4 x 4 x 64, batch 1,280; 9 rows); ``full``,
the default agent on ``MiniPacman-Full-v0`` with the image cells as rows (221 rows; the full
board's config gives its RMC one flat input row instead):

- acting: ``forward_exploration`` of the agent's module on one EnvRunner's vector step (``--envs``
  observations, default 32) with its recurrent state, no gradients; microseconds per call, best
  of the rounds;
- learner: one ``Learner.update`` (one-pass learner connector with packed chunks, forward, loss,
  backward, optimizer step) per sampled batch of the run's size; milliseconds per update, median
  of the rounds.

    python bench/rmc_step_speed.py
    python bench/rmc_step_speed.py --sizes default --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
VIEWPORT = "MiniPacman-Viewport-v0"
# size: (config file, env, overrides)
SIZES = {
    "default": (None, VIEWPORT, {}),
    "paper": (str(BENCH.parent / "configs" / "minipacman_viewport_rmc.yaml"), VIEWPORT, {}),
    "full": (None, "MiniPacman-Full-v0", {"model.image_rows": True}),
}
SIDES = ("factored", "written")


def _side(core, side: str) -> None:
    core._factor_inputs = side == "factored"
    core._factor_min_rows = 1  # whatever the number of rows


def _acting(module, env_id: str, envs: int, calls: int, rounds: int) -> dict[str, float]:
    import gymnasium as gym
    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns

    env = gym.make(env_id)
    obs = [env.reset(seed=i)[0] for i in range(envs)]
    obs = torch.as_tensor(np.stack(obs))[:, None]
    state = {
        k: torch.as_tensor(np.asarray(v))[None].expand(envs, *np.shape(v)).clone()
        for k, v in module.get_initial_state().items()
    }
    core = module.core
    best = dict.fromkeys(SIDES, float("inf"))

    def step():
        return module.forward_exploration({Columns.OBS: obs, Columns.STATE_IN: state})

    with torch.no_grad():
        for _ in range(rounds):
            for side in SIDES:
                _side(core, side)
                for _ in range(10):
                    step()
                start = time.perf_counter()
                for _ in range(calls):
                    step()
                best[side] = min(best[side], (time.perf_counter() - start) / calls * 1e6)
    core._factor_inputs = True
    return best


def _learner(run, batches: int, rounds: int) -> dict[str, float]:
    from learner_pipeline import learner_and_batches, learner_update

    learner, blobs = learner_and_batches(run, batches)
    connector = learner._learner_connector  # the run's: one pass, packed chunks
    core = learner.module["default_policy"].core
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for rep in range(rounds + 1):  # the first round warms up
        for side in SIDES:
            _side(core, side)
            start = time.perf_counter()
            for blob in blobs:
                learner_update(learner, connector, blob)
            if rep:
                times[side].append((time.perf_counter() - start) / len(blobs) * 1e3)
    core._factor_inputs = True
    return {side: statistics.median(t) for side, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="default,paper,full", help="default, paper, full")
    p.add_argument("--envs", type=int, default=32, help="observations per acting step")
    p.add_argument("--calls", type=int, default=300, help="acting steps per round")
    p.add_argument("--batches", type=int, default=4, help="sampled batches per learner round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    import torch

    from rmc_agents.config import load_config
    from rmc_agents.rl.allocator import keep_freed_memory
    from rmc_agents.rl.settings import RunSettings

    torch.set_num_threads(1)
    keep_freed_memory()  # as the learner's and the EnvRunners' processes do
    results = {}
    for size in args.sizes.split(","):
        config, env_id, extra = SIZES[size]
        overrides = {"env": env_id, "resources.num_env_runners": 0, **extra}
        run = load_config(RunSettings, config, overrides=overrides, skip_none=False)
        learner = _learner(run, args.batches, args.rounds)
        module = _module(run)
        acting = _acting(module, env_id, args.envs, args.calls, args.rounds)
        results[size] = {
            "acting_us": acting,
            "learner_ms": learner,
            "train_batch_size": run.train_batch_size,
            "input_rows": _rows(module),
        }
        print(f"{size} ({_rows(module)} input rows): acting (batch {args.envs}) us per step, "
              f"learner ms per update ({run.train_batch_size} frames)")  # fmt: skip
        print("| part | through the features | written | ratio |")
        print("|---|---:|---:|---:|")
        for part, got in (("acting", acting), ("learner", learner)):
            a, b = got["factored"], got["written"]
            print(f"| {part} | {a:.1f} | {b:.1f} | {b / a:.2f}x |", flush=True)
    results["machine"] = f"{platform.machine()}, one torch thread"
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def _rows(module) -> int:
    import numpy as np
    import torch

    obs = torch.as_tensor(np.stack([module.observation_space.sample()]))
    with torch.no_grad():
        return int(module.encoder(obs).shape[-2])


def _module(run):
    """The agent's module for the run's settings, as an EnvRunner builds it."""
    import gymnasium as gym
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    import minipacman  # noqa: F401  (registers Mini-Pacman)
    from rmc_agents.rl import policy_spec

    env = gym.make(run.env)
    model = {k: v for k, v in vars(run.model).items() if k != "core"}
    spec: RLModuleSpec = policy_spec(run.model.core, **model)
    spec.observation_space, spec.action_space = env.observation_space, env.action_space
    return spec.build()


if __name__ == "__main__":
    main()
