"""Argument checks shared by the cores: one clear message that names the bad argument."""

from __future__ import annotations

import math
from numbers import Real

import torch


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def check_finite_float(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_batch_size(batch_size: object) -> int:
    """Return ``batch_size`` if it is an int >= 1."""
    return check_positive_int("batch_size", batch_size)


def check_tensor(name: str, value: object) -> torch.Tensor:
    """Raise a TypeError naming ``name`` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_filled_and_dtype(name: str, x: torch.Tensor, dtype: torch.dtype) -> None:
    """Raise naming ``name`` if ``x`` has an empty dimension (ValueError) or is not of the module
    parameters' ``dtype`` (TypeError)."""
    if any(size == 0 for size in x.shape):
        raise ValueError(f"{name} must not have an empty dimension, got {list(x.shape)}")
    if x.dtype != dtype:
        raise TypeError(
            f"{name} must have dtype {dtype} like the module's parameters, got {x.dtype}"
        )


def check_resets(resets: object, batch_size: int, steps: int) -> torch.Tensor | None:
    """Validate ``resets`` of shape ``[B, T]``; return it as a bool tensor (or None)."""
    if resets is None:
        return None
    check_tensor("resets", resets)
    if tuple(resets.shape) != (batch_size, steps):
        raise ValueError(
            f"resets must have shape [B, T] = [{batch_size}, {steps}], got {list(resets.shape)}"
        )
    return resets if resets.dtype == torch.bool else resets != 0


def reset_times(resets: torch.Tensor | None) -> list[bool]:
    """Per time step, whether any batch element resets there (one host sync per unroll)."""
    if resets is None:
        return []
    return resets.any(dim=0).tolist()
