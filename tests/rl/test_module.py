"""The RLModule: shapes per space type, clear errors, and learner == EnvRunner recomputation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.target_network_api import TARGET_NETWORK_ACTION_DIST_INPUTS
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rmc_agents.rl.encoders import UnsupportedSpaceError, build_encoder
from rmc_agents.rl.module import RecurrentAgentModule

SMALL = {
    "rmc": {"mem_slots": 2, "head_size": 8, "num_heads": 2},
    "lstm": {"hidden_size": 16},
    "gru": {"hidden_size": 16},
    "mlp": {"hidden_size": 16},
}


def build(core: str, obs_space: gym.Space, act_space: gym.Space | None = None, **extra):
    cfg = {"core": core, "core_kwargs": SMALL[core], "max_seq_len": 4, **extra}
    return RLModuleSpec(
        module_class=RecurrentAgentModule,
        observation_space=obs_space,
        action_space=act_space or gym.spaces.Discrete(5),
        model_config=cfg,
    ).build()


def sample_batch(space: gym.Space, lead: tuple[int, ...]):
    """Random observations with leading dims ``lead``, as RLlib would feed them (tensors)."""
    if isinstance(space, gym.spaces.Dict):
        return {k: sample_batch(s, lead) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(sample_batch(s, lead) for s in space.spaces)
    n = int(np.prod(lead))
    items = np.stack([np.asarray(space.sample()) for _ in range(n)])
    return torch.as_tensor(items).reshape(*lead, *items.shape[1:])


def initial_state(module, batch_size):
    return {
        k: torch.from_numpy(v).unsqueeze(0).repeat(batch_size, *[1] * v.ndim)
        for k, v in module.get_initial_state().items()
    }


SPACES = {
    "image": gym.spaces.Box(0.0, 1.0, (5, 6, 3), np.float32),
    "image_uint8": gym.spaces.Box(0, 255, (7, 7, 3), np.uint8),
    "flat": gym.spaces.Box(-1.0, 1.0, (4,), np.float32),
    "matrix": gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32),
    "discrete": gym.spaces.Discrete(6),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 4]),
    "dict": gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (5, 5, 3), np.uint8),
            "direction": gym.spaces.Discrete(4),
        }
    ),
    "tuple": gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(0, 1, (2,), np.float32))),
}


@pytest.mark.parametrize("core", ["rmc", "lstm", "gru", "mlp"])
@pytest.mark.parametrize("space_name", list(SPACES))
def test_shapes_per_space(core, space_name):
    space = SPACES[space_name]
    module = build(core, space)
    b, t = 3, 4
    if core == "mlp":
        assert module.get_initial_state() == {}
        batch = {Columns.OBS: sample_batch(space, (b,))}
        out = module.forward_train(batch)
        assert out[Columns.ACTION_DIST_INPUTS].shape == (b, 5)
        assert module.compute_values(batch).shape == (b,)
        return
    state = module.get_initial_state()
    assert state and all(isinstance(v, np.ndarray) for v in state.values())
    batch = {Columns.OBS: sample_batch(space, (b, t)), Columns.STATE_IN: initial_state(module, b)}
    out = module.forward_train(batch)
    assert out[Columns.ACTION_DIST_INPUTS].shape == (b, t, 5)
    assert set(out[Columns.STATE_OUT]) == set(state)
    for key, value in state.items():
        assert out[Columns.STATE_OUT][key].shape == (b, *value.shape)
    values = module.compute_values(batch, out[Columns.EMBEDDINGS])
    assert values.shape == (b, t)
    torch.testing.assert_close(values, module.compute_values(batch))


def test_image_cells_enter_the_rmc_as_rows_with_coordinates():
    enc = build_encoder(SPACES["image"], rows=True)
    assert enc.num_rows == 3 * 4 and enc.out_size == 24 + 2
    feats = enc(torch.zeros(2, 5, 6, 3))
    # The last two features of every cell are the x and y coordinates in [-1, 1].
    xy = feats[0, :, -2:].reshape(3, 4, 2)
    torch.testing.assert_close(xy[0, :, 0], torch.linspace(-1, 1, 4))
    torch.testing.assert_close(xy[:, 0, 1], torch.linspace(-1, 1, 3))
    # A Dict with flat parts adds one row for them.
    assert build_encoder(SPACES["dict"], rows=True).num_rows == 3 * 3 + 1
    flat = build_encoder(SPACES["image"], rows=False)
    assert flat.num_rows == 0 and flat.out_size == 12 * 26


def test_image_torso_is_two_by_two_convolutions_with_relus():
    """The torso's cells equal torch's ``conv2d`` with the torso's own weights, ReLU after each
    layer, in row-major cell order, with their x/y coordinates last (values and gradients)."""
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, (7, 6, 3), np.uint8)
    enc = build_encoder(space, conv_channels=[12, 24, 8], rows=True)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [12, 24, 8]
    x = torch.randint(0, 256, (5, 7, 6, 3))
    got = enc(x)
    y = x.float().permute(0, 3, 1, 2) / 255.0
    for conv in convs:
        y = torch.relu(torch.nn.functional.conv2d(y, conv.weight, conv.bias))
    cells = y.flatten(2).transpose(1, 2)  # [N, 4 * 3, 8], row-major
    assert got.shape == (5, 4 * 3, 8 + 2)
    torch.testing.assert_close(got[..., :8], cells)
    got[..., :8].square().sum().backward()
    want = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    cells.square().sum().backward()
    for g, w in zip(want, [p.grad for p in enc.parameters()], strict=True):
        torch.testing.assert_close(g, w)


def test_one_hot_encoding_of_discrete_parts():
    enc = build_encoder(gym.spaces.MultiDiscrete([2, 3]), mlp_hiddens=())
    out = enc(torch.tensor([[1, 2], [0, 0]]))
    torch.testing.assert_close(out, torch.tensor([[0, 1, 0, 0, 1], [1, 0, 1, 0, 0]]).float())


def test_text_parts_are_skipped_with_one_warning():
    space = gym.spaces.Dict(
        {
            "image": SPACES["image_uint8"],
            "direction": gym.spaces.Discrete(4),
            "mission": gym.spaces.Text(20),
        }
    )
    with pytest.warns(UserWarning, match="mission") as record:
        build_encoder(space)
    assert len(record) == 1


@pytest.mark.parametrize(
    "space",
    [gym.spaces.Text(10), gym.spaces.Dict({"m": gym.spaces.Text(5)})],
    ids=["text", "only_text"],
)
def test_unsupported_observation_space_names_it(space):
    with (
        pytest.raises(UnsupportedSpaceError, match="Text"),
        pytest.warns(UserWarning) if isinstance(space, gym.spaces.Dict) else _nullcontext(),
    ):
        build("rmc", space)


def test_unsupported_action_space_names_it():
    with pytest.raises(UnsupportedSpaceError, match="action space"):
        build("lstm", SPACES["flat"], gym.spaces.MultiBinary(3))


def test_multidiscrete_and_box_actions():
    module = build("gru", SPACES["flat"], gym.spaces.MultiDiscrete([2, 3]))
    batch = {
        Columns.OBS: sample_batch(SPACES["flat"], (2, 3)),
        Columns.STATE_IN: initial_state(module, 2),
    }
    logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    assert logits.shape == (2, 3, 5)
    dist = module.get_train_action_dist_cls().from_logits(logits.reshape(6, 5))
    assert dist.sample().shape == (6, 2)
    box = build("gru", SPACES["flat"], gym.spaces.Box(-1, 1, (2,), np.float32))
    assert box.forward_train(batch)[Columns.ACTION_DIST_INPUTS].shape == (2, 3, 4)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- learner recomputation == what the EnvRunner computed while acting ---------------------


@pytest.mark.parametrize(
    "env, core, extra",
    [
        ("CartPole-v1", "rmc", {}),
        ("CartPole-v1", "rmc", {"rmc_input_read": True, "skip": True, "gate_style": "unit"}),
        ("CartPole-v1", "lstm", {}),
        ("rmc_agents.rl.toy_envs:CueRecallDict", "rmc", {}),
        ("rmc_agents.rl.toy_envs:CueRecall", "gru", {"prev_action": True, "prev_reward": True}),
        ("CartPole-v1", "dnc", {"memory_size": 4, "word_size": 4}),
        # image cells as rows (the factored input attention), the tuned viewport RMC's options
        (
            "MiniPacman-Viewport-v0",
            "rmc",
            {"skip": True, "slot_embeddings": True, "coupled_gates": True},
        ),
    ],
)
def test_learner_recomputes_what_the_env_runner_computed(env, core, extra):
    """Sample with a real EnvRunner, chunk episodes with IMPALA's learner connector, re-run.

    Episodes are cut across several ``sample()`` calls (continuation chunks whose state comes from
    the previous chunk), span several ``max_seq_len = 4`` chunks, and many episodes start inside
    one sampling call (resets). The logits recomputed on the learner path must equal the ones the
    EnvRunner recorded, step for step.
    """
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.settings import ModelSettings, RunSettings

    model = ModelSettings(
        core=core, mem_slots=2, head_size=8, num_heads=2, hidden_size=16, max_seq_len=4, **extra
    )
    run = RunSettings(env=env, model=model, seed=3)
    run.resources.num_env_runners = 0
    run.resources.envs_per_runner = 3
    config = build_algo_config(run)
    runner = SingleAgentEnvRunner(config=config)
    try:
        with torch.no_grad():  # weights away from their initial values (gates, norms, slots)
            noise = torch.Generator().manual_seed(0)
            for param in runner.module.parameters():
                param.add_(torch.randn(param.shape, generator=noise) * 0.05)
        episodes = []
        for _ in range(4):
            episodes += runner.sample(num_timesteps=27, random_actions=False)
        for _ in range(16):  # longer games (Mini-Pacman): until three episodes have ended
            if sum(e.is_done for e in episodes) >= 3:
                break
            episodes += runner.sample(num_timesteps=27, random_actions=False)
        assert any(e.t_started > 0 for e in episodes), "no continuation chunk was sampled"
        assert sum(e.is_done for e in episodes) >= 3, "too few episode ends (resets)"
        assert any(len(e) > 2 * model.max_seq_len for e in episodes), "no multi-chunk episode"

        spec = config.get_rl_module_spec(
            env=runner.env.unwrapped, spaces=runner.get_spaces(), inference_only=False
        )
        learner_module = spec.build()
        learner_module.set_state(runner.module.get_state())
        num_steps = sum(len(e) for e in episodes)  # (the connector appends a bootstrap step)
        connector = config.build_learner_connector(
            runner.env.single_observation_space, runner.env.single_action_space
        )
        batch = connector(
            rl_module=learner_module,
            batch={},
            episodes=[e.to_numpy() for e in episodes],
            explore=False,
            shared_data={},
        )
        assert batch[Columns.OBS] is not None
        assert batch[Columns.SEQ_LENS].max() <= model.max_seq_len
        assert len(batch[Columns.SEQ_LENS]) > len(episodes)  # episodes were cut into chunks
        with torch.no_grad():
            out = learner_module.forward_train(batch)
        mask = batch[Columns.LOSS_MASK].bool()
        recorded = batch[Columns.ACTION_DIST_INPUTS][mask]
        recomputed = out[Columns.ACTION_DIST_INPUTS][mask]
        assert recorded.shape[0] == num_steps
        torch.testing.assert_close(recomputed, recorded, atol=1e-5, rtol=1e-5)
        # And the logits really depend on the state (a wrong state would be caught).
        zero_state = {k: torch.zeros_like(v) + 0.5 for k, v in batch[Columns.STATE_IN].items()}
        with torch.no_grad():
            wrong = learner_module.forward_train({**batch, Columns.STATE_IN: zero_state})
        assert not torch.allclose(wrong[Columns.ACTION_DIST_INPUTS][mask], recorded, atol=1e-4)
    finally:
        runner.stop()


def test_minigrid_observations_work_without_wrappers():
    """MiniGrid's Dict has a custom MissionSpace (not Text): skipped with one warning."""
    pytest.importorskip("minigrid")
    env = gym.make("MiniGrid-MemoryS7-v0")
    with pytest.warns(UserWarning, match="mission"):
        module = build("rmc", env.observation_space, env.action_space)
    obs, _ = env.reset(seed=0)
    batch = {
        Columns.OBS: {
            "image": torch.as_tensor(obs["image"])[None, None],
            "direction": torch.as_tensor([[obs["direction"]]]),
            "mission": [[obs["mission"]]],
        },
        Columns.STATE_IN: initial_state(module, 1),
    }
    out = module.forward_inference(batch)
    assert out[Columns.ACTION_DIST_INPUTS].shape == (1, 1, env.action_space.n)


