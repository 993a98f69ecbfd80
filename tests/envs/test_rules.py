"""The rules of docs/environments.md, one test each, on constructed positions (both core backends)."""

import numpy as np
import pytest
from pacman_game import Game

from minipacman.core import MODES, POWER_DURATION
from minipacman.maps import DIR_DELTAS, WALLS, _open_dirs, map_tables, reverse_dir

FAR_FOOD = [(13, 1)]  # a food cell far from the action, so no level is cleared by accident
FAR_GHOST = (13, 17, "left")
REWARDS = {  # mode: (step, food, pill, eat ghost, killed) -- the rules' table, written out again
    "regular": (0, 1, 2, 5, 0),
    "avoid": (0.1, -0.1, -5, -10, -20),
    "hunt": (0, 0, 1, 10, -20),
    "ambush": (0, -0.1, 0, 10, -20),
    "rush": (0, -0.1, 10, 0, 0),
}


def base_position(**kw):
    position = dict(pacman=(1, 1), ghosts=[FAR_GHOST], pills=[(13, 2)], food=FAR_FOOD)
    position.update(kw)
    return position


# ---------------------------------------------------------------- rewards, every cell of the table
@pytest.mark.parametrize("mode", list(MODES))
def test_reward_table(mode, backend):
    step, food, pill, eat, killed = REWARDS[mode]
    extra_ghost = (13, 16, "left")  # so eating one ghost does not clear a hunt/ambush level
    cases = {
        "step": (base_position(), step),
        "food": (base_position(food=[(1, 2), *FAR_FOOD]), step + food),
        "pill": (base_position(pills=[(1, 2), (13, 2)], food="none"), step + pill),
        "eat": (
            base_position(ghosts=[(1, 2, "left"), extra_ghost], food="none", power=5),
            step + eat,
        ),
        "killed": (base_position(ghosts=[(1, 2, "left"), extra_ghost], food="none"), step + killed),
    }
    for name, (position, expected) in cases.items():
        if mode in ("regular", "avoid") and position["food"] == "none":
            position["food"] = FAR_FOOD
        game = Game(mode, backend).place(**position)
        reward, terminated, _ = game.step(1)  # move right onto (1, 2)
        assert reward == pytest.approx(expected), (mode, name)
        assert terminated == (name == "killed"), (mode, name)
        assert game.lane()["score"] == pytest.approx(expected)


def test_food_and_pill_on_same_cell_both_count(backend):
    game = Game("regular", backend).place(
        **base_position(food=[(1, 2), *FAR_FOOD], pills=[(1, 2), (13, 2)])
    )
    reward, _, _ = game.step(1)
    assert reward == 1 + 2
    lane = game.lane()
    assert (lane["food_left"], lane["pills_left"], lane["power"]) == (1, 1, POWER_DURATION)


def test_pacman_eats_its_own_cell_when_staying(backend):
    game = Game("regular", backend).place(**base_position(food=[(1, 1), *FAR_FOOD]))
    assert game.step(0)[0] == 1
    assert game.step(0)[0] == 0


# ---------------------------------------------------------------- Pacman movement
@pytest.mark.parametrize("action", range(5))
def test_pacman_moves_or_stays_at_walls(action, backend):
    start = (3, 3)  # a four-way junction
    game = Game("regular", backend).place(**base_position(pacman=start))
    game.step(action)
    dr, dc = ((0, 0), *DIR_DELTAS)[action]
    assert game.lane()["pacman"] == (start[0] + dr, start[1] + dc)
    game = Game("regular", backend).place(**base_position(pacman=(1, 1)))  # walls up and left
    game.step(action)
    expected = {1: (1, 2), 4: (2, 1)}.get(action, (1, 1))
    assert game.lane()["pacman"] == expected


# ---------------------------------------------------------------- level advance
def _level_after(mode, backend, steps=1, action=1, **position):
    game = Game(mode, backend).place(**base_position(**position))
    for _ in range(steps):
        game.step(action)
    return game.lane()


@pytest.mark.parametrize("mode", ["regular", "avoid"])
def test_all_food_eaten_advances_level(mode, backend):
    lane = _level_after(mode, backend, food=[(1, 2)])
    assert lane["level"] == 2 and lane["food_left"] == 138 and lane["pills_left"] == 2
    assert _level_after(mode, backend, food=[(1, 2), (1, 3)])["level"] == 1


