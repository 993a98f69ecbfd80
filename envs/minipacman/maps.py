"""The Mini-Pacman map and the lookup tables derived from it.

Every rule of the game that depends only on geometry (where Pacman lands for an action, which way a
ghost turns at a cell, where a ghost may be placed) is precomputed here once, so that the game core
only indexes tables. Positions in the game state are *corridor indices*: 0..137, the corridor cells
of the map in row-major order. Tables are flat (index arithmetic instead of tuples) so the same
indexing expression works on a numpy table with array indices and on a Python list with int indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAP_TEXT = """\
1111111111111111111
1000100000000010001
1010101111111010101
1000000000000000001
1010101111111010101
1010000000000000101
1011110111110111101
1000000111110000001
1011110111110111101
1010000000000000101
1010101111111010101
1000000000000000001
1010101111111010101
1000100000000010001
1111111111111111111"""

WALLS: np.ndarray = np.array([[int(ch) for ch in line] for line in MAP_TEXT.splitlines()], np.uint8)
HEIGHT, WIDTH = WALLS.shape

# Actions: 0 stay, 1 right, 2 up, 3 left, 4 down. Ghost directions are actions 1..4 minus one.
ACTION_DELTAS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (-1, 0), (0, -1), (1, 0))
DIR_DELTAS: tuple[tuple[int, int], ...] = ACTION_DELTAS[1:]
# Ghosts start outside the box DeepMind's code blocks with the slice [p-5 : p+5] on rows and
# columns: offsets -5..+4 from Pacman, an off-centre 10x10 box.
SAFE_DISTANCE = 5
RANDOM_TURN_SLOTS = 12  # a junction offers 2 or 3 choices; both divide 12


def reverse_dir(d: int) -> int:
    """The opposite of ghost direction ``d`` (right<->left, up<->down)."""
    return (d + 2) % 4


@dataclass(frozen=True)
class MapTables:
    """Flat rule tables over corridor indices (``nc`` corridor cells).

    Attributes:
        nc: number of corridor cells (138).
        rc: ``[nc, 2]`` (row, col) of each corridor cell.
        index_of: ``[H, W]`` corridor index of each map cell, ``nc`` for walls.
        pac_move: ``[nc*5]``: corridor index after action ``a`` from cell ``c`` at ``c*5+a``.
        ghost_next: ``[nc*4]``: cell one step in direction ``d`` (the cell itself if blocked).
        junction: ``[nc]``: the cell has three or more open directions.
        ghost_dir: ``[nc*4*2*nc]``: the deterministic new direction of a ghost on cell ``g`` heading
            ``d`` with Pacman on cell ``p``, at ``((g*4+d)*2+flee)*nc+p`` (corridor rule, or the
            chase/flee dot-product rule at junctions).
        random_dir: ``[nc*4*12]``: at ``(g*4+d)*12+q``, the ``floor(q*n/12)``-th of the ``n``
            directions a ghost may take at junction ``g`` heading ``d`` (the random turn).
        far: ``[nc*max_far]``: the cells outside the safe box of Pacman on ``p`` at ``p*max_far+j``.
        far_count: ``[nc]``: how many entries of ``far`` are valid for each ``p``.
    """

    nc: int
    rc: np.ndarray
    index_of: np.ndarray
    pac_move: np.ndarray
    ghost_next: np.ndarray
    junction: np.ndarray
    ghost_dir: np.ndarray
    random_dir: np.ndarray
    far: np.ndarray
    far_count: np.ndarray
    max_far: int

    def as_lists(self) -> dict[str, list]:
        """The tables as Python lists: indexing a list with an int is several times faster than
        indexing a numpy array, which is what the scalar (single game) path wants."""
        names = (
            "pac_move",
            "ghost_next",
            "junction",
            "ghost_dir",
            "random_dir",
            "far",
            "far_count",
        )
        return {name: getattr(self, name).tolist() for name in names}


def _open_dirs(r: int, c: int) -> list[int]:
    return [d for d, (dr, dc) in enumerate(DIR_DELTAS) if WALLS[r + dr, c + dc] == 0]


def _ghost_choice(avail: list[int], d: int, dr: int, dc: int, flee: bool) -> int:
    """The ghost movement rule (docs/environments.md), without the random turn."""
    if len(avail) == 1:
        return avail[0]
    if len(avail) == 2:
        if d in avail:
            return d
        return avail[1] if reverse_dir(d) == avail[0] else avail[0]
    cand = [a for a in avail if a != reverse_dir(d)]
    if dr == 0 and dc == 0:
        # Ghost on Pacman (he walked onto it): no direction to him, so DeepMind's code keeps the
        # heading, even one into a wall (the ghost then stays on his cell).
        return d
    # Dot product of each direction's unit vector with the vector to Pacman; normalising that
    # vector scales every product by the same positive number, so it cannot change the choice.
    score = [DIR_DELTAS[a][0] * dr + DIR_DELTAS[a][1] * dc for a in cand]
    best = min(score) if flee else max(score)
    return cand[score.index(best)]  # first of equal scores, as numpy's argmax/argmin


@lru_cache(maxsize=1)
def map_tables() -> MapTables:
    """Build (once) the rule tables of the standard map."""
    rc = np.argwhere(WALLS == 0).astype(np.int64)
    nc = len(rc)
    index_of = np.full(WALLS.shape, nc, np.int64)
    index_of[rc[:, 0], rc[:, 1]] = np.arange(nc)

    pac_move = np.zeros(nc * 5, np.int64)
    ghost_next = np.zeros(nc * 4, np.int64)
    junction = np.zeros(nc, bool)
    ghost_dir = np.zeros(nc * 4 * 2 * nc, np.int64)
    random_dir = np.zeros(nc * 4 * RANDOM_TURN_SLOTS, np.int64)
    for g, (r, c) in enumerate(rc):
        for a, (dr, dc) in enumerate(ACTION_DELTAS):
            j = index_of[r + dr, c + dc]
            pac_move[g * 5 + a] = g if j == nc else j
        for d in range(4):
            ghost_next[g * 4 + d] = pac_move[g * 5 + d + 1]
        avail = _open_dirs(r, c)
        junction[g] = len(avail) >= 3
        for d in range(4):
            for flee in (0, 1):
                start = ((g * 4 + d) * 2 + flee) * nc
                for p, (pr, pc) in enumerate(rc):
                    ghost_dir[start + p] = _ghost_choice(avail, d, pr - r, pc - c, bool(flee))
            cand = [a for a in avail if a != reverse_dir(d)] if junction[g] else avail
            assert RANDOM_TURN_SLOTS % len(cand) == 0, cand
            per = RANDOM_TURN_SLOTS // len(cand)
            for q in range(RANDOM_TURN_SLOTS):
                random_dir[(g * 4 + d) * RANDOM_TURN_SLOTS + q] = cand[q // per]

    far_lists = []
    for r, c in rc:
        dr, dc = rc[:, 0] - r, rc[:, 1] - c
        box = (
            (dr >= -SAFE_DISTANCE)
            & (dr < SAFE_DISTANCE)
            & (dc >= -SAFE_DISTANCE)
            & (dc < SAFE_DISTANCE)
        )
        outside = ~box
        far_lists.append(np.flatnonzero(outside))
    max_far = max(len(f) for f in far_lists)
    far = np.zeros(nc * max_far, np.int64)
    far_count = np.zeros(nc, np.int64)
    for p, f in enumerate(far_lists):
        assert len(f) > 0
        far[p * max_far : p * max_far + len(f)] = f
        far_count[p] = len(f)
    for arr in (
        rc,
        index_of,
        pac_move,
        ghost_next,
        junction,
        ghost_dir,
        random_dir,
        far,
        far_count,
    ):
        arr.setflags(write=False)
    return MapTables(
        nc,
        rc,
        index_of,
        pac_move,
        ghost_next,
        junction,
        ghost_dir,
        random_dir,
        far,
        far_count,
        max_far,
    )
