"""``train_agent.py --address`` on a real two-node Ray cluster with token authentication."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, str(REPO / "train_agent.py")]

# Two EnvRunners of 1 CPU each on a cluster of two 1-CPU nodes: one runner per node. The learner
# runs in the driver (num_learners 0), which needs no cluster CPU.
TINY_CLUSTER_CONFIG = """\
env: CartPole-v1
algo: impala
model: {core: gru, hidden_size: 16, mlp_hiddens: [16]}
training: {train_batch_size: 80, rollout_fragment_length: 20}
resources: {num_env_runners: 2, envs_per_runner: 2, num_cpus_per_env_runner: 1}
min_time_s_per_iteration: 0
min_sample_timesteps_per_iteration: 200
stall_seconds: 120
"""


def run_cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        TRAIN + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


@pytest.mark.slow
def test_training_spreads_env_runners_over_two_nodes(two_node_cluster, tmp_path):
    cluster = two_node_cluster
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(TINY_CLUSTER_CONFIG)
    out = tmp_path / "run"

    # Token authentication is on: a machine without the cluster's token is refused, fast and
    # with one clear line (not ray.init's 20 s of retries).
    start = time.monotonic()
    refused = run_cli(
        ["--config", str(cfg), "--address", cluster.address, "--output", str(out)]
        + ["--stop-iterations", "1"],
        env=cluster.env(RAY_AUTH_TOKEN="0" * 64),
        timeout=120,
    )
    assert refused.returncode != 0
    assert "error:" in refused.stderr and "token" in refused.stderr, refused.stderr[-2000:]
    assert time.monotonic() - start < 60
    assert not out.exists()

    done = run_cli(
        ["--config", str(cfg), "--address", cluster.address, "--output", str(out)]
        + ["--stop-iterations", "3", "--seed", "3"],
        env=cluster.env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + cluster.log_tail()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["env_steps_trained"] > 0
    placement = summary["env_runner_nodes"]
    assert placement["runners"] == 2
    assert len(placement["nodes"]) == 2, placement  # one EnvRunner on each node
    assert "EnvRunners: 2 on 2 nodes" in done.stdout