@pytest.mark.parametrize("mode", ["hunt", "ambush"])
def test_all_ghosts_eaten_advances_level(mode, backend):
    lane = _level_after(mode, backend, ghosts=[(1, 2, "left")], power=5)
    assert lane["level"] == 2 and lane["ghosts_left"] == 1 and lane["power"] == 0
    two = [(1, 2, "left"), FAR_GHOST]
    assert _level_after(mode, backend, ghosts=two, power=5)["level"] == 1


def test_all_pills_eaten_advances_level_in_rush(backend):
    lane = _level_after("rush", backend, pills=[(1, 2)])
    assert lane["level"] == 2 and lane["pills_left"] == 2 and lane["power"] == 0
    assert _level_after("rush", backend, pills=[(1, 2), (13, 2)])["level"] == 1


@pytest.mark.parametrize("mode", list(MODES))
def test_level_timer(mode, backend):
    limit = MODES[mode].timer
    expected_timer = {"avoid": 128, "hunt": 80, "ambush": 80}.get(mode, 0)
    assert limit == expected_timer
    # pacman stays, ghost far away: only the timer can end the level
    game = Game(mode, backend).place(
        **base_position(timer=(limit or 500) - 2, pills=[(13, 2), (13, 3)])
    )
    game.step(0)
    assert game.lane()["level"] == 1
    game.step(0)
    assert game.lane()["level"] == (2 if limit else 1)
    if limit:
        assert game.lane()["timer"] == 0


def test_other_modes_do_not_advance_on_food(backend):
    for mode in ("hunt", "ambush", "rush"):
        assert _level_after(mode, backend, food=[(1, 2)], pills=[(13, 2), (13, 3)])["level"] == 1


# ---------------------------------------------------------------- ghosts: count, placement, speed
def reference_blocks_spawn(pr, pc, gr, gc, height=15, width=19, safe=5):
    """DeepMind's ``_make_actor``, transcribed: it marks ``occupied[from:to, from:to] = 1`` with
    ``from = max(p - safe, 1)`` and ``to = min(p + safe, size)`` on rows and columns (a slice: the
    end is excluded), so a ghost cannot start on rows pr-5..pr+4, columns pc-5..pc+4."""
    r0, r1 = max(pr - safe, 1), min(pr + safe, height)
    c0, c1 = max(pc - safe, 1), min(pc + safe, width)
    return r0 <= gr < r1 and c0 <= gc < c1


def test_ghost_spawn_cells_are_the_references():
    """For every Pacman cell, the cells a ghost may start on are exactly the corridor cells the
    reference leaves free (its off-centre 10x10 box, not a centred 11x11 one)."""
    t = map_tables()
    cells = [tuple(map(int, rc)) for rc in t.rc]
    for p, (pr, pc) in enumerate(cells):
        ours = {cells[i] for i in t.far[p * t.max_far : p * t.max_far + t.far_count[p]]}
        want = {(r, c) for r, c in cells if not reference_blocks_spawn(pr, pc, r, c)}
        assert ours == want, (pr, pc)


@pytest.mark.parametrize("level", range(1, 9))
def test_ghost_count_by_level(level, backend):
    lane = _level_after("regular", backend, food=[(1, 2)], level=level)  # clear -> level+1
    assert lane["level"] == level + 1
    assert len(lane["ghosts"]) == lane["ghosts_left"] == 1 + (level + 1 - 1) // 2


def test_level_start_positions():
    game = Game("regular", "batch", n=600)
    rows = np.array([game.lane(i)["pacman"] for i in range(600)])
    for i in range(600):
        lane = game.lane(i)
        assert lane["level"] == 1 and lane["power"] == 0 and lane["food_left"] == 138
        assert lane["food"].sum() == 138 and lane["pills"].sum() == 2 and len(lane["ghosts"]) == 1
        (gr, gc), _ = lane["ghosts"][0]
        pr, pc = lane["pacman"]
        assert not reference_blocks_spawn(pr, pc, gr, gc)  # outside DeepMind's box
        assert WALLS[gr, gc] == 0 and WALLS[pr, pc] == 0
    # Pacman's start cell is spread over the map (not a fixed cell)
    assert len({tuple(r) for r in rows}) > 100


