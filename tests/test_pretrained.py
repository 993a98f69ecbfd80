"""The trained agents shipped in ``pretrained/``: each loads, plays, and beats a random policy;
they hold no pickle, and loading one unpickles nothing and starts no Ray."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from rmc_agents.export import evaluate, random_scores

REPO = Path(__file__).resolve().parents[1]
AGENTS = sorted(p.parent for p in (REPO / "pretrained").glob("*/policy.json"))


def test_agents_are_shipped():
    names = {p.name for p in AGENTS}
    assert {
        "viewport-rmc",
        "viewport-lstm",
        "full-rmc",
        "full-lstm",
        "stateless-cartpole-rmc",
        "stateless-cartpole-lstm",
    } <= names, names


@pytest.mark.parametrize("index", ["pretrained/README.md", "docs/results.md"])
def test_agent_indexes_list_every_agent_with_its_cards_score(index):
    """The tables that list the shipped agents (``| [name](...) | env | score (std s) | ...``)
    name every agent once and give the score its card holds, so a re-export cannot leave a
    stale number behind."""
    rows = {}
    for line in (REPO / index).read_text().splitlines():
        match = re.match(
            r"\| \[([\w-]+)\]\((?:[^)]*/)?\1\) \|[^|]*\| ([\d.]+) \(std ([\d.]+)\)", line
        )
        if match:
            assert match.group(1) not in rows, (index, match.group(1))
            rows[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    assert set(rows) == {p.name for p in AGENTS}, (index, sorted(rows))
    for agent in AGENTS:
        score = json.loads((agent / "policy.json").read_text())["score"]
        assert rows[agent.name] == (round(score["mean"], 1), round(score["std"], 1)), agent.name


def _is_safetensors(path) -> bool:
    """The file opens with safetensors' own reader (a JSON header, then the tensors' bytes)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception:
        return False
    return True


def test_pretrained_holds_no_pickle():
    """No file in pretrained/ is a pickle: weights are valid safetensors files (whose first byte
    is the header's length, which may happen to be pickle's PROTO opcode 0x80), and no other file
    starts with that opcode or has a pickle's name."""
    for path in (REPO / "pretrained").rglob("*"):
        if path.is_file():
            assert path.suffix not in (".pkl", ".pickle", ".pt", ".pth", ".ckpt"), path
            data = path.read_bytes()
            if path.suffix == ".safetensors":
                assert _is_safetensors(path), path
            else:
                assert data[:1] != b"\x80", path


@pytest.mark.parametrize("agent", AGENTS, ids=lambda p: p.name)
def test_agent_loads_plays_and_beats_the_random_policy(agent):
    card = json.loads((agent / "policy.json").read_text())
    assert card["policy_bytes"] < 5e6  # weights only
    assert card["score"]["mean"] > card["random_policy_score"]["mean"]
    scores = evaluate(agent, episodes=8, seed=100)
    baseline = random_scores(card["env"], card["env_kwargs"], episodes=8, seed=100)
    assert statistics.mean(scores) > statistics.mean(baseline), (scores, baseline)


NO_PICKLE_SCRIPT = """
import pickle, _pickle, sys
import numpy as np, torch, ray
import ray.cloudpickle

def refuse(*args, **kwargs):
    raise AssertionError("something tried to unpickle")

class Refused:
    def __init__(self, *args, **kwargs):
        refuse()

for module in (pickle, _pickle, ray.cloudpickle):
    for name in ("load", "loads"):
        if hasattr(module, name):
            setattr(module, name, refuse)
    if hasattr(module, "Unpickler"):
        module.Unpickler = Refused
torch.load = torch.serialization.load = refuse
np.load = refuse

import rmc_agents
from rmc_agents.rollout import PolicyStepper, make_rollout_env

module = rmc_agents.load_policy(sys.argv[1])
card = module.policy_card
env = make_rollout_env(card["env"], card["env_kwargs"], frames=False)
stepper = PolicyStepper(module)
obs, _ = env.reset(seed=0)
for _ in range(5):
    obs, reward, terminated, truncated, _ = env.step(stepper.act(obs)[0])
assert not ray.is_initialized(), "Ray was started"
print("played", card["core"])
"""


@pytest.mark.parametrize("agent", AGENTS, ids=lambda p: p.name)
def test_loading_a_shipped_agent_unpickles_nothing_and_starts_no_ray(agent):
    """A fresh process with every unpickling entry point (pickle's, Ray's cloudpickle,
    ``torch.load``, ``np.load``) replaced by one that fails loads the agent and plays with it."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.run(
        [sys.executable, "-c", NO_PICKLE_SCRIPT, str(agent)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("played " + agent.name.split("-")[-1])