def test_default_max_seq_len_gives_one_learner_chunk_per_fragment():
    """With the default settings every sampled fragment fills exactly one learner chunk.

    An EnvRunner fragment holds up to ``rollout_fragment_length + 1`` steps (a sub-env's reset
    step is not counted) and IMPALA's learner connector appends a bootstrap step: with
    ``max_seq_len`` below ``rollout_fragment_length + 2`` most fragments would spill one or two
    steps into a second, almost empty chunk, and the learner would do about twice the work.
    (RLlib's layout, one episode per chunk, ``training.pack_chunks: false``; packed, episodes that
    start inside a fragment share chunks, so there are fewer chunks than fragments.)
    """
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rmc_agents.rl.algorithms import build_algo_config
    from rmc_agents.rl.settings import RunSettings

    run = RunSettings(env="MiniPacman-Viewport-v0", seed=1)
    run.model.mem_slots, run.model.head_size, run.model.num_heads = 2, 8, 2
    run.resources.num_env_runners = 0
    run.resources.envs_per_runner = 8
    run.training.pack_chunks = False
    assert run.model.max_seq_len == run.training.rollout_fragment_length + 2
    config = build_algo_config(run)
    runner = SingleAgentEnvRunner(config=config)
    try:
        episodes = []
        for _ in range(3):
            episodes += runner.sample()  # rollout_fragment_length steps per sub-env
        lengths = [len(e) for e in episodes]  # (the connector appends to the episodes)
        assert max(lengths) == run.training.rollout_fragment_length + 1
        spec = config.get_rl_module_spec(
            env=runner.env.unwrapped, spaces=runner.get_spaces(), inference_only=False
        )
        connector = config.build_learner_connector(
            runner.env.single_observation_space, runner.env.single_action_space
        )
        batch = connector(
            rl_module=spec.build(),
            batch={},
            episodes=[e.to_numpy() for e in episodes],
            explore=False,
            shared_data={},
        )
        seq_lens = np.asarray(batch[Columns.SEQ_LENS])
        assert len(seq_lens) == len(episodes)  # one chunk per fragment, none spilled
        assert seq_lens.sum() == sum(n + 1 for n in lengths)  # + the bootstrap step
        assert batch[Columns.OBS].shape[1] == run.model.max_seq_len
        run.training.pack_chunks = True
        packed = build_algo_config(run).build_learner_connector(
            runner.env.single_observation_space, runner.env.single_action_space
        )(
            rl_module=spec.build(),
            batch={},
            episodes=[e.to_numpy() for e in episodes],
            explore=False,
            shared_data={},
        )
        assert packed[Columns.SEQ_LENS].sum() == seq_lens.sum()
        assert len(packed[Columns.SEQ_LENS]) < len(seq_lens)  # (episodes ended in fragments)
    finally:
        runner.stop()


