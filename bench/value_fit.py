"""How well a trained PPO agent's value function fits its value targets, on batches of its play.

For each run directory given (a trial of ``rmc_agents.tune`` or a ``train_agent.py`` output: its
``config.yaml`` and ``checkpoint/``), the run's PPO learner and an EnvRunner are built from its
config, both take the checkpoint's weights, and the runner samples train batches as in training
(each env ``rollout_fragment_length`` steps per round, episodes carried across rounds; actions
sampled) until ``--steps`` env steps; the run's own learner connector makes each train batch
(learner chunks, padding, GAE value targets from the trained value: with ``gae_lambda`` 1, the
fragment's rewards and the value where it is cut). Printed per run, over all rounds' rows:

- ``ev_real``: the explained variance of the value targets by the values over the real steps
  (what ``diag/value_ev`` logs for PPO runs from this project's version on);
- ``ev_rllib``: the same as RLlib 2.60's PPO loss computes it (``vf_explained_var``: over every row
  of the batch, the chunks' padding and the bootstrap rows included, clipped at -1), which is what
  ``diag/value_ev`` held for PPO runs before;
- ``real_share``: the share of the batch's rows that are real steps.

    python bench/value_fit.py runs/sweeps/popgym_sized_rmc_aecr/trials/*/ --json fit.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envs"))


def _explained_variance(targets, values) -> float:
    """The explained variance of ``targets`` by ``values`` (1-d arrays), as ``diag/value_ev``
    computes it during training."""
    import torch

    from rmc_agents.rl.diagnostics import value_stats

    t = torch.as_tensor(targets, dtype=torch.float64)
    stats = value_stats(torch.as_tensor(values, dtype=torch.float64), t, torch.ones_like(t))
    return float(stats["diag_value_ev"]) if stats else 0.0


def value_fit(run_dir: Path, steps: int, seed: int) -> dict:
    """``ev_real``, ``ev_rllib`` and ``real_share`` of the trained run in ``run_dir``."""
    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rmc_agents.config import load_config
    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.settings import RunSettings
    from rmc_agents.rollout.checkpoints import load_policy

    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise SystemExit(f"error: {run_dir} has no config.yaml (not a run directory)")
    run = load_config(RunSettings, config_path)
    if run.algorithm != "ppo":
        raise SystemExit(
            f"error: {run_dir} is an {run.algorithm.upper()} run; IMPALA and APPO log diag/value_ev over the "
            "real steps already (this script measures PPO runs)"
        )
    train_seed, run.seed = run.seed, seed
    run.resources.num_env_runners = 0
    weights = load_policy(run_dir / "checkpoint").module.state_dict()
    config = build_algo_config(run)
    per_round = run.resources.envs_per_runner * run.training.rollout_fragment_length
    runner = SingleAgentEnvRunner(config=config)
    learner = None
    all_targets, all_values, all_real = [], [], []
    try:
        runner.module.load_state_dict(weights)
        learner = config.build_learner(
            spaces={"default_policy": runner.get_spaces()["__env_single__"]}
        )
        module = learner.module["default_policy"]
        module.load_state_dict(weights)
        for _ in range(-(-steps // per_round)):
            episodes = runner.sample(num_timesteps=per_round, random_actions=False)
            batch = learner._learner_connector(
                rl_module=learner.module,
                batch={},
                episodes=[e.to_numpy() for e in episodes],
                shared_data={},
            )["default_policy"]
            batch = {
                k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()
            }
            with torch.no_grad():
                all_values.append(module.compute_values(batch).double().numpy().ravel())
            all_targets.append(np.asarray(batch["value_targets"], dtype=np.float64).ravel())
            all_real.append(np.asarray(batch[Columns.LOSS_MASK], dtype=bool).ravel())
    finally:
        runner.stop()
        if learner is not None:
            learner.shutdown()
    targets, values, real = (np.concatenate(a) for a in (all_targets, all_values, all_real))
    return {
        "run": str(run_dir),
        "env": run.env,
        "core": run.model.core,
        "train_seed": train_seed,
        "sample_seed": seed,
        "steps": int(real.sum()),
        "ev_real": _explained_variance(targets[real], values[real]),
        "ev_rllib": max(-1.0, _explained_variance(targets, values)),
        "real_share": float(real.mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (config.yaml, checkpoint/)")
    p.add_argument("--steps", type=int, default=6400, help="env steps sampled per run (at least)")
    p.add_argument("--seed", type=int, default=1000, help="env and sampling seed")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    if args.steps <= 0:
        raise SystemExit(f"error: --steps must be positive, got {args.steps}")

    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        for run_dir in args.runs:
            row = value_fit(run_dir, args.steps, args.seed)
            rows.append(row)
            print(
                f"{row['env']:<42} {row['core']:<5} ev_real {row['ev_real']:7.3f}  "
                f"ev_rllib {row['ev_rllib']:7.3f}  real_share {row['real_share']:.3f}  "
                f"({row['run']})",
                flush=True,
            )
    finally:
        ray.shutdown()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
