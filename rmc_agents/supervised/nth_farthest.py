"""Nth Farthest (Santoro et al. 2018, section 4.1): relational reasoning over a set of vectors.

Each sample is ``num_vectors`` vectors uniform in [-1, 1]^``vector_dim``, each tagged with a
distinct one-hot label. One vector is presented per step, together with the one-hot question
``n`` and the one-hot reference label ``m`` (repeated on every step), so a step has
``vector_dim + 3 * num_vectors`` inputs (16 + 8 + 8 + 8 = 40 in the paper). The target is the
label of the vector that is the ``n``-th farthest (1st = farthest) from the vector labelled
``m``. The reference itself, at distance 0, is the ``num_vectors``-th farthest. Batches are
drawn fresh every step from a seeded generator.

Model: the recurrent core reads the vectors in order; an MLP (4 x 256, ReLU) on the core's last
output gives the logits over the ``num_vectors`` labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rmc_agents.supervised.common import (
    CoreConfig,
    CoreWithHeadConfig,
    RMCConfig,
    RNNConfig,
    TrainConfig,
    build_core,
    make_mlp,
)
from rmc_agents.supervised.trainer import Task

__all__ = [
    "NthFarthestBatch",
    "NthFarthestConfig",
    "NthFarthestModel",
    "NthFarthestTask",
    "sample_nth_farthest",
    "trivial_plateau",
]


@dataclass
class NthFarthestTaskConfig:
    """The data: set size, vector size, and the size of the fixed evaluation set."""

    num_vectors: int = 8
    vector_dim: int = 16  # the paper's harder variant uses 32
    eval_samples: int = 3200
    # false: label i is the i-th vector presented (an easier diagnostic variant, not the paper's)
    shuffle_labels: bool = True

    def validate(self) -> None:
        if self.num_vectors < 2:
            raise ValueError(f"num_vectors must be >= 2, got {self.num_vectors}")
        if self.vector_dim < 1:
            raise ValueError(f"vector_dim must be >= 1, got {self.vector_dim}")
        if self.eval_samples < 1:
            raise ValueError(f"eval_samples must be >= 1, got {self.eval_samples}")


@dataclass
class NthFarthestModelConfig(CoreWithHeadConfig):
    """Core and head. Paper: RMC with 8 memories, 2048 total units, 1 block; MLP 4 x 256."""

    core: CoreConfig = field(
        default_factory=lambda: CoreConfig(
            name="rmc",
            rmc=RMCConfig(mem_slots=8, head_size=256, num_heads=8, num_blocks=1),
            lstm=RNNConfig(hidden_size=2048),
            gru=RNNConfig(hidden_size=2048),
        )
    )


@dataclass
class NthFarthestConfig:
    """Full config of an Nth Farthest run (defaults: the paper's settings)."""

    task: NthFarthestTaskConfig = field(default_factory=NthFarthestTaskConfig)
    model: NthFarthestModelConfig = field(default_factory=NthFarthestModelConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=1_000_000,
            batch_size=1600,
            learning_rate=1e-4,
            log_every=100,
            eval_every=5000,
            checkpoint_every=5000,
        )
    )


@dataclass
class NthFarthestBatch:
    """One batch: model inputs and targets, plus the raw parts they were built from."""

    inputs: np.ndarray  # [B, N, D + 3N] float32
    targets: np.ndarray  # [B] int64, label (0-based) of the n-th farthest vector
    vectors: np.ndarray  # [B, N, D]
    labels: np.ndarray  # [B, N] label of each vector (a permutation of 0..N-1)
    n: np.ndarray  # [B] 0-based question: 0 asks for the farthest
    m: np.ndarray  # [B] reference label


