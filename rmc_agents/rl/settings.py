"""The settings of a training run, as typed dataclasses loaded from YAML by :mod:`rmc_agents.config`.

A YAML file in ``configs/`` sets any subset of these keys; CLI flags override them; the resolved
settings are written to ``<output>/config.yaml``. Defaults give a first run of a few minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ALGOS",
    "APPOSettings",
    "PPOSettings",
    "default_reward_scale",
    "ModelSettings",
    "ResourceSettings",
    "RunSettings",
    "StopSettings",
    "TrainingSettings",
]


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


@dataclass
class ModelSettings:
    """The policy: torso (from the observation space) -> core -> policy and value heads.

    ``core`` picks the memory: ``rmc`` (Relational Memory Core), ``lstm``/``gru`` baselines
    (``hidden_size``), or ``mlp`` (memoryless floor, ``hidden_size`` units). The RMC has
    ``mem_slots`` memories of ``head_size * num_heads`` units each.
    """

    core: Literal["rmc", "lstm", "gru", "dnc", "mlp"] = "rmc"
    mem_slots: int = 4
    head_size: int = 32
    num_heads: int = 4
    num_blocks: int = 1
    gate_style: Literal["unit", "memory", "none"] = "memory"
    coupled_gates: bool = (
        False  # RMC: forget gate = 1 - input gate, a bounded memory (docs/cores.md)
    )
    attention_mlp_layers: int = 2
    attention_scale: Literal["paper", "sonnet"] = "paper"  # RMC: query scale (docs/cores.md)
    slot_embeddings: bool = False  # RMC: a learned vector per slot in its qkv (docs/cores.md)
    # RMC: what a step outputs to the heads: memory (the paper) or attended (before gating)
    rmc_output: Literal["memory", "attended"] = "memory"
    # RMC: the input rows' own attention outputs, max-pooled over the rows, go to the heads beside
    # its output (a read keyed by the present input; docs/cores.md)
    rmc_input_read: bool = False
    hidden_size: int = 256
    # LSTM: forget-gate bias at the start (Sonnet's); null: PyTorch's initialisation.
    # RMC: the constant forget-gate bias (null: Sonnet's 1.0)
    forget_bias: float | None = 1.0
    input_bias: float = 0.0  # RMC: the constant input-gate bias (Sonnet's 0)
    # RMC: every gate within [gate_floor, 1 - gate_floor]: never fully shut or open (docs/cores.md)
    gate_floor: float = 0.0
    # GRU: update-gate bias at the start (the share of the old state kept), the other biases 0;
    # null: PyTorch's initialisation
    update_bias: float | None = None
    memory_size: int = 16  # DNC: memory slots (hidden_size: its LSTM controller)
    word_size: int = 16  # DNC: features per slot
    num_reads: int = 2  # DNC: read heads
    conv_channels: list[int] = field(default_factory=lambda: [12, 24])
    mlp_hiddens: list[int] = field(default_factory=lambda: [64])
    image_rows: bool = True
    image_pool: int = 1  # average the conv map over image_pool x image_pool blocks (1: none)
    # the flattened image features through a learned Linear -> ReLU of this size (null: none);
    # for a core that reads one flat input, not for the RMC's cells as rows
    image_projection: int | None = None
    head_hiddens: list[int] = field(default_factory=list)
    skip: bool = False  # the heads also see the torso's features beside the core's output
    output_scale: float = 1.0  # the core's output times this before the heads (docs/cores.md)
    # a learned scalar times the core's output before the heads, starting at this value (null:
    # none; 0: the heads start from the skip alone and the core's part grows; docs/cores.md)
    output_gain: float | None = None
    # false: the value loss's gradient stops at the core's output (the value head still reads it;
    # the core learns from the policy loss alone, the torso also from the value through the skip)
    value_trains_core: bool = True
    prev_action: bool = False
    prev_reward: bool = False
    max_seq_len: int = 22  # rollout_fragment_length + 2: one learner chunk per fragment
    cuda_graphs: bool = True  # GPU learner: replay the RMC's unroll from CUDA graphs

    def validate(self) -> None:
        for name in ("mem_slots", "head_size", "num_heads", "num_blocks", "hidden_size"):
            _positive(name, getattr(self, name))
        for name in ("memory_size", "word_size", "num_reads"):
            _positive(name, getattr(self, name))
        if self.attention_mlp_layers < 0:
            raise ValueError(f"attention_mlp_layers must be >= 0, got {self.attention_mlp_layers}")
        _positive("max_seq_len", self.max_seq_len)
        _positive("image_pool", self.image_pool)
        if self.image_projection is not None:
            _positive("image_projection", self.image_projection)
            if self.core == "rmc" and self.image_rows:
                raise ValueError(
                    "image_projection is for a flat input; the RMC with image_rows: true attends "
                    "over the cells as rows (set image_rows: false, or image_projection: null)"
                )
        _positive("output_scale", self.output_scale)
        if self.output_gain == 0 and not self.skip:
            raise ValueError(
                "model.output_gain: 0 needs model.skip: true (the heads would start from a zero "
                "input and the core would get no gradient)"
            )
        for name in ("conv_channels", "mlp_hiddens", "head_hiddens"):
            if any(v <= 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must hold positive sizes, got {getattr(self, name)}")

    def core_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the chosen core."""
        if self.core == "rmc":
            return {
                "mem_slots": self.mem_slots,
                "head_size": self.head_size,
                "num_heads": self.num_heads,
                "num_blocks": self.num_blocks,
                "gate_style": None if self.gate_style == "none" else self.gate_style,
                "coupled_gates": self.coupled_gates,
                "attention_mlp_layers": self.attention_mlp_layers,
                "attention_scale": self.attention_scale,
                "slot_embeddings": self.slot_embeddings,
                "output": self.rmc_output,
                "read_inputs": self.rmc_input_read,
                "forget_bias": 1.0 if self.forget_bias is None else self.forget_bias,
                "input_bias": self.input_bias,
                "gate_floor": self.gate_floor,
            }
        if self.core == "lstm":
            return {"hidden_size": self.hidden_size, "forget_bias": self.forget_bias}
        if self.core == "dnc":
            return {
                "hidden_size": self.hidden_size,
                "memory_size": self.memory_size,
                "word_size": self.word_size,
                "num_reads": self.num_reads,
            }
        if self.core == "gru":
            return {"hidden_size": self.hidden_size, "update_bias": self.update_bias}
        return {"hidden_size": self.hidden_size}

    def rllib_model_config(self) -> dict[str, Any]:
        """The ``model_config`` dict of :class:`rmc_agents.rl.module.RecurrentAgentModule`."""
        return {
            "core": self.core,
            "core_kwargs": self.core_kwargs(),
            "conv_channels": list(self.conv_channels),
            "mlp_hiddens": list(self.mlp_hiddens),
            "image_rows": self.image_rows,
            "image_pool": self.image_pool,
            "image_projection": self.image_projection,
            "head_hiddens": list(self.head_hiddens),
            "skip": self.skip,
            "output_scale": self.output_scale,
            "output_gain": self.output_gain,
            "value_trains_core": self.value_trains_core,
            "max_seq_len": self.max_seq_len,
            "cuda_graphs": self.cuda_graphs,
        }


