"""One-pass learner connector: from the sampled episodes to the padded, chunked train batch.

Before every update RLlib's learner turns the episodes into a train batch with seven generic
connector pieces (``AddOneTsToEpisodesAndTruncate``, ``AddObservationsFromEpisodesToBatch``,
``AddColumnsFromEpisodesToTrainBatch``, ``AddTimeDimToBatchAndZeroPad``,
``AddStatesFromEpisodesToBatch``, ``BatchIndividualItems``, ``NumpyToTensor``). They walk the
episodes one at a time and the steps of each as lists of items: on a Mini-Pacman batch of 640 steps
they took about 13 ms on one core, about 20 us per step, the same for every model
(``bench/learner_pipeline.py``). :class:`EpisodesToTrainBatch` builds the same batch with whole-array
operations: one slice per episode and column, then one scatter per column into the
``[chunks, max_seq_len, ...]`` layout.

What the batch holds, per episode of ``n`` steps (``L = n + 1`` rows: the steps and one bootstrap
row, as ``AddOneTsToEpisodesAndTruncate`` makes them):

- ``obs``: the ``n + 1`` observations (the last one is the one after the last action);
- ``actions`` and every extra model output but the states: the ``n`` values and the last again;
- ``rewards``: the ``n`` rewards and 0;
- ``terminateds`` / ``truncateds``: false but at the last step, where ``terminateds`` is the
  episode's termination and ``truncateds`` is true unless the episode terminated (a fragment cut
  counts as a truncation: its value is bootstrapped); false at the bootstrap row;
- ``loss_mask``: true at the ``n`` steps, false at the bootstrap row and the padding;
- a stateful module gets the rows cut into chunks of ``max_seq_len`` (zero-padded), ``seq_lens``
  (rows per chunk) and ``state_in`` (the state at each chunk's first row: the module's initial
  state at an episode's start, else the ``state_out`` of the step before).

``tests/rl/test_learner_connector.py`` checks the result field by field (values, dtypes, shapes)
against RLlib's pipeline on the same episodes: episodes cut by fragments, reset, terminated and
truncated, several chunks per episode, Dict observations, stateless modules. Three deliberate
differences: the episodes are read, not changed (RLlib's first piece appends the bootstrap step to
each episode object), so the learner counts the steps sampled as trained, not one more per episode;
an episode that continues an earlier fragment but kept no lookback (``episode_lookback_horizon``
0), so that the state before its first step is lost, is refused with an error that says so
(RLlib's pipeline fails there with an IndexError from its lookback buffer); and RLlib's pipeline
stays in use for what this piece does not cover (:meth:`covers`: multi-agent
episodes, episodes still in lists, a batch that earlier pieces already filled, an episode without
steps, a stateful episode without recorded states).

**Packed chunks** (``pack=True``, the default of :func:`learner_pipeline`): RLlib's layout starts
every episode at a chunk of its own, so an episode that ends inside a sampled fragment leaves its
chunk's tail as padding, and the learner's forward and backward pass run over it all the same: on
Mini-Pacman's default batch (32 envs x 20 steps, chunks of 22) the 640 steps took 41-49 chunks where
32 would hold them, at the paper's size (32 x 40, chunks of 42) 53-60. :func:`pack_episodes` puts
fresh episodes (those that start at their first step, from the initial state) into those tails; a
``resets`` column marks where each starts and the module restarts its state there. Every episode is
cut at the same steps as in RLlib's layout, so the forward pass, the loss and the gradients are the
same (``tests/rl/test_learner_connector.py`` compares them), with fewer chunks. Only modules that
say they honour the column (``accepts_resets``) get packed batches.

For PPO, :class:`AdvantagesFromTrainBatch` follows (RLlib's ``GeneralAdvantageEstimation`` reads the
episodes' lengths after they were extended): values from the module on the whole batch, RLlib's own
``compute_value_targets`` on the valid rows, advantages standardised, both put back into the chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tree
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets
from ray.rllib.utils.torch_utils import convert_to_torch_tensor

__all__ = [
    "AdvantagesFromTrainBatch",
    "RESETS",
    "EpisodesToTrainBatch",
    "learner_module",
    "learner_pipeline",
    "pack_episodes",
    "read_targets_from_config",
    "stock_learner_pieces",
]

ADVANTAGES, VALUE_TARGETS = "advantages", "value_targets"  # RLlib's Postprocessing names

#: Column of packed batches: ``[chunks, max_seq_len]`` bool, True where a fresh episode starts
#: inside a chunk (the module restarts from its initial state before that row).
RESETS = "resets"


def stock_learner_pieces(device: Any = None) -> list:
    """RLlib 2.60's default learner pieces for IMPALA, APPO and PPO (without PPO's GAE), in order."""
    from ray.rllib.connectors.learner import (
        AddColumnsFromEpisodesToTrainBatch,
        AddObservationsFromEpisodesToBatch,
        AddOneTsToEpisodesAndTruncate,
        AddStatesFromEpisodesToBatch,
        AddTimeDimToBatchAndZeroPad,
        BatchIndividualItems,
        NumpyToTensor,
    )

    return [
        AddOneTsToEpisodesAndTruncate(),
        AddObservationsFromEpisodesToBatch(as_learner_connector=True),
        AddColumnsFromEpisodesToTrainBatch(),
        AddTimeDimToBatchAndZeroPad(as_learner_connector=True),
        AddStatesFromEpisodesToBatch(as_learner_connector=True),
        BatchIndividualItems(multi_agent=False),
        NumpyToTensor(as_learner_connector=True, device=device),
    ]


def _map(fn: Any, data: Any) -> Any:
    """``fn`` on every array of ``data`` (an array, a flat dict of arrays or any nest of them)."""
    if isinstance(data, np.ndarray):
        return fn(data)
    if isinstance(data, dict) and all(isinstance(v, np.ndarray) for v in data.values()):
        return {key: fn(value) for key, value in data.items()}
    return tree.map_structure(fn, data)


def learner_module(module: Any) -> MultiRLModule:
    """The learner's view of an EnvRunner's module: a MultiRLModule holding a module of the same
    class, spaces, config and weights (for building train batches outside a Learner)."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    spec = RLModuleSpec(
        module_class=type(module),
        observation_space=module.observation_space,
        action_space=module.action_space,
        model_config=module.model_config,
    )
    multi = MultiRLModule(rl_module_specs={DEFAULT_MODULE_ID: spec})
    multi[DEFAULT_MODULE_ID].set_state(module.get_state())
    return multi


