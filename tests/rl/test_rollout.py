"""Rollouts: checkpoint -> episodes -> GIF/MP4/window, attention frames, seeds, and bad input.

One real training run (the CLI, tiny model, 2 iterations on Mini-Pacman viewport; shared with the
CLI tests, ``tests/rl/conftest.py``) makes the checkpoint for the whole module; policies that need no training (an LSTM for the attention error,
an MLP for an env without frames) are built and saved with RLlib's API, without Ray.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rmc_agents.rl.attention_view import AttentionView, colour_map, side_by_side
from rmc_agents.rl.module import RecurrentAgentModule
from rmc_agents.rollout import (
    MODULE_SUBDIR,
    PolicyStepper,
    find_checkpoint,
    load_policy,
    main,
    make_rollout_env,
    play,
)

ENV = "MiniPacman-Viewport-v0"


@pytest.fixture
def run_dir(cli_run) -> Path:
    """A real (tiny) training run's output directory: the CLI run the CLI tests share
    (``conftest.cli_run``: 2 iterations of the RMC on Mini-Pacman viewport, or 3 once resumed)."""
    proc, out, _ = cli_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "checkpoint" / MODULE_SUBDIR).is_dir()
    return out


def _save_module(tmp_path: Path, core: str, obs_space: gym.Space, n_actions: int) -> Path:
    kwargs = {"lstm": {"hidden_size": 16}, "mlp": {"hidden_size": 16}}[core]
    module = RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=obs_space,
        action_space=gym.spaces.Discrete(n_actions),
        model_config={"core": core, "core_kwargs": kwargs, "max_seq_len": 4},
    ).build()
    path = tmp_path / f"{core}_module"
    module.save_to_path(str(path))
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def _frames(policy, env, **kwargs) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    results = play(policy, env, on_frame=frames.append, env_spec=ENV, **kwargs)
    return frames, results


# --- with the trained checkpoint ----------------------------------------------------------------


@pytest.mark.slow
def test_run_dir_to_gif_with_frames_of_the_env_size(run_dir, tmp_path, capsys):
    gif = tmp_path / "play.gif"
    status = main(
        ["--checkpoint", str(run_dir), "--episodes", "2", "--max-steps", "25", "--seed", "1"]
        + ["--video", str(gif)]
    )
    out = capsys.readouterr().out
    assert status == 0
    lengths = [
        int(line.split("length ")[1].split()[0]) for line in out.splitlines() if "/2:" in line
    ]
    assert len(lengths) == 2 and all(1 <= n <= 25 for n in lengths)
    assert "mean over 2 episode(s)" in out
    reader = imageio.get_reader(gif)
    frames = list(reader.iter_data())
    # each episode: its reset frame, then one per step; Pillow merges identical neighbours into
    # one longer frame, so count frames by time (Mini-Pacman renders at 8 fps: 125 ms a frame,
    # stored in GIF's hundredths of a second)
    expected = sum(lengths) + 2
    durations = [reader.get_meta_data(index=i)["duration"] for i in range(len(frames))]
    assert 1 < len(frames) <= expected
    assert abs(sum(durations) - expected * 125) <= 10 * len(frames)
    env = gym.make(ENV, render_mode="rgb_array")
    env.reset(seed=0)
    assert frames[0].shape[:2] == env.render().shape[:2] == (450, 532)


@pytest.mark.slow
def test_mp4_and_checkpoint_dir_and_module_dir_are_accepted(run_dir, tmp_path, capsys):
    mp4 = tmp_path / "play.mp4"
    ckpt = run_dir / "checkpoint"
    assert main(["--checkpoint", str(ckpt), "--max-steps", "6", "--video", str(mp4)]) == 0
    frames = list(imageio.get_reader(mp4).iter_data())  # len() of an mp4 reader is inf
    assert len(frames) == 7 and frames[0].shape == (450, 532, 3)
    # the module dir itself: the run's config.yaml is found four levels up
    assert find_checkpoint(ckpt / MODULE_SUBDIR) == (ckpt / MODULE_SUBDIR, ckpt)
    assert load_policy(ckpt / MODULE_SUBDIR).env_spec == ENV
    # a run dir without the final checkpoint: the newest checkpoint below it
    other = tmp_path / "runs"
    (other / "checkpoint_000001").mkdir(parents=True)
    os.symlink(ckpt / "learner_group", other / "checkpoint_000001" / "learner_group")
    assert find_checkpoint(other)[1] == other / "checkpoint_000001"


@pytest.mark.slow
def test_same_seed_same_scores(run_dir, capsys):
    def scores(*extra: str) -> list[str]:
        args = ["--checkpoint", str(run_dir), "--episodes", "3", "--max-steps", "40", *extra]
        assert main(args) == 0
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if line.startswith(("episode", "mean"))]
        return [line.split("  (")[0] for line in lines]  # without the steps/s

    first = scores("--deterministic", "--seed", "7")
    assert len(first) == 4
    assert scores("--deterministic", "--seed", "7") == first
    sampled = scores("--seed", "7")
    assert scores("--seed", "7") == sampled
    # and the seed is used: another seed plays other games (the env's starts and the sampling)
    assert scores("--deterministic", "--seed", "8") != first
    assert scores("--seed", "8") != sampled


@pytest.mark.slow
def test_attention_frames_are_wider_and_the_heat_map_changes(run_dir):
    policy = load_policy(run_dir)
    env = make_rollout_env(ENV, {}, frames=True)
    common = {"episodes": 1, "seed": 3, "deterministic": True, "max_steps": 12}
    plain, plain_results = _frames(policy, env, **common)
    with_attention, att_results = _frames(policy, env, attention=True, **common)
    assert [r.episode_return for r in att_results] == [r.episode_return for r in plain_results]
    assert len(with_attention) == len(plain)
    h, w = plain[0].shape[:2]
    assert with_attention[0].shape[1] > w and with_attention[0].shape[0] >= h
    for a, p in zip(with_attention, plain, strict=True):
        np.testing.assert_array_equal(a[:h, :w], p)  # the game, unchanged, on the left
    # the main heat map (first rows of the panel below its title) changes between steps
    view = AttentionView(2, 2 + 9, 2, image_grid=(3, 3), height=h)
    top, bottom = view.map_y, view.map_y + 2 * view.ch
    left, right = w + view.left, w + view.left + view.map_w
    maps = [f[top:bottom, left:right] for f in with_attention[1:]]
    assert any(not np.array_equal(maps[0], m) for m in maps[1:])
    assert not np.array_equal(with_attention[0][top:bottom, left:right], maps[0])


@pytest.mark.slow
def test_attention_is_the_cores_own_and_state_is_fed_back(run_dir):
    """The probe's weights equal the core's return_attention output on the same inputs; stepping
    with STATE_OUT -> STATE_IN gives the logits of one unroll over the whole sequence."""
    policy = load_policy(run_dir)
    module = policy.module
    env = make_rollout_env(ENV, {}, frames=False)
    stepper = PolicyStepper(module, deterministic=True, attention=True)
    obs, _ = env.reset(seed=11)
    observations, weights, logits_per_step = [], [], []
    for _ in range(15):
        observations.append(obs)
        action, w = stepper.act(obs)
        weights.append(w)
        logits_per_step.append(stepper.last_dist_inputs[0].numpy())
        obs, *_ = env.step(action)
    xs = torch.as_tensor(np.stack(observations))[None]  # [1, T, ...]
    state0 = {k: torch.as_tensor(v)[None] for k, v in module.get_initial_state().items()}
    with torch.no_grad():
        feats = module.encoder(xs[0]).unsqueeze(0)
        _, _, ref = module.core.unroll(feats, state0["s0"], return_attention=True)
        logits = module.forward_inference({Columns.OBS: xs, Columns.STATE_IN: state0})
    np.testing.assert_allclose(np.stack(weights), ref[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.stack(logits_per_step),
        logits[Columns.ACTION_DIST_INPUTS][0].numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert not torch.equal(stepper.state["s0"], state0["s0"])


@pytest.mark.slow
def test_human_window_runs_headless(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    args = ["--checkpoint", str(run_dir), "--render", "human", "--max-steps", "5", "--fps", "1000"]
    assert main([*args, "--attention"]) == 0
    assert "mean over 1 episode(s)" in capsys.readouterr().out


@pytest.mark.slow
def test_corrupt_checkpoint_is_one_error_line(run_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir / "checkpoint", broken)
    state = broken / MODULE_SUBDIR / "module_state.pkl"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    assert main(["--checkpoint", str(broken)]) == 2
    line = _one_error_line(capsys)
    assert "cannot load the policy" in line and str(broken) in line
    state.write_bytes(b"not a pickle at all")  # garbage
    assert main(["--checkpoint", str(broken)]) == 2
    assert "cannot load the policy" in _one_error_line(capsys)


@pytest.mark.slow
def test_export_writes_a_policy_without_pickles_that_plays_the_same(run_dir, tmp_path, capsys):
    """``python -m rmc_agents.export`` on a real run: safetensors and a JSON card only; the
    rollout CLI plays it (env from the card) with the scores the run's checkpoint gives."""
    import json

    from rmc_agents.export import main as export_main

    to = tmp_path / "agent"
    args = ["--run", str(run_dir), "--to", str(to), "--episodes", "2", "--which", "final"]
    assert export_main(args) == 0
    assert sorted(p.name for p in to.iterdir()) == [
        "README.md",
        "config.yaml",
        "model.safetensors",
        "policy.json",
    ]
    card = json.loads((to / "policy.json").read_text())
    assert card["env"] == ENV and card["core"] == "rmc" and card["evaluation"]["episodes"] == 2
    assert card["observation_space"]["shape"] == [5, 5, 3] and card["action_space"]["n"] == 5
    assert {"commit", "dirty", "versions"} <= set(card["written_with"])
    spread = card["slot_spread"]  # the RMC's memory over the same episodes, from step 10 on
    assert spread["from_step"] == 10 and 1 <= spread["episodes"] <= 2
    assert 0.0 <= spread["lowest_episode_mean"] <= spread["mean"] + 1e-12
    assert "memory slots" in (to / "README.md").read_text()
    capsys.readouterr()
    scores = []
    for path in (to, run_dir):
        assert main(["--checkpoint", str(path), "--episodes", "2", "--seed", "3"]) == 0
        out = capsys.readouterr().out
        scores.append([line for line in out.splitlines() if line.startswith("episode")])
    assert scores[0] == scores[1]


