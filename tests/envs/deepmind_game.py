"""DeepMind's Mini-Pacman (``PillEater`` in the I2A release, ``common/deepmind.py``) written out
again rule by rule, as that code reads, for the golden-trajectory tests.

Nothing here comes from ``minipacman``: the map is typed in again, positions are (row, col)
pairs, ghosts are a list that loses an entry when one is eaten (as in the code), and each rule is
in the code's order, inside the step. The only shared thing is the *random numbers*: where the code
calls ``np.random``, this game asks ``draw(tick, index)`` for a uniform number, addressed the way
the environment's own stream is (``envs/minipacman/rng.py``: a tick per reset and per step, an
index per draw), and turns it into a choice by the conventions of ``docs/environments.md``:

- a cell "at random" is the ``floor(u * n)``-th of the ``n`` allowed cells in row-major order;
- the second pill takes another cell than the first (``(first + 1 + floor(u * (n - 1))) % n``);
- a ghost's first heading is uniform over the four real directions;
- ghost ``k`` of a level draws with its slot ``k`` (it keeps the slot after others are eaten).

Where the environment deliberately differs from the code (the table in ``docs/environments.md``),
this game follows the code and the tests say where they look away; the hunt/ambush timer is a
constructor argument (the code has none, the paper says 80).
"""

from __future__ import annotations

MAP = [
    "1111111111111111111",
    "1000100000000010001",
    "1010101111111010101",
    "1000000000000000001",
    "1010101111111010101",
    "1010000000000000101",
    "1011110111110111101",
    "1000000111110000001",
    "1011110111110111101",
    "1010000000000000101",
    "1010101111111010101",
    "1000000000000000001",
    "1010101111111010101",
    "1000100000000010001",
    "1111111111111111111",
]
WALL = [[ch == "1" for ch in row] for row in MAP]
H, W = len(MAP), len(MAP[0])
OPEN = [(r, c) for r in range(H) for c in range(W) if not WALL[r][c]]  # row-major
# The code's action ids: 1 stay, 2 right, 3 up, 4 left, 5 down (agent actions 0..4 plus one).
ACT = {1: (0, 0), 2: (0, 1), 3: (-1, 0), 4: (0, -1), 5: (1, 0)}
REVERSE = {2: 4, 3: 5, 4: 2, 5: 3}
DIR_NAMES = {2: "right", 3: "up", 4: "left", 5: "down"}

# mode: step, food, big pill, ghost eaten, death; ends level on: pills, ghosts, food; timer
MODES = {
    "regular": (0, 1, 2, 5, 0, False, False, True, -1),
    "avoid": (0.1, -0.1, -5, -10, -20, False, False, True, 128),
    "hunt": (0, 0, 1, 10, -20, False, True, False, -1),
    "ambush": (0, -0.1, 0, 10, -20, False, True, False, -1),
    "rush": (0, -0.1, 10, 0, 0, True, False, False, -1),
}

# Draw index offsets within a tick (the environment's addressing).
STEP_DRAWS, LEVEL_AFTER_PACMAN, LEVEL_AFTER_GHOSTS = 0, 1 << 18, 1 << 19


def moved(pos, action_id):
    dr, dc = ACT[action_id]
    r, c = pos[0] + dr, pos[1] + dc
    return pos if WALL[r][c] else (r, c)


