"""Checkpoint files: verified whole before a ``--resume`` touches anything, and the policy weights
read from them (for checks and tests)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from rmc_agents.rl.errors import CheckpointError

__all__ = ["MODULE_STATE", "REQUIRED_FILES", "checkpoint_weights", "verify_checkpoint"]

#: Where RLlib keeps the policy's weights inside an algorithm checkpoint.
MODULE_STATE = Path("learner_group/learner/rl_module/default_policy/module_state.pkl")
#: Files an algorithm checkpoint written by the trainer must hold.
REQUIRED_FILES = (
    Path("rllib_checkpoint.json"),
    Path("algorithm_state.pkl"),
    Path("trainer_progress.json"),
    MODULE_STATE,
)


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check a trainer checkpoint without starting Ray; return its ``trainer_progress.json``.

    Every ``.json`` file must parse and every ``.pkl`` file must unpickle; the required files
    (see :data:`REQUIRED_FILES`) must exist.

    Raises:
        CheckpointError: naming the checkpoint and the first missing or unreadable file.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    for rel in REQUIRED_FILES:
        if not (path / rel).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {rel} is missing")
    for file in sorted(path.rglob("*")):
        if file.suffix not in (".json", ".pkl") or not file.is_file():
            continue
        try:
            if file.suffix == ".json":
                json.loads(file.read_text())
            else:
                with file.open("rb") as f:
                    pickle.load(f)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {path} is damaged: {file.relative_to(path)} cannot be read "
                f"({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
    progress = json.loads((path / "trainer_progress.json").read_text())
    if not isinstance(progress, dict) or not isinstance(progress.get("env_steps"), int):
        raise CheckpointError(
            f"checkpoint {path} is damaged: trainer_progress.json has no integer env_steps"
        )
    return progress


def checkpoint_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The policy's weights in a checkpoint, ``{parameter name: array}``."""
    with (Path(path) / MODULE_STATE).open("rb") as f:
        state = pickle.load(f)
    return {k: np.asarray(v) for k, v in state.items()}
