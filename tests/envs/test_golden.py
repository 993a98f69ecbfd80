"""The game against DeepMind's code: whole games played side by side with the transcription in
``deepmind_game.py`` (same random numbers, same actions), compared after every step; and a short
golden trajectory written out in full.

The environment's rules live in lookup tables and shared rule methods; the transcription has none
of that (the code's own ghost loop, list pops and mid-step level changes), so a rule written wrongly
in one place shows up as a difference here, step by step.
"""

from collections import deque

import numpy as np
import pytest
from deepmind_game import OPEN, WALL, DeepMindGame, moved

from minipacman.core import MODES, GameCore
from minipacman.encode import Encoder
from minipacman.rng import uniform_scalar

TIMERS = {"hunt": 80, "ambush": 80}  # the paper's timer (the code has none; docs/environments.md)
ENCODER = Encoder(None, "rgb")


def make_pair(mode, key, frame_cap=3000, backend="scalar"):
    core = GameCore(mode, frame_cap, None if backend == "scalar" else 3)
    if backend == "scalar":
        core.set_keys(key)
    else:
        core.set_keys(np.array([key + 1, key, key + 2], np.uint64))  # compare lane 1
    dm = DeepMindGame(mode, lambda t, i: uniform_scalar(key, t, i), frame_cap, TIMERS.get(mode))
    core.reset()
    dm.start()
    return core, dm


def ours(core, lane):
    s = core.lane(lane)
    return {
        "pacman": s["pacman"],
        "ghosts": s["ghosts"],
        "food": {(int(r), int(c)) for r, c in zip(*np.nonzero(s["food"]), strict=True)},
        "pills": sorted((int(r), int(c)) for r, c in zip(*np.nonzero(s["pills"]), strict=True)),
        "power": s["power"],
        "level": s["level"],
        "timer": s["timer"],
    }


def our_image(core, lane):
    if core.scalar:
        return ENCODER.encode_one(core.p, np.frombuffer(core.cs, np.uint16), core.G, core.A,
                                  core.power)  # fmt: skip
    cs2d = core.cs.reshape(core.n, core.nc + 1)
    return ENCODER.encode(core.p, cs2d, core.G, core.A, core.power)[lane]


def place_both(core, dm, lane, *, pacman, ghosts, pills, food, power=0, level=1, timer=0):
    """The same constructed position in both games (ghosts as (row, col, code direction id))."""
    names = {2: "right", 3: "up", 4: "left", 5: "down"}
    lanes = range(core.n)
    for i in lanes:
        core.place(i, pacman=pacman, ghosts=[(r, c, names[d]) for r, c, d in ghosts],
                   pills=pills, food=food, power=power, level=level, timer=timer)  # fmt: skip
    dm.pillman = pacman
    dm.ghosts = [{"pos": (r, c), "dir": d, "slot": k} for k, (r, c, d) in enumerate(ghosts)]
    dm.slots = max(dm.slots, len(ghosts))
    dm.pills = list(pills)
    dm.food = [[1 if (r, c) in set(food) else 0 for c in range(len(WALL[0]))]
               for r in range(len(WALL))]  # fmt: skip
    dm.nfood = len(food)
    dm.power, dm.level, dm.timer = power, level, timer
    dm.ghost_speed = 0.5 + 0.1 * (level - 1)


def _toward(dm, targets):
    """The first action of a shortest path from Pacman to the nearest cell of ``targets``."""
    start = dm.pillman
    first = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell in targets and cell != start:
            while first[cell][0] != start:
                cell = first[cell][0]
            return first[cell][1] - 1
        for a in (2, 3, 4, 5):
            nxt = moved(cell, a)
            if nxt not in first:
                first[nxt] = (cell, a)
                queue.append(nxt)
    return 0


