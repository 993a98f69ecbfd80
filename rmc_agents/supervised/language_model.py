"""Word-level language modelling on a corpus in WikiText layout (Santoro et al. 2018, 4.4).

**Data.** ``--data DIR`` must hold ``wiki.train.tokens``, ``wiki.valid.tokens`` and
``wiki.test.tokens`` (WikiText-2 and WikiText-103 come this way; any text split into those three
files works). Each non-blank line is split on whitespace and ends with ``<eos>``. The vocabulary
is built from the training split (optionally only the ``max_vocab`` most frequent words); every
other word reads as ``<unk>``. Nothing is downloaded.

**Training.** The training stream is cut into ``batch_size`` parallel columns and read in
windows of ``bptt`` words (truncated back-propagation through time). The core's state is
carried from one window to the next, detached from the graph, and restarts at each pass over
the data. Embeddings (with dropout) are tied to the softmax weights: the core output is
projected to the embedding size first. Evaluation reads the valid split (and at the end the
test split) the same way, without dropout, and reports perplexity ``exp(mean loss per word)``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rmc_agents.supervised.common import (
    CoreConfig,
    RMCConfig,
    RNNConfig,
    SupervisedError,
    TrainConfig,
    build_core,
)
from rmc_agents.supervised.trainer import Task

__all__ = [
    "SPLIT_FILES",
    "Corpus",
    "LMConfig",
    "LanguageModel",
    "LanguageModelTask",
    "Vocabulary",
    "batchify",
    "load_corpus",
    "read_tokens",
]

UNK, EOS_WORD = "<unk>", "<eos>"
SPLIT_FILES = {
    "train": "wiki.train.tokens",
    "valid": "wiki.valid.tokens",
    "test": "wiki.test.tokens",
}


class Vocabulary:
    """Word <-> id. Id 0 is ``<unk>``; then ``<eos>``; then words by falling frequency."""

    def __init__(self, counts: Counter[str], max_size: int | None = None) -> None:
        ranked = sorted(
            (w for w in counts if w not in (UNK, EOS_WORD)), key=lambda w: (-counts[w], w)
        )
        self.words: list[str] = [UNK, EOS_WORD] + ranked
        if max_size is not None:
            self.words = self.words[:max_size]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, tokens: list[str]) -> torch.Tensor:
        """Ids of ``tokens`` (unknown words -> ``<unk>``) as a 1-D int64 tensor."""
        get = self.index.get
        return torch.tensor([get(t, 0) for t in tokens], dtype=torch.long)


def read_tokens(path: Path) -> list[str]:
    """Words of a corpus file, ``<eos>`` after each non-blank line."""
    tokens: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if words:
                tokens.extend(words)
                tokens.append(EOS_WORD)
    return tokens


@dataclass
class Corpus:
    """A vocabulary and the three splits as id streams."""

    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def load_corpus(data_dir: str | Path | None, max_vocab: int | None = None) -> Corpus:
    """Read a WikiText-layout directory.

    Raises:
        SupervisedError: no directory given, it or a split file is missing, or a split is empty.
    """
    if data_dir is None:
        raise SupervisedError(
            "language-model needs --data DIR, a directory with wiki.train.tokens, "
            "wiki.valid.tokens and wiki.test.tokens (e.g. WikiText-2; see the README)"
        )
    root = Path(data_dir)
    if not root.is_dir():
        raise SupervisedError(f"data directory not found: {root}")
    splits: dict[str, list[str]] = {}
    for split, name in SPLIT_FILES.items():
        path = root / name
        if not path.is_file():
            raise SupervisedError(
                f"{root} has no {name}; a WikiText-layout directory holds "
                f"{', '.join(SPLIT_FILES.values())}"
            )
        try:
            splits[split] = read_tokens(path)
        except UnicodeDecodeError as exc:
            raise SupervisedError(f"{path} is not UTF-8 text: {exc}") from None
        if not splits[split]:
            raise SupervisedError(f"{path} holds no words: the corpus split '{split}' is empty")
    vocab = Vocabulary(Counter(splits["train"]), max_vocab)
    return Corpus(vocab, *(vocab.ids(splits[s]) for s in ("train", "valid", "test")))


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[batch_size, n]``: the stream cut into ``batch_size`` consecutive columns (tail dropped)."""
    n = ids.numel() // batch_size
    return ids[: n * batch_size].view(batch_size, n)


def _detach(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)


# --- config ----------------------------------------------------------------------------------


