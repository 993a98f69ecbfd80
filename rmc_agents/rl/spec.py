"""The agent's policy as a piece for any RLlib (new API stack) config: :func:`policy_spec`.

::

    from ray.rllib.algorithms.ppo import PPOConfig
    from rmc_agents.rl import learner_class, policy_spec

    config = (
        PPOConfig()
        .environment("CartPole-v1")
        .rl_module(rl_module_spec=policy_spec("rmc", mem_slots=4, head_size=32))
        .learners(learner_class=learner_class("ppo"))  # optional for PPO; see below
    )
    algo = config.build_algo()

For IMPALA and APPO, pass ``learner_class("impala")`` / ``learner_class("appo")`` as well: RLlib's
stock IMPALA and APPO losses treat every fragment cut as terminal (docs/value-targets.md); these
learners compute V-trace as the paper does. For PPO the learner only adds the non-finite guard and
the optimizer choice.

Optional, for speed: :func:`learner_pipeline` builds the learner's train batches in one pass
(the same batches as RLlib's default pieces, about a tenth of their CPU time; docs/performance.md)::

    config.learners(
        learner_connector=learner_pipeline("ppo", gamma=config.gamma, lambda_=config.lambda_),
        add_default_connectors_to_learner_pipeline=False,
    )
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rmc_agents.rl.module import RecurrentAgentModule
from rmc_agents.rl.settings import ALGOS, ModelSettings

__all__ = ["learner_class", "learner_pipeline", "policy_spec"]

_SETTINGS = tuple(f.name for f in dataclasses.fields(ModelSettings) if f.name != "core")


def policy_spec(core: str = "rmc", **settings: Any) -> RLModuleSpec:
    """An ``RLModuleSpec`` of :class:`~rmc_agents.rl.module.RecurrentAgentModule`.

    Args:
        core: ``rmc`` (Relational Memory Core), ``lstm``, ``gru``, ``dnc`` (Differentiable Neural
            Computer: ``memory_size``, ``word_size``, ``num_reads``, controller ``hidden_size``) or
            ``mlp`` (no memory).
        **settings: any field of :class:`~rmc_agents.rl.settings.ModelSettings` (the ``model:``
            block of the configs, defaults filled in): ``mem_slots`` (4), ``head_size`` (32),
            ``num_heads`` (4), ``num_blocks`` (1), ``gate_style`` (``memory``),
            ``attention_mlp_layers`` (2), ``attention_scale`` (``paper``), ``slot_embeddings``
            (False), ``rmc_output`` (``memory``), ``forget_bias`` (1.0; LSTM and RMC), ``input_bias`` (0.0, RMC),
            ``skip`` (False: the heads also see the torso's features), ``hidden_size`` (256,
            LSTM/GRU/MLP),
            ``conv_channels`` ([12, 24]), ``mlp_hiddens`` ([64]), ``image_rows`` (True),
            ``head_hiddens`` ([]), ``max_seq_len`` (22: keep it at the rollout fragment length
            + 2), ``cuda_graphs`` (True). ``prev_action`` / ``prev_reward`` need the matching
            env-to-module connector in the config (RLlib's ``PrevActionsPrevRewards``).

    The observation and action spaces come from the env when RLlib builds the module.

    Raises:
        ValueError: an unknown core or setting, or an impossible value, named.
    """
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise ValueError(f"policy_spec: unknown setting(s) {unknown}; known: {list(_SETTINGS)}")
    model = ModelSettings(core=core, **settings)  # type: ignore[arg-type]  (keys checked above)
    if core not in ("rmc", "lstm", "gru", "dnc", "mlp"):
        raise ValueError(f"policy_spec: core must be one of rmc, lstm, gru, dnc, mlp; got {core!r}")
    if model.gate_style not in ("unit", "memory", "none"):
        raise ValueError(
            f"policy_spec: gate_style must be unit, memory or none; got {model.gate_style!r}"
        )
    try:
        model.validate()
    except ValueError as exc:
        raise ValueError(f"policy_spec: {exc}") from None
    return RLModuleSpec(module_class=RecurrentAgentModule, model_config=model.rllib_model_config())


def learner_class(algo: str = "impala") -> type:
    """This project's torch learner for ``algo`` (``impala``, ``appo`` or ``ppo``): bootstrapping
    V-trace (IMPALA, APPO), the non-finite guard and the optimizer choice (all three)."""
    from rmc_agents.rl.optim import LEARNERS

    if algo not in ALGOS:
        raise ValueError(f"learner_class: algo must be one of {ALGOS}, got {algo!r}")
    return LEARNERS[algo]


def learner_pipeline(
    algo: str = "impala", gamma: float = 0.99, lambda_: float = 1.0, pack: bool = True
) -> Any:
    """A ``learner_connector`` factory for ``config.learners(...)`` that builds the train batch in
    one pass (:mod:`rmc_agents.rl.learner_connector`); give it with
    ``add_default_connectors_to_learner_pipeline=False``, as it replaces RLlib's default pieces.
    For ``ppo`` it computes GAE too: pass the config's ``gamma`` and ``lambda_``. ``pack``: fresh
    episodes fill the tails of other episodes' chunks where the module restarts its state at the
    ``resets`` column (this project's module with the RMC or DNC core; other modules get RLlib's
    layout whatever ``pack`` says)."""
    from rmc_agents.rl import learner_connector

    if algo not in ALGOS:
        raise ValueError(f"learner_pipeline: algo must be one of {ALGOS}, got {algo!r}")
    return learner_connector.learner_pipeline(algo, gamma, lambda_, pack=pack)