OPTIMIZERS = ("adam", "rmsprop")

#: ``training.lr_kl_factor_bounds`` by default: the KL-following step stays within 0.01-10x lr.
LR_KL_FACTOR_BOUNDS = (0.01, 10.0)

#: The learner's diagnostics (rmc_agents.rl.diagnostics), each logged as
#: ``learners/<module>/<key>`` and written to progress.csv as ``diag/<key without diag_>``.
DIAGNOSTIC_KEYS = (
    "diag_policy_kl",
    "diag_log_rho",
    "diag_rho_clipped",
    "diag_value_ev",
    "diag_grad_norm_torso",
    "diag_grad_norm_core",
    "diag_grad_norm_heads",
    "diag_memory_rms",
    "diag_memory_max",
    "diag_input_gate",
    "diag_forget_gate",
    "diag_forget_kept",
    "diag_slot_spread",
    "diag_output_gain",
    "diag_lr_factor",
)  # see rmc_agents.rl.optim


@dataclass
class TrainingSettings:
    """IMPALA (V-trace) settings. Defaults follow the IMPALA paper's Atari agent (Espeholt et
    al. 2018), except the optimizer: RLlib's IMPALA uses Adam."""

    lr: float | None = None  # null: 6e-4 for IMPALA/APPO, 3e-4 for PPO (RunSettings.lr)
    anneal_lr: bool = False
    # [[env frames, factor], ...] from frame 0: the step size is lr x the factor, linear between
    # the points and the last factor after them (RLlib's lr schedule); null: lr throughout
    lr_factors: list[tuple[int, float]] | None = None
    gamma: float = 0.99
    entropy_coeff: float | None = None  # null: 0.01 for IMPALA/APPO, 0 for PPO
    # [[env frames, factor], ...] from frame 0: the entropy bonus as lr_factors does the step
    entropy_factors: list[tuple[int, float]] | None = None
    vf_loss_coeff: float = 0.5
    grad_clip: float = 40.0
    rollout_fragment_length: int = 20
    train_batch_size: int | None = None  # null: 640 for IMPALA/APPO; PPO: one round of fragments
    vtrace_clip_rho_threshold: float = 1.0
    vtrace_clip_pg_rho_threshold: float = 1.0
    step_infos_to_learner: bool = False
    optimizer: str = "adam"
    rmsprop_decay: float = 0.99
    rmsprop_eps: float = 0.01
    vtrace: Literal["bootstrap", "rllib"] = "bootstrap"  # rmc_agents.rl.vtrace
    # episodes -> train batch on the learner: one_pass (rmc_agents.rl.learner_connector) or
    # rllib (RLlib's stock pieces; the same batch, about 20x the CPU time)
    learner_pipeline: Literal["one_pass", "rllib"] = "one_pass"
    # one_pass only: fresh episodes fill the tails of other episodes' learner chunks (fewer
    # chunks, the same loss and gradients) where the model restarts its state at a reset inside a
    # chunk: the RMC and DNC, but not with the RMC's CUDA graphs on a GPU learner
    pack_chunks: bool = True
    # rewards times this in the loss (the value function predicts scaled returns); null: 0.1 on
    # Mini-Pacman (regular-mode returns reach ~100), 1 elsewhere (see default_reward_scale)
    reward_scale: float | None = None
    # every n-th learner update logs the diag/* metrics (rmc_agents/rl/diagnostics.py); 0: off
    diagnostics_every: int = 5
    # the step size follows the policy KL per update toward this target (rmc_agents.rl.optim.
    # KLStepSize: at each diagnostics measurement lr x 1.5 below target/2, / 1.5 above 2 x target,
    # the factor kept within lr_kl_factor_bounds); null: off
    lr_kl_target: float | None = None
    lr_kl_factor_bounds: tuple[float, float] = LR_KL_FACTOR_BOUNDS
    # the memory core's parameters step with lr x this factor, the torso and heads with lr
    # (rmc_agents.rl.optim.GroupFactors); 1: one step size for all
    core_lr_factor: float = 1.0

    def validate(self) -> None:
        for name in ("lr", "grad_clip", "rollout_fragment_length", "train_batch_size"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.lr_factors is not None:
            if self.anneal_lr:
                raise ValueError("set training.lr_factors or training.anneal_lr, not both")
            _check_factors("training.lr_factors", self.lr_factors)
        if self.entropy_factors is not None:
            _check_factors("training.entropy_factors", self.entropy_factors)
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if (self.entropy_coeff or 0) < 0 or self.vf_loss_coeff < 0:
            raise ValueError("entropy_coeff and vf_loss_coeff must be >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0 <= self.rmsprop_decay < 1:
            raise ValueError(f"rmsprop_decay must be in [0, 1), got {self.rmsprop_decay}")
        _positive("rmsprop_eps", self.rmsprop_eps)
        if self.reward_scale is not None:
            _positive("reward_scale", self.reward_scale)
        if self.diagnostics_every < 0:
            raise ValueError(f"diagnostics_every must be >= 0, got {self.diagnostics_every}")
        low, high = self.lr_kl_factor_bounds
        if not 0 < low <= 1 <= high:
            raise ValueError(
                "training.lr_kl_factor_bounds must be [low, high] with 0 < low <= 1 <= high, "
                f"got {list(self.lr_kl_factor_bounds)}"
            )
        _positive("core_lr_factor", self.core_lr_factor)
        if self.lr_kl_target is not None:
            _positive("lr_kl_target", self.lr_kl_target)
            if self.diagnostics_every == 0:
                raise ValueError(
                    "training.lr_kl_target needs the KL the diagnostics measure: set "
                    "training.diagnostics_every > 0 (it is 0)"
                )


def _check_factors(key: str, points: list[tuple[int, float]]) -> None:
    """A schedule of ``[frames, factor]`` points (``training.lr_factors``, ``entropy_factors``)."""
    example = "e.g. [[0, 1.0], [1000000, 2.0]]"
    if len(points) < 2:
        raise ValueError(f"{key} needs two or more [frames, factor] points ({example})")
    if points[0][0] != 0:
        raise ValueError(f"{key} must start at frame 0, got {points[0][0]} ({example})")
    frames = [frame for frame, _ in points]
    if any(b <= a for a, b in zip(frames[:-1], frames[1:], strict=True)):
        raise ValueError(f"{key}' frames must increase, got {frames}")
    if any(factor < 0 for _, factor in points):
        raise ValueError(f"{key}' factors must be >= 0, got {points}")


def default_reward_scale(env: str) -> float:
    """``training.reward_scale`` when it is null: 0.1 for the Mini-Pacman ids, else 1.

    Measured (``MiniPacman-Viewport-v0``, default RMC, seed 0, 1M frames, bootstrapping V-trace):
    mean return over the last 20% of frames 93.4 with 0.1 against 30.3 with 1 (values ~100 swamp
    the policy gradient through the shared torso).
    """
    return 0.1 if _is_minipacman(env) else 1.0


def _is_minipacman(env: str) -> bool:
    return env.rsplit(":", 1)[-1].startswith("MiniPacman-")


def default_algo(env: str) -> str:
    """``algo: auto``: IMPALA on Mini-Pacman (the paper's agent), PPO elsewhere.

    Measured on POPGym's RepeatFirstEasy (RMC, seed 0, 300k env steps, docs/results.md): PPO with
    configs/popgym.yaml first reached a mean return of 0.9 at 69k steps (best 1.0); IMPALA with
    the defaults stayed at random play (best -0.45). On one machine PPO's many passes over each
    batch buy sample efficiency that IMPALA's one step per batch does not.
    """
    return "impala" if _is_minipacman(env) else "ppo"


@dataclass
class PPOSettings:
    """PPO only (``algo: ppo``); RLlib's defaults except num_epochs and minibatch_size. The
    shared ``training`` keys (lr, gamma,
    entropy_coeff, vf_loss_coeff, grad_clip, train_batch_size, optimizer) apply as well;
    ``reward_scale`` and the V-trace keys do not (PPO's targets are RLlib's GAE)."""

    num_epochs: int = 10  # passes over each train batch (RLlib: 30)
    # env steps per SGD minibatch (whole learner chunks); null: half the train batch (RLlib: 128;
    # on 2 CPUs 10 passes in halves ran ~8x faster than 30 in 128s, and learned RepeatFirstEasy)
    minibatch_size: int | None = None
    gae_lambda: float = 1.0
    clip_param: float = 0.3
    vf_clip_param: float = 10.0
    use_kl_loss: bool = True
    kl_coeff: float = 0.2
    kl_target: float = 0.01

    def validate(self) -> None:
        for name in ("num_epochs", "minibatch_size", "clip_param", "vf_clip_param"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        if self.kl_coeff < 0 or self.kl_target <= 0:
            raise ValueError("kl_coeff must be >= 0 and kl_target > 0")


@dataclass
class APPOSettings:
    """APPO only (``algo: appo``); RLlib's defaults. APPO is IMPALA (``training`` keys, V-trace)
    with a clipped surrogate against a target policy and replay of each batch."""

    clip_param: float = 0.4
    use_kl_loss: bool = False
    kl_coeff: float = 1.0
    kl_target: float = 0.01
    target_network_update_freq: int = 2  # in learner updates
    tau: float = 1.0  # target update: 1 copies the trained weights
    replay_batches: int = 8  # circular buffer of train batches
    replays_per_batch: int = 2  # times each batch is trained on

    def validate(self) -> None:
        for name in ("clip_param", "target_network_update_freq", "replay_batches"):
            _positive(name, getattr(self, name))
        _positive("replays_per_batch", self.replays_per_batch)
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if self.kl_coeff < 0 or self.kl_target <= 0:
            raise ValueError("kl_coeff must be >= 0 and kl_target > 0")


ALGOS = ("impala", "appo", "ppo")


@dataclass
class ResourceSettings:
    """Ray resources. The defaults fit 2 CPUs (see docs/performance.md)."""

    num_env_runners: int = 1
    envs_per_runner: int = 32
    num_cpus_per_env_runner: float = 0.5
    num_learners: int = 0
    gpus_per_learner: float = 0.0
    timeout_s_sampler_manager: float = 0.01
    requests_in_flight_per_runner: int = 1
    driver_threads: int = 1
    # learner processes keep the memory they free for the next update (rmc_agents.rl.allocator)
    keep_freed_memory: bool = True
    address: str | None = None
    num_cpus: int | None = None

    def validate(self) -> None:
        if self.num_env_runners < 0:
            raise ValueError(f"num_env_runners must be >= 0, got {self.num_env_runners}")
        _positive("envs_per_runner", self.envs_per_runner)
        _positive("num_cpus_per_env_runner", self.num_cpus_per_env_runner)
        _positive("requests_in_flight_per_runner", self.requests_in_flight_per_runner)
        _positive("driver_threads", self.driver_threads)
        if self.num_learners < 0 or self.gpus_per_learner < 0:
            raise ValueError("num_learners and gpus_per_learner must be >= 0")


@dataclass
class StopSettings:
    """When to stop: whichever of the set criteria comes first."""

    timesteps: int | None = 200_000
    reward: float | None = None
    seconds: float | None = None
    iterations: int | None = None

    def validate(self) -> None:
        if all(v is None for v in (self.timesteps, self.reward, self.seconds, self.iterations)):
            raise ValueError("at least one stop criterion (timesteps, reward, seconds) is needed")
        for name in ("timesteps", "seconds", "iterations"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)


@dataclass
class EvaluationSettings:
    """Evaluation during training (rmc_agents.rl.evaluation): every ``every`` iterations (0: off),
    ``episodes`` episodes of the current policy, the env seeded with ``seed`` each time."""

    every: int = 0
    episodes: int = 10
    seed: int = 1_000_003
    deterministic: bool = False  # the most likely action instead of a sampled one
    max_steps: int | None = None  # end an episode after this many steps

    def validate(self) -> None:
        if self.every < 0:
            raise ValueError(f"evaluation.every must be >= 0, got {self.every}")
        _positive("evaluation.episodes", self.episodes)
        if self.max_steps is not None:
            _positive("evaluation.max_steps", self.max_steps)


@dataclass
class RunSettings:
    """One training run."""

    env: str = "MiniPacman-Viewport-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int | None = 0
    algo: Literal["auto", "impala", "appo", "ppo"] = "auto"  # auto: default_algo(env)
    model: ModelSettings = field(default_factory=ModelSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    ppo: PPOSettings = field(default_factory=PPOSettings)
    appo: APPOSettings = field(default_factory=APPOSettings)
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    stop: StopSettings = field(default_factory=StopSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    checkpoint_every_seconds: float = 120.0
    min_time_s_per_iteration: float = 1.0
    min_sample_timesteps_per_iteration: int = 1000
    stall_seconds: float = 120.0

    def validate(self) -> None:
        _positive("checkpoint_every_seconds", self.checkpoint_every_seconds)
        _positive("stall_seconds", self.stall_seconds)
        if self.min_time_s_per_iteration < 0 or self.min_sample_timesteps_per_iteration < 0:
            raise ValueError("min_time_s_per_iteration and min_sample_timesteps_per_iteration >= 0")
        if self.algorithm == "ppo":
            # RLlib's PPO samples whole fragments from every env: the batch must be (about) one
            # round of them, or its config check fails deep inside RLlib.
            per_round = self.fragment_round
            if abs(self.train_batch_size - per_round) > 0.1 * per_round:
                raise ValueError(
                    f"with algo ppo, training.train_batch_size ({self.train_batch_size}) must be "
                    f"about num_env_runners x envs_per_runner x rollout_fragment_length "
                    f"({per_round}); change one of them, or leave the batch null"
                )
            if self.ppo_minibatch_size > self.train_batch_size:
                raise ValueError(
                    f"ppo.minibatch_size ({self.ppo_minibatch_size}) must be <= "
                    f"training.train_batch_size ({self.train_batch_size})"
                )

    # The settings that depend on the algorithm (null in the file): read these, not the fields.
    @property
    def algorithm(self) -> str:
        """``algo``, with ``auto`` resolved by the env (``default_algo``)."""
        return default_algo(self.env) if self.algo == "auto" else self.algo

    @property
    def fragment_round(self) -> int:
        """Env steps of one fragment from every env of every EnvRunner."""
        res = self.resources
        return (
            max(res.num_env_runners, 1)
            * res.envs_per_runner
            * self.training.rollout_fragment_length
        )

    @property
    def train_batch_size(self) -> int:
        size = self.training.train_batch_size
        if size is not None:
            return size
        return self.fragment_round if self.algorithm == "ppo" else 640

    @property
    def ppo_minibatch_size(self) -> int:
        size = self.ppo.minibatch_size
        return size if size is not None else max(self.train_batch_size // 2, 1)

    @property
    def lr(self) -> float:
        lr = self.training.lr
        return lr if lr is not None else (3e-4 if self.algorithm == "ppo" else 6e-4)

    @property
    def reward_scale(self) -> float:
        scale = self.training.reward_scale
        return scale if scale is not None else default_reward_scale(self.env)

    @property
    def entropy_coeff(self) -> float:
        coeff = self.training.entropy_coeff
        return coeff if coeff is not None else (0.0 if self.algorithm == "ppo" else 0.01)
