"""One call that puts this project's agent into an RLlib config: :func:`configure`.

::

    from ray.rllib.algorithms.impala import IMPALAConfig
    from rmc_agents.rl import configure

    config = configure(
        IMPALAConfig()
        .environment("MiniPacman-Viewport-v0")
        .env_runners(num_env_runners=1, num_envs_per_env_runner=32, rollout_fragment_length=20),
        core="rmc", mem_slots=4, head_size=32,
    )
    algo = config.build_algo()

``train_agent.py`` builds its configs through the same call
(:func:`rmc_agents.rl.algorithms.build_algo_config`), so a script written this way runs the same
module, learner, connectors and EnvRunner as a ``train_agent.py`` run with the same settings.

What depends on settings that may change after the call (the fragment length, ``gamma`` and
``lambda_``, the env) is read when the algorithm is built: by the algorithm classes set here
(:func:`prepare_for_build`) and by this project's learners (GAE's ``gamma`` / ``lambda_``).
"""

from __future__ import annotations

import warnings
from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.appo import APPOConfig
from ray.rllib.algorithms.impala import IMPALAConfig
from ray.rllib.algorithms.ppo import PPOConfig

from rmc_agents.rl.settings import OPTIMIZERS, default_reward_scale

__all__ = ["LONG_CHUNK", "SAMPLER_WAIT_S", "algorithm_of", "configure", "prepare_for_build"]

#: A learner chunk (``max_seq_len``) longer than this many steps draws a warning at build time:
#: the core then steps through that many time steps one after another in every update.
LONG_CHUNK = 256

#: IMPALA and APPO: seconds the driver waits for EnvRunner samples in each training step (where
#: the config still has RLlib's 0.0, which makes it spin).
SAMPLER_WAIT_S = 0.01

# learner_config_dict keys that configure() sets beside those the learners read.
_AUTO_KEY = "max_seq_len_from_fragment"  # True: max_seq_len follows the fragment at build time
_THREADS_KEY = "driver_threads"


def algorithm_of(config: Any) -> str:
    """``impala``, ``appo`` or ``ppo`` for an RLlib config of that algorithm.

    Raises:
        ValueError: ``config`` is not an ``IMPALAConfig``, ``APPOConfig`` or ``PPOConfig``.
    """
    if isinstance(config, APPOConfig):  # (an APPOConfig is an IMPALAConfig too: ask first)
        return "appo"
    if isinstance(config, IMPALAConfig):
        return "impala"
    if isinstance(config, PPOConfig):
        return "ppo"
    raise ValueError(
        "configure: config must be an RLlib IMPALAConfig, APPOConfig or PPOConfig (new API "
        f"stack); got {type(config).__name__}"
    )