@pytest.mark.parametrize("level,power", [(1, 0), (3, 0), (1, 5), (4, 5)])
def test_ghost_speed_by_level(level, power):
    n = 6000
    game = Game("regular", "batch", n=n).place(
        **base_position(ghosts=[(3, 8, "right")], pacman=(13, 5), level=level, power=power)
    )
    game.step(0)
    moved = np.array([game.ghosts_rc(i)[0] != (3, 8) for i in range(n)])
    speed = (0.5 + 0.1 * (level - 1)) * (0.5 if power else 1.0)
    assert abs(moved.mean() - speed) < 4 * np.sqrt(speed * (1 - speed) / n)


# ---------------------------------------------------------------- ghosts: movement
FAST = 6  # level 6: speed 0.5 + 0.5 = 1, every ghost moves every step (power 0)
FAST_POWERED = 16  # level 16: speed 2.0, halved to 1 while powered


def test_corridor_keeps_heading(backend):
    game = Game("regular", backend).place(**base_position(ghosts=[(3, 8, "right")], level=FAST))
    game.step(0)
    assert game.lane()["ghosts"] == [((3, 9), "right")]


def test_corner_turns_without_reversing(backend):
    # (1, 1) opens right and down; a ghost arriving upward must turn right, not back down
    game = Game("regular", backend).place(
        **base_position(pacman=(13, 9), ghosts=[(1, 1, "up")], level=FAST)
    )
    game.step(0)
    assert game.lane()["ghosts"] == [((1, 2), "right")]


def _reference_choice(r, c, d, pr, pc, flee):
    """The junction rule written from the rules' text: largest (chase) or smallest (flee) dot
    product of each allowed unit vector with the normalised vector to Pacman."""
    avail = [a for a in _open_dirs(r, c) if a != reverse_dir(d)]
    x = np.array([pr - r, pc - c], np.float64)
    x /= np.linalg.norm(x)
    prods = np.array([np.dot(x, DIR_DELTAS[a]) for a in avail])
    return avail[int(np.argmin(prods) if flee else np.argmax(prods))]


def test_junction_table_matches_dot_product_rule():
    t = map_tables()
    junctions = [tuple(t.rc[g]) for g in range(t.nc) if t.junction[g]]
    assert len(junctions) == 24
    for r, c in junctions:
        g = t.index_of[r, c]
        for d in range(4):
            for flee in (0, 1):
                for p, (pr, pc) in enumerate(t.rc):
                    if p == g:
                        continue
                    got = t.ghost_dir[((g * 4 + d) * 2 + flee) * t.nc + p]
                    assert got == _reference_choice(r, c, d, pr, pc, flee), (r, c, d, pr, pc, flee)


def test_junction_flee_when_powered(backend):
    # at (3,3) heading right, Pacman to the right: fleeing prefers up/down (product 0) over right
    # (product 1); ties go to the first direction in the order right, up, left, down
    game = Game("regular", backend).place(
        **base_position(pacman=(3, 10), ghosts=[(3, 3, "right")], level=FAST_POWERED, power=10)
    )
    game.step(0)
    assert game.lane()["ghosts"] == [((2, 3), "up")]


def test_junction_chase_and_random_turn_statistics():
    """At (3,3) heading right with Pacman to the right: chase picks right; with probability 0.05
    a uniformly random allowed direction (right, up, down; never the reverse, left) instead."""
    n = 20000
    game = Game("regular", "batch", n=n).place(
        **base_position(pacman=(3, 10), ghosts=[(3, 3, "right")], level=FAST)
    )
    game.step(0)
    cells = [game.ghosts_rc(i)[0] for i in range(n)]
    share = {rc: cells.count(rc) / n for rc in [(3, 4), (2, 3), (4, 3), (3, 2)]}
    assert share[(3, 2)] == 0
    sigma = np.sqrt(0.05 / 3 * (1 - 0.05 / 3) / n)
    for rc in [(2, 3), (4, 3)]:
        assert abs(share[rc] - 0.05 / 3) < 4.5 * sigma, share
    assert abs(share[(3, 4)] - (0.95 + 0.05 / 3)) < 4.5 * np.sqrt(2) * sigma, share


