"""The learner's allocator setting: freed memory kept for reuse (rmc_agents.rl.allocator)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rmc_agents.rl import optim
from rmc_agents.rl.algorithms import build_algo_config
from rmc_agents.rl.env_runner import LeanEnvRunner
from rmc_agents.rl.settings import ModelSettings, RunSettings

_FAULTS = textwrap.dedent(
    """
    import resource, sys, torch
    from rmc_agents.rl.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def update(i):  # a learner update's pattern: large temporaries, small objects between
        x = torch.ones(16 << 20)  # 64 MB
        names = [str(i) * 10]
        y = torch.ones(5 << 20)  # 20 MB
        del x, y
        return names
    for i in range(10):  # warm up
        update(i)
    start = faults()
    for i in range(20):
        update(i)
    print(faults() - start)
    """
)


def _page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_new_page_faults():
    # 20 x 84 MB touched: about 430,000 faults of 4 KB pages when every large block is a fresh
    # mapping (glibc's default); none once the freed blocks are kept and reused.
    fresh, kept = _page_faults("default"), _page_faults("keep")
    assert fresh > 200_000
    assert kept < 1_000


@pytest.mark.parametrize("keep", [True, False])
def test_the_learner_sets_the_allocator_at_build_unless_told_not_to(keep, monkeypatch):
    calls = []
    monkeypatch.setattr(optim, "keep_freed_memory", lambda: calls.append(1) or True)
    run = RunSettings(env="CartPole-v1", model=ModelSettings(core="gru", hidden_size=8))
    run.resources.num_env_runners = 0
    run.resources.keep_freed_memory = keep
    config = build_algo_config(run)
    runner = LeanEnvRunner(config=config)
    try:
        config.build_learner_group(env=runner.env)
    finally:
        runner.stop()
    assert calls == ([1] if keep else [])
