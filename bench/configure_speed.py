"""Frames/s of a plain RLlib script built with ``rmc_agents.rl.configure()`` beside
``train_agent.py``'s config for the same settings.

Two algorithms are built in one Ray cluster, in one process, from one set of settings (a config
file and ``--set`` overrides, as ``train_agent.py`` reads them):

- ``train_agent``: the config ``train_agent.py`` builds (``rmc_agents.rl.algorithms.build_algo_config``,
  the driver's threads set as the trainer sets them);
- ``configure``: what a user writes: RLlib's own ``IMPALAConfig`` / ``APPOConfig`` / ``PPOConfig``
  with the same env, resources and hyperparameters set through RLlib's builder methods, the env
  named by its Gymnasium id, then one ``configure(config, core, **model)`` call.

They take turns (``--rounds`` windows each, after a warm-up), so that a change in the load of a
shared machine hits both alike; env steps sampled per second are counted over the windows. The
ratio ``configure / train_agent`` is the figure (the target is >= 0.9).

    python bench/configure_speed.py                      # Mini-Pacman viewport, IMPALA, RMC
    python bench/configure_speed.py --seconds 20 --rounds 2
    python bench/configure_speed.py --algo ppo --set env=CartPole-v1 --json out.json

The CPU may be shared with other work: compare the ratio from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sampled(result: dict) -> float:
    return float(result["env_runners"].get("num_env_steps_sampled_lifetime", 0.0))


def train_agent_config(run):
    """``train_agent.py``'s config for ``run`` (and the driver's threads, as the trainer sets
    them)."""
    from rmc_agents.rl.algorithms import build_algo_config, set_driver_threads

    set_driver_threads(run)
    return build_algo_config(run)


def users_config(run):
    """The same settings as a user's own script sets them: RLlib's builder methods, then one
    ``configure()`` call."""
    from ray.rllib.algorithms.appo import APPOConfig
    from ray.rllib.algorithms.impala import IMPALAConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    from rmc_agents.rl import configure

    algo, res, tr = run.algorithm, run.resources, run.training
    config = {"impala": IMPALAConfig, "appo": APPOConfig, "ppo": PPOConfig}[algo]()
    config.environment(run.env, env_config=dict(run.env_kwargs))
    config.env_runners(
        num_env_runners=res.num_env_runners,
        num_envs_per_env_runner=res.envs_per_runner,
        num_cpus_per_env_runner=res.num_cpus_per_env_runner,
        rollout_fragment_length=tr.rollout_fragment_length,
    )
    config.learners(num_learners=res.num_learners, num_gpus_per_learner=res.gpus_per_learner)
    config.training(
        lr=run.lr,
        gamma=tr.gamma,
        entropy_coeff=run.entropy_coeff,
        vf_loss_coeff=tr.vf_loss_coeff,
        grad_clip=tr.grad_clip,
        train_batch_size_per_learner=run.train_batch_size,
    )
    if algo == "ppo":
        config.training(
            num_epochs=run.ppo.num_epochs,
            minibatch_size=run.ppo_minibatch_size,
            lambda_=run.ppo.gae_lambda,
        )
    config.reporting(
        min_time_s_per_iteration=run.min_time_s_per_iteration,
        min_sample_timesteps_per_iteration=run.min_sample_timesteps_per_iteration,
    )
    config.debugging(seed=run.seed)
    model = {k: v for k, v in vars(run.model).items() if k not in ("core", "max_seq_len")}
    kwargs = {} if algo == "ppo" else {"reward_scale": run.reward_scale}
    return configure(config, run.model.core, **kwargs, **model)


def measure(algo, warmup: float, seconds: float) -> dict[str, float]:
    """Env steps sampled over ``seconds`` after ``warmup`` seconds of training."""
    start = time.monotonic()
    result = algo.train()
    while time.monotonic() - start < warmup:
        result = algo.train()
    s0, w0 = _sampled(result), time.monotonic()
    while time.monotonic() - w0 < seconds:
        result = algo.train()
    return {"sampled": _sampled(result) - s0, "window_s": time.monotonic() - w0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", help="a run config (YAML), as for train_agent.py")
    p.add_argument("--algo", help="impala, appo or ppo (default: the config's / auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seconds", type=float, default=60.0, help="measured seconds per config")
    p.add_argument("--rounds", type=int, default=3, help="windows per config, taking turns")
    p.add_argument("--warmup", type=float, default=15.0, help="seconds before the first window")
    p.add_argument("--rewarm", type=float, default=3.0, help="seconds before each later window")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    import yaml

    from rmc_agents.config import load_config
    from rmc_agents.rl.settings import RunSettings

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    if args.algo:
        overrides["algo"] = args.algo
    run = load_config(RunSettings, path=args.config, overrides=overrides)

    import ray

    from rmc_agents.rl import quiet

    quiet.install()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        algos = {
            "train_agent": train_agent_config(run).build_algo(),
            "configure": users_config(run).build_algo(),
        }
        totals = {name: {"sampled": 0.0, "window_s": 0.0} for name in algos}
        for r in range(args.rounds):
            for name, algo in algos.items():
                got = measure(
                    algo, args.warmup if r == 0 else args.rewarm, args.seconds / args.rounds
                )
                for key in totals[name]:
                    totals[name][key] += got[key]
        for algo in algos.values():
            algo.stop()
    finally:
        ray.shutdown()
    fps = {name: t["sampled"] / t["window_s"] for name, t in totals.items()}
    ratio = fps["configure"] / fps["train_agent"]
    report = {
        "env": run.env,
        "algo": run.algorithm,
        "model": run.model.core,
        "settings": overrides,
        "seconds_per_config": args.seconds,
        "rounds": args.rounds,
        "frames_per_second": {k: round(v, 1) for k, v in fps.items()},
        "ratio_configure_to_train_agent": round(ratio, 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, ray num_cpus={args.num_cpus}",
    }
    for name, value in fps.items():
        print(f"{name:12s} {value:8.1f} frames/s")
    print(f"ratio configure / train_agent: {ratio:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
