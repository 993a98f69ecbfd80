"""Pieces every supervised task shares: config sections, the core factory call, the MLP head.

The config sections here are plain dataclasses read by :mod:`rmc_agents.config`; each task
composes them into its own top-level config (``train``, ``model``, ``task``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "CoreConfig",
    "RMCConfig",
    "RNNConfig",
    "SupervisedError",
    "TrainConfig",
    "build_core",
    "make_mlp",
]


class SupervisedError(Exception):
    """A mistake the user can fix (bad data directory, output dir in use, ...).

    The CLI prints its message as ``error: ...`` and exits non-zero, without a traceback.
    """


@dataclass
class TrainConfig:
    """How long and how fast to train, and how often to log, evaluate and checkpoint."""

    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    grad_clip: float | None = None  # max global gradient norm; null = no clipping
    log_every: int = 10  # steps between train-metric rows (CSV, TensorBoard, progress bar)
    eval_every: int = 500  # steps between evaluations (one more is always run at the end)
    checkpoint_every: int = 500  # steps between checkpoints (one more is always written at the end)
    time_budget_s: float | None = None  # stop after this much training time (eval excluded)
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    def validate(self) -> None:
        for name in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be > 0 or null, got {self.time_budget_s}")


@dataclass
class RMCConfig:
    """Relational Memory Core settings (Santoro et al. 2018; Sonnet v1 names; docs/cores.md)."""

    mem_slots: int = 4
    head_size: int = 64
    num_heads: int = 4
    num_blocks: int = 1
    forget_bias: float = 1.0
    input_bias: float = 0.0
    gate_style: Literal["unit", "memory"] | None = "unit"
    attention_mlp_layers: int = 2
    key_size: int | None = None

    def validate(self) -> None:
        for name in ("mem_slots", "head_size", "num_heads", "num_blocks", "attention_mlp_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.key_size is not None and self.key_size < 1:
            raise ValueError(f"key_size must be >= 1 or null, got {self.key_size}")


@dataclass
class RNNConfig:
    """LSTM / GRU baseline settings."""

    hidden_size: int = 256
    num_layers: int = 1

    def validate(self) -> None:
        if self.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {self.hidden_size}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")


@dataclass
class DNCConfig:
    """Differentiable Neural Computer settings (:class:`rmc_agents.core.DNC`)."""

    hidden_size: int = 256  # LSTM controller
    memory_size: int = 16
    word_size: int = 32
    num_reads: int = 4

    def validate(self) -> None:
        for name in ("hidden_size", "memory_size", "word_size", "num_reads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class CoreConfig:
    """Which recurrent core to use (``name``) and the settings of each kind."""

    name: Literal["rmc", "lstm", "gru", "dnc"] = "rmc"
    rmc: RMCConfig = field(default_factory=RMCConfig)
    lstm: RNNConfig = field(default_factory=RNNConfig)
    gru: RNNConfig = field(default_factory=RNNConfig)
    dnc: DNCConfig = field(default_factory=DNCConfig)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``make_core`` of the selected core."""
        section = getattr(self, self.name)
        return {k: v for k, v in vars(section).items()}


@dataclass
class CoreWithHeadConfig:
    """A recurrent core followed by an MLP head (``mlp_layers`` x ``mlp_units``, ReLU).

    Tasks subclass it to change the core's defaults; the keys are the same for every task.
    """

    core: CoreConfig = field(default_factory=CoreConfig)
    mlp_layers: int = 4
    mlp_units: int = 256

    def validate(self) -> None:
        if self.mlp_layers < 0 or self.mlp_units < 1:
            raise ValueError(
                f"mlp_layers must be >= 0 and mlp_units >= 1, got {self.mlp_layers}, {self.mlp_units}"
            )


def build_core(cfg: CoreConfig, input_size: int) -> nn.Module:
    """Build the configured recurrent core through :func:`rmc_agents.core.make_core`."""
    from rmc_agents.core import make_core

    return make_core(cfg.name, input_size, **cfg.kwargs())


def make_mlp(in_features: int, layers: int, units: int, out_features: int) -> nn.Sequential:
    """``layers`` Linear+ReLU layers of width ``units``, then a Linear to ``out_features``."""
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        modules += [nn.Linear(width, units), nn.ReLU()]
        width = units
    modules.append(nn.Linear(width, out_features))
    return nn.Sequential(*modules)


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SupervisedError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)
