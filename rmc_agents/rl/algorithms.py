"""Builds the RLlib config (new API stack) of a run's algorithm from :class:`RunSettings`:
IMPALA (the default; V-trace), APPO (IMPALA with a clipped surrogate against a target policy and
replay of each batch) or PPO (synchronous, GAE, several epochs per batch)."""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.appo import APPOConfig
from ray.rllib.algorithms.impala import IMPALAConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rmc_agents.rl.envs import register_rllib_env, resolve_env
from rmc_agents.rl.learner_connector import learner_pipeline
from rmc_agents.rl.module import RecurrentAgentModule
from rmc_agents.rl.settings import RunSettings

__all__ = ["build_algo_config", "module_spec", "set_driver_threads", "use_rllib_sampling"]


def module_spec(run: RunSettings) -> RLModuleSpec:
    """The RLModule spec of the agent (spaces are filled in by RLlib from the env)."""
    return RLModuleSpec(
        module_class=RecurrentAgentModule, model_config=run.model.rllib_model_config()
    )


def set_driver_threads(run: RunSettings) -> None:
    """Torch's CPU threads in this (the driver) process: ``resources.driver_threads``.

    With ``num_learners: 0`` the learner trains in the driver. Torch's default there is one thread
    per core, which on 2 CPUs fought the EnvRunner for the cores: Mini-Pacman viewport, 64 envs,
    batch 1280, 60 s runs gave about 4,500 frames/s with 2 threads and 5,700 with 1. (Ray gives
    its worker processes, remote learners included, their own thread counts.)
    """
    import torch

    torch.set_num_threads(run.resources.driver_threads)


