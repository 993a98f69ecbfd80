"""The trained agents shipped in ``pretrained/``: each loads, plays, and beats a random policy."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from rmc_agents.export import evaluate, random_scores

REPO = Path(__file__).resolve().parents[1]
AGENTS = sorted(p.parent for p in (REPO / "pretrained").glob("*/card.json"))


def test_agents_are_shipped():
    names = {p.name for p in AGENTS}
    assert {"viewport-rmc", "viewport-lstm", "stateless-cartpole-lstm"} <= names, names


@pytest.mark.parametrize("agent", AGENTS, ids=lambda p: p.name)
def test_agent_loads_plays_and_beats_the_random_policy(agent):
    card = json.loads((agent / "card.json").read_text())
    assert card["policy_bytes"] < 5e6  # weights only
    assert card["score"]["mean"] > card["random_policy_score"]["mean"]
    scores = evaluate(agent, episodes=8, seed=100)
    baseline = random_scores(card["env"], card["env_kwargs"], episodes=8, seed=100)
    assert statistics.mean(scores) > statistics.mean(baseline), (scores, baseline)