def test_no_random_turn_while_powered():
    n = 4000
    game = Game("regular", "batch", n=n).place(
        **base_position(pacman=(3, 10), ghosts=[(3, 3, "right")], level=FAST_POWERED, power=10)
    )
    game.step(0)
    assert all(game.ghosts_rc(i) == [(2, 3)] for i in range(n))


# ---------------------------------------------------------------- power, eating, death, frame cap
def test_power_duration(backend):
    game = Game("regular", backend).place(**base_position(pills=[(1, 2), (13, 2)]))
    game.step(1)
    powers = [game.lane()["power"]]
    for _ in range(21):
        game.step(0)
        powers.append(game.lane()["power"])
    assert powers == [20, *range(19, 0, -1), 0, 0]


def test_edibility_in_observation():
    import gymnasium as gym

    env = gym.make("MiniPacman-Full-v0", obs_type="rgb")
    env.reset(seed=0)
    obs, _ = env.unwrapped.place(**base_position(ghosts=[(5, 9, "left")], power=7))
    assert obs[5, 9].tolist() == pytest.approx([1.0, 7 / 20, 0.0])
    env = gym.make("MiniPacman-Full-v0", obs_type="planes")
    env.reset(seed=0)
    obs, _ = env.unwrapped.place(**base_position(ghosts=[(5, 9, "left")], power=7))
    assert obs[5, 9].tolist() == pytest.approx([0, 0, 0, 13 / 20, 7 / 20, 0])


def test_eating_a_ghost_stops_the_other_ghosts(backend):
    # slot 0 is eaten; slot 1 would surely move (speed 1 while powered) but must not
    ghosts = [(1, 2, "left"), (3, 8, "right")]
    game = Game("regular", backend).place(
        **base_position(ghosts=ghosts, power=10, level=FAST_POWERED)
    )
    reward, terminated, _ = game.step(1)
    assert reward == 5 and not terminated
    assert game.lane()["ghosts"] == [((3, 8), "right")]
    # without the eaten ghost, the same ghost moves
    game = Game("regular", backend).place(
        **base_position(ghosts=ghosts[1:], power=10, level=FAST_POWERED)
    )
    game.step(1)
    assert game.lane()["ghosts"] != [((3, 8), "right")]


def test_one_ghost_eaten_per_step(backend):
    ghosts = [(1, 2, "left"), (1, 2, "left"), FAR_GHOST]
    game = Game("regular", backend).place(**base_position(ghosts=ghosts, power=10))
    assert game.step(1)[0] == 5
    assert game.lane()["ghosts_left"] == 2


def test_ghost_moving_onto_pacman_kills(backend):
    game = Game("avoid", backend).place(
        **base_position(pacman=(3, 9), ghosts=[(3, 8, "right")], level=FAST)
    )
    reward, terminated, truncated = game.step(0)
    assert terminated and not truncated and reward == pytest.approx(0.1 - 20)
    assert game.lane()["dead"]


def test_death_penalty_paid_for_every_ghost_that_catches_pacman(backend):
    """DeepMind's step loop has no stop after a death: each ghost on Pacman's cell pays."""
    ghosts = [(1, 2, "left"), (1, 2, "left")]
    game = Game("avoid", backend).place(**base_position(ghosts=ghosts))
    reward, terminated, _ = game.step(1)
    assert terminated and reward == pytest.approx(0.1 - 20 - 20)
    one = Game("avoid", backend).place(**base_position(ghosts=[(1, 2, "left"), FAR_GHOST]))
    assert one.step(1)[0] == pytest.approx(0.1 - 20)


def test_the_ghost_pacman_walks_onto_still_moves(backend):
    """In DeepMind's code a ghost that Pacman walks onto (power 0) kills him and then takes its
    own move in the same step: here from (1, 2), heading left along the corridor, to (1, 1)."""
    game = Game("avoid", backend).place(
        **base_position(pacman=(1, 1), ghosts=[(1, 2, "left")], level=FAST)
    )
    reward, terminated, _ = game.step(1)
    assert terminated and reward == pytest.approx(0.1 - 20)
    assert game.lane()["pacman"] == (1, 2)
    assert game.ghosts_rc() == [(1, 1)]


