"""Learner-side pipeline cost: the one-pass learner connector vs RLlib's stock pieces.

Part 1 (``--batches``): episodes are sampled once by an EnvRunner with the run's settings (default:
Mini-Pacman viewport, 32 envs x 20 steps, chunks of 22); each batch is then built from fresh copies
of the same episodes by RLlib's seven default learner pieces and by
``rmc_agents.rl.learner_connector.EpisodesToTrainBatch``, in this process, alternately, and timed
(the copies are made outside the timing). The cost is per env step. It is measured for every
``--cores`` (the connector's work depends on the model only through the recurrent state it
gathers; ``mlp`` is the stateless trivial module).

Part 2 (``--update-batches``, 0 to skip): the learner update per batch of the run's model (default:
the default RMC) with the chunks packed (``training.pack_chunks``, the default) and in RLlib's
layout (one episode per chunk): sampled batches, each through ``EpisodesToTrainBatch`` and one
``Learner.update`` (forward, loss, backward, optimizer step) in both layouts, taking turns in this
process, one thread; milliseconds per update and chunks per batch.

Part 3 (``--train-seconds``, 0 to skip): sustained training throughput of the default RMC with
each pipeline (``training.learner_pipeline``: ``one_pass`` vs ``rllib``), both built in one Ray
session and taking turns (``bench/train_speed.py``'s rounds). The learner counts trained steps
differently: RLlib's pipeline appends a bootstrap step to every episode and counts it as trained,
the one-pass connector leaves the episodes alone, so its count is the env steps; the table gives
the sampled frames/s beside it (the same for both pipelines' definitions).

    python bench/learner_pipeline.py                        # all parts, Mini-Pacman viewport
    python bench/learner_pipeline.py --train-seconds 0 --cores rmc,lstm,mlp
    python bench/learner_pipeline.py --batches 0 --train-seconds 0 \
        --config configs/minipacman_viewport_rmc.yaml     # part 2, the paper-sized RMC
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)


def sample_episodes(run, batches: int) -> tuple[list[bytes], object]:
    """``batches`` pickled lists of episodes (one sample() each) and the learner's module."""
    import torch

    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.env_runner import LeanEnvRunner
    from rmc_agents.rl.learner_connector import learner_module

    runner = LeanEnvRunner(config=build_algo_config(run))
    try:
        groups = []
        for i in range(batches):
            torch.manual_seed(i)
            episodes = runner.sample(num_timesteps=run.train_batch_size)
            groups.append(pickle.dumps([e.to_numpy() for e in episodes]))
        multi = learner_module(runner.module)
    finally:
        runner.stop()
    return groups, multi


def time_pipelines(groups: list[bytes], multi, repeats: int) -> dict[str, float]:
    """Seconds per env step of each pipeline, over ``repeats`` passes through ``groups``."""
    from ray.rllib.connectors.learner import LearnerConnectorPipeline

    from rmc_agents.rl.learner_connector import EpisodesToTrainBatch, stock_learner_pieces

    pipelines = {
        "rllib": LearnerConnectorPipeline(connectors=stock_learner_pieces()),
        "one_pass": EpisodesToTrainBatch(),
    }
    spent = dict.fromkeys(pipelines, 0.0)
    steps = 0
    for _ in range(repeats):
        for blob in groups:
            for name, pipeline in pipelines.items():
                episodes = pickle.loads(blob)
                t0 = time.perf_counter()
                pipeline(rl_module=multi, batch={}, episodes=episodes, shared_data={})
                spent[name] += time.perf_counter() - t0
            steps += sum(len(e) for e in pickle.loads(blob))
    assert pipelines["one_pass"].fallbacks == 0, "the one-pass connector handed batches back"
    return {name: s / steps for name, s in spent.items()}


def learner_and_batches(run, batches: int) -> tuple[object, list[bytes]]:
    """A learner built in this process from the run's settings, and ``batches`` pickled lists of
    sampled episodes (one ``sample()`` of a train batch each, seeded)."""
    import torch

    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.env_runner import LeanEnvRunner

    config = build_algo_config(run)
    runner = LeanEnvRunner(config=config)
    try:
        learner = config.build_learner_group(env=runner.env)._learner
        groups = []
        for i in range(batches):
            torch.manual_seed(i)
            episodes = runner.sample(num_timesteps=run.train_batch_size)
            groups.append(pickle.dumps([e.to_numpy() for e in episodes]))
    finally:
        runner.stop()
    return learner, groups


def learner_update(learner, connector, blob: bytes) -> int:
    """One learner update (batch building with ``connector``, forward, loss, backward, optimizer
    step) on the pickled episodes ``blob``; returns the batch's chunks."""
    from ray.rllib.core.learner.learner import Learner
    from ray.rllib.core.learner.training_data import TrainingData
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

    episodes = pickle.loads(blob)
    batch = connector(rl_module=learner.module, batch={}, episodes=episodes)
    data = MultiAgentBatch(
        {mid: SampleBatch(cols, _zero_padded=True) for mid, cols in batch.items()},
        env_steps=sum(len(e) for e in episodes),
    )
    Learner.update(
        learner,
        training_data=TrainingData(batch=data),
        timesteps={"num_env_steps_sampled_lifetime": 0},
        _no_metrics_reduce=True,
    )
    return len(next(iter(batch.values()))["seq_lens"])


