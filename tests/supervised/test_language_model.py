"""Language modelling: corpus reading, vocabulary, batching, carried state, bad data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rmc_agents.supervised.common import SupervisedError
from rmc_agents.supervised.language_model import (
    LanguageModelTask,
    Vocabulary,
    batchify,
    load_corpus,
    read_tokens,
)

from .conftest import tiny_config


def test_read_tokens_ends_lines_with_eos_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("a b\n\n  c  \n")
    assert read_tokens(path) == ["a", "b", "<eos>", "c", "<eos>"]


def test_vocabulary_orders_by_frequency_and_maps_unknowns() -> None:
    from collections import Counter

    vocab = Vocabulary(Counter({"the": 5, "cat": 2, "dog": 2, "<unk>": 1, "<eos>": 3}))
    assert vocab.words == ["<unk>", "<eos>", "the", "cat", "dog"]
    assert vocab.ids(["the", "zebra", "dog"]).tolist() == [2, 0, 4]
    small = Vocabulary(Counter({"the": 5, "cat": 2, "dog": 1}), max_size=3)
    assert small.ids(["cat", "dog"]).tolist() == [0, 0]


def test_load_corpus(corpus_dir: Path) -> None:
    corpus = load_corpus(corpus_dir)
    words = corpus.vocab.words
    assert "zebra" not in words and "=" in words
    assert corpus.valid.tolist().count(0) == 3  # "zebra" three times
    assert corpus.train.dtype == torch.long and corpus.train.numel() == 6 * (7 + 7 + 10 + 4 + 8)


def test_batchify_cuts_consecutive_columns() -> None:
    data = batchify(torch.arange(11), 3)
    assert data.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "data directory not found"),
        (lambda root: root.mkdir(), "has no wiki.train.tokens"),
        (
            lambda root: (
                root.mkdir(),
                (root / "wiki.train.tokens").write_text("\n\n"),
                (root / "wiki.valid.tokens").write_text("a\n"),
                (root / "wiki.test.tokens").write_text("a\n"),
            ),
            "is empty",
        ),
    ],
)
def test_bad_data_directories(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(SupervisedError, match=message):
        load_corpus(root)
    with pytest.raises(SupervisedError, match="needs --data"):
        load_corpus(None)


@pytest.mark.parametrize("core", ["rmc", "lstm"])
def test_state_is_carried_detached_and_restarted_each_pass(corpus_dir: Path, core: str) -> None:
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir), "model.core.name": core})
    task = LanguageModelTask(cfg, torch.device("cpu"))
    model = task.build_model()
    columns = task.train_data.shape[1]
    assert task.train_data.shape[0] == 4
    loss, _ = task.training_loss(model, 0)
    assert task.position == 5
    carried = task.state if isinstance(task.state, tuple) else (task.state,)
    assert all(not s.requires_grad for s in carried)
    # The next window starts from the carried state: same result as an explicit unroll.
    x = task.train_data[:, 5:10]
    model.eval()
    with torch.no_grad():
        expected, _ = model(x, task.state)
        loss, _ = task.training_loss(model, 1)
        got = torch.nn.functional.cross_entropy(
            expected.reshape(-1, expected.shape[-1]), task.train_data[:, 6:11].reshape(-1)
        )
    assert loss.item() == pytest.approx(got.item(), rel=1e-5)
    while task.epoch == 0:
        task.training_loss(model, 0)
    assert task.position == min(5, columns - 1)  # restarted from the first column


def test_tied_embeddings_and_perplexity(corpus_dir: Path) -> None:
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir)})
    task = LanguageModelTask(cfg, torch.device("cpu"))
    model = task.build_model()
    assert model.decoder.weight is model.embedding.weight
    metrics = task.evaluate(model.eval(), final=True)
    assert {"loss", "perplexity", "test_loss", "test_perplexity"} <= set(metrics)
    assert metrics["perplexity"] == pytest.approx(torch.tensor(metrics["loss"]).exp().item())
    untied = tiny_config(
        "language-model", **{"task.data": str(corpus_dir), "model.tie_embeddings": False}
    )
    model = LanguageModelTask(untied, torch.device("cpu")).build_model()
    assert model.decoder.weight is not model.embedding.weight


def test_too_small_corpus_for_the_batch(corpus_dir: Path) -> None:
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir), "train.batch_size": 1000})
    with pytest.raises(SupervisedError, match="too few for train.batch_size=1000"):
        LanguageModelTask(cfg, torch.device("cpu"))


def test_evaluation_carries_the_state_across_windows(corpus_dir: Path) -> None:
    """Evaluating in windows of 3 words must give what one window over the whole split gives:
    the state runs on from window to window (a state reset per window would change the loss)."""
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir), "task.bptt": 3})
    task = LanguageModelTask(cfg, torch.device("cpu"))
    model = task.build_model().eval()
    with torch.no_grad():
        windows = task._evaluate_split(model, task.corpus.valid, None)
        task.cfg.task.bptt = 10_000
        whole = task._evaluate_split(model, task.corpus.valid, None)
    assert windows["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert windows["accuracy"] == whole["accuracy"]


@pytest.mark.parametrize(
    "eval_batch_size, bptt, eval_tokens",
    [(3, 4, None), (3, 1, None), (3, 4, 2), (3, 4, 7), (1000, 4, None)],
)
def test_evaluation_metrics_against_a_reference(
    corpus_dir: Path, eval_batch_size, bptt, eval_tokens
) -> None:
    """Loss, perplexity and accuracy of an evaluation, worked out here from the model's logits
    over each whole row of the batched split: the mean negative log-likelihood of every next word,
    its exp, the fraction of next words that are the argmax. The split is cut into
    ``min(eval_batch_size, words // 2)`` rows; ``eval_tokens`` keeps the first
    ``max(2, eval_tokens // rows + 1)`` words of each row. The output bias favours one word, so
    that some predictions are right."""
    cfg = tiny_config(
        "language-model",
        **{
            "task.data": str(corpus_dir),
            "task.bptt": bptt,
            "task.eval_batch_size": eval_batch_size,
        },
    )
    task = LanguageModelTask(cfg, torch.device("cpu"))
    model = task.build_model().eval()
    ids = task.corpus.valid
    with torch.no_grad():
        model.decoder.bias.zero_()
        model.decoder.bias[int(ids[1])] = 50.0  # always predict this word
    rows = min(eval_batch_size, ids.numel() // 2)
    data = batchify(ids, rows)
    if eval_tokens is not None:
        data = data[:, : max(2, eval_tokens // rows + 1)]
    with torch.no_grad():
        got = task._evaluate_split(model, ids, eval_tokens)
        logits, _ = model(data[:, :-1], model.core.initial_state(rows))
    target = data[:, 1:]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
    )
    assert nll.numel() == rows * (data.shape[1] - 1)
    assert got["loss"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert got["perplexity"] == pytest.approx(nll.mean().exp().item(), rel=1e-5)
    want_accuracy = (logits.argmax(-1) == target).float().mean().item()
    assert want_accuracy > 0
    assert got["accuracy"] == pytest.approx(want_accuracy)


def test_a_split_of_three_words_evaluates_and_one_of_one_word_is_refused(corpus_dir) -> None:
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir)})
    task = LanguageModelTask(cfg, torch.device("cpu"))
    model = task.build_model().eval()
    with torch.no_grad():
        got = task._evaluate_split(model, task.corpus.valid[:3], None)  # one row of 3 words
        logits, _ = model(task.corpus.valid[None, :2], model.core.initial_state(1))
    nll = torch.nn.functional.cross_entropy(logits[0], task.corpus.valid[1:3])
    assert got["loss"] == pytest.approx(nll.item(), rel=1e-5)
    with pytest.raises(SupervisedError, match="^an evaluation split has fewer than 2 words per"):
        task._evaluate_split(model, task.corpus.valid[:1], None)


@pytest.mark.parametrize("core", ["rmc", "lstm"])
def test_the_carried_state_survives_a_checkpoint(corpus_dir: Path, core: str) -> None:
    """The state carried between training windows (a tensor for the RMC, a tuple for the LSTM)
    goes to the checkpoint and comes back: position, epoch and every state tensor."""
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir), "model.core.name": core})
    task = LanguageModelTask(cfg, torch.device("cpu"))
    model = task.build_model()
    task.training_loss(model, step=0)
    task.training_loss(model, step=1)
    saved = task.state_dict()
    assert saved["state"] is not None and saved["position"] > 0
    fresh = LanguageModelTask(cfg, torch.device("cpu"))
    fresh.load_state_dict(saved)
    assert (fresh.position, fresh.epoch) == (task.position, task.epoch)
    want = task.state if isinstance(task.state, tuple) else (task.state,)
    got = fresh.state if isinstance(fresh.state, tuple) else (fresh.state,)
    assert type(fresh.state) is type(task.state) and len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    assert task.summarize({"loss": 2.0})["perplexity"] == pytest.approx(math.exp(2.0))
    assert task.summarize({"loss": 80.0})["perplexity"] == pytest.approx(math.exp(50.0))


@pytest.mark.parametrize(
    "cls, key, lowest, below",
    [
        ("task", "bptt", 1, 0),
        ("task", "max_vocab", 2, 1),
        ("task", "eval_batch_size", 1, 0),
        ("task", "eval_tokens", 1, 0),
        ("model", "embedding_size", 1, 0),
        ("model", "dropout", 0.0, -0.1),
        ("model", "dropout", 0.0, 1.0),
    ],
)
def test_config_bounds_are_where_the_messages_say(cls, key, lowest, below) -> None:
    from rmc_agents.supervised.language_model import LMModelConfig, LMTaskConfig

    config_class = LMTaskConfig if cls == "task" else LMModelConfig
    config_class(**{key: lowest}).validate()  # the lowest allowed value passes
    with pytest.raises(ValueError, match=f"^{key} must be"):
        config_class(**{key: below}).validate()


def test_training_windows_walk_the_columns_and_restart_each_pass(corpus_dir: Path) -> None:
    """Each training step reads the next ``bptt`` words of every row (targets one word on); after
    the last window of a pass the next step starts a new pass (epoch + 1) at column 0 from a fresh
    state. The step's accuracy is the share of next words that are the argmax."""
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir), "task.bptt": 3})
    task = LanguageModelTask(cfg, torch.device("cpu"))
    model = task.build_model().eval()
    with torch.no_grad():
        model.decoder.bias.zero_()
        model.decoder.bias[int(task.train_data[0, 1])] = 50.0  # some predictions right
    columns = task.train_data.shape[1]
    windows = -(-(columns - 1) // 3)
    positions, accuracies = [], []
    for step in range(windows + 1):
        before = task.position if task.position + 1 < columns else 0
        state = task.state if task.position + 1 < columns else None
        with torch.no_grad():
            loss, metrics = task.training_loss(model, step)
        positions.append((before, task.epoch))
        accuracies.append(metrics["accuracy"])
        length = min(3, columns - 1 - before)
        x = task.train_data[:, before : before + length]
        y = task.train_data[:, before + 1 : before + 1 + length]
        with torch.no_grad():
            start = state if state is not None else model.core.initial_state(x.shape[0])
            logits, _ = model(x, start)
        assert metrics["accuracy"] == pytest.approx((logits.argmax(-1) == y).float().mean().item())
        assert float(loss) == pytest.approx(
            torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
            ).item(),
            rel=1e-5,
        )
    assert [p for p, _ in positions] == [3 * i for i in range(windows)] + [0]
    assert [e for _, e in positions] == [0] * windows + [1]
    assert max(accuracies) > 0


def test_the_vocabulary_cap_reaches_the_corpus_and_embeddings_start_small(corpus_dir: Path) -> None:
    full = load_corpus(corpus_dir)
    capped = load_corpus(corpus_dir, max_vocab=4)
    assert len(capped.vocab) == 4 < len(full.vocab)
    assert capped.train.dtype == torch.long
    cfg = tiny_config("language-model", **{"task.data": str(corpus_dir)})
    weight = LanguageModelTask(cfg, torch.device("cpu")).build_model().embedding.weight
    assert float(weight.min()) >= -0.1 and float(weight.max()) <= 0.1  # uniform(-0.1, 0.1)
    assert float(weight.min()) < -0.05 and float(weight.max()) > 0.05
