"""Nth Farthest: the generator's targets against a brute-force answer, input layout, the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmc_agents.supervised.nth_farthest import NthFarthestTask, sample_nth_farthest

from .conftest import tiny_config


def brute_force_answer(vectors: np.ndarray, labels: np.ndarray, n: int, m: int) -> int:
    """Label of the (n+1)-th farthest vector from the one labelled m, by plain loops."""
    reference = next(v for v, label in zip(vectors, labels, strict=True) if label == m)
    by_distance = []
    for v, label in zip(vectors, labels, strict=True):
        distance = sum((float(a) - float(b)) ** 2 for a, b in zip(v, reference, strict=True)) ** 0.5
        by_distance.append((distance, int(label)))
    by_distance.sort(reverse=True)
    return by_distance[n][1]


@pytest.mark.parametrize(("num_vectors", "vector_dim"), [(8, 16), (8, 32), (5, 3)])
def test_targets_match_brute_force(num_vectors: int, vector_dim: int) -> None:
    batch = sample_nth_farthest(np.random.default_rng(7), 300, num_vectors, vector_dim)
    for i in range(300):
        expected = brute_force_answer(batch.vectors[i], batch.labels[i], batch.n[i], batch.m[i])
        assert batch.targets[i] == expected


def test_ordered_labels_variant_follows_presentation_order() -> None:
    batch = sample_nth_farthest(np.random.default_rng(5), 200, 5, 3, shuffle_labels=False)
    np.testing.assert_array_equal(batch.labels, np.tile(np.arange(5), (200, 1)))
    np.testing.assert_array_equal(batch.inputs[..., 3:8].argmax(-1), batch.labels)
    for i in range(200):
        expected = brute_force_answer(batch.vectors[i], batch.labels[i], batch.n[i], batch.m[i])
        assert batch.targets[i] == expected
    # the answers still spread over every label (the variant is not constant)
    assert set(batch.targets.tolist()) == set(range(5))


def test_question_extremes_are_farthest_and_self() -> None:
    batch = sample_nth_farthest(np.random.default_rng(3), 200, 8, 16)
    for i in range(200):
        if batch.n[i] == 7:  # the 8th farthest of 8 is the reference itself
            assert batch.targets[i] == batch.m[i]
        if batch.n[i] == 0:
            ref = batch.vectors[i][batch.labels[i] == batch.m[i]][0]
            far = np.argmax(np.linalg.norm(batch.vectors[i] - ref, axis=1))
            assert batch.targets[i] == batch.labels[i][far]


def test_input_layout_is_vector_label_question_reference() -> None:
    batch = sample_nth_farthest(np.random.default_rng(0), 16, 8, 16)
    assert batch.inputs.shape == (16, 8, 40)  # 16 + 8 + 8 + 8, as in the paper
    assert batch.inputs.dtype == np.float32
    np.testing.assert_array_equal(batch.inputs[..., :16], batch.vectors)
    assert np.all((batch.vectors >= -1) & (batch.vectors <= 1))
    np.testing.assert_array_equal(batch.inputs[..., 16:24].argmax(-1), batch.labels)
    for i in range(16):
        assert sorted(batch.labels[i]) == list(range(8))  # drawn without replacement
        np.testing.assert_array_equal(batch.inputs[i, :, 24:32].argmax(-1), [batch.n[i]] * 8)
        np.testing.assert_array_equal(batch.inputs[i, :, 32:40].argmax(-1), [batch.m[i]] * 8)
    assert batch.inputs[..., 16:].sum() == 16 * 8 * 3  # exactly three one-hots per step


def test_seeded_and_covering_all_labels() -> None:
    a = sample_nth_farthest(np.random.default_rng(11), 2000)
    b = sample_nth_farthest(np.random.default_rng(11), 2000)
    c = sample_nth_farthest(np.random.default_rng(12), 2000)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    assert set(a.targets.tolist()) == set(range(8))
    assert set(a.n.tolist()) == set(range(8))


@pytest.mark.parametrize("core", ["rmc", "lstm"])
def test_model_gives_one_logit_per_label_and_learns_a_batch(core: str) -> None:
    cfg = tiny_config("nth-farthest", **{"model.core.name": core})
    task = NthFarthestTask(cfg, torch.device("cpu"))
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    task.rng = np.random.default_rng(0)
    losses = []
    for _ in range(30):  # the same batch again and again: the loss must fall
        task.rng = np.random.default_rng(0)
        loss, metrics = task.training_loss(model, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(metrics["loss"])
    assert losses[-1] < 0.5 * losses[0]
    logits = model(torch.zeros(3, 4, task.input_size))
    assert logits.shape == (3, 4)
    metrics = task.evaluate(model, final=True)
    assert set(metrics) == {"loss", "accuracy"} and 0 <= metrics["accuracy"] <= 1