def test_stateless_cartpole_id_hides_velocities_and_keeps_the_time_limit():
    """``rmc_agents.rl.toy_envs:StatelessCartPole-v1``: position and angle only, 500-step limit."""
    from rmc_agents.rl.envs import make_env, resolve_env

    spec = "rmc_agents.rl.toy_envs:StatelessCartPole-v1"
    assert not resolve_env(spec).is_class
    env = make_env({"env_spec": spec})
    assert env.spec.max_episode_steps == 500
    assert env.observation_space.shape == (2,)
    obs, _ = env.reset(seed=3)
    full = np.asarray(env.unwrapped.state, dtype=np.float32)  # x, x_dot, theta, theta_dot
    np.testing.assert_allclose(obs, full[[0, 2]], rtol=1e-6)
    env.close()


def test_image_pool_averages_the_conv_map_over_blocks_before_the_coordinates():
    """image_pool N: the unpooled torso's cells averaged over N x N blocks (stride N; a block cut
    by the map's edge averages the cells it has), in row-major block order, with coordinates over
    the pooled grid; the flattened output shrinks with it. Bad sizes are refused."""
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, (9, 7, 3), np.uint8)  # conv map 7 x 5
    plain = build_encoder(space, rows=True)
    pooled = build_encoder(space, rows=True, pool=3)
    pooled.load_state_dict(plain.state_dict())
    assert pooled.num_rows == 3 * 2 and pooled.out_size == 24 + 2
    x = torch.randint(0, 256, (4, 9, 7, 3))
    cells = plain(x)[..., :24].reshape(4, 7, 5, 24)
    want = torch.stack(
        [
            cells[:, r : r + 3, c : c + 3].mean(dim=(1, 2))
            for r in range(0, 7, 3)
            for c in range(0, 5, 3)
        ],
        dim=1,
    )  # the last block row holds one cell row, the last block column two columns
    got = pooled(x)
    torch.testing.assert_close(got[..., :24], want)
    xy = got[0, :, -2:].reshape(3, 2, 2)
    torch.testing.assert_close(xy[0, :, 0], torch.linspace(-1, 1, 2))
    torch.testing.assert_close(xy[:, 0, 1], torch.linspace(-1, 1, 3))
    flat = build_encoder(space, rows=False, pool=3)
    assert flat.out_size == 3 * 2 * 26
    assert build_encoder(space, rows=True, pool=1).num_rows == 7 * 5
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="image_pool"):
            build_encoder(space, pool=bad)