@pytest.mark.parametrize("mode", list(MODES))
def test_a_ghost_pacman_walks_onto_that_stays_on_him_catches_him_twice(mode, backend):
    """DeepMind's step looks at each ghost's cell before and after its move and pays a death each
    time. Pacman walks left onto a ghost on the T-junction (3, 1) heading left, into the wall: with
    Pacman on its cell the ghost has no direction to him, so it keeps that heading (no random
    turn either), stays put, and catches him again. The penalty is paid twice."""
    step, killed = REWARDS[mode][0], REWARDS[mode][4]
    n = 1 if backend == "scalar" else 400  # 400 games: a 5% random turn would show in some
    for seed in range(1 if backend == "batch" else 40):
        game = Game(mode, backend, n=n, seed=seed).place(
            **base_position(pacman=(3, 2), ghosts=[(3, 1, "left")], level=FAST)
        )
        reward, terminated, _ = game.step(3)
        assert terminated and reward == pytest.approx(step + 2 * killed), (mode, seed)
        for i in range(n):
            assert game.lane(i)["ghosts"] == [((3, 1), "left")], (mode, seed, i)
            assert game.lane(i)["score"] == pytest.approx(step + 2 * killed), (mode, seed, i)
    # the same ghost heading down, an open way: it leaves Pacman's cell and catches him once
    game = Game(mode, backend).place(
        **base_position(pacman=(3, 2), ghosts=[(3, 1, "down")], level=FAST)
    )
    reward, terminated, _ = game.step(3)
    assert terminated and reward == pytest.approx(step + killed)
    assert game.lane()["ghosts"] == [((4, 1), "down")]


@pytest.mark.parametrize("mode", ["regular", "avoid"])
def test_the_last_food_on_a_pill_cell_starts_the_level_without_the_pill(mode, backend):
    """DeepMind's code eats the food first; the last food starts the next level at once, whose
    new pills replace the one on that cell: the pill is not eaten, paid or powering."""
    step, food, pill = REWARDS[mode][:3]
    game = Game(mode, backend).place(**base_position(food=[(1, 2)], pills=[(1, 2), (13, 2)]))
    reward, _, _ = game.step(1)
    lane = game.lane()
    assert reward == pytest.approx(step + food)  # not + pill
    assert lane["level"] == 2 and lane["power"] == 0 and lane["pills_left"] == 2
    # not the last food: food and pill on one cell are both eaten (and paid)
    game = Game(mode, backend).place(
        **base_position(pills=[(1, 2), (13, 2)], food=[(1, 2), (13, 1)])
    )
    assert game.step(1)[0] == pytest.approx(step + food + pill)


def test_frame_cap_truncates(backend):
    game = Game("regular", backend, frame_cap=4).place(
        **base_position(pacman=(1, 1), ghosts=[FAR_GHOST])
    )
    outcomes = [game.step(0)[1:] for _ in range(4)]
    assert outcomes == [(False, False)] * 3 + [(False, True)]


# ---------------------------------------------------------------- what each kind of cell looks like
# Written out by hand from docs/environments.md (I2A's colours and priority pacman > ghost > pill > food >
# wall > empty; the planes walls, food, pacman, ghost 1-e, edible ghost e, pill), not from encode.py.
CELLS = {  # cell: (what is there, I2A rgb, six planes)
    (1, 1): ("pacman", (0, 1, 0), (0, 0, 1, 0, 0, 0)),
    (13, 17): ("ghost, power 0", (1, 0, 0), (0, 0, 0, 1, 0, 0)),
    (3, 5): ("pill and food", (0, 1, 1), (0, 1, 0, 0, 0, 1)),
    (13, 2): ("pill", (0, 1, 1), (0, 0, 0, 0, 0, 1)),
    (1, 3): ("food", (0, 0, 1), (0, 1, 0, 0, 0, 0)),
    (0, 0): ("wall", (1, 1, 1), (1, 0, 0, 0, 0, 0)),
    (1, 2): ("empty corridor", (0, 0, 0), (0, 0, 0, 0, 0, 0)),
}


