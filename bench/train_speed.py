"""Training throughput: env frames/s of the RMC policy vs RLlib's own ``use_lstm`` model.

Every model trains with IMPALA on the same env with the same settings (one Ray cluster, one
process): our ``RecurrentAgentModule`` with the RMC core and with the LSTM core, and RLlib's default
module with ``use_lstm=True`` (its catalog's CNN encoder with the same two 2x2 convolutions, then an
LSTM). All are built first, then they take turns (``--rounds`` windows each, so that a change in the
load of a shared machine hits every model alike); env steps sampled and trained are counted over
the windows after a warm-up. Ratios are against RLlib's model from the same run. ``--set KEY=VALUE``
changes a setting for every model. RLlib's model samples and builds its train batches through
RLlib's stock EnvRunner and connector pipelines; ours through this project's
(``rmc_agents.rl.connectors``, ``env_runner``, ``learner_connector``): ``--baseline-pipeline ours``
puts RLlib's model through ours too. (RLlib's learner pipeline counts one more trained step per
episode, the bootstrap step it appends: compare sampled frames/s.)

    python bench/train_speed.py                           # Mini-Pacman viewport, 60 s per model
    python bench/train_speed.py --config configs/minipacman_viewport_rmc.yaml --seconds 120
    python bench/train_speed.py --set training.train_batch_size=1280
    # a GPU machine: each model's learner gets half the GPU (all models are built at once)
    python bench/train_speed.py --models rmc,rllib_lstm --num-cpus 16 \
        --set resources.num_env_runners=8 --set resources.envs_per_runner=32 \
        --set resources.num_learners=1 --set resources.gpus_per_learner=0.5

The CPU may be shared with other work: compare ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _counters(result: dict) -> tuple[float, float]:
    sampled = result["env_runners"].get("num_env_steps_sampled_lifetime", 0.0)
    trained = result["learners"]["__all_modules__"].get("num_env_steps_trained_lifetime", 0.0)
    return float(sampled), float(trained)


def _graph_report(learner) -> str:
    """Whether the learner's core ran from CUDA graphs (empty on a CPU learner)."""
    graphed = getattr(learner.module["default_policy"], "graphed_unroll", None)  # (ours only)
    if graphed is None or not graphed.graphs and graphed.failed is None:
        return ""
    if graphed.failed:
        return f"CUDA graph capture failed, eager learner: {graphed.failed}"
    return f"learner core from CUDA graphs ({len(graphed.graphs)} captured batch shapes)"


def measure(algo, warmup: float, seconds: float) -> dict[str, float]:
    """Env steps sampled/trained per second over ``seconds`` after ``warmup`` seconds."""
    start = time.monotonic()
    result = algo.train()
    while time.monotonic() - start < warmup:
        result = algo.train()
    s0, t0 = _counters(result)
    w0 = time.monotonic()
    while time.monotonic() - w0 < seconds:
        result = algo.train()
    s1, t1 = _counters(result)
    return {"sampled": s1 - s0, "trained": t1 - t0, "window_s": time.monotonic() - w0}


