"""Gymnasium-level tests of the Mini-Pacman ids, in the spirit of MiniGrid's tests/test_envs.py."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from minipacman import ENV_IDS
from minipacman.core import MODES

VEC = dict(vectorization_mode="vector_entry_point")


def rollout(env, actions, seed):
    """Step ``env`` through ``actions`` (resetting after an episode ends); return everything seen."""
    obs, info = env.reset(seed=seed)
    seen = [(obs, 0.0, False, False, info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(int(a))
        seen.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            seen.append((obs, 0.0, False, False, info))
    return seen


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


# ---------------------------------------------------------------- checker, spaces
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("mode", list(MODES))
def test_env_checker(env_id, mode):
    env = gym.make(env_id, mode=mode, disable_env_checker=True)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_checker_planes_and_render(env_id):
    env = gym.make(env_id, obs_type="planes", render_mode="rgb_array", disable_env_checker=True)
    check_env(env.unwrapped)


@pytest.mark.parametrize(
    "env_id,kwargs,shape",
    [
        ("MiniPacman-Viewport-v0", {}, (5, 5, 3)),
        ("MiniPacman-Viewport-v0", {"viewport_size": 7, "obs_type": "planes"}, (7, 7, 6)),
        ("MiniPacman-Full-v0", {}, (15, 19, 3)),
        ("MiniPacman-Full-v0", {"obs_type": "planes"}, (15, 19, 6)),
    ],
)
def test_spaces(env_id, kwargs, shape):
    env = gym.make(env_id, **kwargs)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, shape, np.float32)
    assert env.action_space == gym.spaces.Discrete(5)
    obs, info = env.reset(seed=1)
    assert obs.dtype == np.float32 and obs.shape == shape
    assert set(info) >= {"score", "level", "power", "food_left", "ghosts", "pacman", "mode"}
    venv = gym.make_vec(env_id, num_envs=3, **VEC, **kwargs)
    assert venv.observation_space == gym.spaces.Box(0.0, 1.0, (3, *shape), np.float32)
    assert venv.single_observation_space == env.observation_space
    assert venv.action_space == gym.spaces.MultiDiscrete([5, 5, 5])
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


# ---------------------------------------------------------------- determinism, vector == single
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory(env_id):
    actions = np.random.default_rng(0).integers(0, 5, 4000)
    first = rollout(gym.make(env_id, mode="avoid"), actions, seed=7)
    second = rollout(gym.make(env_id, mode="avoid"), actions, seed=7)
    assert_same(first, second)
    assert sum(s[2] or s[3] for s in first) >= 3  # several episodes ran
    other = rollout(gym.make(env_id, mode="avoid"), actions, seed=8)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=False))


@pytest.mark.parametrize("autoreset", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_lanes_equal_single_envs(env_id, autoreset):
    """Lane i of a vector env reset with seed s replays the single env seeded s + i."""
    n, steps, seed = 4, 3000, 11
    rng = np.random.default_rng(3)
    actions = rng.integers(0, 5, (steps, n))
    venv = gym.make_vec(env_id, num_envs=n, mode="hunt", autoreset_mode=autoreset, **VEC)
    singles = [gym.make(env_id, mode="hunt") for _ in range(n)]
    vobs, vinfo = venv.reset(seed=seed)
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=seed + i)
        np.testing.assert_array_equal(obs, vobs[i])
        assert info["pacman"] == tuple(vinfo["pacman"][i])
    pending = [False] * n
    episodes = 0
    for t in range(steps):
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions[t])
        for i, env in enumerate(singles):
            if pending[i]:  # NEXT_STEP: this step resets lane i
                obs, info = env.reset()
                reward, term, trunc = 0.0, False, False
                pending[i] = False
            else:
                obs, reward, term, trunc, info = env.step(int(actions[t, i]))
            if autoreset == AutoresetMode.SAME_STEP and (term or trunc):
                np.testing.assert_array_equal(vinfo["final_obs"][i], obs)
                assert vinfo["final_info"]["score"][i] == info["score"]
                assert vinfo["_final_obs"][i]
                obs, info = env.reset()
                episodes += 1
            elif autoreset == AutoresetMode.NEXT_STEP and (term or trunc):
                pending[i] = True
                episodes += 1
            np.testing.assert_array_equal(obs, vobs[i])
            assert (reward, term, trunc) == (vrew[i], vterm[i], vtrunc[i])
            for key in ("score", "level", "power", "food_left", "ghosts", "mode"):
                assert info[key] == vinfo[key][i], key
            assert info["pacman"] == tuple(vinfo["pacman"][i])
    assert episodes >= 10


def test_vector_info_convention_and_next_step_autoreset():
    venv = gym.make_vec("MiniPacman-Viewport-v0", num_envs=2, **VEC)
    venv.reset(seed=0)
    venv.unwrapped.place(0, pacman=(1, 1), ghosts=[(1, 2, "left")], food=[(13, 1)])
    obs, reward, term, trunc, info = venv.step(np.array([1, 0]))
    assert term.tolist() == [True, False]
    for key in ("score", "level", "power", "food_left", "ghosts", "pacman", "mode"):
        assert len(info[key]) == 2 and info["_" + key].tolist() == [True, True]
    assert info["pacman"].shape == (2, 2) and info["mode"].tolist() == ["regular"] * 2
    obs, reward, term, trunc, info = venv.step(np.array([1, 0]))  # lane 0 is reset here
    assert reward[0] == 0 and not term[0] and not trunc[0]
    assert info["score"][0] == 0 and info["level"][0] == 1 and info["food_left"][0] == 138


def test_vector_info_converts_to_per_game_dicts():
    """RLlib wraps vector envs in DictInfoToList; every game must get every key."""
    from gymnasium.wrappers.vector import DictInfoToList

    venv = DictInfoToList(gym.make_vec("MiniPacman-Viewport-v0", num_envs=3, mode="avoid", **VEC))
    _, infos = venv.reset(seed=0)
    _, _, _, _, infos = venv.step(np.array([1, 2, 3]))
    assert len(infos) == 3
    for info in infos:
        assert set(info) >= {"score", "level", "power", "food_left", "ghosts", "pacman", "mode"}
        assert info["mode"] == "avoid" and len(info["pacman"]) == 2


def test_vector_disabled_autoreset_with_reset_mask():
    venv = gym.make_vec("MiniPacman-Full-v0", num_envs=3, autoreset_mode="Disabled", **VEC)
    obs0, _ = venv.reset(seed=5)
    for _ in range(5):
        venv.step(np.array([1, 2, 3]))
    obs, info = venv.reset(options={"reset_mask": np.array([False, True, False])})
    assert info["score"][1] == 0 and info["food_left"][1] == 138
    single = gym.make("MiniPacman-Full-v0")
    single.reset(seed=6)
    for _ in range(5):
        single.step(2)
    np.testing.assert_array_equal(obs[1], single.reset()[0])


# ---------------------------------------------------------------- pickling
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_mid_episode(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=2)
    env.render()
    for a in [1, 4, 4, 3]:
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    actions = np.random.default_rng(1).integers(0, 5, 500)
    assert_same(rollout_from(env, actions), rollout_from(clone, actions))
    venv = gym.make_vec(env_id, num_envs=3, **VEC)
    venv.reset(seed=2)
    vclone = pickle.loads(pickle.dumps(venv))
    for a in np.random.default_rng(2).integers(0, 5, (200, 3)):
        x, y = venv.step(a), vclone.step(a)
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])


def rollout_from(env, actions):
    seen = []
    for a in actions:
        out = env.step(int(a))
        seen.append(out)
        if out[2] or out[3]:
            obs, info = env.reset()
            seen.append((obs, 0.0, False, False, info))
    return seen


# ---------------------------------------------------------------- viewport vs full
@pytest.mark.parametrize("size,obs_type", [(5, "rgb"), (7, "planes"), (3, "rgb")])
def test_viewport_is_crop_of_full_with_walls_outside(size, obs_type):
    full = gym.make("MiniPacman-Full-v0", obs_type=obs_type)
    view = gym.make("MiniPacman-Viewport-v0", viewport_size=size, obs_type=obs_type)
    wall = np.zeros(full.observation_space.shape[-1], np.float32)
    wall[:] = [1, 1, 1] if obs_type == "rgb" else [1, 0, 0, 0, 0, 0]
    half = size // 2
    actions = np.random.default_rng(4).integers(0, 5, 1500)
    for (fo, *_, finfo), (vo, *_, vinfo) in zip(
        rollout(full, actions, 9), rollout(view, actions, 9), strict=True
    ):
        padded = np.broadcast_to(wall, (15 + 2 * half, 19 + 2 * half, len(wall))).copy()
        padded[half : half + 15, half : half + 19] = fo
        r, c = finfo["pacman"]
        np.testing.assert_array_equal(vo, padded[r : r + size, c : c + size])
        assert finfo == vinfo


# ---------------------------------------------------------------- rendering
# What the picture must show at the centre of each kind of cell (render.py's palette, written out).
PICTURE = {
    (0, 0): (40, 50, 160),  # wall
    (1, 1): (255, 225, 0),  # pacman
    (13, 17): (230, 40, 40),  # ghost (power 0)
    (13, 2): (255, 150, 60),  # pill
    (1, 3): (230, 220, 200),  # food
    (1, 2): (0, 0, 0),  # empty corridor
}
PLACED = dict(pacman=(1, 1), ghosts=[(13, 17, "left")], food=[(1, 3), (13, 1)], pills=[(13, 2)])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.unwrapped.place(**PLACED)
    frame = env.render()
    cell, status = 28, 30
    assert frame.dtype == np.uint8 and frame.shape == (15 * cell + status, 19 * cell, 3)
    for (r, c), colour in PICTURE.items():
        centre = frame[r * cell + cell // 2, c * cell + cell // 2]
        assert tuple(centre) == colour, ((r, c), tuple(centre))
    window = (120, 255, 120)
    outline = (frame == window).all(axis=2)
    if env_id == "MiniPacman-Viewport-v0":  # the 5x5 window around (1, 1), cut at the map edge
        rows, cols = np.nonzero(outline)
        assert (rows.min(), cols.min()) == (0, 0)
        assert (rows.max(), cols.max()) == (4 * cell - 1, 4 * cell - 1)
    else:
        assert not outline.any()
    assert (frame[15 * cell :] != 0).any()  # the status line has text
    venv = gym.make_vec(env_id, num_envs=2, render_mode="rgb_array", **VEC)
    venv.reset(seed=0)
    frames = venv.render()
    assert len(frames) == 2 and frames[0].shape == frame.shape


def test_render_human_shows_the_rgb_array_picture():
    import pygame

    human = gym.make("MiniPacman-Viewport-v0", render_mode="human")
    picture = gym.make("MiniPacman-Viewport-v0", render_mode="rgb_array")
    assert human.metadata["render_fps"] > 0
    for env in (human, picture):
        env.reset(seed=0)
        env.unwrapped.place(**PLACED)
    human.render()
    shown = pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2)
    np.testing.assert_array_equal(shown, picture.render())
    human.close()
    assert not pygame.display.get_init()


def test_play_with_scripted_keys(monkeypatch, capsys):
    import pygame

    from minipacman import play
    from minipacman.env import MiniPacmanEnv

    keys = [pygame.K_RIGHT, pygame.K_DOWN, pygame.K_SPACE, pygame.K_r, pygame.K_a, pygame.K_ESCAPE]
    events = iter([pygame.event.Event(pygame.KEYDOWN, key=k) for k in keys])
    monkeypatch.setattr(pygame.event, "wait", lambda: next(events))
    calls = []
    step, reset = MiniPacmanEnv.step, MiniPacmanEnv.reset

    def recording_step(self, action):
        calls.append(("step", action, self.unwrapped.mode))
        return step(self, action)

    def recording_reset(self, **kwargs):
        calls.append(("reset", kwargs.get("seed")))
        return reset(self, **kwargs)

    monkeypatch.setattr(MiniPacmanEnv, "step", recording_step)
    monkeypatch.setattr(MiniPacmanEnv, "reset", recording_reset)
    play.main(["--seed", "1", "--mode", "hunt"])
    assert "arrows" in capsys.readouterr().out
    with pytest.raises(StopIteration):
        next(events)  # every scripted key was consumed
    # right, down, stay, then R restarts and A moves left; Esc quits
    assert calls == [
        ("reset", 1),
        ("step", 1, "hunt"),
        ("step", 4, "hunt"),
        ("step", 0, "hunt"),
        ("reset", None),
        ("step", 3, "hunt"),
    ]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_planes_equal_single(env_id):
    venv = gym.make_vec(env_id, num_envs=2, obs_type="planes", **VEC)
    single = gym.make(env_id, obs_type="planes")
    vobs, _ = venv.reset(seed=21)
    obs, _ = single.reset(seed=21)
    np.testing.assert_array_equal(vobs[0], obs)
    for a in np.random.default_rng(5).integers(0, 5, 300):
        vobs, _, vterm, vtrunc, _ = venv.step(np.array([a, 0]))
        obs, _, term, trunc, _ = single.step(int(a))
        np.testing.assert_array_equal(vobs[0], obs)
        if term or trunc:
            break


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "chase"}, "'chase'"),
        ({"viewport_size": 4}, "got 4"),
        ({"viewport_size": 1}, "got 1"),
        ({"viewport_size": 5.0}, "got 5.0"),
        ({"obs_type": "pixels"}, "'pixels'"),
        ({"frame_cap": 0}, "got 0"),
        ({"render_mode": "ansi"}, "'ansi'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("MiniPacman-Viewport-v0", **kwargs)
    with pytest.raises(ValueError, match=match):
        gym.make_vec("MiniPacman-Viewport-v0", num_envs=2, **VEC, **kwargs)


def test_viewport_size_on_full_id():
    with pytest.raises(ValueError, match="viewport_size=7"):
        gym.make("MiniPacman-Full-v0", viewport_size=7)


@pytest.mark.parametrize("action", [5, -1, 2.5, "up", None, True])
def test_bad_action(action):
    env = gym.make("MiniPacman-Viewport-v0", disable_env_checker=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Invalid action"):
        env.unwrapped.step(action)
    env.unwrapped.step(np.int64(2))  # numpy integers are fine


def test_bad_vector_actions():
    venv = gym.make_vec("MiniPacman-Viewport-v0", num_envs=2, **VEC)
    venv.reset(seed=0)
    for bad in (np.array([0, 5]), np.array([0, -1]), np.array([0.0, 1.0]), np.array([1, 2, 3])):
        with pytest.raises(ValueError, match="Invalid actions"):
            venv.step(bad)


def test_step_before_reset():
    env = gym.make("MiniPacman-Full-v0", disable_env_checker=True).unwrapped
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)
    venv = gym.make_vec("MiniPacman-Full-v0", num_envs=2, **VEC)
    with pytest.raises(RuntimeError, match="before reset"):
        venv.step(np.array([0, 0]))


def test_rendering_and_play_with_pygame_ce(monkeypatch):
    """MiniGrid brings pygame-ce, which installs under the import name ``pygame``: where it is the
    one imported, the picture and the keyboard loop must work with it too."""
    import pygame

    if not getattr(pygame, "IS_CE", False):
        pytest.skip("pygame here is not pygame-ce")
    env = gym.make("MiniPacman-Viewport-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.unwrapped.place(**PLACED)
    frame = env.render()
    assert tuple(frame[1 * 28 + 14, 1 * 28 + 14]) == PICTURE[(1, 1)]
    from minipacman import play

    events = iter([pygame.event.Event(pygame.KEYDOWN, key=k) for k in (pygame.K_RIGHT, pygame.K_q)])
    monkeypatch.setattr(pygame.event, "wait", lambda: next(events))
    play.main(["--seed", "0"])