def greedy_action(dm, rng, eps=0.2):
    """A player that reaches the game's events: hunts ghosts while powered, steps away from a
    ghost within 2 cells, else heads for the nearest food; a random action with prob ``eps``."""
    if rng.random() < eps:
        return int(rng.integers(5))
    ghosts = {g["pos"] for g in dm.ghosts}
    if dm.power > 3 and ghosts:
        return _toward(dm, ghosts)

    def gap(cell):
        return min((abs(cell[0] - r) + abs(cell[1] - c) for r, c in ghosts), default=99)

    if gap(dm.pillman) <= 2:
        return max(range(5), key=lambda a: gap(moved(dm.pillman, a + 1)))
    food = {(r, c) for (r, c) in OPEN if dm.food[r][c]}
    return _toward(dm, food | set(dm.pills))


def play_side_by_side(core, dm, rng, steps, lane=0, policy=greedy_action):
    """Step both games with the same actions; compare after every step. Returns event counts."""
    events = {"levels": 0, "pills": 0, "ghosts_eaten": 0, "deaths": 0, "steps": 0}
    assert ours(core, lane) == dm.snapshot(), "start"
    for t in range(steps):
        action = policy(dm, rng)
        level, pills, ghosts = dm.level, len(dm.pills), len(dm.ghosts)
        reward, pcontinue = dm.step(action)
        if core.scalar:
            r, terminated, truncated = core.step(action)
        else:
            r, te, tr = core.step(np.full(core.n, action))
            r, terminated, truncated = float(r[lane]), bool(te[lane]), bool(tr[lane])
        where = f"step {t + 1}, action {action}"
        assert r == pytest.approx(reward, abs=1e-9), where
        died = dm.died
        assert pcontinue == (0 if died or dm.frame >= dm.frame_cap else 1), where
        assert terminated == died, where
        assert truncated == (dm.frame >= dm.frame_cap and not terminated), where
        assert ours(core, lane) == dm.snapshot(), where
        picture = our_image(core, lane)
        timer_fired = dm.level != level and dm.timer == 0 and dm.timer_terminate > 0
        expected = dm.rgb() if timer_fired else dm.image  # the code's frame predates that change
        np.testing.assert_allclose(picture, np.array(expected, np.float32), atol=1e-6,
                                   err_msg=where)  # fmt: skip
        events["steps"] += 1
        events["levels"] += dm.level != level
        events["pills"] += dm.level == level and len(dm.pills) < pills
        events["ghosts_eaten"] += dm.level == level and len(dm.ghosts) < ghosts and not died
        if terminated or truncated:
            events["deaths"] += died
            break
    return events


@pytest.mark.parametrize("mode", list(MODES))
def test_whole_games_match_the_code(mode):
    """From the start of an episode, greedy-ish play until the game ends or 600 steps, 6 keys."""
    total = {"levels": 0, "pills": 0, "ghosts_eaten": 0, "deaths": 0, "steps": 0}
    for key in range(6):
        core, dm = make_pair(mode, 1000 + key)
        events = play_side_by_side(core, dm, np.random.default_rng(key), 600)
        for k, v in events.items():
            total[k] += v
    assert total["steps"] > 300, total
    assert total["pills"] > 0, total  # the comparison saw these events happen


def _level_start_on_a_pill_key(tick, offset=1 << 18):
    """A stream key whose level set-up at ``tick`` puts Pacman on one of the two new pills."""
    n = len(OPEN)
    for key in range(100_000):
        u = [uniform_scalar(key, tick, offset + j) for j in range(3)]
        first = int(u[1] * n)
        second = (first + 1 + int(u[2] * (n - 1))) % n
        # a cell other than the first: an index error (base - p for base + p) must show
        if int(u[0] * n) in (first, second) and int(u[0] * n) > 0:
            return key
    raise AssertionError("no such key")