def update_cost(run, batches: int, repeats: int) -> dict[str, float]:
    """Part 2: one learner update (batch building, forward, loss, backward, optimizer step) per
    sampled batch, with the chunks packed and in RLlib's layout, taking turns in one process.

    Returns milliseconds per update and chunks per batch of each layout.
    """
    from rmc_agents.rl.learner_connector import EpisodesToTrainBatch

    learner, groups = learner_and_batches(run, batches)
    layouts = {"packed": EpisodesToTrainBatch(pack=True), "rllib": EpisodesToTrainBatch(pack=False)}
    spent, chunks, updates = dict.fromkeys(layouts, 0.0), dict.fromkeys(layouts, 0), 0
    for rep in range(repeats + 1):  # the first pass warms up
        for blob in groups:
            for name, connector in layouts.items():
                t0 = time.perf_counter()
                n = learner_update(learner, connector, blob)
                if rep:
                    spent[name] += time.perf_counter() - t0
                    chunks[name] += n
            updates += bool(rep)
    assert all(c.fallbacks == 0 for c in layouts.values())
    return {
        **{f"{name}_ms": spent[name] / updates * 1e3 for name in layouts},
        **{f"{name}_chunks": chunks[name] / updates for name in layouts},
    }


def train_throughput(base_overrides: dict, config: str | None, seconds: float, rounds: int):
    import ray

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_speed import measure_rounds

    from rmc_agents.config import load_config
    from rmc_agents.rl.algorithms import build_algo_config, set_driver_threads
    from rmc_agents.rl.settings import RunSettings

    algos = {}
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    try:
        for name in ("one_pass", "rllib"):
            run = load_config(
                RunSettings,
                config,
                overrides={**base_overrides, "training.learner_pipeline": name},
                skip_none=False,
            )
            set_driver_threads(run)
            algos[name] = build_algo_config(run).build_algo()
        return measure_rounds(algos, warmup=15.0, seconds=seconds, rounds=rounds, rewarm=3.0)
    finally:
        for algo in algos.values():
            algo.stop()
        ray.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="MiniPacman-Viewport-v0")
    p.add_argument("--config", help="YAML run settings (default: built-in defaults)")
    p.add_argument("--cores", default="rmc,mlp", help="modules whose batches are built")
    p.add_argument(
        "--batches", type=int, default=8, help="part 1: sampled batches per core (0: skip it)"
    )
    p.add_argument("--repeats", type=int, default=5, help="passes through the batches")
    p.add_argument(
        "--update-batches", type=int, default=8, help="part 2: sampled batches (0: skip it)"
    )
    p.add_argument("--train-seconds", type=float, default=60.0, help="0: skip part 3")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    import torch

    from rmc_agents.config import load_config
    from rmc_agents.rl.settings import RunSettings

    torch.set_num_threads(1)
    rows = []
    if args.batches > 0:
        for core in args.cores.split(","):
            run = load_config(
                RunSettings,
                args.config,
                overrides={"env": args.env, "model.core": core, "resources.num_env_runners": 0},
                skip_none=False,
            )
            groups, multi = sample_episodes(run, args.batches)
            cost = time_pipelines(groups, multi, args.repeats)
            rows.append({"core": core, **{f"{k}_us_per_step": v * 1e6 for k, v in cost.items()}})
            print(
                f"{core:>5}: RLlib's pipeline {cost['rllib'] * 1e6:6.2f} us/step, one pass "
                f"{cost['one_pass'] * 1e6:5.2f} us/step: {cost['rllib'] / cost['one_pass']:.1f}x less",
                flush=True,
            )
        print(
            f"\n{args.env}, batch {run.train_batch_size} steps ({run.resources.envs_per_runner} envs x "
            f"{run.training.rollout_fragment_length}), chunks of {run.model.max_seq_len}, "
            f"{args.batches} batches x {args.repeats} passes, one thread, "
            f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
        )
        print("| module | RLlib's pipeline us/step | one pass us/step | ratio |")
        print("|---|---:|---:|---:|")
        for r in rows:
            ratio = r["rllib_us_per_step"] / r["one_pass_us_per_step"]
            print(
                f"| {r['core']} | {r['rllib_us_per_step']:.2f} | {r['one_pass_us_per_step']:.2f} | "
                f"{ratio:.1f}x |"
            )
    result: dict = {"pipeline": rows}
    if args.update_batches > 0:
        run = load_config(
            RunSettings,
            args.config,
            overrides={"env": args.env, "resources.num_env_runners": 0},
            skip_none=False,
        )
        cost = update_cost(run, args.update_batches, args.repeats)
        result["update"] = cost
        print(
            f"\nLearner update per batch, {run.model.core} ({args.update_batches} batches x "
            f"{args.repeats} passes, one thread):"
        )
        print("| chunk layout | chunks per batch | ms per update |")
        print("|---|---:|---:|")
        for name in ("rllib", "packed"):
            print(f"| {name} | {cost[name + '_chunks']:.1f} | {cost[name + '_ms']:.1f} |")
        print(f"update time, RLlib's layout vs packed: {cost['rllib_ms'] / cost['packed_ms']:.2f}x")
    if args.train_seconds > 0:
        speeds = train_throughput({"env": args.env}, args.config, args.train_seconds, args.rounds)
        result["training"] = speeds
        print("\nTraining, default RMC, the two pipelines taking turns:")
        print("| learner pipeline | env frames/s sampled | trained steps/s |")
        print("|---|---:|---:|")
        for name, s in speeds.items():
            print(f"| {name} | {s['sampled_fps']:,.0f} | {s['trained_fps']:,.0f} |")
        ratio = speeds["one_pass"]["sampled_fps"] / speeds["rllib"]["sampled_fps"]
        print(f"sampled frames/s, one pass vs RLlib's pipeline: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