def test_image_projection_maps_the_flattened_cells_through_one_learned_layer():
    """image_projection P: the flattened torso (every image's cells, in order) through
    Linear -> ReLU to P features, the flat parts' features after them unchanged; refused with
    cells as rows and for sizes that are not positive ints."""
    torch.manual_seed(0)
    image = gym.spaces.Box(0, 255, (9, 7, 3), np.uint8)  # conv map 7 x 5: 910 features
    space = gym.spaces.Dict({"image": image, "vec": gym.spaces.Box(-1, 1, (3,), np.float32)})
    plain = build_encoder(space, rows=False)
    projected = build_encoder(space, rows=False, projection=6)
    projected.load_state_dict(plain.state_dict(), strict=False)
    assert plain.out_size == 7 * 5 * 26 + 64 and projected.out_size == 6 + 64
    obs = {"image": torch.randint(0, 256, (4, 9, 7, 3)), "vec": torch.rand(4, 3) * 2 - 1}
    flat = plain(obs)
    layer = projected.image_projection[0]
    want = torch.relu(flat[:, : 7 * 5 * 26] @ layer.weight.T + layer.bias)
    got = projected(obs)
    torch.testing.assert_close(got[:, :6], want)
    torch.testing.assert_close(got[:, 6:], flat[:, 7 * 5 * 26 :])
    extra = sum(p.numel() for p in projected.parameters()) - sum(
        p.numel() for p in plain.parameters()
    )
    assert extra == 7 * 5 * 26 * 6 + 6
    with pytest.raises(ValueError, match="image_projection needs the image cells flattened"):
        build_encoder(space, rows=True, projection=6)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="image_projection must be a positive int"):
            build_encoder(space, rows=False, projection=bad)


