"""The single-game Gymnasium face of Mini-Pacman (``MiniPacman-Viewport-v0``, ``MiniPacman-Full-v0``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .core import MODES, GameCore
from .encode import OBS_TYPES, Encoder
from .maps import map_tables
from .rng import key_from_generator

NUM_ACTIONS = 5
VIEWS = ("viewport", "full")
RENDER_FPS = 8


def check_options(
    view: str,
    mode: str,
    frame_cap: Any,
    viewport_size: Any,
    obs_type: str,
    render_mode: str | None,
    render_modes: list[str],
) -> int | None:
    """Validate the environment's keyword arguments; return the view size (None = full map).

    Raises:
        ValueError: naming the offending argument and value.
    """
    if view not in VIEWS:
        raise ValueError(f"Unknown view {view!r}; expected one of {list(VIEWS)}")
    if mode not in MODES:
        raise ValueError(f"Unknown Mini-Pacman mode {mode!r}; expected one of {list(MODES)}")
    if isinstance(frame_cap, bool) or not isinstance(frame_cap, int | np.integer) or frame_cap < 1:
        raise ValueError(f"frame_cap must be a positive integer, got {frame_cap!r}")
    if obs_type not in OBS_TYPES:
        raise ValueError(f"Unknown obs_type {obs_type!r}; expected one of {list(OBS_TYPES)}")
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"Unknown render_mode {render_mode!r}; expected one of {render_modes}")
    if view == "full":
        if viewport_size is not None:
            raise ValueError(
                f"viewport_size={viewport_size!r} applies only to MiniPacman-Viewport-v0; "
                "MiniPacman-Full-v0 always shows the whole 15x19 map"
            )
        return None
    if viewport_size is None:
        return 5
    if (
        isinstance(viewport_size, bool)
        or not isinstance(viewport_size, int | np.integer)
        or viewport_size < 3
        or viewport_size % 2 == 0
    ):
        raise ValueError(f"viewport_size must be an odd integer >= 3, got {viewport_size!r}")
    return int(viewport_size)


def observation_space(encoder: Encoder) -> spaces.Box:
    """Box(0, 1, (H, W, C), float32) of one game's observation."""
    return spaces.Box(0.0, 1.0, (*encoder.shape, encoder.channels), np.float32)


def check_action(action: Any) -> int:
    """The action as an int in 0..4, or a ValueError naming it."""
    try:
        value = int(action)
        ok = value == action and not isinstance(action, bool | float | str)
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= value < NUM_ACTIONS:
        raise ValueError(f"Invalid action {action!r}: expected an integer in Discrete(5), 0..4")
    return value