@pytest.mark.slow
def test_wrong_env_for_the_policy_is_named(run_dir, capsys):
    assert main(["--checkpoint", str(run_dir), "--env", "MiniPacman-Full-v0"]) == 2
    line = _one_error_line(capsys)
    assert "MiniPacman-Full-v0" in line and "(15, 19, 3)" in line


# --- without training ---------------------------------------------------------------------------


def test_missing_path_and_empty_dir_and_bad_options(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["--checkpoint", str(missing)]) == 2
    assert "does not exist" in _one_error_line(capsys)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    assert main(["--checkpoint", str(empty)]) == 2
    assert "no checkpoint found" in _one_error_line(capsys)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["--checkpoint", str(afile)]) == 2
    assert "not a directory" in _one_error_line(capsys)
    assert main(["--checkpoint", str(empty), "--video", str(tmp_path / "x.avi")]) == 2
    assert "x.avi" in _one_error_line(capsys)
    assert main(["--checkpoint", str(empty), "--episodes", "0"]) == 2
    assert "--episodes" in _one_error_line(capsys)


def test_attention_with_a_non_rmc_policy_is_an_error(tmp_path, capsys):
    env = gym.make(ENV)
    path = _save_module(tmp_path, "lstm", env.observation_space, int(env.action_space.n))
    gif = str(tmp_path / "x.gif")
    # a bare module dir: no run config, so the env must be named
    assert main(["--checkpoint", str(path), "--video", gif]) == 2
    assert "--env" in _one_error_line(capsys)
    assert main(["--checkpoint", str(path), "--env", ENV, "--attention", "--video", gif]) == 2
    line = _one_error_line(capsys)
    assert "RMC" in line and "'lstm'" in line
    assert not Path(gif).exists()
    # without --attention the LSTM plays
    assert main(["--checkpoint", str(path), "--env", ENV, "--max-steps", "3", "--video", gif]) == 0
    assert 1 < len(list(imageio.get_reader(gif).iter_data())) <= 4