@pytest.mark.parametrize("core", ["rmc", "lstm"])
def test_the_spaces_check_and_the_module_build_the_same_torso(core):
    """build_torso (what check_spaces builds before a run) gives the module's own torso: cells
    as rows only for the RMC, the pool and channels from the model config."""
    from rmc_agents.rl.module import build_torso
    from rmc_agents.rl.settings import ModelSettings

    space = gym.spaces.Box(0, 255, (9, 7, 3), np.uint8)
    settings = ModelSettings(core=core, image_pool=3, conv_channels=[8, 16], hidden_size=32)
    torso = build_torso(space, settings.rllib_model_config())
    cfg = settings.rllib_model_config()
    del cfg["core"]
    module = build(core, space, **{**cfg, "core_kwargs": SMALL[core]})
    assert (torso.num_rows, torso.out_size) == (module.encoder.num_rows, module.encoder.out_size)
    assert torso.num_rows == (3 * 2 if core == "rmc" else 0)
    assert module.encoder.state_dict().keys() == torso.state_dict().keys()


@pytest.mark.parametrize("core", ["rmc", "lstm", "mlp"])
def test_skip_and_output_scale_shape_what_the_heads_see(core):
    """skip: the heads' inputs are the core's output, then the torso's features flattened;
    output_scale multiplies the core's part only; the logits are the heads of that."""
    space = SPACES["image"]
    plain = build(core, space)
    torch.manual_seed(0)
    scaled = build(core, space, skip=True, output_scale=0.25)
    core_state = {k: v for k, v in scaled.state_dict().items() if not k.startswith(("pi", "vf"))}
    plain.load_state_dict(core_state, strict=False)
    lead = (2, 3) if core != "mlp" else (6,)
    obs = sample_batch(space, lead)
    batch = {Columns.OBS: obs}
    if core != "mlp":
        batch[Columns.STATE_IN] = initial_state(plain, 2)
    with torch.no_grad():
        ours = scaled.forward_train(batch)[Columns.EMBEDDINGS]
        reference = plain.forward_train(batch)[Columns.EMBEDDINGS]
        feats = scaled.encoder(obs.reshape(-1, *space.shape)).reshape(*lead, -1)
    size = plain.core.output_size
    assert ours.shape[-1] == size + scaled.skip_size == size + feats.shape[-1]
    torch.testing.assert_close(ours[..., :size], 0.25 * reference)
    torch.testing.assert_close(ours[..., size:], feats)
    logits = scaled.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(logits, scaled.pi(scaled.pi_torso(ours)))