def sample_nth_farthest(
    rng: np.random.Generator,
    batch_size: int,
    num_vectors: int = 8,
    vector_dim: int = 16,
    shuffle_labels: bool = True,
) -> NthFarthestBatch:
    """Draw a batch of Nth Farthest problems from ``rng``. With ``shuffle_labels=False`` the
    labels follow the order of presentation (vector i has label i) instead of a random
    permutation: a diagnostic variant in which a core need not bind labels to vectors."""
    b, k = batch_size, num_vectors
    vectors = rng.uniform(-1.0, 1.0, size=(b, k, vector_dim)).astype(np.float32)
    labels = np.tile(np.arange(k), (b, 1))
    if shuffle_labels:
        labels = rng.permuted(labels, axis=1)
    n = rng.integers(0, k, size=b)
    m = rng.integers(0, k, size=b)
    rows = np.arange(b)
    reference = vectors[rows, np.argmax(labels == m[:, None], axis=1)]  # [B, D]
    distances = np.linalg.norm(vectors - reference[:, None, :], axis=-1)  # [B, N]
    order = np.argsort(-distances, axis=1, kind="stable")  # farthest first
    targets = labels[rows, order[rows, n]].astype(np.int64)

    eye = np.eye(k, dtype=np.float32)
    inputs = np.concatenate(
        [
            vectors,
            eye[labels],
            np.repeat(eye[n][:, None, :], k, axis=1),
            np.repeat(eye[m][:, None, :], k, axis=1),
        ],
        axis=-1,
    )
    return NthFarthestBatch(inputs, targets, vectors, labels, n, m)


def trivial_plateau(num_vectors: int) -> float:
    """Accuracy of a model that only answers ``n = num_vectors`` (the reference itself, at distance
    0) and guesses among the other labels otherwise: ``1/k + (1 - 1/k) / (k - 1)``."""
    k = num_vectors
    return 1 / k + (1 - 1 / k) / (k - 1)


class NthFarthestModel(nn.Module):
    """Core unrolled over the vectors, MLP head on the last output."""

    def __init__(self, cfg: NthFarthestModelConfig, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.core = build_core(cfg.core, input_size)
        self.head = make_mlp(self.core.output_size, cfg.mlp_layers, cfg.mlp_units, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` [B, N, F] -> logits [B, num_classes]."""
        state = self.core.initial_state(inputs.shape[0], device=inputs.device)
        outputs, _ = self.core.unroll(inputs, state)
        return self.head(outputs[:, -1])


class NthFarthestTask(Task):
    """Nth Farthest: fresh seeded batches for training, a fixed seeded set for evaluation."""

    name = "nth-farthest"
    config_class = NthFarthestConfig
    progress_keys = ("loss", "accuracy")

    def reference_lines(self) -> dict[str, tuple[float, str]]:
        """The trivial plateau (answering only ``n = k``): where a model sits before it learns."""
        return {"accuracy": (trivial_plateau(self.cfg.task.num_vectors), "trivial plateau")}

    def __init__(self, cfg: NthFarthestConfig, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.rng = np.random.default_rng([cfg.train.seed, 0])
        self._eval: NthFarthestBatch | None = None

    @property
    def input_size(self) -> int:
        t = self.cfg.task
        return t.vector_dim + 3 * t.num_vectors

    def build_model(self) -> nn.Module:
        return NthFarthestModel(self.cfg.model, self.input_size, self.cfg.task.num_vectors)

    def _batch(self, batch: NthFarthestBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(batch.inputs).to(self.device),
            torch.from_numpy(batch.targets).to(self.device),
        )

    def training_loss(self, model: nn.Module, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        t = self.cfg.task
        batch = sample_nth_farthest(
            self.rng, self.cfg.train.batch_size, t.num_vectors, t.vector_dim, t.shuffle_labels
        )
        inputs, targets = self._batch(batch)
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(-1) == targets).float().mean()
        return loss, {"loss": loss.item(), "accuracy": accuracy.item()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, final: bool) -> dict[str, float]:
        t = self.cfg.task
        if self._eval is None:  # same set every time: a seeded stream apart from training's
            rng = np.random.default_rng([self.cfg.train.seed, 1])
            self._eval = sample_nth_farthest(
                rng, t.eval_samples, t.num_vectors, t.vector_dim, t.shuffle_labels
            )
        inputs, targets = self._batch(self._eval)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(targets), self.cfg.train.batch_size):
            stop = start + self.cfg.train.batch_size
            logits = model(inputs[start:stop])
            loss_sum += F.cross_entropy(logits, targets[start:stop], reduction="sum").item()
            correct += (logits.argmax(-1) == targets[start:stop]).sum().item()
        return {"loss": loss_sum / len(targets), "accuracy": correct / len(targets)}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Any) -> None:
        self.rng.bit_generator.state = state["rng"]