@pytest.mark.parametrize("mode", ["regular", "avoid"])
@pytest.mark.parametrize("backend", ["scalar", "batch"])
def test_a_new_level_that_puts_pacman_on_a_pill_eats_it_at_once(mode, backend):
    """The code checks the pills after the food, against the new level's pills and Pacman: when
    the last food starts a level whose Pacman stands on a pill, that pill is eaten (and paid) in
    the same step; its cell keeps its food."""
    key = _level_start_on_a_pill_key(tick=2)
    core, dm = make_pair(mode, key, backend=backend)
    lane = 0 if backend == "scalar" else 1
    place_both(core, dm, lane, pacman=(1, 1), ghosts=[(13, 17, 4)], pills=[(13, 2), (13, 3)],
               food=[(1, 2)])  # fmt: skip
    if backend == "batch":  # lane 0 keeps a second food: its level goes on, its pills untouched
        core.place(0, pacman=(1, 1), ghosts=[(13, 17, "left")], pills=[(13, 2), (13, 3)],
                   food=[(1, 2), (13, 1)])  # fmt: skip
    events = play_side_by_side(core, dm, None, 1, lane=lane, policy=lambda dm, rng: 1)
    assert events["levels"] == 1
    step, food, pill = MODES[mode].step, MODES[mode].food, MODES[mode].pill
    assert core.lane(lane)["score"] == pytest.approx(step + food + pill)
    assert core.lane(lane)["power"] == 20 and core.lane(lane)["pills_left"] == 1
    assert core.lane(lane)["food"][core.lane(lane)["pacman"]]
    if backend == "batch":
        other = core.lane(0)
        assert (other["level"], other["power"], other["pills_left"]) == (1, 0, 2)
        assert other["score"] == pytest.approx(step + food)


def _turn_roll_key(tick, below):
    """A stream key whose slot-0 random-turn roll at ``tick`` is below 0.05 (or not)."""
    for key in range(100_000):
        if (uniform_scalar(key, tick, 1) < 0.05) == below:
            return key
    raise AssertionError("no such key")


@pytest.mark.parametrize("mode", ["avoid", "hunt", "ambush"])
@pytest.mark.parametrize("backend", ["scalar", "batch"])
@pytest.mark.parametrize("turn_roll", ["low", "high"])
def test_a_ghost_that_stays_on_pacman_after_its_move_kills_him_twice(mode, backend, turn_roll):
    """Pacman walks onto a ghost at the T-junction (3, 1) heading into the wall (power 0, level 6:
    it moves). The code pays a death before the ghost's move, keeps its heading (Pacman on its cell
    gives no direction, and no random turn is drawn), and pays again after: -40 in one step. Both
    with a random-turn roll under 0.05 and above it."""
    key = _turn_roll_key(tick=2, below=turn_roll == "low")
    core, dm = make_pair(mode, key, backend=backend)
    lane = 0 if backend == "scalar" else 1
    place_both(core, dm, lane, pacman=(3, 2), ghosts=[(3, 1, 4)], pills=[(13, 2), (13, 3)],
               food=[(13, 1)], level=6)  # fmt: skip
    events = play_side_by_side(core, dm, None, 1, lane=lane, policy=lambda dm, rng: 3)
    assert events["deaths"] == 1
    step, killed = MODES[mode].step, MODES[mode].killed
    assert dm.reward == pytest.approx(step + 2 * killed)
    assert core.lane(lane)["score"] == pytest.approx(step + 2 * killed)


@pytest.mark.parametrize("mode", list(MODES))
def test_constructed_late_levels_match_the_code(mode):
    """Level 5 (three ghosts, speed 0.9), a few food left, pills near: many level changes, ghosts
    eaten and lost in a few hundred steps, both backends."""
    food = [(3, c) for c in range(1, 8)] + [(11, c) for c in range(11, 18)]
    for backend in ("scalar", "batch"):
        for key in range(4):
            core, dm = make_pair(mode, 7000 + key, backend=backend)
            lane = 0 if backend == "scalar" else 1
            place_both(core, dm, lane, pacman=(3, 1), pills=[(3, 5), (11, 12)], food=food,
                       ghosts=[(9, 9, 2), (13, 3, 3), (1, 17, 5)], level=5)  # fmt: skip
            play_side_by_side(core, dm, np.random.default_rng(key), 400, lane=lane)
