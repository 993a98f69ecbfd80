"""A one-game view of the Mini-Pacman core for the rule tests (either backend)."""

import numpy as np

from minipacman.core import GameCore


class Game:
    """A ``GameCore`` of either backend, placed and stepped one position at a time.

    ``backend="scalar"`` is the single-game core; ``"batch"`` the numpy core with ``n`` games that
    all get the same constructed position (so their outcomes differ only by their random draws).
    """

    def __init__(self, mode="regular", backend="scalar", n=1, frame_cap=3000, seed=0):
        self.scalar = backend == "scalar"
        self.n = 1 if self.scalar else n
        self.core = GameCore(mode, frame_cap, None if self.scalar else n)
        if self.scalar:
            self.core.set_keys(seed * 7919 + 17)
        else:
            self.core.set_keys(np.arange(n, dtype=np.uint64) * 7919 + seed * 7919 + 17)
        self.core.reset()

    def place(self, **position):
        for lane in range(self.n):
            self.core.place(lane, **position)
        return self

    def step(self, action=0):
        """Step all games; return lane 0's (reward, terminated, truncated) as Python values."""
        a = action if self.scalar else np.full(self.n, action)
        r, te, tr = self.core.step(a)
        if self.scalar:
            return r, te, tr
        self.last = (r, te, tr)
        return float(r[0]), bool(te[0]), bool(tr[0])

    def lane(self, i=0):
        return self.core.lane(i)

    def ghosts_rc(self, i=0):
        return [rc for rc, _ in self.core.lane(i)["ghosts"]]
