"""``rmc_agents.policy_file``: policies as safetensors and a JSON card, spaces as JSON, and one
clear error for each way a policy directory can be wrong."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

import rmc_agents
from rmc_agents.policy_file import (
    CARD,
    WEIGHTS,
    PolicyFileError,
    save_policy,
    space_from_json,
    space_to_json,
)

SPACES = [
    gym.spaces.Box(0.0, 1.0, (5, 5, 3), np.float32),
    gym.spaces.Box(np.array([-1.0, -np.inf]), np.array([2.0, np.inf]), (2,), np.float64),
    gym.spaces.Box(0, 255, (3, 4), np.uint8),
    gym.spaces.Discrete(5, start=1),
    gym.spaces.MultiDiscrete([3, 4]),
    gym.spaces.MultiBinary(6),
    gym.spaces.Text(12, min_length=1, charset="abc"),
    gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0.0, 1.0, (3, 3, 2), np.float32),
            "cue": gym.spaces.Discrete(4),
            "more": gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.MultiBinary(2)]),
        }
    ),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_spaces_go_through_json_and_back(space):
    data = json.loads(json.dumps(space_to_json(space), allow_nan=False))
    assert space_from_json(data) == space


def test_an_unknown_space_is_one_error():
    with pytest.raises(PolicyFileError, match="cannot write a Graph space"):
        space_to_json(gym.spaces.Graph(gym.spaces.Discrete(2), None))
    with pytest.raises(PolicyFileError, match="unknown type"):
        space_from_json({"type": "Sequence"})


def _module(core="rmc", obs=SPACES[0]):
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rmc_agents.rl.spec import policy_spec

    spec = policy_spec(core, mem_slots=2, head_size=8, num_heads=2, hidden_size=16)
    return RLModuleSpec(
        module_class=spec.module_class,
        observation_space=obs,
        action_space=gym.spaces.Discrete(5),
        model_config=spec.model_config,
    ).build()


def _logits(module, obs):
    state = {k: torch.as_tensor(v)[None] for k, v in module.get_initial_state().items()}
    batch = {Columns.OBS: torch.as_tensor(obs)[None, None], Columns.STATE_IN: state}
    with torch.no_grad():
        return module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]


@pytest.mark.parametrize("core", ["rmc", "lstm", "dnc"])
def test_a_saved_policy_loads_and_computes_the_same(tmp_path, core):
    module = _module(core)
    if core == "rmc":  # APPO's learner copy: the target network stays out of the file
        module.make_target_networks()
    save_policy(module, tmp_path / "agent", env="MiniPacman-Viewport-v0", score={"mean": 1.0})
    loaded = rmc_agents.load_policy(tmp_path / "agent")
    obs = SPACES[0].sample()
    torch.testing.assert_close(_logits(loaded, obs), _logits(module, obs), rtol=0, atol=0)
    card = loaded.policy_card
    assert card["core"] == core and card["env"] == "MiniPacman-Viewport-v0"
    assert card["score"] == {"mean": 1.0}
    assert set(card["written_with"]["versions"]) >= {"torch", "ray", "gymnasium", "numpy"}
    assert not loaded.training
    from safetensors import safe_open

    with safe_open(str(tmp_path / "agent" / WEIGHTS), "pt") as f:
        assert not any(key.startswith("_target") for key in f.keys())


def test_each_broken_policy_directory_is_one_clear_error(tmp_path):
    from rmc_agents.policy_file import load_policy

    path = save_policy(_module("lstm"), tmp_path / "agent")
    card = json.loads((path / CARD).read_text())
    weights = (path / WEIGHTS).read_bytes()

    def fails(match):
        with pytest.raises(PolicyFileError, match=match) as info:
            load_policy(path)
        assert "\n" not in str(info.value)

    (path / CARD).write_text(json.dumps({**card, "format_version": 99}))
    fails("format version 99; this rmc-agents reads up to 1")
    (path / CARD).write_text(json.dumps({**card, "module": "os.system"}))
    fails("names the module 'os.system'")
    (path / CARD).write_text("{not json")
    fails("is not a readable JSON card")
    (path / CARD).unlink()
    fails("no policy.json in")
    bigger = {**card, "model_config": {**card["model_config"], "core_kwargs": {"hidden_size": 32}}}
    (path / CARD).write_text(json.dumps(bigger))
    fails("do not fit the card: '.*' has shape")
    (path / CARD).write_text(json.dumps(card))
    (path / WEIGHTS).write_bytes(weights[:100])
    fails("is not readable")
    (path / WEIGHTS).unlink()
    fails("no model.safetensors in")