@pytest.mark.parametrize("obs_type", ["rgb", "planes"])
def test_each_kind_of_cell_is_drawn_as_the_spec_says(obs_type):
    import gymnasium as gym

    env = gym.make("MiniPacman-Full-v0", obs_type=obs_type)
    env.reset(seed=0)
    obs, _ = env.unwrapped.place(
        pacman=(1, 1),
        ghosts=[(13, 17, "left")],
        food=[(1, 3), (3, 5), (13, 1)],
        pills=[(3, 5), (13, 2)],
    )
    for (r, c), (what, rgb, planes) in CELLS.items():
        want = rgb if obs_type == "rgb" else planes
        assert obs[r, c].tolist() == list(map(float, want)), (what, obs[r, c].tolist())


def test_level_start_ghost_directions_are_drawn():
    """Each ghost's first heading is random: over 600 games all four directions occur, each in
    roughly a quarter of them (the rules: a random direction)."""
    game = Game("regular", "batch", n=600)
    heads = [game.lane(i)["ghosts"][0][1] for i in range(600)]
    counts = {d: heads.count(d) for d in ("up", "down", "left", "right")}
    assert all(90 < n < 210 for n in counts.values()), counts


def test_pacman_is_re_placed_when_a_food_clear_starts_a_new_level():
    """The last food eaten at (1, 2): the new level puts Pacman on a random corridor cell."""
    n = 300
    game = Game("regular", "batch", n=n).place(**base_position(food=[(1, 2)]))
    game.step(1)  # right, onto the last food
    cells = [game.lane(i)["pacman"] for i in range(n)]
    assert all(game.lane(i)["level"] == 2 for i in range(n))
    assert sum(tuple(c) == (1, 2) for c in cells) < n // 10
    assert len({tuple(c) for c in cells}) > 60


def test_place_builds_the_position_it_is_given_and_refuses_impossible_cells(backend):
    """``place`` (the constructed positions every rule test stands on) puts exactly what it is
    told where it is told, and names a wall or off-map cell."""
    game = Game("regular", backend).place(
        pacman=(3, 4), ghosts=[(13, 17, "left"), (1, 5, 2)], pills=[(13, 2)],
        food=[(1, 2), (13, 2)], power=7, level=4, timer=9, frame=11,
    )  # fmt: skip
    lane = game.lane()
    assert lane["pacman"] == (3, 4)
    assert lane["ghosts"] == [((13, 17), "left"), ((1, 5), "left")]
    assert sorted(zip(*np.nonzero(lane["food"]), strict=True)) == [(1, 2), (13, 2)]
    assert list(zip(*np.nonzero(lane["pills"]), strict=True)) == [(13, 2)]
    assert (lane["power"], lane["level"], lane["timer"], lane["frame"]) == (7, 4, 9, 11)
    assert (lane["food_left"], lane["pills_left"], lane["ghosts_left"]) == (2, 1, 2)
    assert lane["dead"] is False
    everywhere = Game("regular", backend).place(pacman=(1, 1), food="all").lane()
    assert everywhere["food_left"] == int((WALLS == 0).sum()) == everywhere["food"].sum()
    assert Game("regular", backend).place(pacman=(1, 1), food="none").lane()["food_left"] == 0
    fewer = Game("regular", backend).place(pacman=(1, 1), ghosts=[(13, 17, 0), (13, 16, 0)])
    fewer.place(pacman=(1, 1), ghosts=[(13, 17, 0)])  # a second place drops the extra ghost
    assert fewer.lane()["ghosts"] == [((13, 17), "right")]
    with pytest.raises(ValueError, match=r"cell \(0, 0\) is a wall"):
        Game("regular", backend).place(pacman=(0, 0))
    with pytest.raises(ValueError, match=r"cell \(15, 3\) is outside the 15x19 map"):
        Game("regular", backend).place(pacman=(1, 1), pills=[(15, 3)])
    with pytest.raises(ValueError, match=r"cell \(2, -1\) is outside"):
        Game("regular", backend).place(pacman=(1, 1), ghosts=[(2, -1, 0)])
