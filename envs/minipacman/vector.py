"""The vector face: N Mini-Pacman games stepped by one batched numpy core.

Reach it with ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``. Game ``i``
of a batch reset with ``seed=s`` is seeded ``s + i`` (Gymnasium's convention) and replays exactly
the single environment seeded ``s + i``. Autoreset follows Gymnasium 1.x: ``NEXT_STEP`` (default),
``SAME_STEP`` (final observation and info in ``info["final_obs"]``/``info["final_info"]``) or
``DISABLED`` (reset finished games with ``reset(options={"reset_mask": mask})``).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .core import GameCore
from .encode import Encoder
from .env import NUM_ACTIONS, RENDER_FPS, check_options, observation_space
from .maps import map_tables
from .rng import key_from_generator

INFO_KEYS = ("score", "level", "power", "food_left", "pills_left", "ghosts", "pacman", "mode")


class MiniPacmanVectorEnv(VectorEnv):
    """N Mini-Pacman games in one batched core (same arguments as ``MiniPacmanEnv``, plus
    ``num_envs`` and ``autoreset_mode``). ``rgb_array`` rendering returns one frame per game."""

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        view: str = "viewport",
        mode: str = "regular",
        frame_cap: int = 3000,
        viewport_size: int | None = None,
        obs_type: str = "rgb",
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        size = check_options(
            view, mode, frame_cap, viewport_size, obs_type, render_mode,
            self.metadata["render_modes"],
        )  # fmt: skip
        try:
            autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(
                f"Unknown autoreset_mode {autoreset_mode!r}; expected one of "
                f"{[m.value for m in AutoresetMode]}"
            ) from None
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.num_envs = n = int(num_envs)
        self.view, self.mode, self.frame_cap, self.viewport_size = view, mode, frame_cap, size
        self.obs_type, self.render_mode = obs_type, render_mode
        self.autoreset_mode = autoreset_mode
        self._core = GameCore(mode, frame_cap, num_games=n)
        self._encoder = Encoder(size, obs_type)
        self.single_observation_space = observation_space(self._encoder)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self._rc = map_tables().rc
        self._mode_array = np.full(n, mode)
        self._keyed = np.zeros(n, bool)
        self._autoreset = np.zeros(n, bool)
        self._started = False
        self._renderer = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Reset all games (or those in ``options["reset_mask"]``); ``seed`` s seeds game i
        with s + i, a list seeds each game with its own entry."""
        n = self.num_envs
        if seed is not None:
            seeds = [seed + i for i in range(n)] if isinstance(seed, int) else list(seed)
            if len(seeds) != n:
                raise ValueError(f"reset(seed=...) needs {n} seeds, got {len(seeds)}: {seed!r}")
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
            for i, s in enumerate(seeds):
                if s is not None:
                    self._core.key[i] = key_from_generator(seeding.np_random(s)[0])
                    self._core.tick[i] = 0
                    self._keyed[i] = True
        if not self._keyed.all():
            fresh = np.flatnonzero(~self._keyed)
            rng = np.random.default_rng()
            self._core.set_keys([key_from_generator(rng) for _ in fresh], fresh)
            self._keyed[:] = True
        mask = np.ones(n, bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (n,) or mask.dtype != bool:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({n},), got {mask!r}"
                )
            if not self._started and not mask.all():
                raise ValueError("the first reset() must reset every game (reset_mask all True)")
        self._core.reset(mask)
        self._autoreset[mask] = False
        self._started = True
        return self._observation(), self._info()

    def step(self, actions):
        """Step every game; finished games autoreset per ``metadata["autoreset_mode"]``."""
        a = np.asarray(actions)
        n = self.num_envs
        if (
            a.shape != (n,)
            or a.dtype.kind not in "iu"
            or (n and (int(a.min()) < 0 or int(a.max()) >= NUM_ACTIONS))
        ):
            raise ValueError(
                f"Invalid actions {actions!r}: expected {n} integers in Discrete(5), 0..4"
            )
        if not self._started:
            raise RuntimeError("MiniPacmanVectorEnv.step() called before reset()")
        core = self._core
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._autoreset.any():
            resetting = self._autoreset
            live = ~resetting
            reward, terminated, truncated = core.step(a, live)
            terminated, truncated = terminated.copy(), truncated.copy()
            core.reset(resetting)
            reward = np.where(resetting, 0.0, reward)
            terminated, truncated = terminated & live, truncated & live
        else:
            reward, terminated, truncated = core.step(a)
            terminated = terminated.copy()
        done = terminated | truncated
        obs = self._observation()
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            final_info = self._info(done)
            idx = np.flatnonzero(done)
            final_obs = np.full(n, None, object)
            for i in idx:
                final_obs[i] = obs[i].copy()
            core.reset(done)
            obs[idx] = self._observation(idx)
            info = self._info()
            info.update(
                final_obs=final_obs, _final_obs=done, final_info=final_info, _final_info=done
            )
        else:
            info = self._info()
            if self.autoreset_mode == AutoresetMode.NEXT_STEP:
                self._autoreset = done
        return obs, reward, terminated, truncated, info

    def render(self):
        """``rgb_array``: a tuple with one uint8 frame per game (see ``MiniPacmanEnv.render``)."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from .render import Renderer

            self._renderer = Renderer("rgb_array", self.metadata["render_fps"])
        return tuple(
            self._renderer.draw(self._core.lane(i), self.viewport_size, self.mode)
            for i in range(self.num_envs)
        )

    def close_extras(self, **kwargs):
        self._renderer = None

    def place(self, lane: int, **position) -> None:
        """Set game ``lane`` to a constructed position (see ``GameCore.place``)."""
        self._core.place(lane, **position)

    # ------------------------------------------------------------------ helpers
    def _observation(self, idx=None) -> np.ndarray:
        c = self._core
        cs2d = c.cs.reshape(c.n, c.nc + 1)
        if idx is None:
            return self._encoder.encode(c.p, cs2d, c.G, c.A, c.power)
        return self._encoder.encode(c.p[idx], cs2d[idx], c.G[:, idx], c.A[:, idx], c.power[idx])

    def _info(self, mask: np.ndarray | None = None) -> dict:
        c = self._core
        values = {
            "score": c.score.copy(),
            "level": c.level.copy(),
            "power": c.power.copy(),
            "food_left": c.food_left.copy(),
            "pills_left": c.pills_left.copy(),
            "ghosts": c.ghosts_left.copy(),
            "pacman": self._rc[c.p],
            "mode": self._mode_array.copy(),
        }
        present = np.ones(self.num_envs, bool) if mask is None else mask
        info = {}
        for key, value in values.items():
            info[key] = value
            info["_" + key] = present
        return info

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_renderer"] = None
        return state
