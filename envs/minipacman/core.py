"""The Mini-Pacman game rules (docs/environments.md), written once for N games at a time.

``GameCore(mode, frame_cap, num_games=N)`` keeps the state of N games in numpy arrays and steps
them together: one numpy operation per rule line, whatever N is. ``GameCore(mode, frame_cap)``
(``num_games=None``) keeps a single game in Python ints and lists. Both run the *same* rule methods
below; only the handful of primitives in ``_BatchOps``/``_ScalarOps`` (select, not, floor, any,
draws, refill) differ, and the rule code is written in the subset of Python that means the same on
numpy arrays and on Python scalars (``& | + * ==`` and flat table indexing). A single game through
numpy would pay about a microsecond per operation on one-element arrays; the scalar path pays tens
of nanoseconds, which is what makes the single environment fast.

State layout (per game): Pacman ``p``, ghosts in slots ``G[k], D[k], A[k]`` (cell, direction,
alive), all as corridor indices (see ``maps.py``); ``cs`` holds the cell contents, bit 0 food and
bit 1 pill, one row of ``nc + 1`` entries per game (the extra entry is a wall, for rendering).
Randomness comes from ``rng.py``: draws addressed by (key, tick, index), so game ``i`` of a batch
and a single game with the same key live through the same draws.
"""

from __future__ import annotations

import array
from dataclasses import dataclass

import numpy as np

from .maps import map_tables
from .rng import uniform_batch, uniform_scalar

POWER_DURATION = 20
NUM_PILLS = 2
RANDOM_TURN_PROB = 0.05
BASE_GHOST_SPEED = 0.5
GHOST_SPEED_STEP = 0.1
FOOD_BIT, PILL_BIT, WALL_CODE = 1, 2, 4

# Draw indices within one tick: ghost rolls use 0.., level set-ups these two offsets.
_DRAW_STEP, _DRAW_LEVEL_MID, _DRAW_LEVEL_END = 0, 1 << 18, 1 << 19


@dataclass(frozen=True)
class ModeRules:
    """Rewards and level-advance conditions of one mode (docs/environments.md)."""

    name: str
    step: float
    food: float
    pill: float
    eat_ghost: float
    killed: float
    clear_on_food: bool
    clear_on_ghosts: bool
    clear_on_pills: bool
    timer: int  # steps after which a new level starts; 0 = no timer


MODES: dict[str, ModeRules] = {
    "regular": ModeRules("regular", 0.0, 1.0, 2.0, 5.0, 0.0, True, False, False, 0),
    "avoid": ModeRules("avoid", 0.1, -0.1, -5.0, -10.0, -20.0, True, False, False, 128),
    "hunt": ModeRules("hunt", 0.0, 0.0, 1.0, 10.0, -20.0, False, True, False, 80),
    "ambush": ModeRules("ambush", 0.0, -0.1, 0.0, 10.0, -20.0, False, True, False, 80),
    "rush": ModeRules("rush", 0.0, -0.1, 10.0, 0.0, 0.0, False, False, True, 0),
}
DIRECTIONS = ("right", "up", "left", "down")


def ghost_count(level):
    """Ghosts at the start of ``level``: 1 + floor((level-1)/2)."""
    return 1 + (level - 1) // 2


class _ScalarOps:
    """Primitives for one game held in Python scalars."""

    @staticmethod
    def where(cond, a, b):
        return a if cond else b

    @staticmethod
    def lnot(x):
        return not x

    to_int = int
    any = bool

    @staticmethod
    def clip0(x):
        return x if x > 0 else 0

    @staticmethod
    def full(value, n):
        return value

    @staticmethod
    def max(x):
        return x

    @staticmethod
    def uniforms(core, offset, count, sel=None):
        key, tick = core.key, core.tick
        return [uniform_scalar(key, tick, offset + j) for j in range(count)]

    @staticmethod
    def lanes(mask):
        return None

    @staticmethod
    def get(value, sel):
        return value

    @staticmethod
    def put(core, name, sel, value):
        setattr(core, name, value)

    @staticmethod
    def put_row(rows, k, sel, value):
        rows[k] = value

    @staticmethod
    def refill(core, sel):
        cs = core.cs
        for j in range(core.nc):
            cs[j] = FOOD_BIT