def build_algo_config(run: RunSettings) -> AlgorithmConfig:
    """The RLlib config of ``run.algorithm`` (IMPALA, APPO or PPO) for ``run``: RLlib's config of
    that algorithm with ``run``'s settings, through :func:`rmc_agents.rl.configure` (the module,
    learner, connectors, EnvRunner and algorithm class, the same call a user's own script makes),
    then what only the trainer's settings reach.

    Raises ``EnvResolutionError`` for a bad ``run.env``.
    """
    from rmc_agents.rl.agent_config import configure

    resolved = resolve_env(run.env)
    env_name = register_rllib_env()
    res, tr, model = run.resources, run.training, run.model
    algo = run.algorithm
    lr: Any = run.lr
    if tr.anneal_lr and run.stop.timesteps:
        lr = [[0, run.lr], [run.stop.timesteps, 0.0]]
    elif tr.lr_factors:
        lr = [[frame, run.lr * factor] for frame, factor in tr.lr_factors]
    entropy: Any = run.entropy_coeff
    if tr.entropy_factors:
        entropy = [[frame, run.entropy_coeff * factor] for frame, factor in tr.entropy_factors]
    training: dict[str, Any] = {
        "lr": lr,
        "gamma": tr.gamma,
        "entropy_coeff": entropy,
        "vf_loss_coeff": tr.vf_loss_coeff,
        "grad_clip": tr.grad_clip,
        "train_batch_size_per_learner": run.train_batch_size,
    }
    if algo == "ppo":
        ppo = run.ppo
        config: AlgorithmConfig = PPOConfig()
        training.update(
            num_epochs=ppo.num_epochs,
            minibatch_size=run.ppo_minibatch_size,
            lambda_=ppo.gae_lambda,
            clip_param=ppo.clip_param,
            vf_clip_param=ppo.vf_clip_param,
            use_kl_loss=ppo.use_kl_loss,
            kl_coeff=ppo.kl_coeff,
            kl_target=ppo.kl_target,
        )
    else:
        config = APPOConfig() if algo == "appo" else IMPALAConfig()
        training.update(
            vtrace_clip_rho_threshold=tr.vtrace_clip_rho_threshold,
            vtrace_clip_pg_rho_threshold=tr.vtrace_clip_pg_rho_threshold,
            timeout_s_sampler_manager=res.timeout_s_sampler_manager,
        )
        if algo == "appo":
            appo = run.appo
            training.update(
                clip_param=appo.clip_param,
                use_kl_loss=appo.use_kl_loss,
                kl_coeff=appo.kl_coeff,
                kl_target=appo.kl_target,
                target_network_update_freq=appo.target_network_update_freq,
                tau=appo.tau,
                circular_buffer_num_batches=appo.replay_batches,
                circular_buffer_iterations_per_batch=appo.replays_per_batch,
            )
    config = (
        config.environment(
            env_name, env_config={"env_spec": run.env, "env_kwargs": dict(run.env_kwargs)}
        )
        .framework("torch")
        .env_runners(
            num_env_runners=res.num_env_runners,
            num_envs_per_env_runner=res.envs_per_runner,
            num_cpus_per_env_runner=res.num_cpus_per_env_runner,
            rollout_fragment_length=tr.rollout_fragment_length,
            max_requests_in_flight_per_env_runner=res.requests_in_flight_per_runner,
            gym_env_vectorize_mode="vector_entry_point" if resolved.has_vector_face else "sync",
        )
        .learners(num_learners=res.num_learners, num_gpus_per_learner=res.gpus_per_learner)
        .training(**training)
        .reporting(
            min_time_s_per_iteration=run.min_time_s_per_iteration,
            min_sample_timesteps_per_iteration=run.min_sample_timesteps_per_iteration,
        )
        .debugging(seed=run.seed)
    )
    # The module, this project's learner (rmc_agents.rl.optim: bootstrapping V-trace for IMPALA
    # and APPO, the non-finite guard, the optimizer, diagnostics), the one-pass connectors, the
    # EnvRunner and the algorithm class (rmc_agents.rl.fault_tolerance).
    configure(
        config,
        model.core,
        reward_scale=run.reward_scale if algo != "ppo" else None,
        vtrace=tr.vtrace if algo != "ppo" else "bootstrap",
        optimizer=tr.optimizer,
        driver_threads=res.driver_threads,
        **{name: value for name, value in vars(model).items() if name != "core"},
    )
    if tr.step_infos_to_learner:  # a learner connector that reads step infos: ship them
        config.env_runners(env_runner_cls=None)
    if tr.learner_pipeline == "rllib":  # RLlib's stock pieces instead of the one-pass one
        config.learners(learner_connector=None, add_default_connectors_to_learner_pipeline=True)
    elif not tr.pack_chunks:
        config.learners(
            learner_connector=learner_pipeline(
                algo, tr.gamma, run.ppo.gae_lambda, pack=False, from_config=True
            )
        )
    config.learners(
        learner_config_dict={
            "rmsprop_decay": tr.rmsprop_decay,
            "rmsprop_eps": tr.rmsprop_eps,
            "keep_freed_memory": run.resources.keep_freed_memory,
            "diagnostics_every": tr.diagnostics_every,
            "lr_kl_target": tr.lr_kl_target,
            "lr_kl_factor_bounds": tuple(tr.lr_kl_factor_bounds),
            "core_lr_factor": tr.core_lr_factor,
        },
    )
    # A lost EnvRunner (its process or node gone) is restarted by Ray and brought back into
    # service by RLlib before the next training step (RLlib's defaults, stated here on purpose).
    config.fault_tolerance(
        restart_failed_env_runners=True,
        max_num_env_runner_restarts=1000,
        env_runner_health_probe_timeout_s=30.0,
    )
    return config


def use_rllib_sampling(
    config: AlgorithmConfig, env_to_module_connector: Any = None
) -> AlgorithmConfig:
    """Put ``config`` back on RLlib's stock sampling: its ``SingleAgentEnvRunner`` and default
    connector pipelines (after ``env_to_module_connector``'s pieces, if given), instead of this
    project's (``LeanEnvRunner``, ``rmc_agents.rl.connectors``). For comparisons."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    return config.env_runners(
        env_runner_cls=SingleAgentEnvRunner,
        env_to_module_connector=env_to_module_connector,
        module_to_env_connector=None,
        add_default_connectors_to_env_to_module_pipeline=True,
        add_default_connectors_to_module_to_env_pipeline=True,
    )