def test_env_without_frames_is_an_error_only_when_frames_are_asked(tmp_path, capsys):
    env_id = "rmc_agents.rl.toy_envs:CueRecall"
    path = _save_module(tmp_path, "mlp", gym.spaces.Box(0.0, 1.0, (3,), np.float32), 2)
    assert main(["--checkpoint", str(path), "--env", env_id, "--episodes", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "episode 2/2" in out
    assert (
        main(["--checkpoint", str(path), "--env", env_id, "--video", str(tmp_path / "a.gif")]) == 2
    )
    assert "cannot render frames" in _one_error_line(capsys)


def test_cli_module_entry_point_prints_no_traceback(tmp_path):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.run(
        [sys.executable, "-m", "rmc_agents.rollout", "--checkpoint", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_attention_view_draws_fast_and_maps_weights_to_colours():
    import time

    view = AttentionView(4, 4 + 9, num_heads=4, image_grid=(3, 3), height=450)
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(13), size=(1, 4, 13))
    panel = view.draw(weights, step=1)
    assert panel.dtype == np.uint8 and panel.shape[0] >= 450
    # the main map's first cell is the colour of the mean weight (slot 0 -> key 0)
    cell = panel[view.map_y + 1, view.left + 1]
    np.testing.assert_array_equal(cell, colour_map(weights[0, :, 0, 0].mean()))
    np.testing.assert_array_equal(colour_map(0.0), colour_map(np.float64(0.0)))
    assert tuple(colour_map(1.0)) != tuple(colour_map(0.0))
    start = time.perf_counter()
    for step in range(300):
        side_by_side(np.zeros((450, 532, 3), np.uint8), view.draw(weights, step))
    assert time.perf_counter() - start < 5.0  # about 1 ms a frame; generous for a busy machine
    with pytest.raises(ValueError, match="expected"):
        view.draw(np.ones((1, 2, 13, 13)))
    # an episode's first frame: no weights yet; the panel says so instead of an empty map
    start_panel = view.draw(None, step=0)
    assert start_panel.shape == panel.shape
    assert not np.array_equal(start_panel, view.draw(np.zeros((1, 4, 13, 13)), step=0))


def _rmc_module(obs_space: gym.Space, n_actions: int = 5):
    return RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=obs_space,
        action_space=gym.spaces.Discrete(n_actions),
        model_config={
            "core": "rmc",
            "core_kwargs": {"mem_slots": 3, "head_size": 4, "num_heads": 2},
            "max_seq_len": 4,
        },
    ).build()


def test_attention_view_fits_a_dict_observation_policy():
    """Image cells plus one row for the flat parts: the view sizes itself from the module."""
    from rmc_agents.rollout import _attention_view_for

    space = gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (5, 6, 3), np.uint8),
            "direction": gym.spaces.Discrete(4),
        }
    )
    module = _rmc_module(space)
    stepper = PolicyStepper(module, attention=True)
    _, weights = stepper.act(space.sample())
    assert weights.shape == (1, 2, 3 + 3 * 4 + 1, 3 + 3 * 4 + 1)  # 3x4 cells + the flat row
    view = _attention_view_for(module, frame_height=100)
    assert view.num_keys == 16 and view.image_grid == (3, 4)
    assert view.draw(weights, step=1).shape == (view.height, view.width, 3)