@pytest.mark.parametrize("core", ["rmc", "lstm", "mlp"])
def test_value_trains_core_false_stops_the_value_gradient_at_the_cores_output(core):
    """``model.value_trains_core: false``: the value loss gives the core no gradient, but still the
    value head and, through the skip, the torso; the values themselves are unchanged."""
    from rmc_agents.rl.settings import ModelSettings

    space = gym.spaces.Box(0.0, 1.0, (5, 5, 3), np.float32)
    modules = []
    for trains in (True, False):
        settings = ModelSettings(core=core, mem_slots=2, head_size=8, num_heads=2, hidden_size=16)
        settings.skip, settings.value_trains_core = True, trains
        torch.manual_seed(0)
        modules.append(
            RecurrentAgentModule(
                observation_space=space,
                action_space=gym.spaces.Discrete(5),
                model_config=settings.rllib_model_config(),
            )
        )
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.random((3, 4, 5, 5, 3), dtype=np.float32))
    grads, values = [], []
    for module in modules:
        batch = {Columns.OBS: obs if core != "mlp" else obs[:, 0]}
        if core != "mlp":
            state = module.get_initial_state()
            batch[Columns.STATE_IN] = {
                k: torch.as_tensor(np.repeat(v[None], 3, axis=0)) for k, v in state.items()
            }
        out = module.forward_train(batch)
        value = module.compute_values(batch, out[Columns.EMBEDDINGS])
        value.sum().backward()
        values.append(value.detach())
        grads.append(
            {
                group: sum(
                    float(p.grad.abs().sum())
                    for name, p in module.named_parameters()
                    if name.startswith(group) and p.grad is not None
                )
                for group in ("core", "encoder", "vf")
            }
        )
    torch.testing.assert_close(values[0], values[1])
    assert grads[0]["core"] > 0 and grads[1]["core"] == 0
    assert grads[1]["encoder"] > 0 and grads[1]["vf"] > 0