def _rows(buffer: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` (episode time; negative: the lookback) of a finalized
    ``InfiniteLookbackBuffer``, as views."""
    data, lb = buffer.data, buffer.lookback
    if isinstance(data, np.ndarray):
        return data[lb + start : lb + stop]
    return _map(lambda a: a[lb + start : lb + stop], data)


def _concat(parts: list) -> Any:
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, dict) and all(isinstance(v, np.ndarray) for v in first.values()):
        return {key: np.concatenate([part[key] for part in parts]) for key in first}
    return tree.map_structure(lambda *leaves: np.concatenate(leaves), *parts)


def _take(data: Any, index: np.ndarray) -> Any:
    return _map(lambda a: a[index], data)


def _module_of(rl_module: Any) -> tuple[Any, bool]:
    """The single-agent module and whether it came wrapped in a MultiRLModule."""
    if isinstance(rl_module, MultiRLModule):
        return rl_module[DEFAULT_MODULE_ID], True
    return rl_module, False


def _device_of(module: Any) -> Any:
    for p in module.parameters():
        return p.device
    return None


class EpisodesToTrainBatch(ConnectorV2):
    """RLlib's default learner pipeline in one pass (see the module docstring).

    Args:
        device: where the tensors go; ``None``: the device of the module's parameters.
        pack: pack fresh episodes into the tails of other episodes' chunks (fewer chunks, the
            same loss) where the module says it restarts its state at the ``resets`` column
            (``accepts_resets``); else RLlib's layout, one episode per chunk.
    """

    def __init__(
        self,
        input_observation_space: Any = None,
        input_action_space: Any = None,
        *,
        device: Any = None,
        pack: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self._device = device
        self.pack = pack
        self._stock: Any = None
        self.fallbacks = 0  # batches handed to RLlib's pipeline (see :meth:`covers`)

    # -- which batches this piece builds ------------------------------------------------------

    @staticmethod
    def covers(rl_module: Any, batch: dict, episodes: list) -> bool:
        """Whether this piece builds the batch itself (else RLlib's pipeline does)."""
        if batch or not episodes or rl_module is None:
            return False
        if isinstance(rl_module, MultiRLModule) and (
            len(rl_module) != 1 or DEFAULT_MODULE_ID not in rl_module
        ):
            return False
        module, _ = _module_of(rl_module)
        stateful = module.is_stateful()
        for episode in episodes:
            if not isinstance(episode, SingleAgentEpisode) or episode.module_id is not None:
                return False
            if not episode.is_numpy or len(episode) == 0:
                return False
            if episode.is_terminated and episode.is_truncated:
                return False
            if stateful and Columns.STATE_OUT not in episode.extra_model_outputs:
                return False
        return True

    def _stock_pipeline(self, device: Any) -> Any:
        if self._stock is None:
            from ray.rllib.connectors.learner import LearnerConnectorPipeline

            self._stock = LearnerConnectorPipeline(connectors=stock_learner_pieces(device))
        return self._stock

    # -- the batch ------------------------------------------------------------------------------

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        module, wrapped = _module_of(rl_module)
        device = self._device if self._device is not None else _device_of(module)
        if not self.covers(rl_module, batch, episodes):
            self.fallbacks += 1
            # Only the data: the outer pipeline also hands each piece its metrics logger, its
            # metrics prefix and the deprecated ``data``. The stock pipeline sets the last two
            # itself (passed on, they raised "got multiple values for keyword argument"), and its
            # timer would share the outer pipeline's key in the same logger.
            return self._stock_pipeline(device)(
                rl_module=rl_module,
                batch=batch,
                episodes=episodes,
                explore=explore,
                shared_data=shared_data,
            )
        if shared_data is None:
            shared_data = {}
        columns = self.build(module, episodes, shared_data)
        tensors = convert_to_torch_tensor(columns, device=device)
        return {DEFAULT_MODULE_ID: tensors} if wrapped else tensors

    def build(self, module: Any, episodes: list, shared_data: dict) -> dict[str, Any]:
        """The train batch of ``episodes`` as numpy arrays (no tensors yet)."""
        sizes = [len(e) for e in episodes]
        lengths = np.asarray(sizes, dtype=np.int64)
        rows = lengths + 1  # each episode's steps and its bootstrap row
        total = int(rows.sum())
        starts = np.concatenate([[0], np.cumsum(rows)[:-1]])  # first row of each episode
        real_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # ... in step arrays
        last_real = starts + lengths - 1  # row of each episode's last step
        boot = starts + lengths  # row of each episode's bootstrap step
        # Index that spreads an array of the steps (n per episode) over the rows, repeating each
        # episode's last step at its bootstrap row.
        t = np.arange(total) - np.repeat(starts, rows)  # time within the episode
        step_index = np.repeat(real_starts, rows) + np.minimum(t, np.repeat(lengths - 1, rows))

        def steps(buffers: list) -> Any:
            return _take(
                _concat([_rows(b, 0, n) for b, n in zip(buffers, sizes, strict=True)]), step_index
            )

        out: dict[str, Any] = {}
        out[Columns.OBS] = _concat(
            [_rows(e.observations, 0, n + 1) for e, n in zip(episodes, sizes, strict=True)]
        )
        out[Columns.ACTIONS] = steps([e.actions for e in episodes])
        rewards = steps([e.rewards for e in episodes])
        rewards[boot] = 0.0
        out[Columns.REWARDS] = rewards
        terminated = np.fromiter((e.is_terminated for e in episodes), bool, len(episodes))
        terminateds = np.zeros(total, dtype=bool)
        terminateds[last_real] = terminated
        truncateds = np.zeros(total, dtype=bool)
        truncateds[last_real] = ~terminated  # a cut fragment is truncated: bootstrap its value
        out[Columns.TERMINATEDS] = terminateds
        out[Columns.TRUNCATEDS] = truncateds
        loss_mask = np.ones(total, dtype=bool)
        loss_mask[boot] = False
        out[Columns.LOSS_MASK] = loss_mask
        for column in episodes[0].extra_model_outputs:
            if column not in (Columns.STATE_IN, Columns.STATE_OUT):
                out[column] = steps([e.extra_model_outputs[column] for e in episodes])
        shared_data["_added_loss_mask_for_valid_episode_ts"] = True
        if not module.is_stateful():
            return out

        # Chunks of max_seq_len rows, zero-padded at their ends; the state at each chunk's first
        # row. Each episode is laid out from ``place`` on in one stream of rows that is cut every
        # m rows: RLlib's layout starts every episode at a chunk; packed, fresh episodes fill the
        # chunks' tails (see pack_episodes).
        m = int(module.model_config["max_seq_len"])
        fresh = np.fromiter((e.t_started == 0 for e in episodes), bool, len(episodes))
        packed = self.pack and bool(getattr(module, "accepts_resets", False))
        if packed:
            place = pack_episodes(rows, fresh, m)
        else:
            place = np.concatenate([[0], np.cumsum(-(-rows // m) * m)[:-1]])
        position = np.repeat(place, rows) + t
        row_of, col_of = position // m, position % m
        n_chunks = int(row_of.max()) + 1

        def pad(flat: np.ndarray) -> np.ndarray:
            padded = np.zeros((n_chunks, m, *flat.shape[1:]), dtype=flat.dtype)
            padded[row_of, col_of] = flat
            return padded

        out = {column: _map(pad, value) for column, value in out.items()}
        # Every chunk's rows are a prefix of it (padding only at the end).
        out[Columns.SEQ_LENS] = np.bincount(row_of, minlength=n_chunks)
        # The episode at each chunk's first row, and that row's time in the episode.
        by_place = np.argsort(place, kind="stable")
        first = np.arange(n_chunks) * m
        owner = by_place[np.searchsorted(place[by_place], first, side="right") - 1]
        out[Columns.STATE_IN] = self._chunk_states(
            module, episodes, sizes, real_starts, owner, first - place[owner]
        )
        if packed:
            resets = np.zeros((n_chunks, m), dtype=bool)
            resets[place[fresh] // m, place[fresh] % m] = True
            out[RESETS] = resets
        shared_data[f"_zero_padded_for_mid={DEFAULT_MODULE_ID}"] = True
        return out

    @staticmethod
    def _chunk_states(
        module: Any,
        episodes: list,
        sizes: list,
        real_starts: np.ndarray,
        owner: np.ndarray,
        time: np.ndarray,
    ) -> Any:
        """``state_in`` of every chunk: the state before its first row, which is row ``time`` of
        episode ``owner``."""
        initial = None
        firsts = []
        for episode in episodes:
            buffer = episode.extra_model_outputs[Columns.STATE_OUT]
            if episode.t_started == 0:
                if initial is None:
                    initial = _map(lambda a: np.asarray(a)[None], module.get_initial_state())
                firsts.append(initial)
            elif buffer.lookback > 0:  # the state_out of the step before the first (lookback)
                firsts.append(_rows(buffer, -1, 0))
            else:
                # The state before the first step is lost. (RLlib's pipeline fails here with an
                # IndexError from inside the lookback buffer.)
                raise ValueError(
                    f"episode {episode.id_!r} continues from step {episode.t_started} but keeps "
                    "no state_out from before its first step (a lookback of 0), so the state its "
                    "first chunk starts from is unknown; keep the EnvRunners' "
                    "episode_lookback_horizon at 1 or more (RLlib's default is 1)"
                )
        first_states = _concat(firsts)
        is_first = time == 0
        if is_first.all():
            return _take(first_states, owner)
        # Chunks that start inside an episode: the state_out of the step before (time - 1 is
        # always a real step: a chunk starts at most at the bootstrap row).
        outs = _concat(
            [
                _rows(e.extra_model_outputs[Columns.STATE_OUT], 0, n)
                for e, n in zip(episodes, sizes, strict=True)
            ]
        )
        later = real_starts[owner] + np.maximum(time - 1, 0)

        def pick(first: np.ndarray, out: np.ndarray) -> np.ndarray:
            result = out[later]
            result[is_first] = first[owner[is_first]]
            return result

        return tree.map_structure(pick, first_states, outs)


def pack_episodes(rows: np.ndarray, fresh: np.ndarray, m: int) -> np.ndarray:
    """Where each episode's rows start in a stream cut into chunks of ``m`` rows, packed.

    RLlib's layout starts every episode at a chunk, which leaves the tail of its last chunk
    empty. Here a fresh episode (one that starts at its first step, from the initial state) that
    fits in ``m`` rows may instead fill such a tail: the module restarts its state there (the
    ``resets`` column). Everything else starts a chunk as in RLlib's layout: an episode that
    continues one sampled before (its chunk's ``state_in`` is the state recorded before it) and
    one longer than a chunk (it is cut every ``m`` rows from its start, as in RLlib's layout).
    So every episode is cut at the same steps as there, and the truncated backpropagation through
    time, the forward pass and the loss are the same; only the number of chunks drops.

    The tails are filled best fit, longest fresh episode first; a fresh episode that fits no tail
    opens a chunk of its own, whose tail the next ones may fill. Padding is left only at chunk
    ends, so every chunk's rows are a prefix of it.

    Args:
        rows: rows per episode (its steps and its bootstrap row).
        fresh: per episode, whether it starts at the episode's first step.
        m: rows per chunk (``max_seq_len``).

    Returns:
        The first stream position of every episode (chunk ``p // m``, row ``p % m``).
    """
    rows = np.asarray(rows, dtype=np.int64)
    fits = np.asarray(fresh, dtype=bool) & (rows <= m)
    # Bins: [free rows in the last chunk, episodes in order]; anchors first, in episode order.
    bins = [[-int(rows[i]) % m, [i]] for i in np.flatnonzero(~fits).tolist()]
    for i in sorted(np.flatnonzero(fits).tolist(), key=lambda i: (-rows[i], i)):
        need = int(rows[i])
        best = min((b for b in bins if b[0] >= need), key=lambda b: b[0], default=None)
        if best is None:
            best = [m, []]
            bins.append(best)
        best[0] -= need
        best[1].append(i)
    place = np.zeros(len(rows), dtype=np.int64)
    position = 0
    for _, members in bins:
        position = -(-position // m) * m
        for i in members:
            place[i] = position
            position += int(rows[i])
    return place


class AdvantagesFromTrainBatch(ConnectorV2):
    """PPO's GAE on the batch :class:`EpisodesToTrainBatch` built (values from the module).

    As RLlib's ``GeneralAdvantageEstimation``: value targets by RLlib's ``compute_value_targets``
    over each episode's rows (steps and bootstrap row) in order, advantages = targets - values,
    both zero in the padding. The advantages are standardised over the real steps only; RLlib's
    piece counts the bootstrap rows too, whose advantages depend on whatever follows them in the
    batch (so its statistics change with the layout; ours do not, packed or not).

    ``from_config`` (and a ``gamma`` / ``lambda_`` of None): the value is the algorithm config's,
    set when the learner is built (:func:`read_targets_from_config`, called by this project's
    learners), whatever the piece was given before. A piece still without them refuses the first
    batch.
    """

    def __init__(
        self,
        input_observation_space: Any = None,
        input_action_space: Any = None,
        *,
        gamma: float | None,
        lambda_: float | None,
        from_config: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.gamma = gamma
        self.lambda_ = lambda_
        self.from_config = tuple(
            name
            for name, value in (("gamma", gamma), ("lambda_", lambda_))
            if from_config or value is None
        )

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        import torch

        if self.gamma is None or self.lambda_ is None:
            raise ValueError(
                "the one-pass PPO learner connector has no gamma or lambda_: pass them to "
                "learner_pipeline(...), or use this project's learner "
                "(rmc_agents.rl.learner_class('ppo')), which reads them from the config"
            )
        module, wrapped = _module_of(rl_module)
        data = batch[DEFAULT_MODULE_ID] if wrapped else batch
        with torch.no_grad():
            values = module.compute_values(data)
        device = values.device
        values = values.detach().cpu().numpy()
        if Columns.SEQ_LENS in data:  # [chunks, T]: the valid rows in order
            seq_lens = data[Columns.SEQ_LENS].cpu().numpy()
            valid = np.arange(values.shape[1])[None, :] < seq_lens[:, None]
        else:
            valid = np.ones(values.shape, dtype=bool)

        def rows(column: str) -> np.ndarray:
            return data[column].cpu().numpy()[valid]

        v = values[valid]
        targets = compute_value_targets(
            values=v,
            rewards=rows(Columns.REWARDS),
            terminateds=rows(Columns.TERMINATEDS),
            truncateds=rows(Columns.TRUNCATEDS),
            gamma=self.gamma,
            lambda_=self.lambda_,
        )
        advantages = targets - v
        # Standardised over the real steps. (RLlib's piece also counts the bootstrap rows, whose
        # advantages no loss reads and which depend on the rows after them in the batch.)
        real = rows(Columns.LOSS_MASK).astype(bool)
        advantages = (advantages - advantages[real].mean()) / max(1e-4, advantages[real].std())
        for name, flat in ((ADVANTAGES, advantages), (VALUE_TARGETS, targets)):
            full = np.zeros(values.shape, dtype=flat.dtype)
            full[valid] = flat
            data[name] = convert_to_torch_tensor(full, device=device)
        return batch


def learner_pipeline(
    algorithm: str,
    gamma: float | None = 0.99,
    lambda_: float | None = 1.0,
    pack: bool = True,
    from_config: bool = False,
) -> Any:
    """A ``learner_connector`` factory for ``config.training`` (with RLlib's defaults turned off):
    :class:`EpisodesToTrainBatch` (packing chunks where the module accepts resets, if ``pack``),
    and for PPO :class:`AdvantagesFromTrainBatch` after it. ``from_config`` (or a ``gamma`` /
    ``lambda_`` of None): the config's values, set when this project's learner is built (the
    values given serve a pipeline built outside a learner)."""

    def factory(input_observation_space: Any = None, input_action_space: Any = None) -> list:
        pieces: list = [EpisodesToTrainBatch(pack=pack)]
        if algorithm == "ppo":
            pieces.append(
                AdvantagesFromTrainBatch(gamma=gamma, lambda_=lambda_, from_config=from_config)
            )
        return pieces

    return factory


def _pieces(connector: Any) -> list:
    """Every connector piece of ``connector`` (pipelines opened, in order)."""
    inner = getattr(connector, "connectors", None)
    if inner is None:
        return [] if connector is None else [connector]
    return [piece for part in inner for piece in _pieces(part)]


def read_targets_from_config(connector: Any, config: Any) -> None:
    """Give every :class:`AdvantagesFromTrainBatch` in ``connector`` (a learner's pipeline) the
    ``gamma`` and ``lambda_`` it left to the config, from ``config`` (the learner's, as built).

    A value given to the piece that differs from the config's is kept, with one warning that
    names it (GAE and the rest of the algorithm would then discount differently).
    """
    import warnings

    for piece in _pieces(connector):
        if not isinstance(piece, AdvantagesFromTrainBatch):
            continue
        for name in ("gamma", "lambda_"):
            value = getattr(config, name, None)
            if name in piece.from_config:
                setattr(piece, name, value)
            elif value is not None and getattr(piece, name) != value:
                warnings.warn(
                    f"the learner connector's {name} ({getattr(piece, name)}) differs from the "
                    f"config's {name} ({value}); GAE uses the connector's. Leave {name} out of "
                    "learner_pipeline(...) to use the config's",
                    stacklevel=2,
                )