@dataclass
class LMTaskConfig:
    """Where the corpus is and how it is read."""

    data: str | None = None  # WikiText-layout directory (the --data flag)
    bptt: int = 100
    max_vocab: int | None = None  # keep the most frequent words only (null = all)
    eval_batch_size: int = 10
    eval_tokens: int | None = None  # periodic validation on at most this many words (null = all)

    def validate(self) -> None:
        if self.bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {self.bptt}")
        if self.max_vocab is not None and self.max_vocab < 2:
            raise ValueError(f"max_vocab must be >= 2 or null, got {self.max_vocab}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.eval_tokens is not None and self.eval_tokens < 1:
            raise ValueError(f"eval_tokens must be >= 1 or null, got {self.eval_tokens}")


@dataclass
class LMModelConfig:
    """Paper: embeddings 512, dropout 0.5, tied; RMC 2500 units = 4 heads x 625, 1 memory,
    5-layer attention MLP, 1 block. The LSTM size is ours (the paper tunes its best LSTM)."""

    core: CoreConfig = field(
        default_factory=lambda: CoreConfig(
            name="rmc",
            rmc=RMCConfig(
                mem_slots=1, head_size=625, num_heads=4, num_blocks=1, attention_mlp_layers=5
            ),
            lstm=RNNConfig(hidden_size=2048),
            gru=RNNConfig(hidden_size=2048),
        )
    )
    embedding_size: int = 512
    dropout: float = 0.5
    tie_embeddings: bool = True

    def validate(self) -> None:
        if self.embedding_size < 1:
            raise ValueError(f"embedding_size must be >= 1, got {self.embedding_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class LMConfig:
    """Full config of a language-model run (defaults: the paper's settings; batch 64 is ours)."""

    task: LMTaskConfig = field(default_factory=LMTaskConfig)
    model: LMModelConfig = field(default_factory=LMModelConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=100_000,
            batch_size=64,
            learning_rate=1e-3,
            grad_clip=0.1,
            log_every=50,
            eval_every=2000,
            checkpoint_every=2000,
        )
    )


# --- model and task --------------------------------------------------------------------------


class LanguageModel(nn.Module):
    """Embedding (dropout) -> core -> projection to the embedding size (dropout) -> softmax."""

    def __init__(self, cfg: LMModelConfig, vocab_size: int) -> None:
        super().__init__()
        e = cfg.embedding_size
        self.embedding = nn.Embedding(vocab_size, e)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.core = build_core(cfg.core, e)
        self.project = nn.Linear(self.core.output_size, e)
        self.decoder = nn.Linear(e, vocab_size)
        if cfg.tie_embeddings:
            self.decoder.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """``ids`` [B, T] -> (logits [B, T, vocab], final state)."""
        x = self.dropout(self.embedding(ids))
        outputs, state = self.core.unroll(x, state)
        return self.decoder(self.dropout(self.project(outputs))), state


class LanguageModelTask(Task):
    """Truncated-BPTT training over the train stream; perplexity on valid (and test at the end)."""

    name = "language-model"
    config_class = LMConfig
    progress_keys = ("loss", "perplexity")

    def __init__(self, cfg: LMConfig, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.corpus = load_corpus(cfg.task.data, cfg.task.max_vocab)
        batch = cfg.train.batch_size
        if self.corpus.train.numel() < 2 * batch:
            raise SupervisedError(
                f"the training split has {self.corpus.train.numel()} words, too few for "
                f"train.batch_size={batch} (need at least {2 * batch})"
            )
        self.train_data = batchify(self.corpus.train, batch).to(device)
        self.position = 0
        self.epoch = 0
        self.state: Any = None

    def build_model(self) -> nn.Module:
        return LanguageModel(self.cfg.model, len(self.corpus.vocab))

    def training_loss(self, model: nn.Module, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        columns = self.train_data.shape[1]
        if self.position + 1 >= columns:  # one pass done: start again from a fresh state
            self.position, self.state = 0, None
            self.epoch += 1
        if self.state is None:
            self.state = model.core.initial_state(self.train_data.shape[0], device=self.device)
        length = min(self.cfg.task.bptt, columns - 1 - self.position)
        x = self.train_data[:, self.position : self.position + length]
        y = self.train_data[:, self.position + 1 : self.position + 1 + length]
        logits, state = model(x, self.state)
        self.state = _detach(state)
        self.position += length
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        accuracy = (logits.argmax(-1) == y).float().mean()
        return loss, {"loss": loss.item(), "accuracy": accuracy.item()}

    def summarize(self, averaged: dict[str, float]) -> dict[str, float]:
        return {**averaged, "perplexity": math.exp(min(averaged["loss"], 50.0))}

    def _evaluate_split(self, model: nn.Module, ids: torch.Tensor, limit: int | None):
        batch = min(self.cfg.task.eval_batch_size, max(1, ids.numel() // 2))
        data = batchify(ids, batch).to(self.device)
        if limit is not None:
            data = data[:, : max(2, limit // batch + 1)]
        state = model.core.initial_state(batch, device=self.device)
        loss_sum, right, count = 0.0, 0, 0
        for start in range(0, data.shape[1] - 1, self.cfg.task.bptt):
            length = min(self.cfg.task.bptt, data.shape[1] - 1 - start)
            x = data[:, start : start + length]
            y = data[:, start + 1 : start + 1 + length]
            logits, state = model(x, state)
            loss_sum += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
            ).item()
            right += (logits.argmax(-1) == y).sum().item()
            count += y.numel()
        if count == 0:
            raise SupervisedError("an evaluation split has fewer than 2 words per column")
        loss = loss_sum / count
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": right / count}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, final: bool) -> dict[str, float]:
        limit = None if final else self.cfg.task.eval_tokens
        metrics = self._evaluate_split(model, self.corpus.valid, limit)
        if final:
            test = self._evaluate_split(model, self.corpus.test, None)
            metrics.update({f"test_{k}": v for k, v in test.items()})
        return metrics

    def state_dict(self) -> dict[str, Any]:
        state = self.state
        if state is not None:
            state = (
                state.cpu() if isinstance(state, torch.Tensor) else tuple(s.cpu() for s in state)
            )
        return {"position": self.position, "epoch": self.epoch, "state": state}

    def load_state_dict(self, state: Any) -> None:
        self.position, self.epoch = state["position"], state["epoch"]
        carried = state["state"]
        if carried is not None:
            carried = (
                carried.to(self.device)
                if isinstance(carried, torch.Tensor)
                else tuple(s.to(self.device) for s in carried)
            )
        self.state = carried
