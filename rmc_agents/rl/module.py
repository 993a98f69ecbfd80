"""The agent as an RLlib (new API stack) ``TorchRLModule``: torso -> recurrent core -> heads.

The torso is chosen from the observation space (:mod:`rmc_agents.rl.encoders`), the core by name
(``rmc``, ``lstm``, ``gru`` from :mod:`rmc_agents.core`, or ``mlp``: a memoryless floor), then a
policy head (action-distribution inputs) and a value head (``ValueFunctionAPI``, used by IMPALA's
V-trace loss).

The core's memory travels as RLlib recurrent state: :meth:`RecurrentAgentModule.get_initial_state`
returns ``{"s0": array, "s1": ...}`` (numpy, no batch dimension; one entry per tensor of the core's
state). On the EnvRunner RLlib feeds one step (``T = 1``) and the last ``STATE_OUT`` of the episode
(or the initial state at an episode start) as ``STATE_IN``; on the Learner it feeds chunks of up to
``max_seq_len`` steps, each inside one episode, zero-padded at the end, with the state recorded at
the chunk's first step as ``STATE_IN``. Both paths run the same :meth:`_unroll`, which calls
``core.unroll`` over the time dimension. In RLlib's layout a chunk never crosses an episode start;
this project's learner connector packs fresh episodes into the tails of other episodes' chunks
where the module :attr:`~RecurrentAgentModule.accepts_resets` (the RMC and DNC), with a ``resets``
column that marks where each one starts: the core restarts from its initial state there.

Previous action and reward, when asked for (``prev_action``/``prev_reward`` in the model config),
come from RLlib's ``PrevActionsPrevRewards`` env-to-module connector (added by the config builder),
which turns the observation into a Dict that the Dict torso encodes like any other.

``model_config`` keys, all optional (:func:`rmc_agents.rl.policy_spec` builds them from named
settings and checks them): ``core`` (``"rmc"``), ``core_kwargs`` (dict for
:func:`rmc_agents.core.make_core`; ``hidden_size`` for ``mlp``; empty: the default size of
``ModelSettings``, e.g. 4 memories x 4 heads x 32 for the RMC), ``conv_channels`` (``[12, 24]``), ``mlp_hiddens`` (``[64]``), ``image_rows``
(``True``: image cells enter the RMC as rows), ``image_pool`` (1: the conv map averaged over
``image_pool x image_pool`` blocks before it is flattened or made rows), ``image_projection``
(None: the flattened image features, through a learned Linear -> ReLU of this size first), ``head_hiddens`` (``[]``), ``max_seq_len`` (22),
``skip`` (``False``: the heads also see the torso's features beside the core's output),
``output_scale`` (1.0: the core's output is multiplied by it before the heads),
``output_gain`` (None; a number: a learned scalar, starting at that number, multiplies the core's
output before the heads, beside ``output_scale``; 0 lets the heads start from the skip alone),
``value_trains_core`` (``True``; ``False``: the value loss's gradient stops at the core's output),
``cuda_graphs`` (``True``: on a GPU learner the RMC's unroll is replayed from CUDA graphs, see
:mod:`rmc_agents.rl.cuda_graphs`; no effect on a CPU).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tree
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.apis.target_network_api import TARGET_NETWORK_ACTION_DIST_INPUTS
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

from rmc_agents.core import as_tuple, make_core
from rmc_agents.rl import quiet
from rmc_agents.rl.cuda_graphs import GraphedUnroll
from rmc_agents.rl.encoders import UnsupportedSpaceError, build_encoder
from rmc_agents.rl.learner_connector import RESETS
from rmc_agents.rl.settings import ModelSettings

# EnvRunner and learner processes import this module to build the policy: quiet RLlib's start-up
# lines there too (rmc_agents.rl.quiet).
quiet.install()

__all__ = [
    "MODEL_NAMES",
    "MLPCore",
    "RecurrentAgentModule",
    "action_logits_size",
    "build_torso",
]

MODEL_NAMES = ("rmc", "lstm", "gru", "dnc", "mlp")

DEFAULT_MODEL_CONFIG: dict[str, Any] = {
    "core": "rmc",
    "core_kwargs": {},
    "conv_channels": [12, 24],
    "mlp_hiddens": [64],
    "image_rows": True,
    "image_pool": 1,
    "image_projection": None,
    "head_hiddens": [],
    "skip": False,
    "output_scale": 1.0,
    "output_gain": None,
    "value_trains_core": True,
    "max_seq_len": 22,
    "cuda_graphs": True,
}


def build_torso(observation_space: gym.Space, model_config: dict[str, Any]) -> nn.Module:
    """The torso :class:`RecurrentAgentModule` builds for ``observation_space`` from its
    ``model_config`` (keys missing there take ``DEFAULT_MODEL_CONFIG``'s values): image cells
    enter the core as rows only for the RMC with ``image_rows``.

    Raises ``UnsupportedSpaceError`` for a space with no encoder, ``ValueError`` for a bad setting.
    """
    cfg = {**DEFAULT_MODEL_CONFIG, **model_config}
    return build_encoder(
        observation_space,
        cfg["conv_channels"],
        cfg["mlp_hiddens"],
        rows=bool(cfg["image_rows"]) and cfg["core"] == "rmc",
        pool=cfg["image_pool"],
        projection=cfg["image_projection"],
    )


class OutputGain(nn.Module):
    """A learned scalar that multiplies the core's output before the heads (``output_gain``)."""

    def __init__(self, init: float) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


class MLPCore(nn.Module):
    """A memoryless "core": one hidden layer applied to each step alone (the no-memory floor)."""

    def __init__(self, input_size: int, hidden_size: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_size, hidden_size), nn.ReLU())
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def action_logits_size(space: gym.Space) -> int:
    """Number of action-distribution inputs the policy head must produce for ``space``."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return 2 * int(space.shape[0])  # mean and log-std of a diagonal Gaussian
    raise UnsupportedSpaceError(
        f"action space {space} is not supported; use Discrete, MultiDiscrete or a 1-D Box"
    )


def _device_type(module: nn.Module) -> str:
    return next(module.parameters()).device.type


def _mlp(sizes: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class RecurrentAgentModule(TorchRLModule, ValueFunctionAPI, TargetNetworkAPI, InferenceOnlyAPI):
    """Torso (by observation space) -> core (by name) -> policy and value heads.

    See the module docstring for the model config and how state is handled. For APPO the learner's
    copy also holds a target policy (``TargetNetworkAPI``: a frozen copy of the torso, core and
    policy head, moved towards the trained one by RLlib); it is never shipped to EnvRunners
    (``InferenceOnlyAPI``).
    """

    def setup(self) -> None:
        if isinstance(self.model_config, dict) and "max_seq_len" not in self.model_config:
            self.model_config["max_seq_len"] = DEFAULT_MODEL_CONFIG["max_seq_len"]  # RLlib reads it
        cfg = {**DEFAULT_MODEL_CONFIG, **(self.model_config or {})}
        self.cfg = cfg
        name = cfg["core"]
        if name not in MODEL_NAMES:
            raise ValueError(f"model core must be one of {MODEL_NAMES}, got {name!r}")
        self.core_name = name
        parts = getattr(self.observation_space, "spaces", None) or {}
        for key, part in (("prev_action", "prev_n_actions"), ("prev_reward", "prev_n_rewards")):
            if cfg.get(key) and part not in parts:  # (policy_spec sets the key)
                raise ValueError(
                    f"{key} is set but the observations hold no '{part}': the env-to-module "
                    "connector that adds it is missing (rmc_agents.rl.configure adds it; by hand: "
                    "rmc_agents.rl.connectors.env_to_module_pipeline)"
                )
        if isinstance(self.action_space, gym.spaces.MultiDiscrete):
            self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
                input_lens=[int(n) for n in np.asarray(self.action_space.nvec).ravel()]
            )
        num_logits = action_logits_size(self.action_space)

        self.encoder = build_torso(self.observation_space, cfg)
        # No core_kwargs: the core's default size, as ``ModelSettings`` (and train_agent.py) has it.
        kwargs = dict(cfg["core_kwargs"] or ModelSettings(core=name).core_kwargs())
        in_size = self.encoder.out_size
        if name == "mlp":
            self.core = MLPCore(in_size, **kwargs)
        else:
            self.core = make_core(name, in_size, **kwargs)
        out = self.core.output_size
        # skip: the heads also see this step's torso features (flattened), beside the core's
        # output. The RMC's output is its memory, so without this path every feature the policy
        # needs now must be written into the memory (see docs/cores.md).
        self.skip = bool(cfg.get("skip", False))
        self.skip_size = self.encoder.out_size * max(self.encoder.num_rows, 1) if self.skip else 0
        head_sizes = [out + self.skip_size, *cfg["head_hiddens"]]
        # output_scale: the core's output is multiplied by it before the heads (and the skip's
        # features are not). How far one Adam step moves the logits grows with the size of the
        # heads' inputs; the RMC's memory is about ten times the LSTM's h (docs/cores.md).
        self.output_scale = float(cfg.get("output_scale", 1.0))
        # output_gain: a learned scalar on the core's output as well, starting at the given value.
        # At 0 the heads first learn from the skip alone (the core gets its gradient through the
        # gain once the gain moves), and the memory's part grows as it proves useful.
        gain = cfg.get("output_gain")
        if gain is not None and float(gain) == 0.0 and not self.skip:
            raise ValueError(
                "output_gain: 0 needs skip: true (without the torso's features the heads would "
                "start from a zero input and the core would get no gradient)"
            )
        self.output_gain = OutputGain(gain) if gain is not None else None
        # value_trains_core False: the value head reads the core's output with its gradient
        # stopped, so that the core is shaped by the policy loss alone.
        self.core_out_size = out
        self.value_trains_core = bool(cfg.get("value_trains_core", True))
        self.pi_torso = _mlp(head_sizes)
        self.vf_torso = _mlp(head_sizes)
        self.pi = nn.Linear(head_sizes[-1], num_logits)
        self.vf = nn.Linear(head_sizes[-1], 1)
        # Small initial logits: a near-uniform first policy.
        nn.init.normal_(self.pi.weight, std=0.01)
        nn.init.zeros_(self.pi.bias)
        if name != "mlp":
            self._state_len = len(as_tuple(self.core.initial_state(1)))
        # The RMC's many small per-step kernels are launch-bound on a GPU; the LSTM/GRU are one
        # cuDNN call already. Used only for a CUDA learner update (see GraphedUnroll.usable).
        self._graphed_unroll = (
            GraphedUnroll(self.core) if name == "rmc" and cfg["cuda_graphs"] else None
        )

    @property
    def accepts_resets(self) -> bool:
        """Whether learner chunks may be packed: several episodes per chunk, the state restarted
        where the ``resets`` column says (``rmc_agents.rl.learner_connector``). True for the cores
        that step through time anyway (RMC, DNC) on a CPU learner; the LSTM/GRU would lose their
        fused sequence kernel at every reset, and the RMC's CUDA graphs need chunks without."""
        if self.core_name not in ("rmc", "dnc"):
            return False
        return not (self._graphed_unroll is not None and _device_type(self) == "cuda")

    @property
    def graphed_unroll(self) -> GraphedUnroll | None:
        """The RMC's CUDA-graph unroll (its ``graphs`` and ``failed`` report what happened), or
        None: another core, ``cuda_graphs: false``, or turned off by :meth:`disable_cuda_graphs`."""
        return self._graphed_unroll

    def disable_cuda_graphs(self) -> None:
        """Run the core's plain unroll from now on (e.g. to compare against the graphs)."""
        self._graphed_unroll = None

    # --- state ---------------------------------------------------------------------------

    def get_initial_state(self) -> dict[str, np.ndarray]:
        """``{"s0": ..., }``: the core's initial state for one env, numpy, no batch dimension.

        Empty for ``mlp``, which makes RLlib treat the module as stateless.
        """
        if self.core_name == "mlp":
            return {}
        with torch.no_grad():
            state = as_tuple(self.core.initial_state(1))
        return {f"s{i}": t[0].cpu().numpy().astype(np.float32) for i, t in enumerate(state)}

    def _state_in(self, batch: dict[str, Any]) -> Any:
        state_in = batch[Columns.STATE_IN]
        # Every recurrent core converts its tuple form back (rmc_agents.core's contract).
        return self.core.from_tuple(tuple(state_in[f"s{i}"] for i in range(self._state_len)))

    # --- forward -------------------------------------------------------------------------

    def _unroll(
        self, batch: dict[str, Any], target: bool = False
    ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        """Core outputs ``[B, T, F]`` (or ``[B, F]`` for ``mlp``) and the state out; with
        ``target``, of the target network's torso and core."""
        obs = batch[Columns.OBS]
        encoder = self._target["encoder"] if target else self.encoder
        core = self._target["core"] if target else self.core
        gain = self.output_gain
        if target and gain is not None:
            gain = self._target["output_gain"]
        if self.core_name == "mlp":  # stateless: RLlib gives [B, ...] with no time dimension
            feats = encoder(obs)
            outputs = core(feats) * self.output_scale
            if gain is not None:
                outputs = gain(outputs)
            if self.skip:
                outputs = torch.cat([outputs, feats.reshape(feats.shape[0], -1)], dim=-1)
            return outputs, None
        # Leaves without a shape (strings of skipped Text parts) are passed along untouched.
        first = next(x for x in tree.flatten(obs) if hasattr(x, "shape"))
        b, t = first.shape[:2]
        flat_obs = tree.map_structure(
            lambda x: x.reshape(b * t, *x.shape[2:]) if hasattr(x, "shape") else x, obs
        )
        feats = encoder(flat_obs)
        feats = feats.reshape(b, t, *feats.shape[1:])
        resets = batch.get(RESETS)  # packed learner chunks only (see accepts_resets)
        if self._graphed_unroll is not None and not target and resets is None:
            outputs, state = self._graphed_unroll(feats, self._state_in(batch))
        else:
            outputs, state = core.unroll(feats, self._state_in(batch), resets=resets)
        state_out = {f"s{i}": s for i, s in enumerate(as_tuple(state))}
        if self.output_scale != 1.0:
            outputs = outputs * self.output_scale
        if gain is not None:
            outputs = gain(outputs)
        if self.skip:
            outputs = torch.cat([outputs, feats.reshape(b, t, -1)], dim=-1)
        return outputs, state_out

    def _policy(self, batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
        """Acting (EnvRunner) and inference: action-distribution inputs and the state out."""
        embeddings, state_out = self._unroll(batch)
        result = {Columns.ACTION_DIST_INPUTS: self.pi(self.pi_torso(embeddings))}
        if state_out is not None:
            result[Columns.STATE_OUT] = state_out
        return result, embeddings

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._policy(batch)[0]

    # RLlib's TorchRLModule switches the whole module to eval() and back to train() around every
    # acting step (a walk over all submodules, twice per EnvRunner step: about 5% of the
    # EnvRunner's CPU). No layer here acts differently in the two modes, so acting skips that.
    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_exploration(batch, **kwargs)

    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_inference(batch, **kwargs)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """As :meth:`_forward`, plus the core outputs as ``EMBEDDINGS`` for ``compute_values``.

        (Only here: on the EnvRunner they would be stored in every episode step for nothing.)
        """
        result, embeddings = self._policy(batch)
        result[Columns.EMBEDDINGS] = embeddings
        return result

    # --- APPO's target policy ----------------------------------------------------------------

    def make_target_networks(self) -> None:
        """A frozen copy of the policy path (torso, core, policy head) as APPO's target."""
        import copy

        names = ("encoder", "core", "pi_torso", "pi")
        if self.output_gain is not None:
            names += ("output_gain",)
        self._target = nn.ModuleDict(
            {name: copy.deepcopy(getattr(self, name)).requires_grad_(False) for name in names}
        )

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(getattr(self, name), self._target[name]) for name in self._target]

    def forward_target(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The target policy's action-distribution inputs on a learner batch (same state in)."""
        embeddings, _ = self._unroll(batch, target=True)
        logits = self._target["pi"](self._target["pi_torso"](embeddings))
        return {TARGET_NETWORK_ACTION_DIST_INPUTS: logits}

    def get_non_inference_attributes(self) -> list[str]:
        return ["_target"]

    def compute_values(
        self, batch: dict[str, Any], embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Value estimates ``[B, T]`` (``[B]`` for ``mlp``), reusing ``embeddings`` if given."""
        if embeddings is None:
            embeddings, _ = self._unroll(batch)
        if not self.value_trains_core:
            core_part = embeddings[..., : self.core_out_size].detach()
            embeddings = torch.cat([core_part, embeddings[..., self.core_out_size :]], dim=-1)
        return self.vf(self.vf_torso(embeddings)).squeeze(-1)