class _BatchOps:
    """Primitives for N games held in numpy arrays."""

    where = staticmethod(np.where)
    lnot = staticmethod(np.logical_not)

    @staticmethod
    def to_int(x):
        return x.astype(np.int64)

    @staticmethod
    def any(x):
        return bool(x.any())

    @staticmethod
    def clip0(x):
        return np.maximum(x, 0)

    @staticmethod
    def full(value, n):
        return np.full(n, value, np.float64)

    @staticmethod
    def max(x):
        return int(x.max())

    @staticmethod
    def uniforms(core, offset, count, sel=slice(None)):
        return uniform_batch(core.key[sel], core.tick[sel], np.arange(offset, offset + count))

    @staticmethod
    def lanes(mask):
        return np.flatnonzero(mask)

    @staticmethod
    def get(value, sel):
        return value[sel]

    @staticmethod
    def put(core, name, sel, value):
        getattr(core, name)[sel] = value

    @staticmethod
    def put_row(rows, k, sel, value):
        rows[k, sel] = value

    @staticmethod
    def refill(core, sel):
        core.cs.reshape(core.n, core.nc + 1)[sel, : core.nc] = FOOD_BIT


class GameCore:
    """The state and rules of one game (``num_games=None``) or of N games stepped together.

    Args:
        mode: one of ``MODES``.
        frame_cap: steps after which an episode is truncated (>= 1).
        num_games: N for the batched numpy core, or None for a single game in Python scalars.

    Call ``set_keys`` (seeding), then ``reset``, then ``step`` repeatedly.
    """

    def __init__(self, mode: str, frame_cap: int, num_games: int | None = None):
        if mode not in MODES:
            raise ValueError(f"Unknown Mini-Pacman mode {mode!r}; expected one of {list(MODES)}")
        self.rules = MODES[mode]
        self.frame_cap = int(frame_cap)
        tables = map_tables()
        self.nc = nc = tables.nc
        self.scalar = num_games is None
        self.n = 1 if self.scalar else int(num_games)
        self.slots = 0
        if self.scalar:
            self._ops = _ScalarOps
            self._t = tables.as_lists()
            self.base = 0
            self.key, self.tick = 0, 0
            self.p = self.power = self.level = self.timer = self.frame = 0
            self.food_left = self.pills_left = self.ghosts_left = 0
            self.score = 0.0
            self.dead = False
            self.cs = array.array("H", [0] * nc + [WALL_CODE])
            self.G, self.D, self.A = [], [], []
        else:
            n = self.n
            self._ops = _BatchOps
            self._t = {k: getattr(tables, k) for k in tables.as_lists()}
            self.base = np.arange(n, dtype=np.int64) * (nc + 1)
            self.key = np.zeros(n, np.uint64)
            self.tick = np.zeros(n, np.uint64)
            zeros = np.zeros(n, np.int64)
            self.p, self.power, self.level, self.timer, self.frame = (
                zeros.copy() for _ in range(5)
            )
            self.food_left, self.pills_left, self.ghosts_left = (zeros.copy() for _ in range(3))
            self.score = np.zeros(n, np.float64)
            self.dead = np.zeros(n, bool)
            cs = np.zeros((n, nc + 1), np.uint16)
            cs[:, nc] = WALL_CODE
            self.cs = cs.reshape(-1)
            self.G = np.zeros((0, n), np.int64)
            self.D = np.zeros((0, n), np.int64)
            self.A = np.zeros((0, n), bool)

    # ------------------------------------------------------------------ seeding and reset
    def set_keys(self, keys, mask=None) -> None:
        """Give games new random-stream keys (from their seeds) and restart their ticks."""
        if self.scalar:
            self.key, self.tick = int(keys), 0
        else:
            mask = slice(None) if mask is None else mask
            self.key[mask] = np.asarray(keys, np.uint64)
            self.tick[mask] = 0

    def reset(self, mask=None) -> None:
        """Start a new episode (level 1) in the games selected by ``mask`` (default: all)."""
        o = self._ops
        if mask is None:
            mask = True if self.scalar else np.ones(self.n, bool)
        sel = o.lanes(mask)
        o.put(self, "tick", sel, o.get(self.tick, sel) + 1)
        o.put(self, "level", sel, 0)
        self._new_level(mask, _DRAW_LEVEL_MID)
        for name, value in (("score", 0.0), ("frame", 0), ("dead", False)):
            o.put(self, name, sel, value)

    # ------------------------------------------------------------------ rules
    def _ensure_slots(self, needed) -> None:
        """Grow the ghost slots so every game can hold ``needed`` ghosts (dead slots are inert)."""
        if needed <= self.slots:
            return
        extra = needed - self.slots
        if self.scalar:
            self.G += [0] * extra
            self.D += [0] * extra
            self.A += [False] * extra
        else:
            self.G = np.concatenate([self.G, np.zeros((extra, self.n), np.int64)])
            self.D = np.concatenate([self.D, np.zeros((extra, self.n), np.int64)])
            self.A = np.concatenate([self.A, np.zeros((extra, self.n), bool)])
        self.slots = needed

    def _new_level(self, mask, draw_offset: int) -> None:
        """Advance the selected games one level: refill food and pills, re-place Pacman and the
        ghosts (outside the safe box around Pacman), reset power and the level timer.

        Works on the selected games only (gathered by ``lanes``/``get``, written back by
        ``put``), so a batch pays for the few games that start a level, not for all N."""
        o, t, nc = self._ops, self._t, self.nc
        sel = o.lanes(mask)
        level = o.get(self.level, sel) + 1
        n_ghosts = ghost_count(level)
        self._ensure_slots(o.max(n_ghosts))
        u = o.uniforms(self, draw_offset, 3 + 2 * self.slots, sel)
        o.refill(self, sel)
        base = o.get(self.base, sel)
        pill1 = o.to_int(u[1] * nc)
        pill2 = (pill1 + 1 + o.to_int(u[2] * (nc - 1))) % nc  # a second, different cell
        self.cs[base + pill1] = FOOD_BIT | PILL_BIT
        self.cs[base + pill2] = FOOD_BIT | PILL_BIT
        p = o.to_int(u[0] * nc)
        far, far_count, max_far = t["far"], t["far_count"], map_tables().max_far
        for k in range(self.slots):
            o.put_row(self.G, k, sel, far[p * max_far + o.to_int(u[3 + 2 * k] * far_count[p])])
            o.put_row(self.D, k, sel, o.to_int(u[4 + 2 * k] * 4))
            o.put_row(self.A, k, sel, k < n_ghosts)
        for name, value in (
            ("level", level),
            ("p", p),
            ("ghosts_left", n_ghosts),
            ("food_left", nc),
            ("pills_left", NUM_PILLS),
            ("power", 0),
            ("timer", 0),
        ):
            o.put(self, name, sel, value)

    def step(self, actions, live=True):
        """Advance every game one step with ``actions`` (the step order of docs/environments.md).

        ``live`` (batched only) marks the games whose random stream advances; the others are
        about to be reset and their step is thrown away. Returns ``(reward, terminated,
        truncated)``: floats/bools for a single game, arrays for a batch.
        """
        o, t, m, nc = self._ops, self._t, self.rules, self.nc
        where, lnot = o.where, o.lnot
        # 1. power decrements, the step reward, the level timer
        self.tick = self.tick + live
        self.frame = self.frame + 1
        self.timer = self.timer + 1
        self.power = o.clip0(self.power - 1)
        reward = o.full(m.step, self.n)
        # 2. Pacman moves and eats what lies on its new cell
        p = t["pac_move"][self.p * 5 + actions]
        self.p = p
        cell = self.base + p
        content = self.cs[cell]
        self.cs[cell] = 0
        food = content & FOOD_BIT
        pill = content >> 1
        self.food_left = self.food_left - food
        if m.clear_on_food:
            # DeepMind's code eats the food first, and the last food starts the next level at once:
            # its new pills replace the one on this cell, which is neither eaten nor paid.
            pill = where(self.food_left == 0, 0, pill)
        self.pills_left = self.pills_left - pill
        reward = reward + food * m.food + pill * m.pill
        self.power = where(pill, POWER_DURATION, self.power)
        if m.clear_on_food:
            cleared = self.food_left == 0
            if o.any(cleared):
                self._new_level(cleared, _DRAW_LEVEL_MID)
                # The code then checks the *new* level's pills against the *new* Pacman: one
                # placed on a pill eats it in this step (the cell keeps its food).
                cell = self.base + self.p
                content = self.cs[cell]
                on_pill = where(cleared, content >> 1, 0)
                self.cs[cell] = where(on_pill, content & FOOD_BIT, content)
                self.pills_left = self.pills_left - on_pill
                reward = reward + on_pill * m.pill
                self.power = where(on_pill, POWER_DURATION, self.power)
            p = self.p
        elif m.clear_on_pills:
            self._maybe_new_level(self.pills_left == 0, _DRAW_LEVEL_MID)
            p = self.p
        # 3. each ghost in order: collision, else maybe move, then collision again
        powered = self.power > 0
        flee = o.to_int(powered)
        random_turn_allowed = lnot(powered)
        speed = BASE_GHOST_SPEED + GHOST_SPEED_STEP * (self.level - 1)
        speed = where(powered, speed * 0.5, speed)
        u = o.uniforms(self, _DRAW_STEP, 3 * self.slots)
        ghost_dir, random_dir, ghost_next, junction = (
            t["ghost_dir"],
            t["random_dir"],
            t["ghost_next"],
            t["junction"],
        )
        active = lnot(self.dead)
        G, D, A = self.G, self.D, self.A
        for k in range(self.slots):
            g, d, alive = G[k], D[k], A[k]
            if not o.any(alive):
                continue  # an empty slot changes nothing
            here = alive & active
            on = here & (g == p)
            sd = g * 4 + d
            chosen = ghost_dir[(sd * 2 + flee) * nc + p]
            # A ghost on Pacman's cell has no direction to him: DeepMind's code then keeps its
            # heading and draws no random turn (the whole choice sits under its `norm > 0`).
            turn = junction[g] & random_turn_allowed & lnot(on) & (u[3 * k + 1] < RANDOM_TURN_PROB)
            new_d = where(turn, random_dir[sd * 12 + o.to_int(u[3 * k + 2] * 12)], chosen)
            # A ghost Pacman walked onto still moves after killing him (DeepMind's code has no
            # stop after a death); an eaten one does not.
            moves = here & lnot(on & powered) & (u[3 * k] < speed)
            new_g = where(moves, ghost_next[g * 4 + new_d], g)
            G[k] = new_g
            D[k] = where(moves, new_d, d)
            caught = moves & (new_g == p)  # the ghost's own move ends on Pacman
            hit = on | caught
            eaten = hit & powered
            dies = hit & lnot(powered)
            # The death penalty is paid for every catch in this step, and the code looks twice per
            # ghost, before and after its move: a ghost Pacman walked onto that is still on his
            # cell after its move (at a junction, heading into a wall) pays it twice.
            catches = where(powered, 0, o.to_int(on) + o.to_int(caught))
            reward = reward + catches * m.killed + eaten * m.eat_ghost
            self.dead = self.dead | dies
            A[k] = alive & lnot(eaten)
            self.ghosts_left = self.ghosts_left - eaten
            active = active & lnot(eaten)  # Pacman eats at most one ghost per step
        # 4. level advance by ghosts eaten or by the mode's timer
        if m.clear_on_ghosts or m.timer:
            advance = self.ghosts_left == 0 if m.clear_on_ghosts else False
            if m.timer:
                advance = advance | (self.timer == m.timer)
            self._maybe_new_level(advance & lnot(self.dead), _DRAW_LEVEL_END)
        self.score = self.score + reward
        truncated = (self.frame >= self.frame_cap) & lnot(self.dead)
        return reward, self.dead, truncated

    def _maybe_new_level(self, mask, draw_offset: int) -> None:
        if self._ops.any(mask):
            self._new_level(mask, draw_offset)

    # ------------------------------------------------------------------ read-out
    def ghost_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Ghost cells and alive flags as ``[slots, N]`` arrays (for rendering/observations)."""
        if self.scalar:
            return (
                np.array(self.G, np.int64).reshape(-1, 1),
                np.array(self.A, bool).reshape(-1, 1),
            )
        return self.G, self.A

    def lane(self, i: int) -> dict:
        """A plain snapshot of game ``i``: positions as (row, col), food and pills as masks."""
        t = map_tables()
        get = (lambda v: v) if self.scalar else (lambda v: v[i])
        row = np.frombuffer(self.cs, np.uint16) if self.scalar else self.cs
        row = row[i * (self.nc + 1) : i * (self.nc + 1) + self.nc]
        food = np.zeros(t.index_of.shape, bool)
        pills = np.zeros(t.index_of.shape, bool)
        food[t.rc[:, 0], t.rc[:, 1]] = (row & FOOD_BIT) > 0
        pills[t.rc[:, 0], t.rc[:, 1]] = (row & PILL_BIT) > 0
        ghosts = [
            (tuple(int(x) for x in t.rc[get(self.G[k])]), DIRECTIONS[int(get(self.D[k]))])
            for k in range(self.slots)
            if get(self.A[k])
        ]
        return {
            "pacman": tuple(int(x) for x in t.rc[get(self.p)]),
            "ghosts": ghosts,
            "food": food,
            "pills": pills,
            "power": int(get(self.power)),
            "level": int(get(self.level)),
            "timer": int(get(self.timer)),
            "frame": int(get(self.frame)),
            "score": float(get(self.score)),
            "dead": bool(get(self.dead)),
            "food_left": int(get(self.food_left)),
            "pills_left": int(get(self.pills_left)),
            "ghosts_left": int(get(self.ghosts_left)),
        }

    # ------------------------------------------------------------------ constructed positions
    def place(
        self,
        lane: int = 0,
        *,
        pacman: tuple[int, int],
        ghosts: list[tuple[int, int, int | str]] = (),
        pills: list[tuple[int, int]] = (),
        food: str | list[tuple[int, int]] = "all",
        power: int = 0,
        level: int = 1,
        timer: int = 0,
        frame: int = 0,
    ) -> None:
        """Set game ``lane`` to a constructed position (for tests and demonstrations).

        ``ghosts`` are ``(row, col, direction)`` with direction 0..3 or a name in ``DIRECTIONS``;
        ``food`` is ``"all"``, ``"none"`` or a list of cells. The random stream is untouched.
        """
        t = map_tables()

        def cell(rc):
            r, c = rc
            if not (0 <= r < t.index_of.shape[0] and 0 <= c < t.index_of.shape[1]):
                raise ValueError(f"cell {rc!r} is outside the 15x19 map")
            j = int(t.index_of[r, c])
            if j == self.nc:
                raise ValueError(f"cell {rc!r} is a wall")
            return j

        content = np.zeros(self.nc, np.uint16)
        if food == "all":
            content[:] = FOOD_BIT
        elif food != "none":
            content[[cell(rc) for rc in food]] = FOOD_BIT
        for rc in pills:
            content[cell(rc)] |= PILL_BIT
        start = lane * (self.nc + 1)
        for j in range(self.nc):
            self.cs[start + j] = int(content[j])
        self._ensure_slots(len(ghosts))
        values = {
            "p": cell(pacman),
            "power": power,
            "level": level,
            "timer": timer,
            "frame": frame,
            "dead": False,
            "food_left": int((content & FOOD_BIT > 0).sum()),
            "pills_left": int((content & PILL_BIT > 0).sum()),
            "ghosts_left": len(ghosts),
        }
        for name, v in values.items():
            if self.scalar:
                setattr(self, name, v)
            else:
                getattr(self, name)[lane] = v
        for k in range(self.slots):
            if k < len(ghosts):
                r, c, d = ghosts[k]
                g, d, a = cell((r, c)), DIRECTIONS.index(d) if isinstance(d, str) else int(d), True
            else:
                g, d, a = 0, 0, False
            if self.scalar:
                self.G[k], self.D[k], self.A[k] = g, d, a
            else:
                self.G[k, lane], self.D[k, lane], self.A[k, lane] = g, d, a
