"""The one-pass learner connector against RLlib's stock learner pipeline, on the same episodes.

Episodes come from a real EnvRunner (fragment cuts, resets, terminations, env truncations, several
chunks per episode when the fragments outlast ``max_seq_len``, Dict and Tuple observations, a
stateless module); each batch is built twice, by :class:`EpisodesToTrainBatch` and by RLlib's seven
default pieces, from copies of the same episodes, and compared column by column: values, dtypes,
shapes. PPO's advantages are compared with RLlib's ``GeneralAdvantageEstimation`` the same way.
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
import tree
from ray.rllib.connectors.learner import GeneralAdvantageEstimation, LearnerConnectorPipeline
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from rmc_agents.rl.algorithms import build_algo_config
from rmc_agents.rl.env_runner import LeanEnvRunner
from rmc_agents.rl.learner_connector import (
    RESETS,
    AdvantagesFromTrainBatch,
    EpisodesToTrainBatch,
    learner_module,
    learner_pipeline,
    pack_episodes,
    stock_learner_pieces,
)
from rmc_agents.rl.settings import ModelSettings, RunSettings

_SMALL = {"mem_slots": 2, "head_size": 8, "num_heads": 2, "hidden_size": 16}


class ShortCartPole(gym.Wrapper):
    """CartPole truncated by a time limit after 9 steps (unless it falls first)."""

    def __init__(self) -> None:
        super().__init__(gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, 9))


def _runner(env: str, core: str, max_seq_len: int, fragment: int, **model: object):
    run = RunSettings(
        env=env,
        model=ModelSettings(core=core, max_seq_len=max_seq_len, **{**_SMALL, **model}),
        seed=3,
    )
    run.resources.num_env_runners = 0
    run.resources.envs_per_runner = 4
    run.training.rollout_fragment_length = fragment
    return LeanEnvRunner(config=build_algo_config(run))


def _learner_module(runner) -> MultiRLModule:
    """The learner's view: a MultiRLModule holding a module with the runner's weights."""
    return learner_module(runner.module)


def _sample(runner, calls: int, steps: int) -> list[bytes]:
    """Pickled episode lists (each build gets fresh copies: RLlib's pieces change episodes)."""
    groups = []
    for call in range(calls):
        torch.manual_seed(call)
        groups.append(pickle.dumps([e.to_numpy() for e in runner.sample(num_timesteps=steps)]))
    return groups


def _stock(*extra) -> LearnerConnectorPipeline:
    return LearnerConnectorPipeline(connectors=[*stock_learner_pieces(), *extra])


def _assert_same_batch(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for column in want:
        got_leaves, want_leaves = tree.flatten(got[column]), tree.flatten(want[column])
        assert len(got_leaves) == len(want_leaves), column
        for g, w in zip(got_leaves, want_leaves, strict=True):
            assert type(g) is type(w), column
            assert (g.dtype, tuple(g.shape)) == (w.dtype, tuple(w.shape)), column
            if isinstance(w, torch.Tensor):
                assert torch.equal(g, w), column
            else:  # (a Text part stays numpy)
                np.testing.assert_array_equal(g, w, err_msg=column)


@pytest.mark.parametrize(
    "env, core, max_seq_len, fragment, model",
    [
        # image observations; fragments of 23 steps in chunks of 6: several chunks per episode
        ("MiniPacman-Viewport-v0", "rmc", 6, 23, {}),
        ("MiniPacman-Viewport-v0", "lstm", 22, 20, {}),  # the default chunking: one per fragment
        ("rmc_agents.rl.toy_envs:CueRecallDict", "rmc", 5, 7, {}),  # Dict observations
        (
            "rmc_agents.rl.toy_envs:CueRecall",
            "gru",
            4,
            7,
            {"prev_action": True},
        ),  # Dict via connector
        ("CartPole-v1", "gru", 7, 25, {}),  # terminations
        ("tests.rl.test_learner_connector:ShortCartPole", "lstm", 4, 25, {}),  # env truncations
        ("Blackjack-v1", "rmc", 3, 8, {}),  # Tuple observations, 1-3 step episodes
        ("CartPole-v1", "mlp", 22, 25, {}),  # a stateless module: no chunks
    ],
)
def test_one_pass_batch_equals_rllibs_stock_pipeline(env, core, max_seq_len, fragment, model):
    runner = _runner(env, core, max_seq_len, fragment, **model)
    try:
        multi = _learner_module(runner)
        groups = _sample(runner, 3, fragment * 4)
    finally:
        runner.stop()
    ours, stock = EpisodesToTrainBatch(), _stock()
    seen = {"cut": 0, "terminated": 0, "truncated": 0, "continued": 0, "multi_chunk": 0}
    for blob in groups:
        episodes = pickle.loads(blob)
        for e in episodes:
            seen["terminated"] += e.is_terminated
            seen["truncated"] += e.is_truncated
            seen["cut"] += not e.is_done
            seen["continued"] += e.t_started > 0
            seen["multi_chunk"] += len(e) + 1 > max_seq_len
        want_shared, got_shared = {}, {}
        want = stock(rl_module=multi, batch={}, episodes=episodes, shared_data=want_shared)
        got = ours(rl_module=multi, batch={}, episodes=pickle.loads(blob), shared_data=got_shared)
        _assert_same_batch(got[DEFAULT_MODULE_ID], want[DEFAULT_MODULE_ID])
        key = f"_zero_padded_for_mid={DEFAULT_MODULE_ID}"  # (not for a stateless module)
        assert got_shared.get(key) == want_shared.get(key)
        key = "_added_loss_mask_for_valid_episode_ts"
        assert got_shared.get(key) is want_shared.get(key) is True
    assert ours.fallbacks == 0
    # The samples held what the comparison is meant to cover.
    assert seen["cut"] and seen["continued"]
    if env.startswith(("CartPole", "Blackjack")):
        assert seen["terminated"] >= 2
    if "ShortCartPole" in env:
        assert seen["truncated"] >= 2
    if core != "mlp" and "Pacman" in env and max_seq_len < fragment:
        assert seen["multi_chunk"]


def _module_and_sample(core: str) -> tuple[MultiRLModule, bytes]:
    """A CartPole runner's learner module (chunks of 7, fragments of 25) and one pickled sample
    of 50 steps."""
    runner = _runner("CartPole-v1", core, 7, 25)
    try:
        multi = _learner_module(runner)
        (blob,) = _sample(runner, 1, 50)
    finally:
        runner.stop()
    return multi, blob


def test_episodes_are_read_not_changed():
    multi, blob = _module_and_sample("gru")
    episodes = pickle.loads(blob)
    before = [(e.id_, len(e), e.is_truncated, e.get_rewards().copy()) for e in episodes]
    EpisodesToTrainBatch()(rl_module=multi, batch={}, episodes=episodes, shared_data={})
    after = [(e.id_, len(e), e.is_truncated, e.get_rewards()) for e in episodes]
    for (i0, n0, t0, r0), (i1, n1, t1, r1) in zip(before, after, strict=True):
        assert (i0, n0, t0) == (i1, n1, t1)
        np.testing.assert_array_equal(r0, r1)


def _as_lists(e, t_started: int = 0) -> SingleAgentEpisode:
    """``e`` written out again as lists, without a lookback (from step ``t_started``)."""
    n = len(e)
    outputs = {}
    for key in e.extra_model_outputs:
        values = e.get_extra_model_outputs(key)
        outputs[key] = [tree.map_structure(lambda a, i=i: a[i], values) for i in range(n)]
    return SingleAgentEpisode(
        observations=list(e.get_observations()),
        actions=list(e.get_actions()),
        rewards=list(e.get_rewards()),
        extra_model_outputs=outputs,
        terminated=e.is_terminated,
        truncated=e.is_truncated,
        observation_space=e.observation_space,
        action_space=e.action_space,
        len_lookback_buffer=0,
        t_started=t_started,
    )


def test_what_it_does_not_cover_goes_to_rllibs_pipeline():
    multi, blob = _module_and_sample("gru")
    # The same episodes written out again as lists (not to_numpy()'d), from their starts.
    listed = pickle.dumps([_as_lists(e) for e in pickle.loads(blob) if e.t_started == 0])
    assert not any(e.is_numpy for e in pickle.loads(listed))
    assert not EpisodesToTrainBatch.covers(multi, {}, pickle.loads(listed))
    numpy_episodes = [e.to_numpy() for e in pickle.loads(listed)]
    assert EpisodesToTrainBatch.covers(multi, {}, numpy_episodes)
    assert not EpisodesToTrainBatch.covers(multi, {"obs": {}}, numpy_episodes)  # a started batch
    ours = EpisodesToTrainBatch()
    got_shared, want_shared = {}, {}
    got = ours(rl_module=multi, batch={}, episodes=pickle.loads(listed), shared_data=got_shared)
    assert ours.fallbacks == 1
    want = _stock()(
        rl_module=multi, batch={}, episodes=pickle.loads(listed), shared_data=want_shared
    )
    _assert_same_batch(got[DEFAULT_MODULE_ID], want[DEFAULT_MODULE_ID])
    key = f"_zero_padded_for_mid={DEFAULT_MODULE_ID}"
    assert want_shared.get(key) is True and got_shared.get(key) is True  # handed through
    # ... and the numpy episodes give the same batch through the one pass.
    again = ours(rl_module=multi, batch={}, episodes=numpy_episodes, shared_data={})
    assert ours.fallbacks == 1
    _assert_same_batch(again[DEFAULT_MODULE_ID], want[DEFAULT_MODULE_ID])
    ours(rl_module=multi, batch={}, episodes=pickle.loads(listed))  # (no shared_data given)
    assert ours.fallbacks == 2  # counted, not flagged
    # A batch that earlier pieces started goes to RLlib's pipeline, numpy episodes or not.
    started = ours(
        rl_module=multi, batch={DEFAULT_MODULE_ID: {}}, episodes=numpy_episodes, shared_data={}
    )
    assert ours.fallbacks == 3
    _assert_same_batch(started[DEFAULT_MODULE_ID], want[DEFAULT_MODULE_ID])


def test_the_fallback_works_inside_rllibs_learner_pipeline():
    """In training the connector runs inside RLlib's LearnerConnectorPipeline, which passes its
    metrics prefix along: the fallback must still reach RLlib's pieces (it once raised a
    TypeError there, ending a StatelessCartPole run at the first episode both terminated and
    truncated)."""
    from ray.rllib.connectors.learner import LearnerConnectorPipeline
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

    multi, blob = _module_and_sample("gru")
    listed = pickle.dumps([_as_lists(e) for e in pickle.loads(blob) if e.t_started == 0])
    ours = EpisodesToTrainBatch()
    outer = LearnerConnectorPipeline(connectors=[ours])
    episodes = pickle.loads(listed)
    got = outer(rl_module=multi, episodes=episodes, shared_data={}, metrics=MetricsLogger())
    assert ours.fallbacks == 1
    want = _stock()(rl_module=multi, batch={}, episodes=pickle.loads(listed))
    _assert_same_batch(got[DEFAULT_MODULE_ID], want[DEFAULT_MODULE_ID])


def test_a_module_that_does_not_say_it_accepts_resets_gets_rllibs_layout(monkeypatch):
    from rmc_agents.rl.module import RecurrentAgentModule

    multi, blob = _module_and_sample("rmc")
    packed = EpisodesToTrainBatch(pack=True)
    assert (
        RESETS in packed(rl_module=multi, batch={}, episodes=pickle.loads(blob))[DEFAULT_MODULE_ID]
    )
    monkeypatch.delattr(RecurrentAgentModule, "accepts_resets")
    assert not hasattr(multi[DEFAULT_MODULE_ID], "accepts_resets")
    got = packed(rl_module=multi, batch={}, episodes=pickle.loads(blob))[DEFAULT_MODULE_ID]
    want = EpisodesToTrainBatch(pack=False)(rl_module=multi, batch={}, episodes=pickle.loads(blob))[
        DEFAULT_MODULE_ID
    ]
    assert RESETS not in got
    _assert_same_batch(got, want)


def test_a_continuing_episode_without_its_earlier_state_is_refused():
    """A fragment that continues an episode carries the state before its first step in its
    lookback; with ``episode_lookback_horizon`` 0 it has none. RLlib's pipeline then fails with
    an IndexError from inside its lookback buffer (Ray 2.60); this piece refuses the batch with
    an error that names the episode and the setting."""
    runner = _runner("CartPole-v1", "gru", 7, 25)
    try:
        multi = _learner_module(runner)
        blob = _sample(runner, 2, 50)[1]  # the second sample continues the first's episodes
    finally:
        runner.stop()
    continuing = [e for e in pickle.loads(blob) if e.t_started > 0]
    assert continuing and all(
        e.extra_model_outputs[Columns.STATE_OUT].lookback == 1 for e in continuing
    )
    e = continuing[0]
    bare = _as_lists(e, t_started=e.t_started).to_numpy()
    assert bare.t_started == e.t_started and bare.extra_model_outputs["state_out"].lookback == 0
    message = (
        rf"^episode '{bare.id_}' continues from step {e.t_started} but keeps no state_out from "
        r"before its first step \(a lookback of 0\), so the state its first chunk starts from "
        r"is unknown; keep the EnvRunners' episode_lookback_horizon at 1 or more \(RLlib's "
        r"default is 1\)$"
    )
    with pytest.raises(ValueError, match=message):
        EpisodesToTrainBatch()(rl_module=multi, batch={}, episodes=[bare], shared_data={})
    # With its lookback, the same fragment starts from the state recorded before it.
    got = EpisodesToTrainBatch()(rl_module=multi, batch={}, episodes=[e], shared_data={})
    before = e.get_extra_model_outputs("state_out", indices=-1, neg_index_as_lookback=True)
    first = tree.map_structure(lambda a: a[0].numpy(), got[DEFAULT_MODULE_ID]["state_in"])
    tree.map_structure(np.testing.assert_array_equal, first, before)


def test_row_and_concat_helpers():
    from types import SimpleNamespace

    from rmc_agents.rl.learner_connector import _concat, _rows

    data = np.arange(10).reshape(5, 2)
    buffer = SimpleNamespace(data=data, lookback=2)  # rows 0-1 are the lookback
    np.testing.assert_array_equal(_rows(buffer, -1, 2), data[1:4])
    nested = SimpleNamespace(data={"h": data, "c": -data}, lookback=2)
    got = _rows(nested, -2, 1)
    np.testing.assert_array_equal(got["h"], data[0:3])
    np.testing.assert_array_equal(got["c"], -data[0:3])
    np.testing.assert_array_equal(_concat([data]), data)  # a single part
    both = _concat([{"h": data[:2]}, {"h": data[2:]}])
    np.testing.assert_array_equal(both["h"], data)


def test_covers_each_case_it_hands_over():
    multi, blob = _module_and_sample("gru")
    covers = EpisodesToTrainBatch.covers

    def episodes() -> list:
        return pickle.loads(blob)

    assert covers(multi, {}, episodes())
    assert covers(multi[DEFAULT_MODULE_ID], {}, episodes())  # a bare module
    assert not covers(None, {}, episodes())
    assert not covers(multi, {}, [])
    assert not covers(multi, {"obs": {}}, episodes())
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    module = multi[DEFAULT_MODULE_ID]
    spec = RLModuleSpec(
        module_class=type(module),
        observation_space=module.observation_space,
        action_space=module.action_space,
        model_config=module.model_config,
    )
    two = MultiRLModule(rl_module_specs={DEFAULT_MODULE_ID: spec, "other": spec})
    assert not covers(two, {}, episodes())  # two modules
    renamed = MultiRLModule(rl_module_specs={"other": spec})
    assert not covers(renamed, {}, episodes())  # one module, not the default id

    def one_changed(change) -> list:
        eps = episodes()
        change(eps[0])
        return eps

    assert not covers(multi, {}, one_changed(lambda e: setattr(e, "module_id", "p0")))
    assert not covers(multi, {}, [*episodes(), "not an episode"])
    empty = SingleAgentEpisode(
        observations=[np.zeros(4, np.float32)],
        observation_space=episodes()[0].observation_space,
        action_space=episodes()[0].action_space,
    ).to_numpy()
    assert len(empty) == 0 and not covers(multi, {}, [*episodes(), empty])
    both = one_changed(
        lambda e: (setattr(e, "is_terminated", True), setattr(e, "is_truncated", True))
    )
    assert not covers(multi, {}, both)
    no_states = one_changed(lambda e: e.extra_model_outputs.pop("state_out"))
    assert not covers(multi, {}, no_states)
    stateless, blob = _module_and_sample("mlp")
    stateless_episodes = pickle.loads(blob)
    assert all("state_out" not in e.extra_model_outputs for e in stateless_episodes)
    assert covers(stateless, {}, stateless_episodes)


@pytest.mark.parametrize("algo", ["impala", "appo", "ppo"])
def test_learner_pipeline_pieces(algo):
    pieces = learner_pipeline(algo, gamma=0.9, lambda_=0.8, pack=False)(None, None)
    assert isinstance(pieces[0], EpisodesToTrainBatch) and pieces[0].pack is False
    assert learner_pipeline(algo)(None, None)[0].pack is True
    if algo != "ppo":
        assert len(pieces) == 1
        return
    assert len(pieces) == 2 and isinstance(pieces[1], AdvantagesFromTrainBatch)
    assert (pieces[1].gamma, pieces[1].lambda_) == (0.9, 0.8)
    gae = learner_pipeline("ppo")(None, None)[1]
    assert (gae.gamma, gae.lambda_) == (0.99, 1.0)  # RLlib's PPO defaults


@pytest.mark.parametrize(
    "core, max_seq_len, gamma, lambda_",
    # short horizons: raw advantages with a spread below 1 (their scale must still be divided out)
    [("gru", 5, 0.5, 0.5), ("mlp", 22, 0.97, 0.9)],
)
def test_ppo_advantages_equal_rllibs_gae(core, max_seq_len, gamma, lambda_):
    runner = _runner("CartPole-v1", core, max_seq_len, 25)
    try:
        multi = _learner_module(runner)
        groups = _sample(runner, 2, 100)
    finally:
        runner.stop()
    ours = LearnerConnectorPipeline(
        connectors=[
            EpisodesToTrainBatch(),
            AdvantagesFromTrainBatch(gamma=gamma, lambda_=lambda_),
        ]
    )
    stock = _stock(GeneralAdvantageEstimation(gamma=gamma, lambda_=lambda_))
    for blob in groups:
        got = ours(rl_module=multi, batch={}, episodes=pickle.loads(blob), shared_data={})
        want = stock(rl_module=multi, batch={}, episodes=pickle.loads(blob), shared_data={})
        got, want = got[DEFAULT_MODULE_ID], want[DEFAULT_MODULE_ID]
        assert set(got) == set(want)
        for column in ("advantages", "value_targets"):
            assert (
                got[column].shape == want[column].shape and got[column].dtype == want[column].dtype
            )
        real = want[Columns.LOSS_MASK].bool()
        np.testing.assert_allclose(
            got["value_targets"][real], want["value_targets"][real], rtol=1e-5, atol=1e-5
        )
        # RLlib standardises the advantages over the bootstrap rows too; ours over the real steps:
        # RLlib's, standardised again over the real steps, are ours.
        restandardised = _standardised(want["advantages"][real])
        np.testing.assert_allclose(got["advantages"][real], restandardised, rtol=1e-4, atol=1e-5)
        assert abs(float(got["advantages"][real].mean())) < 1e-5
        assert abs(float(got["advantages"][real].std(unbiased=False)) - 1) < 1e-4
        assert got["advantages"].abs().sum() > 0
        if Columns.SEQ_LENS in got:  # both zero in the padding
            lens = got[Columns.SEQ_LENS]
            padding = torch.arange(got["advantages"].shape[1])[None, :] >= lens[:, None]
            assert padding.any()
            assert not got["advantages"][padding].any() and not got["value_targets"][padding].any()
        _assert_same_batch(
            {k: v for k, v in got.items() if k not in ("advantages", "value_targets")},
            {k: v for k, v in want.items() if k not in ("advantages", "value_targets")},
        )
    # A bare module (no MultiRLModule around it) gets the same columns, unwrapped.
    bare = multi[DEFAULT_MODULE_ID]
    got = ours(rl_module=bare, batch={}, episodes=pickle.loads(blob), shared_data={})
    wrapped = ours(rl_module=multi, batch={}, episodes=pickle.loads(blob), shared_data={})
    _assert_same_batch(got, wrapped[DEFAULT_MODULE_ID])


# ------------------------------------------------------------------------------- packed chunks


def _standardised(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / max(1e-4, float(x.std(unbiased=False)))


def _stock_places(rows: np.ndarray, m: int) -> np.ndarray:
    """RLlib's layout: every episode from the start of a chunk of its own."""
    return np.concatenate([[0], np.cumsum(-(-rows // m) * m)[:-1]])


def _positions(episodes: list, places: np.ndarray) -> np.ndarray:
    """Flat [chunks * m] position of every episode row (its steps and its bootstrap row), in
    episode order."""
    return np.concatenate(
        [p + np.arange(len(e) + 1) for e, p in zip(episodes, places, strict=True)]
    )


def test_pack_episodes_layout():
    m = 6
    rows = np.array([4, 3, 2, 7, 5, 1, 3])
    fresh = np.array([False, True, True, False, True, True, True])
    place = pack_episodes(rows, fresh, m)
    # Continuing episodes (0, 3) start chunks, as in RLlib's layout, and leave tails of 2 and 5
    # rows. Longest fresh episode first, best fit: 4 (5 rows) fills episode 3's tail; 1 (3 rows)
    # fits no tail and opens a chunk, whose tail takes 6 (3 rows); 2 (2 rows) fills episode 0's
    # tail; 5 (1 row) opens a chunk.
    assert place.tolist() == [0, 18, 4, 6, 13, 24, 21]
    occupied = np.concatenate([p + np.arange(r) for p, r in zip(place, rows, strict=True)])
    assert len(set(occupied.tolist())) == rows.sum()  # no row is used twice
    # Every chunk's rows are a prefix of it: gaps only at chunk ends.
    chunks = -(-(occupied.max() + 1) // m)
    used = np.zeros((chunks, m), dtype=bool)
    used[occupied // m, occupied % m] = True
    assert (np.diff(used.astype(int), axis=1) <= 0).all()
    assert chunks == 5 < -(-rows // m).sum()  # RLlib's layout: these 7 episodes in 8 chunks
    # Every episode is cut where RLlib's layout cuts it: fresh ones that fit stay in one chunk,
    # the others start a chunk.
    assert all(((p + r - 1) // m == p // m) or p % m == 0 for p, r in zip(place, rows, strict=True))
    # Only fresh episodes: chunks of their own, tails filled.
    assert pack_episodes(np.array([3, 3, 2, 1]), np.ones(4, dtype=bool), 4).tolist() == [0, 4, 8, 3]
    # Best fit, not first fit: the 2-row episode takes the later tail of 2, not the first of 5.
    assert pack_episodes(np.array([1, 4, 2]), np.array([False, False, True]), 6).tolist() == [
        0,
        6,
        10,
    ]
    # A fresh episode of exactly one chunk is packed (after the chunks that must start one).
    assert pack_episodes(np.array([4, 2]), np.array([True, False]), 4).tolist() == [4, 0]


def test_pack_episodes_with_nothing_that_fits_a_tail_is_rllibs_layout():
    rows = np.array([3, 9, 1, 5])
    fresh = np.array([False, False, False, True])  # (the fresh one is longer than a chunk)
    np.testing.assert_array_equal(pack_episodes(rows, fresh, 4), _stock_places(rows, 4))


@pytest.mark.parametrize(
    "env, algo, core, fragment",
    [
        ("MiniPacman-Viewport-v0", "impala", "rmc", 12),
        ("CartPole-v1", "impala", "rmc", 25),
        ("CartPole-v1", "appo", "rmc", 25),  # the target network's unroll too
        ("CartPole-v1", "impala", "dnc", 25),
    ],
)
def test_packed_chunks_give_the_loss_and_gradients_of_rllibs_layout(env, algo, core, fragment):
    m = 8
    run = RunSettings(
        env=env, algo=algo, model=ModelSettings(core=core, max_seq_len=m, **_SMALL), seed=5
    )
    run.resources.num_env_runners = 0
    run.resources.envs_per_runner = 8
    run.training.rollout_fragment_length = fragment
    config = build_algo_config(run)
    runner = LeanEnvRunner(config=config)
    try:
        learner = config.build_learner_group(env=runner.env)._learner
        groups = _sample(runner, 4, fragment * 8)
    finally:
        runner.stop()
    multi, mid = learner.module, DEFAULT_MODULE_ID
    params = [p for p in multi[mid].parameters() if p.requires_grad]
    assert multi[mid].accepts_resets
    seen = {"reset_inside": 0, "multi_chunk": 0, "saved": 0}
    for blob in groups:
        episodes = pickle.loads(blob)
        rows = np.array([len(e) + 1 for e in episodes])
        fresh = np.array([e.t_started == 0 for e in episodes])
        packed = EpisodesToTrainBatch(pack=True)(
            rl_module=multi, batch={}, episodes=episodes, shared_data={}
        )[mid]
        stock = _stock()(rl_module=multi, batch={}, episodes=pickle.loads(blob), shared_data={})[
            mid
        ]
        resets = packed.pop(RESETS)
        place = pack_episodes(rows, fresh, m)
        assert resets.shape == packed[Columns.LOSS_MASK].shape
        np.testing.assert_array_equal(np.flatnonzero(resets.numpy().ravel()), np.sort(place[fresh]))
        seen["reset_inside"] += int((place[fresh] % m != 0).sum())
        seen["multi_chunk"] += int((rows > m).sum())
        seen["saved"] += len(stock[Columns.SEQ_LENS]) - len(packed[Columns.SEQ_LENS])
        assert set(packed) == set(stock)
        got_at, want_at = _positions(episodes, place), _positions(episodes, _stock_places(rows, m))
        for column in (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.LOSS_MASK):
            for g, w in zip(tree.flatten(packed[column]), tree.flatten(stock[column]), strict=True):
                assert torch.equal(g.flatten(0, 1)[got_at], w.flatten(0, 1)[want_at]), column
        assert packed[Columns.LOSS_MASK].sum() == stock[Columns.LOSS_MASK].sum()
        packed[RESETS] = resets
        results = []
        for batch, at in ((packed, got_at), (stock, want_at)):
            module_config = learner.config.get_config_for_module(mid)
            fwd = multi[mid].forward_train(batch)
            loss = learner.compute_loss_for_module(
                module_id=mid, config=module_config, batch=batch, fwd_out=fwd
            )
            logits = fwd[Columns.ACTION_DIST_INPUTS].flatten(0, 1)[at]
            results.append((loss, logits, torch.autograd.grad(loss, params)))
        (loss, logits, grads), (want_loss, want_logits, want_grads) = results
        torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=1e-6)
        for g, w in zip(grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    # The samples held what the comparison is meant to cover.
    assert seen["reset_inside"] and seen["multi_chunk"] and seen["saved"] > 0


def test_packed_ppo_advantages_equal_rllibs_gae():
    m, gamma, lambda_ = 6, 0.97, 0.9
    runner = _runner("CartPole-v1", "rmc", m, 25)
    try:
        multi = _learner_module(runner)
        groups = _sample(runner, 2, 100)
    finally:
        runner.stop()
    ours = LearnerConnectorPipeline(
        connectors=[
            EpisodesToTrainBatch(pack=True),
            AdvantagesFromTrainBatch(gamma=gamma, lambda_=lambda_),
        ]
    )
    stock = _stock(GeneralAdvantageEstimation(gamma=gamma, lambda_=lambda_))
    for blob in groups:
        episodes = pickle.loads(blob)
        rows = np.array([len(e) + 1 for e in episodes])
        place = pack_episodes(rows, np.array([e.t_started == 0 for e in episodes]), m)
        got = ours(rl_module=multi, batch={}, episodes=episodes, shared_data={})[DEFAULT_MODULE_ID]
        want = stock(rl_module=multi, batch={}, episodes=pickle.loads(blob), shared_data={})
        want = want[DEFAULT_MODULE_ID]
        assert got["advantages"].shape[0] < want["advantages"].shape[0]
        got_at, want_at = _positions(episodes, place), _positions(episodes, _stock_places(rows, m))
        real = want[Columns.LOSS_MASK].flatten()[want_at]
        assert torch.equal(got[Columns.LOSS_MASK].flatten()[got_at], real)
        got_at, want_at = got_at[real.numpy()], want_at[real.numpy()]
        np.testing.assert_allclose(
            got["value_targets"].flatten()[got_at],
            want["value_targets"].flatten()[want_at],
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            got["advantages"].flatten()[got_at],
            _standardised(want["advantages"].flatten()[want_at]),
            rtol=1e-4,
            atol=1e-5,
        )