def measure_rounds(
    algos: dict, warmup: float, seconds: float, rounds: int, rewarm: float
) -> dict[str, dict[str, float]]:
    """Round-robin windows: every model gets ``rounds`` windows of ``seconds / rounds``.

    Taking turns spreads any change in the load of a shared machine over all models alike. A
    model re-warms ``rewarm`` seconds before each later window, so that batches still queued
    for the previous model's learner thread are not counted against this one.
    """
    totals = {name: {"sampled": 0.0, "trained": 0.0, "window_s": 0.0} for name in algos}
    for r in range(rounds):
        for name, algo in algos.items():
            got = measure(algo, warmup if r == 0 else rewarm, seconds / rounds)
            for key in totals[name]:
                totals[name][key] += got[key]
    return {
        name: {
            "sampled_fps": t["sampled"] / t["window_s"],
            "trained_fps": t["trained"] / t["window_s"],
            "window_s": t["window_s"],
        }
        for name, t in totals.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="MiniPacman-Viewport-v0")
    p.add_argument("--config", help="YAML run settings (default: built-in defaults)")
    p.add_argument("--models", default="rmc,lstm,rllib_lstm")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window per model")
    p.add_argument("--warmup", type=float, default=15.0)
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="models take turns: each gets this many windows of seconds/rounds (all built first)",
    )
    p.add_argument("--rewarm", type=float, default=3.0, help="warm-up before later windows")
    p.add_argument(
        "--baseline-pipeline",
        choices=("rllib", "ours"),
        default="rllib",
        help="EnvRunner and connectors of RLlib's use_lstm model: RLlib's stock ones (default) "
        "or this project's (to separate the model's share from the pipeline's)",
    )
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting for every model, e.g. --set training.train_batch_size=1280",
    )
    args = p.parse_args()

    from rmc_agents.config import ConfigError, load_config, parse_set_items

    try:
        extra = parse_set_items(args.set)
    except ConfigError as exc:
        p.error(str(exc))

    import ray
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rmc_agents.rl.algorithms import build_algo_config, set_driver_threads, use_rllib_sampling
    from rmc_agents.rl.settings import RunSettings

    # skip_none=False: --set KEY=null sets null (no other override here can be None).
    base = load_config(
        RunSettings, args.config, overrides={"env": args.env, **extra}, skip_none=False
    )
    set_driver_threads(base)  # the same for every model: each learner runs in this process
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    rows = []
    algos, params = {}, {}
    try:
        for name in args.models.split(","):
            core = "lstm" if name == "rllib_lstm" else name
            overrides = {**extra, "env": args.env, "model.core": core}
            if name == "rllib_lstm" and args.baseline_pipeline == "rllib":
                overrides["training.learner_pipeline"] = "rllib"  # RLlib's learner pieces too
            run = load_config(RunSettings, args.config, overrides=overrides, skip_none=False)
            config = build_algo_config(run)
            if name == "rllib_lstm":
                channels = run.model.conv_channels
                config.rl_module(
                    rl_module_spec=RLModuleSpec(),
                    model_config=DefaultModelConfig(
                        conv_filters=[[c, [2, 2], 1] for c in channels],
                        fcnet_hiddens=list(run.model.mlp_hiddens),
                        use_lstm=True,
                        lstm_cell_size=run.model.hidden_size,
                        max_seq_len=run.model.max_seq_len,
                        vf_share_layers=True,
                    ),
                )
                if args.baseline_pipeline == "rllib":
                    use_rllib_sampling(config)
            algos[name] = config.build_algo()
            # The learner may be a remote actor (num_learners >= 1): ask it.
            counts = algos[name].learner_group.foreach_learner(
                lambda learner: sum(
                    p.numel() for p in learner.module["default_policy"].parameters()
                )
            )
            params[name] = next(iter(counts)).get()
        speeds = measure_rounds(algos, args.warmup, args.seconds, args.rounds, args.rewarm)
        for name, algo in algos.items():
            graphs = next(iter(algo.learner_group.foreach_learner(_graph_report))).get()
            if graphs:
                print(f"{name}: {graphs}", flush=True)
        for name, speed in speeds.items():
            rows.append({"model": name, "params": params[name], **speed})
            print(
                f"{name:>11}: {speed['sampled_fps']:8.0f} frames/s sampled, "
                f"{speed['trained_fps']:8.0f} trained/s ({params[name]:,} params)",
                flush=True,
            )
    finally:
        for algo in algos.values():
            algo.stop()
        ray.shutdown()
    ref = next((r for r in rows if r["model"] == "rllib_lstm"), None)
    print(
        f"\n{args.env}, {base.resources.num_env_runners} EnvRunner(s) x "
        f"{base.resources.envs_per_runner} envs, batch {base.train_batch_size}, "
        f"unroll {base.training.rollout_fragment_length}, max_seq_len {base.model.max_seq_len}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    print(f"RLlib use_lstm through {args.baseline_pipeline}'s EnvRunner and connectors")
    print("| model | params | env frames/s | trained steps/s | vs RLlib use_lstm |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['sampled_fps'] / ref['sampled_fps']:.2f}x" if ref else "-"
        print(
            f"| {r['model']} | {r['params']:,} | {r['sampled_fps']:,.0f} | "
            f"{r['trained_fps']:,.0f} | {ratio} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
