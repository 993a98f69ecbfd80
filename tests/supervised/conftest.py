"""Shared helpers for the supervised-task tests: tiny configs and a tiny WikiText-style corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from rmc_agents.config import load_config, save_config
from rmc_agents.supervised import get_task

# Tiny models run fastest on one thread, above all on a machine shared with other jobs.
torch.set_num_threads(1)

TINY_CORE = {
    "model.core.rmc.mem_slots": 2,
    "model.core.rmc.head_size": 4,
    "model.core.rmc.num_heads": 2,
    "model.core.lstm.hidden_size": 12,
    "model.core.gru.hidden_size": 12,
}
TINY_TRAIN = {
    "train.batch_size": 8,
    "train.log_every": 1,
    "train.eval_every": 2,
    "train.checkpoint_every": 2,
    "train.steps": 4,
}
TINY = {
    "nth-farthest": {
        **TINY_CORE,
        **TINY_TRAIN,
        "task.num_vectors": 4,
        "task.vector_dim": 3,
        "task.eval_samples": 20,
        "model.mlp_layers": 1,
        "model.mlp_units": 16,
    },
    "learning-to-execute": {
        **TINY_CORE,
        **TINY_TRAIN,
        "task.family": "addition",
        "task.max_length": 2,
        "task.max_nesting": 2,
        "task.eval_samples": 12,
        "model.mlp_layers": 1,
        "model.mlp_units": 16,
    },
    "language-model": {
        **TINY_CORE,
        **TINY_TRAIN,
        "train.batch_size": 4,
        "task.bptt": 5,
        "task.eval_batch_size": 2,
        "model.embedding_size": 8,
        "model.dropout": 0.1,
        "model.core.rmc.mem_slots": 1,
    },
}


def tiny_config(task: str, **extra: Any) -> Any:
    """The task's defaults shrunk to test size, with ``extra`` dotted-key overrides."""
    cls = get_task(task).config_class
    return load_config(cls, None, {**TINY[task], **extra})


@pytest.fixture
def tiny_config_file(tmp_path: Path):
    """Write a tiny config for a task to a YAML file and return its path."""

    def write(task: str, **extra: Any) -> Path:
        path = tmp_path / f"{task}-tiny.yaml"
        save_config(tiny_config(task, **extra), path)
        return path

    return write


CORPUS_LINES = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog met on the mat",
    "",
    " = section = ",
    "the dog ran and the cat sat",
]


def write_corpus(root: Path, repeat: int = 6) -> Path:
    """A tiny WikiText-layout corpus; valid/test hold a word unseen in train."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wiki.train.tokens").write_text("\n".join(CORPUS_LINES * repeat) + "\n")
    (root / "wiki.valid.tokens").write_text("the cat sat on the zebra\nthe dog ran\n" * 3)
    (root / "wiki.test.tokens").write_text("a dog sat on the mat\nthe cat ran\n" * 3)
    return root


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")