class DeepMindGame:
    """One game. ``draw(tick, index) -> float in [0, 1)``; ``timer`` overrides the mode's."""

    def __init__(self, mode, draw, frame_cap=3000, timer=None):
        (
            self.step_reward,
            self.food_reward,
            self.big_pill_reward,
            self.ghost_hunt_reward,
            self.ghost_death_reward,
            self.all_pill_terminate,
            self.all_ghosts_terminate,
            self.all_food_terminate,
            self.timer_terminate,
        ) = MODES[mode]
        if timer is not None:
            self.timer_terminate = timer
        self.draw = draw
        self.frame_cap = frame_cap
        self.tick = 0
        self.slots = 0

    # ------------------------------------------------------------------ the code's set-up
    def start(self):
        self.tick += 1
        self.frame = 0
        self._init_level(1, LEVEL_AFTER_PACMAN)
        self.reward = 0
        self.pcontinue = 1

    def _init_level(self, level, offset):
        u = lambda j: self.draw(self.tick, offset + j)  # noqa: E731
        self.level = level
        self.food = [[0 if WALL[r][c] else 1 for c in range(W)] for r in range(H)]
        self.nfood = len(OPEN)
        first = int(u(1) * len(OPEN))
        second = (first + 1 + int(u(2) * (len(OPEN) - 1))) % len(OPEN)
        self.pills = [OPEN[first], OPEN[second]]
        self.pillman = OPEN[int(u(0) * len(OPEN))]
        self.nghosts = 1 + (level - 1) // 2
        self.slots = max(self.slots, self.nghosts)
        # The safe box: the code marks rows and columns [p-5 : p+5) as occupied.
        pr, pc = self.pillman
        free = [(r, c) for (r, c) in OPEN if not (pr - 5 <= r < pr + 5 and pc - 5 <= c < pc + 5)]
        self.ghosts = []
        for k in range(self.nghosts):
            pos = free[int(u(3 + 2 * k) * len(free))]
            self.ghosts.append({"pos": pos, "dir": 2 + int(u(4 + 2 * k) * 4), "slot": k})
        self.power = 0
        self.ghost_speed = 0.5 + 0.1 * (level - 1)
        self.timer = 0

    # ------------------------------------------------------------------ the code's events
    def _get_food(self, r, c, offset):
        self.reward += self.food_reward
        self.food[r][c] = 0
        self.nfood -= 1
        if self.nfood == 0 and self.all_food_terminate:
            self._init_level(self.level + 1, offset)

    def _get_pill(self, i, offset):
        self.pills.pop(i)
        self.reward += self.big_pill_reward
        self.power = 20
        if not self.pills and self.all_pill_terminate:
            self._init_level(self.level + 1, offset)

    def _kill_ghost(self, i, offset):
        self.ghosts.pop(i)
        self.reward += self.ghost_hunt_reward
        if not self.ghosts and self.all_ghosts_terminate:
            self._init_level(self.level + 1, offset)

    def _die(self):
        self.reward += self.ghost_death_reward
        self.pcontinue = 0
        self.died = True  # (not in the code, where pcontinue = 0 also marks the frame cap)

    def _meet(self, i):
        """Ghost ``i`` and Pacman on one cell, as the code handles it: Pacman dies (power 0) or
        eats the ghost. True when a ghost was eaten (the code then leaves the ghost loop)."""
        if self.power == 0:
            self._die()
            return False
        self._kill_ghost(i, LEVEL_AFTER_GHOSTS)
        return True

    def _move_pillman(self, action):
        self.pillman = moved(self.pillman, action + 1)
        r, c = self.pillman
        if self.food[r][c] == 1:
            self._get_food(r, c, LEVEL_AFTER_PACMAN)
        # After a level change above, this looks at the new level's pills and Pacman.
        for i, pill in enumerate(self.pills):
            if pill == self.pillman:
                self._get_pill(i, LEVEL_AFTER_PACMAN)
                break

    def _move_ghost(self, ghost):
        pos = ghost["pos"]
        available = [a for a in (2, 3, 4, 5) if moved(pos, a) != pos]
        if len(available) == 1:
            ghost["dir"] = available[0]
        elif len(available) == 2:
            if ghost["dir"] not in available:
                if REVERSE[ghost["dir"]] == available[0]:
                    ghost["dir"] = available[1]
                else:
                    ghost["dir"] = available[0]
        else:
            available = [a for a in available if a != REVERSE[ghost["dir"]]]
            to = (self.pillman[0] - pos[0], self.pillman[1] - pos[1])
            if to != (0, 0):
                prods = [ACT[a][0] * to[0] + ACT[a][1] * to[1] for a in available]
                k = ghost["slot"]
                if self.power == 0:
                    if self.draw(self.tick, STEP_DRAWS + 3 * k + 1) < 0.05:
                        j = int(self.draw(self.tick, STEP_DRAWS + 3 * k + 2) * len(available))
                    else:
                        j = prods.index(max(prods))  # towards Pacman
                else:
                    j = prods.index(min(prods))  # away from Pacman
                ghost["dir"] = available[j]
        ghost["pos"] = moved(pos, ghost["dir"])

    def step(self, action):
        """One step; returns (reward, pcontinue) as the code leaves them."""
        self.tick += 1
        self.frame += 1
        self.pcontinue = 1
        self.died = False
        self.reward = self.step_reward
        self.timer += 1
        self.power = max(0, self.power - 1)
        self._move_pillman(action)
        for i, ghost in enumerate(self.ghosts):
            # first: did Pacman walk onto this ghost? (a death does not stop the loop)
            if ghost["pos"] == self.pillman and self._meet(i):
                break
            speed = self.ghost_speed * (0.5 if self.power != 0 else 1.0)
            if self.draw(self.tick, STEP_DRAWS + 3 * ghost["slot"]) < speed:
                self._move_ghost(ghost)
                # then: did the ghost walk onto Pacman? (one ghost eaten per step at most)
                if ghost["pos"] == self.pillman and self._meet(i):
                    break
        self.image = self.rgb()  # the code draws the frame here, before the timer's level change
        if self.timer == self.timer_terminate:
            self._init_level(self.level + 1, LEVEL_AFTER_GHOSTS)
        if self.frame_cap > 0 and self.frame >= self.frame_cap:
            self.pcontinue = 0
        return self.reward, self.pcontinue

    # ------------------------------------------------------------------ the code's picture
    def rgb(self):
        """[H][W] of (r, g, b): the six planes reduced as ``observation_as_rgb`` does."""
        edible = self.power / 20.0
        ghost_cells = {g["pos"] for g in self.ghosts}
        out = []
        for r in range(H):
            row = []
            for c in range(W):
                if (r, c) == self.pillman:
                    row.append((0.0, 1.0, 0.0))
                elif (r, c) in ghost_cells:
                    row.append(((1.0 - edible) + edible, edible, 0.0))
                elif (r, c) in self.pills:
                    row.append((0.0, 1.0, 1.0))
                elif self.food[r][c] == 1:
                    row.append((0.0, 0.0, 1.0))
                elif WALL[r][c]:
                    row.append((1.0, 1.0, 1.0))
                else:
                    row.append((0.0, 0.0, 0.0))
            out.append(row)
        return out

    def snapshot(self):
        return {
            "pacman": self.pillman,
            "ghosts": [(g["pos"], DIR_NAMES[g["dir"]]) for g in self.ghosts],
            "food": {(r, c) for (r, c) in OPEN if self.food[r][c] == 1},
            "pills": sorted(self.pills),
            "power": self.power,
            "level": self.level,
            "timer": self.timer,
        }