def test_previous_action_and_reward_inputs_are_rebuilt_like_rllib():
    """A policy trained with RLlib's PrevActionsPrevRewards sees zeros at the episode start,
    then the one-hot previous action and the previous reward."""
    obs_space = gym.spaces.Box(0.0, 1.0, (5, 5, 3), np.float32)
    space = gym.spaces.Dict(
        {
            "_orig_obs": obs_space,
            "prev_n_actions": gym.spaces.Box(0.0, 1.0, (5,), np.float32),
            "prev_n_rewards": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )
    stepper = PolicyStepper(_rmc_module(space))
    obs = obs_space.sample()
    first = stepper._with_prev_inputs(obs)
    np.testing.assert_array_equal(first["prev_n_actions"], np.zeros(5))
    np.testing.assert_array_equal(first["prev_n_rewards"], [0.0])
    action, _ = stepper.act(obs)
    stepper.observe_reward(action, 2.5)
    later = stepper._with_prev_inputs(obs)
    np.testing.assert_array_equal(later["prev_n_actions"], np.eye(5)[action])
    np.testing.assert_array_equal(later["prev_n_rewards"], [2.5])
    stepper.reset()
    np.testing.assert_array_equal(stepper._with_prev_inputs(obs)["prev_n_actions"], np.zeros(5))


def test_every_episode_starts_from_a_fresh_policy_state(monkeypatch):
    """``play`` resets the memory and the previous action and reward between episodes: each
    episode's first step gives the logits of a fresh stepper on the same observation (the cards'
    100-episode scores and ``--episodes N`` rest on it)."""

    torch.manual_seed(0)
    obs_space = gym.spaces.Box(0.0, 1.0, (5, 5, 3), np.float32)
    space = gym.spaces.Dict(
        {
            "_orig_obs": obs_space,
            "prev_n_actions": gym.spaces.Box(0.0, 1.0, (5,), np.float32),
            "prev_n_rewards": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )
    module = _rmc_module(space)
    steps = _record_steps(monkeypatch)
    env = gym.make(ENV)
    results = play(_loaded(module), env, episodes=3, seed=4, max_steps=12)
    assert [r.length for r in results] == [12, 12, 12] and len(steps) == 36
    monkeypatch.undo()
    for first in (0, 12, 24):
        obs, logits = steps[first]
        fresh = PolicyStepper(module)
        fresh.act(obs)
        torch.testing.assert_close(logits, fresh.last_dist_inputs, rtol=0, atol=1e-7)
    # and the check can fail: a step inside an episode is not a fresh start
    obs, logits = steps[5]
    fresh = PolicyStepper(module)
    fresh.act(obs)
    assert not torch.allclose(logits, fresh.last_dist_inputs, rtol=0, atol=1e-7)


def test_without_memory_every_step_acts_from_the_initial_state(monkeypatch):
    """``play(memory=False)`` (``bench/memory_use.py``'s ablation): every step's logits are a
    fresh stepper's on that observation, while the state each step leaves is still reported."""

    torch.manual_seed(0)
    module = _rmc_module(gym.make(ENV).observation_space)
    steps = _record_steps(monkeypatch)
    states: list[torch.Tensor] = []
    env = gym.make(ENV)
    kwargs = {"episodes": 1, "seed": 4, "max_steps": 10}
    play(
        _loaded(module),
        env,
        memory=False,
        on_state=lambda i, t, s: states.append(s["s0"]),
        **kwargs,
    )
    assert len(steps) == len(states) == 10
    initial = torch.as_tensor(module.get_initial_state()["s0"])
    assert not torch.allclose(states[-1][0], initial)  # the step still writes a memory
    # (a copy: the fresh steppers' own steps are recorded too)
    for obs, logits in list(steps):
        fresh = PolicyStepper(module)
        fresh.act(obs)
        torch.testing.assert_close(logits, fresh.last_dist_inputs, rtol=0, atol=1e-7)
    # with its memory, a later step is not a fresh start (the check above can fail)
    steps.clear()
    play(_loaded(module), env, **kwargs)
    obs, logits = steps[5]
    fresh = PolicyStepper(module)
    fresh.act(obs)
    assert not torch.allclose(logits, fresh.last_dist_inputs, rtol=0, atol=1e-7)


def _record_steps(monkeypatch) -> list[tuple[np.ndarray, torch.Tensor]]:
    """From now on every ``PolicyStepper.act`` (of every stepper, fresh ones made to compare
    included: walk a copy of the list) appends its observation and logits to the list returned."""
    from rmc_agents.rollout import playing

    steps: list[tuple[np.ndarray, torch.Tensor]] = []
    act = playing.PolicyStepper.act

    def recording_act(self, obs):
        out = act(self, obs)
        steps.append((np.array(obs), self.last_dist_inputs.clone()))
        return out

    monkeypatch.setattr(playing.PolicyStepper, "act", recording_act)
    return steps


def _loaded(module):
    from rmc_agents.rollout.checkpoints import LoadedPolicy

    return LoadedPolicy(module=module, module_dir=Path("."), checkpoint=None, env_spec=ENV)


def test_the_cards_slot_spread_counts_steps_after_the_tenth_per_episode():
    from rmc_agents.export import _SlotSpread
    from rmc_agents.rl.diagnostics import slot_spread

    spread = _SlotSpread()
    same = torch.ones(1, 4, 8)  # four equal slots: spread 0
    apart = torch.eye(4, 8)[None]  # four orthogonal unit slots
    for step in range(1, 21):
        spread(0, step, {"s0": apart if step <= 10 else same})  # counted from step 11 on
        spread(1, step, {"s0": apart})
    spread(2, 3, {"s0": same})  # an episode of 3 steps: nothing counted
    summary = spread.summary()
    assert summary["episodes"] == 2 and summary["lowest_episode_mean"] == 0.0
    assert summary["mean"] == pytest.approx(float(slot_spread(apart)[0]) / 2)
    assert _SlotSpread().summary() is None