def configure(
    config: AlgorithmConfig,
    core: str = "rmc",
    *,
    reward_scale: float | None = None,
    vtrace: str = "bootstrap",
    optimizer: str = "adam",
    driver_threads: int | None = 1,
    **model_settings: Any,
) -> AlgorithmConfig:
    """Wire this project's agent into ``config`` (an IMPALA, APPO or PPO config) and return it.

    Sets, on ``config`` itself (as RLlib's own builder methods do):

    - the module: :func:`rmc_agents.rl.policy_spec` of ``core`` and ``model_settings``;
    - the learner class (:data:`rmc_agents.rl.optim.LEARNERS`): for IMPALA and APPO V-trace that
      bootstraps at fragment cuts; for all three the non-finite guard (a NaN or inf loss or
      gradient is refused before any weight changes and raised from ``algo.train()``), the
      optimizer and the diagnostics;
    - the learner connector that builds train batches in one pass, with RLlib's default pieces
      off; for PPO its GAE reads ``gamma`` and ``lambda_`` from the config as built;
    - the EnvRunner class (:class:`rmc_agents.rl.env_runner.LeanEnvRunner`) and the one-pass
      env-to-module and module-to-env connectors, the previous action and reward first when
      ``prev_action`` / ``prev_reward`` are set;
    - ``max_seq_len`` (unless given): the rollout fragment length + 2, one learner chunk per
      fragment, taken again when the algorithm is built if the fragment length changed since;
    - IMPALA and APPO: ``timeout_s_sampler_manager`` :data:`SAMPLER_WAIT_S` where it is RLlib's
      0.0 (the driver then waits briefly for samples instead of spinning);
    - the algorithm class (this project's IMPALA, APPO or PPO), which checks the config and
      completes it when it is built (:func:`prepare_for_build`): the torch threads of the driver,
      the reward scale, an env's vector face.

    Call it before or after the other builder methods: what they change later is read at build
    time. Everything else (learning rate, batch sizes, resources, the env) stays RLlib's to set.

    Args:
        config: an RLlib ``IMPALAConfig``, ``APPOConfig`` or ``PPOConfig``.
        core: ``rmc``, ``lstm``, ``gru``, ``dnc`` or ``mlp`` (no memory).
        reward_scale: IMPALA and APPO: rewards are multiplied by it in the loss. None: 0.1 for the
            Mini-Pacman ids, 1 for other envs (decided at build time from ``config.env``).
        vtrace: IMPALA and APPO: ``bootstrap`` (the paper's V-trace) or ``rllib`` (RLlib's stock
            loss, which treats fragment cuts as terminal; for comparisons).
        optimizer: ``adam`` or ``rmsprop`` (the IMPALA paper's, TensorFlow's variant).
        driver_threads: torch's CPU threads in the process that builds the algorithm (where a
            ``num_learners=0`` learner trains), set when it is built; None leaves torch's.
        **model_settings: any field of :class:`~rmc_agents.rl.settings.ModelSettings`, as for
            :func:`rmc_agents.rl.policy_spec` (``mem_slots``, ``head_size``, ``hidden_size``,
            ``prev_action``, ``max_seq_len``, ...).

    Returns:
        ``config``.

    Raises:
        ValueError: another kind of config, an unknown core or setting, an impossible value, or
            a setting that does not apply to the algorithm, named.
    """
    from rmc_agents.rl.connectors import env_to_module_pipeline, module_to_env_pipeline
    from rmc_agents.rl.env_runner import LeanEnvRunner
    from rmc_agents.rl.fault_tolerance import FaultTolerantAPPO, FaultTolerantIMPALA, GuardedPPO
    from rmc_agents.rl.learner_connector import learner_pipeline
    from rmc_agents.rl.optim import LEARNERS
    from rmc_agents.rl.spec import policy_spec
    from rmc_agents.rl.vtrace import VTRACE_MODES

    algo = algorithm_of(config)
    if vtrace not in VTRACE_MODES:
        raise ValueError(f"configure: vtrace must be one of {VTRACE_MODES}, got {vtrace!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"configure: optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if reward_scale is not None and not (_is_number(reward_scale) and reward_scale > 0):
        raise ValueError(f"configure: reward_scale must be a number > 0, got {reward_scale!r}")
    if driver_threads is not None and not (
        isinstance(driver_threads, int) and not isinstance(driver_threads, bool)
        and driver_threads > 0
    ):  # fmt: skip
        raise ValueError(f"configure: driver_threads must be an int > 0, got {driver_threads!r}")
    if algo == "ppo" and reward_scale is not None:
        raise ValueError(
            "configure: reward_scale applies to IMPALA and APPO (V-trace); PPO's targets are "
            "RLlib's GAE on the unscaled rewards: leave reward_scale out"
        )
    if algo == "ppo" and vtrace != "bootstrap":
        raise ValueError("configure: vtrace applies to IMPALA and APPO, not to PPO: leave it out")

    auto = "max_seq_len" not in model_settings
    if auto:
        model_settings["max_seq_len"] = int(config.get_rollout_fragment_length()) + 2
    try:
        spec = policy_spec(core, **model_settings)
    except ValueError as exc:
        raise ValueError(f"configure: {str(exc).removeprefix('policy_spec: ')}") from None
    prev_actions = int(bool(model_settings.get("prev_action", False)))
    prev_rewards = int(bool(model_settings.get("prev_reward", False)))

    config.rl_module(rl_module_spec=spec)
    config.env_runners(
        env_runner_cls=LeanEnvRunner,
        env_to_module_connector=env_to_module_pipeline(prev_actions, prev_rewards),
        module_to_env_connector=module_to_env_pipeline(),
        add_default_connectors_to_env_to_module_pipeline=False,
        add_default_connectors_to_module_to_env_pipeline=False,
    )
    config.learners(
        learner_class=LEARNERS[algo],
        # PPO's GAE: the learner sets gamma and lambda_ from the config when it is built (the
        # values here serve only a pipeline built from this config outside any learner)
        learner_connector=learner_pipeline(
            algo, config.gamma, getattr(config, "lambda_", 1.0), pack=True, from_config=True
        ),
        add_default_connectors_to_learner_pipeline=False,
        learner_config_dict={
            "optimizer": optimizer,
            "vtrace": vtrace,
            "reward_scale": reward_scale,
            _AUTO_KEY: auto,
            _THREADS_KEY: driver_threads,
        },
    )
    if algo != "ppo" and not config.timeout_s_sampler_manager:
        # RLlib's 0.0 polls the EnvRunners without waiting: the driver spins through training
        # steps and takes the CPU they sample on (bench/configure_speed.py: about half the
        # frames/s on 2 CPUs).
        config.training(timeout_s_sampler_manager=SAMPLER_WAIT_S)
    config.algo_class = {"impala": FaultTolerantIMPALA, "appo": FaultTolerantAPPO}.get(
        algo, GuardedPPO
    )
    return config


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- at build time ----------------------------------------------------------------------------


def prepare_for_build(config: AlgorithmConfig) -> None:
    """Check ``config`` (a copy about to be built) against what :func:`configure` set and
    complete what depends on later settings. Called by the algorithm classes ``configure()`` sets,
    before RLlib validates and freezes the config.

    - **learner**: for IMPALA and APPO with ``vtrace="bootstrap"`` the learner class must compute
      the bootstrapping V-trace; for PPO with the one-pass connector left to read ``gamma`` and
      ``lambda_`` from the config, it must be one that does. Else one ``ValueError`` naming
      ``learner_class``.
    - **max_seq_len**: chosen by ``configure()``, it follows the fragment length as it is now
      (with one warning naming both when that changed since the call); given explicitly and
      below ``rollout_fragment_length + 2``, one warning. A chunk over :data:`LONG_CHUNK` steps
      draws one warning as well.
    - **reward_scale** left None: the env's default (0.1 for the Mini-Pacman ids, else 1).
    - **env**: an id with a vector face (Mini-Pacman) is built whole in each EnvRunner where
      ``gym_env_vectorize_mode`` is still RLlib's default.
    - **driver_threads**: torch's thread count in this process.
    """
    settings = config.learner_config_dict
    if _AUTO_KEY not in settings:  # not set up by configure(): nothing of ours to check
        return
    algo = algorithm_of(config)
    _check_learner(config, algo, settings)
    _check_max_seq_len(config, bool(settings[_AUTO_KEY]))
    env_spec = _env_spec(config)
    if settings.get("reward_scale") is None:
        settings["reward_scale"] = default_reward_scale(env_spec) if env_spec else 1.0
    mode = getattr(config.gym_env_vectorize_mode, "value", config.gym_env_vectorize_mode)
    if env_spec and config.env == env_spec and str(mode).lower() == "sync":
        if _has_vector_face(env_spec):
            config.env_runners(gym_env_vectorize_mode="vector_entry_point")
    threads = settings.get(_THREADS_KEY)
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _check_learner(config: AlgorithmConfig, algo: str, settings: dict) -> None:
    from rmc_agents.rl.optim import LEARNERS, TargetsFromConfig
    from rmc_agents.rl.vtrace import BootstrapVTraceAPPOLearner, BootstrapVTraceLearner

    learner = config.learner_class
    name = getattr(learner, "__name__", repr(learner))
    if algo in ("impala", "appo") and settings.get("vtrace", "bootstrap") == "bootstrap":
        needed = BootstrapVTraceAPPOLearner if algo == "appo" else BootstrapVTraceLearner
        if not (isinstance(learner, type) and issubclass(learner, needed)):
            raise ValueError(
                f"learner_class {name} does not compute V-trace that bootstraps at fragment "
                f"cuts (RLlib's stock {algo.upper()} loss treats every cut as terminal); use "
                f"rmc_agents.rl.learner_class({algo!r}) or a subclass of it, or "
                "configure(..., vtrace='rllib') to run the stock loss on purpose"
            )
    if algo == "ppo" and _connector_reads_config(config):
        if not (isinstance(learner, type) and issubclass(learner, TargetsFromConfig)):
            raise ValueError(
                f"learner_class {name} does not give the one-pass learner connector its gamma "
                f"and lambda_; use {LEARNERS['ppo'].__name__} "
                "(rmc_agents.rl.learner_class('ppo')) or a subclass of it"
            )


def _connector_reads_config(config: AlgorithmConfig) -> bool:
    from rmc_agents.rl.learner_connector import AdvantagesFromTrainBatch, _pieces

    factory = getattr(config, "_learner_connector", None)
    if factory is None:
        return False
    try:
        pieces = factory(None, None)
    except Exception:  # noqa: BLE001 - a user's own factory: not ours to judge
        return False
    return any(
        isinstance(p, AdvantagesFromTrainBatch) and p.from_config
        for part in (pieces if isinstance(pieces, (list, tuple)) else [pieces])
        for p in _pieces(part)
    )


def _check_max_seq_len(config: AlgorithmConfig, auto: bool) -> None:
    from rmc_agents.rl.module import RecurrentAgentModule

    spec = getattr(config, "_rl_module_spec", None)
    model = getattr(spec, "model_config", None)
    module_class = getattr(spec, "module_class", None)
    if not (
        isinstance(model, dict)
        and isinstance(module_class, type)
        and issubclass(module_class, RecurrentAgentModule)
    ):
        return
    if model.get("core") == "mlp":  # no memory, no chunks
        return
    fragment = int(config.get_rollout_fragment_length())
    want = fragment + 2
    have = int(model.get("max_seq_len", want))
    if auto and have != want:
        model["max_seq_len"] = want
        warnings.warn(
            f"max_seq_len is now {want} (rollout_fragment_length {fragment} + 2): "
            f"rollout_fragment_length changed after configure() set max_seq_len to {have}. "
            "Call configure() last (after .env_runners() and .training()) to keep this quiet",
            stacklevel=5,
        )
        have = want
    elif not auto and have < want:
        warnings.warn(
            f"max_seq_len ({have}) is below rollout_fragment_length + 2 ({want}): each "
            "fragment spans several learner chunks and backpropagation through time stops at "
            f"every chunk boundary. For one chunk per fragment set max_seq_len to {want} "
            "(model.max_seq_len in a run config; left out of configure(), it follows the "
            "fragment length)",
            stacklevel=5,
        )
    if have > LONG_CHUNK:
        warnings.warn(
            f"max_seq_len is {have} (rollout_fragment_length {fragment} + 2): the core steps "
            f"through {have} time steps one after another in every learner chunk. Set a shorter "
            "rollout_fragment_length (PPO: with train_batch_size_per_learner = num_env_runners x "
            "num_envs_per_env_runner x rollout_fragment_length), or pass a shorter max_seq_len",
            stacklevel=5,
        )


def _env_spec(config: AlgorithmConfig) -> str | None:
    """The env's id or ``module:Name`` string, if the config names one."""
    from rmc_agents.rl.envs import RLLIB_ENV_NAME

    env = config.env
    if env == RLLIB_ENV_NAME:  # train_agent.py's creator: the spec is in env_config
        spec = (config.env_config or {}).get("env_spec")
        return spec if isinstance(spec, str) else None
    return env if isinstance(env, str) else None


def _has_vector_face(spec: str) -> bool:
    from rmc_agents.rl.envs import EnvResolutionError, resolve_env

    try:
        return resolve_env(spec).has_vector_face
    except EnvResolutionError:
        return False
