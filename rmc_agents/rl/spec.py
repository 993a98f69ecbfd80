"""The agent's policy as a piece for any RLlib (new API stack) config: :func:`policy_spec`.

:func:`rmc_agents.rl.configure` puts the whole agent into an IMPALA, APPO or PPO config in one call
(the module, learner, connectors, EnvRunner and the settings that go with them). The pieces below
are for those who want only some of it; the policy alone gives up the bootstrapping V-trace, the
non-finite guard, the one-pass connectors, ``max_seq_len`` matched to the fragment length and the
previous action/reward connector. By hand::

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
learners compute V-trace as the paper does. For PPO the learner adds the non-finite guard, the
optimizer choice and GAE's ``gamma`` / ``lambda_`` from the config for :func:`learner_pipeline`.

Optional, for speed: :func:`learner_pipeline` builds the learner's train batches in one pass
(the same batches as RLlib's default pieces, about a tenth of their CPU time; docs/performance.md)::

    config.learners(
        learner_connector=learner_pipeline("ppo"),  # gamma, lambda_: the config's, at build time
        add_default_connectors_to_learner_pipeline=False,
    )
"""

from __future__ import annotations

import dataclasses
import types
import typing
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
            ``num_heads`` (4), ``num_blocks`` (1), ``gate_style`` (``memory``), ``coupled_gates``
            (False),
            ``attention_mlp_layers`` (2), ``attention_scale`` (``paper``), ``slot_embeddings``
            (False), ``rmc_output`` (``memory``), ``rmc_input_read`` (False), ``forget_bias`` (1.0; LSTM and RMC), ``input_bias`` (0.0, RMC), ``gate_floor`` (0.0, RMC),
            ``update_bias`` (None: PyTorch's initialisation; GRU),
            ``skip`` (False: the heads also see the torso's features), ``hidden_size`` (256,
            LSTM/GRU/MLP),
            ``conv_channels`` ([12, 24]), ``mlp_hiddens`` ([64]), ``image_rows`` (True),
            ``image_pool`` (1), ``image_projection`` (None), ``head_hiddens`` ([]), ``max_seq_len`` (22: keep it at the rollout fragment length
            + 2), ``cuda_graphs`` (True). ``prev_action`` / ``prev_reward`` (False): the module
            also reads the previous action / reward, which an env-to-module connector must add
            to the observation: :func:`rmc_agents.rl.configure` adds it; with the spec alone add
            ``rmc_agents.rl.connectors.env_to_module_pipeline(1, 0)`` (or RLlib's
            ``PrevActionsPrevRewards``) yourself. A module built without it stops with an error
            that says so.

    The observation and action spaces come from the env when RLlib builds the module.

    Raises:
        ValueError: an unknown core or setting, a value of the wrong type, or an impossible
            value, named.
    """
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise ValueError(f"policy_spec: unknown setting(s) {unknown}; known: {list(_SETTINGS)}")
    hints = typing.get_type_hints(ModelSettings)
    for name, value in {"core": core, **settings}.items():
        problem = _type_problem(value, hints[name])
        if problem:
            raise ValueError(f"policy_spec: {name} must be {problem}; got {value!r}")
    model = ModelSettings(core=core, **settings)  # type: ignore[arg-type]  (keys checked above)
    try:
        model.validate()
    except ValueError as exc:
        raise ValueError(f"policy_spec: {exc}") from None
    model_config = model.rllib_model_config()
    for name in ("prev_action", "prev_reward"):  # the module checks that its input holds them
        if getattr(model, name):
            model_config[name] = True
    return RLModuleSpec(module_class=RecurrentAgentModule, model_config=model_config)


def _type_problem(value: Any, hint: Any) -> str:
    """What ``value`` should be to fit the type ``hint`` of a ModelSettings field ("" if it fits)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "" if value in args else "one of " + ", ".join(map(str, args))
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return ""
        inner = [a for a in args if a is not type(None)]
        problem = _type_problem(value, inner[0])
        return f"{problem} or None" if problem else ""
    if origin is list:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        return "" if ok else "a list of ints"
    if hint is bool:
        return "" if isinstance(value, bool) else "True or False"
    if hint is int:
        return "" if isinstance(value, int) and not isinstance(value, bool) else "an int"
    if hint is float:
        return "" if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    return ""


def learner_class(algo: str = "impala") -> type:
    """This project's torch learner for ``algo`` (``impala``, ``appo`` or ``ppo``): bootstrapping
    V-trace (IMPALA, APPO), the non-finite guard and the optimizer choice (all three)."""
    from rmc_agents.rl.optim import LEARNERS

    if algo not in ALGOS:
        raise ValueError(f"learner_class: algo must be one of {ALGOS}, got {algo!r}")
    return LEARNERS[algo]


def learner_pipeline(
    algo: str = "impala",
    gamma: float | None = None,
    lambda_: float | None = None,
    pack: bool = True,
) -> Any:
    """A ``learner_connector`` factory for ``config.learners(...)`` that builds the train batch in
    one pass (:mod:`rmc_agents.rl.learner_connector`); give it with
    ``add_default_connectors_to_learner_pipeline=False``, as it replaces RLlib's default pieces.
    For ``ppo`` it computes GAE too, with ``gamma`` and ``lambda_``: None (the default) reads
    them from the algorithm's config when this project's learner (:func:`learner_class`) is
    built, so later ``.training(gamma=...)`` calls count; with another learner class pass them
    here (a value that differs from the config's draws a warning). ``pack``: fresh
    episodes fill the tails of other episodes' chunks where the module restarts its state at the
    ``resets`` column (this project's module with the RMC or DNC core; other modules get RLlib's
    layout whatever ``pack`` says)."""
    from rmc_agents.rl import learner_connector

    if algo not in ALGOS:
        raise ValueError(f"learner_pipeline: algo must be one of {ALGOS}, got {algo!r}")
    return learner_connector.learner_pipeline(algo, gamma, lambda_, pack=pack)
