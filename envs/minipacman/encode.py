"""Observation encodings: the I2A RGB image and the six planes, over the full map or a viewport.

Each visible cell gets a small integer code (bit 0 food, bit 1 pill, bit 2 wall, bit 3 ghost,
bit 4 Pacman, plus 32 x power on ghost cells, since a ghost's colour depends on its edibility
``power / 20``); one ``np.take`` from a palette turns the codes into the observation. The palette
rows are written from the encoding rules of docs/environments.md (priority pacman > ghost > pill > food >
wall > empty), so there is no per-pixel loop.
"""

from __future__ import annotations

import numpy as np

from .core import FOOD_BIT, PILL_BIT, POWER_DURATION, WALL_CODE
from .maps import HEIGHT, WIDTH, map_tables

GHOST_BIT, PACMAN_BIT, POWER_SHIFT = 8, 16, 32
NUM_CODES = POWER_SHIFT * (POWER_DURATION + 1)
OBS_TYPES = ("rgb", "planes")
PLANE_NAMES = ("walls", "food", "pacman", "ghost", "edible_ghost", "pill")


def _cell_rgb(code: int) -> tuple[float, float, float]:
    e = np.float32((code // POWER_SHIFT) / POWER_DURATION)
    if code & PACMAN_BIT:
        return (0.0, 1.0, 0.0)
    if code & GHOST_BIT:
        g = np.float32(1.0 - (code // POWER_SHIFT) / POWER_DURATION)
        return (float(g + e), float(e), 0.0)  # (g + e, e, 0) as the I2A code sums its planes
    if code & PILL_BIT:
        return (0.0, 1.0, 1.0)
    if code & FOOD_BIT:
        return (0.0, 0.0, 1.0)
    if code & WALL_CODE:
        return (1.0, 1.0, 1.0)
    return (0.0, 0.0, 0.0)


def _cell_planes(code: int) -> tuple[float, ...]:
    e = (code // POWER_SHIFT) / POWER_DURATION
    ghost = bool(code & GHOST_BIT)
    return (
        float(bool(code & WALL_CODE)),
        float(bool(code & FOOD_BIT)),
        float(bool(code & PACMAN_BIT)),
        (1.0 - e) if ghost else 0.0,
        e if ghost else 0.0,
        float(bool(code & PILL_BIT)),
    )


def palette(obs_type: str) -> np.ndarray:
    """``[NUM_CODES, C]`` float32: the observation vector of every cell code."""
    cell = _cell_rgb if obs_type == "rgb" else _cell_planes
    return np.array([cell(code) for code in range(NUM_CODES)], np.float32)


class Encoder:
    """Builds observations of N games from the core's state.

    Args:
        view_size: None for the full 15x19 map, or the odd side of the window centred on Pacman.
        obs_type: ``"rgb"`` (HxWx3) or ``"planes"`` (HxWx6).
    """

    def __init__(self, view_size: int | None, obs_type: str):
        t = map_tables()
        self.nc = nc = t.nc
        self.palette = palette(obs_type)
        self.channels = self.palette.shape[1]
        if view_size is None:
            self.shape = (HEIGHT, WIDTH)
            rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
            rows = np.broadcast_to(rows, (nc, HEIGHT, WIDTH))
            cols = np.broadcast_to(cols, (nc, HEIGHT, WIDTH))
        else:
            self.shape = (view_size, view_size)
            r = view_size // 2
            dr, dc = np.mgrid[-r : r + 1, -r : r + 1]
            rows = t.rc[:, 0, None, None] + dr[None]
            cols = t.rc[:, 1, None, None] + dc[None]
        self.cells = cells = self.shape[0] * self.shape[1]
        inside = (rows >= 0) & (rows < HEIGHT) & (cols >= 0) & (cols < WIDTH)
        ci = np.full(rows.shape, nc, np.int64)  # nc = the wall entry of a state row
        ci[inside] = t.index_of[rows[inside], cols[inside]]
        # [nc, cells + 1]: state column shown at each view cell for Pacman on p; last = dump
        self.view_ci = np.concatenate([ci.reshape(nc, cells), np.full((nc, 1), nc)], axis=1)
        self.fixed = view_size is None
        # [nc * nc]: view cell of corridor cell g for Pacman on p at p*nc+g; `cells` if unseen
        pos = np.full((nc, nc), cells, np.int64)
        flat = self.view_ci[:, :cells]
        for p in range(nc):
            seen = flat[p] < nc
            pos[p, flat[p][seen]] = np.flatnonzero(seen)
        self.view_pos = pos.reshape(-1)
        self._view_pos_list = self.view_pos.tolist()
        self._out_shape = (*self.shape, self.channels)
        self._bases = None

    def codes(self, p, cs2d, G, A, power) -> np.ndarray:
        """``[N, cells + 1]`` uint16 cell codes (last column is a dump for unseen ghosts)."""
        n = cs2d.shape[0]
        if self._bases is None or len(self._bases[0]) != n:
            lane = np.arange(n, dtype=np.int64)
            self._bases = (lane * (self.nc + 1), lane * (self.cells + 1))
        state_base, lanes = self._bases
        if self.fixed:
            codes = np.take(cs2d, self.view_ci[0], axis=1)
        else:
            codes = np.take(cs2d, state_base[:, None] + self.view_ci[p])
        flat = codes.reshape(-1)
        if len(G):
            where_seen = np.where(A, self.view_pos[p * self.nc + G], self.cells)
            flat[lanes + where_seen] |= (GHOST_BIT + POWER_SHIFT * power).astype(np.uint16)
        flat[lanes + self.view_pos[p * (self.nc + 1)]] |= PACMAN_BIT
        return codes

    def encode(self, p, cs2d, G, A, power) -> np.ndarray:
        """``[N, H, W, C]`` float32 observations."""
        codes = self.codes(p, cs2d, G, A, power)[:, : self.cells]
        return np.take(self.palette, codes, axis=0).reshape(-1, *self.shape, self.channels)

    def encode_one(self, p: int, cs: np.ndarray, G: list, A: list, power: int) -> np.ndarray:
        """``[H, W, C]`` observation of a single game held in Python scalars (the same codes as
        ``codes``, without the cost of numpy calls on one-element arrays)."""
        codes = cs.take(self.view_ci[0 if self.fixed else p])
        nc, view_pos = self.nc, self._view_pos_list
        ghost = GHOST_BIT + POWER_SHIFT * power
        for g, alive in zip(G, A, strict=True):
            if alive:
                j = view_pos[p * nc + g]
                codes[j] = int(codes[j]) | ghost
        j = view_pos[p * (nc + 1)]
        codes[j] = int(codes[j]) | PACMAN_BIT
        return self.palette.take(codes[: self.cells], axis=0).reshape(self._out_shape)