def test_rmc_input_read_gives_the_heads_the_read_after_the_memory():
    """``model.rmc_input_read``: the core's output grows by one memory row (the input rows' read),
    the heads take it, and the part before it is the output of the same core without the read."""
    from rmc_agents.rl.settings import ModelSettings

    space = SPACES["image"]
    modules = {}
    for read in (False, True):
        settings = ModelSettings(
            core="rmc", mem_slots=2, head_size=8, num_heads=2, skip=True, rmc_input_read=read
        )
        torch.manual_seed(0)
        modules[read] = RecurrentAgentModule(
            observation_space=space,
            action_space=gym.spaces.Discrete(5),
            model_config=settings.rllib_model_config(),
        )
    plain, read = modules[False], modules[True]
    assert read.core.read_inputs and not plain.core.read_inputs
    assert read.core_out_size == plain.core_out_size + 16
    assert read.pi.in_features == plain.pi.in_features + 16
    shared = {k: v for k, v in read.state_dict().items() if not k.startswith(("pi", "vf"))}
    plain.load_state_dict(shared, strict=False)
    obs = sample_batch(space, (2, 3))
    batch = {Columns.OBS: obs, Columns.STATE_IN: initial_state(plain, 2)}
    with torch.no_grad():
        ours = read.forward_train(batch)[Columns.EMBEDDINGS]
        theirs = plain.forward_train(batch)[Columns.EMBEDDINGS]
    size = plain.core_out_size
    torch.testing.assert_close(ours[..., :size], theirs[..., :size])  # the memory
    torch.testing.assert_close(ours[..., size + 16 :], theirs[..., size:])  # the skip
    assert ours[..., size : size + 16].abs().sum() > 0  # the read


@pytest.mark.parametrize("core", ["rmc", "lstm", "mlp"])
def test_output_gain_is_a_learned_scalar_on_the_cores_part_of_the_heads_input(core):
    """``model.output_gain``: the heads see gain x output_scale x the core's output, then the skip's
    features unscaled; at 0 the core's part is zero and the core gets no gradient until the gain
    moves, but the gain itself does; APPO's target copy holds its own frozen gain."""
    space = SPACES["image"]
    torch.manual_seed(0)
    plain = build(core, space, skip=True)
    torch.manual_seed(0)
    gained = build(core, space, skip=True, output_scale=0.5, output_gain=0.0)
    gained.load_state_dict(plain.state_dict(), strict=False)
    lead = (2, 3) if core != "mlp" else (6,)
    batch = {Columns.OBS: sample_batch(space, lead)}
    if core != "mlp":
        batch[Columns.STATE_IN] = initial_state(plain, 2)
    size = plain.core.output_size
    out = gained.forward_train(batch)
    out[Columns.ACTION_DIST_INPUTS].pow(2).sum().backward()
    emb = out[Columns.EMBEDDINGS].detach()
    assert float(emb[..., :size].abs().max()) == 0.0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in gained.core.parameters())
    assert float(gained.output_gain.gain.grad.abs()) > 0
    with torch.no_grad():
        gained.output_gain.gain.fill_(0.3)
        reference = plain.forward_train(batch)[Columns.EMBEDDINGS]
        ours = gained.forward_train(batch)[Columns.EMBEDDINGS]
    torch.testing.assert_close(ours[..., :size], 0.3 * 0.5 * reference[..., :size])
    torch.testing.assert_close(ours[..., size:], reference[..., size:])
    gained.make_target_networks()
    assert float(gained._target["output_gain"].gain) == pytest.approx(0.3)
    assert not gained._target["output_gain"].gain.requires_grad
    with torch.no_grad():
        gained.output_gain.gain.fill_(0.0)
        target = gained.forward_target(batch)[TARGET_NETWORK_ACTION_DIST_INPUTS]
        expected = gained.pi(gained.pi_torso(ours))
    torch.testing.assert_close(target, expected)


def test_output_gain_at_zero_without_the_skip_is_refused():
    from rmc_agents.rl.settings import ModelSettings

    with pytest.raises(ValueError, match="output_gain: 0 needs model.skip"):
        ModelSettings(core="rmc", output_gain=0.0).validate()
    with pytest.raises(ValueError, match="output_gain: 0 needs skip"):
        build("rmc", SPACES["image"], output_gain=0.0)