class MiniPacmanEnv(gym.Env):
    """Mini-Pacman, the game of DeepMind's Imagination-Augmented Agents (I2A) paper.

    ## Description
    Pacman walks a 15x19 maze eating food and power pills while ghosts chase it (and flee from it
    while it is powered). Five modes (``regular``, ``avoid``, ``hunt``, ``ambush``, ``rush``) use
    the same game with different rewards and level-advance conditions. With the viewport (the
    Relational RNN paper's partially observable variant) the agent sees only a window centred on
    Pacman; cells outside the map are shown as wall.

    ## Action Space
    ``Discrete(5)``: 0 stay, 1 right, 2 up, 3 left, 4 down. Moving into a wall keeps Pacman in place.

    ## Observation Space
    ``Box(0, 1, (H, W, C), float32)`` with (H, W) = (5, 5) (viewport, or ``viewport_size``) or
    (15, 19) (full map).

    | obs_type | C | cell encoding |
    |---|---|---|
    | ``rgb`` | 3 | I2A colours by priority: pacman (0,1,0) > ghost (1,e,0) > pill (0,1,1) > food (0,0,1) > wall (1,1,1) > empty 0 |
    | ``planes`` | 6 | walls, food, pacman, ghost (1-e), edible ghost (e), pill |

    ``e = power / 20`` is the ghosts' edibility.

    ## Rewards
    Per mode, for a step / food / pill / eaten ghost / death: regular 0/1/2/5/0, avoid
    0.1/-0.1/-5/-10/-20, hunt 0/0/1/10/-20, ambush 0/-0.1/0/10/-20, rush 0/-0.1/10/0/0.

    ## Starting State
    Level 1: food on all 138 corridor cells, 2 pills and Pacman on random cells, one ghost outside
    the 11x11 box around Pacman. Each level adds speed (0.5 + 0.1 (level-1)) and, every second
    level, a ghost.

    ## Episode End
    Terminated when a ghost catches Pacman (power 0); truncated after ``frame_cap`` steps.

    ## Arguments
    ``mode`` (default ``regular``), ``frame_cap`` (3000), ``viewport_size`` (odd >= 3, viewport
    id only, default 5), ``obs_type`` (``rgb`` or ``planes``), ``render_mode`` (``human`` or
    ``rgb_array``).

    ## Info
    ``score`` (summed reward of the episode), ``level``, ``power``, ``food_left``,
    ``pills_left``, ``ghosts`` (alive), ``pacman`` (row, col), ``mode``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": RENDER_FPS}

    def __init__(
        self,
        view: str = "viewport",
        mode: str = "regular",
        frame_cap: int = 3000,
        viewport_size: int | None = None,
        obs_type: str = "rgb",
        render_mode: str | None = None,
    ):
        size = check_options(
            view, mode, frame_cap, viewport_size, obs_type, render_mode,
            self.metadata["render_modes"],
        )  # fmt: skip
        self.view, self.mode, self.frame_cap, self.viewport_size = view, mode, frame_cap, size
        self.obs_type, self.render_mode = obs_type, render_mode
        self._core = GameCore(mode, frame_cap)
        self._encoder = Encoder(size, obs_type)
        self._rc = [tuple(int(x) for x in rc) for rc in map_tables().rc]
        self.observation_space = observation_space(self._encoder)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._keyed = False
        self._started = False
        self._renderer = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new episode; with ``seed``, restart the game's own random stream from it."""
        super().reset(seed=seed)
        if seed is not None or not self._keyed:
            self._core.set_keys(key_from_generator(self.np_random))
            self._keyed = True
        self._core.reset()
        self._started = True
        if self.render_mode == "human":
            self.render()
        return self._observation(), self._info()

    def step(self, action):
        """One game step (in the order of docs/environments.md). Returns obs, reward, terminated, truncated, info."""
        if type(action) is not int or not 0 <= action < NUM_ACTIONS:
            action = check_action(action)
        if not self._started:
            raise RuntimeError("MiniPacmanEnv.step() called before reset(); call reset() first")
        reward, terminated, truncated = self._core.step(action)
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward, terminated, truncated, self._info()

    def render(self):
        """``rgb_array``: an HxWx3 uint8 picture of the whole map with a status line (and the
        agent's window outlined for the viewport id); ``human``: the same in a window."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode= to make()")
            return None
        if not self._started:
            raise RuntimeError("MiniPacmanEnv.render() called before reset(); call reset() first")
        if self._renderer is None:
            from .render import Renderer

            self._renderer = Renderer(self.render_mode, self.metadata["render_fps"])
        return self._renderer.draw(self._core.lane(0), self.viewport_size, self.mode)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ helpers
    def _observation(self) -> np.ndarray:
        c = self._core
        return self._encoder.encode_one(c.p, np.frombuffer(c.cs, np.uint16), c.G, c.A, c.power)

    def _info(self) -> dict:
        c = self._core
        return {
            "score": c.score,
            "level": c.level,
            "power": c.power,
            "food_left": c.food_left,
            "pills_left": c.pills_left,
            "ghosts": c.ghosts_left,
            "pacman": self._rc[c.p],
            "mode": self.mode,
        }

    def place(self, **position) -> tuple[np.ndarray, dict]:
        """Set a constructed position (see ``GameCore.place``); returns the new obs and info."""
        if not self._started:
            raise RuntimeError("call reset() before place()")
        self._core.place(0, **position)
        return self._observation(), self._info()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_renderer"] = None  # a pygame window cannot travel
        return state
