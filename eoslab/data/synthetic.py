"""Synthetic datasets generated from a seed: teacher-student regression, Gaussian classes.

Every part (teacher or class means, training inputs, training noise, test
inputs, test noise) draws from its own stream of ``np.random.SeedSequence(seed)``,
so the first n examples do not depend on ``n_train`` or ``n_test``: a smaller
``n_train`` is exactly a subset of a larger one, with the same test set.
"""
from __future__ import annotations

import math

import numpy as np

from eoslab.data.base import Dataset, check_float, check_int, one_hot, register_dataset

N_TRAIN, N_TEST = 1000, 500


def _streams(seed: int, k: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(k)]


def make_teacher(seed: int, dim: int, teacher_width: int, num_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Teacher weights ``(W1 [dim, width], W2 [width, outputs])``, standard normal, as used by ``teacher-student``."""
    rng = _streams(seed, 5)[0]
    return rng.standard_normal((dim, teacher_width)), rng.standard_normal((teacher_width, num_outputs))


def teacher_outputs(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """``tanh(x W1 / sqrt(dim)) W2 / sqrt(width)``: outputs of order 1 for x ~ N(0, I)."""
    return np.tanh(x @ w1 / math.sqrt(w1.shape[0])) @ w2 / math.sqrt(w1.shape[1])


@register_dataset("teacher-student", options={"dim": 20, "teacher_width": 32, "num_outputs": 1, "noise": 0.0})
def teacher_student(*, data_dir, n_train, n_test, flatten, seed, dim, teacher_width, num_outputs, noise):
    """Regression on a random one-hidden-layer tanh teacher network.

    x ~ N(0, I_dim) and y = tanh(x W1 / sqrt(dim)) W2 / sqrt(teacher_width) + noise * e,
    with W1, W2 and e standard normal (no biases); see :func:`make_teacher`.
    Defaults: dim=20, teacher_width=32, num_outputs=1, noise=0, n_train=1000, n_test=500.
    """
    name = "teacher-student"
    dim, width = check_int(dim, "dim", name), check_int(teacher_width, "teacher_width", name)
    num_outputs, noise = check_int(num_outputs, "num_outputs", name), check_float(noise, "noise", name)
    w1, w2 = make_teacher(seed, dim, width, num_outputs)
    _, x_train_rng, e_train_rng, x_test_rng, e_test_rng = _streams(seed, 5)

    def sample(x_rng, e_rng, n):
        x = x_rng.standard_normal((n, dim))
        y = teacher_outputs(x, w1, w2) + noise * e_rng.standard_normal((n, num_outputs))
        return x.astype(np.float32), y.astype(np.float32)

    return Dataset(name, *sample(x_train_rng, e_train_rng, n_train or N_TRAIN),
                   *sample(x_test_rng, e_test_rng, n_test or N_TEST), num_classes=None)


@register_dataset("gaussian-classes", options={"num_classes": 4, "dim": 20, "separation": 3.0})
def gaussian_classes(*, data_dir, n_train, n_test, flatten, seed, num_classes, dim, separation):
    """Classification of isotropic unit-variance Gaussian clusters, one per class.

    Class c has mean separation / sqrt(2) * u_c: with num_classes <= dim the u_c
    are orthonormal, so any two means are exactly ``separation`` apart; with more
    classes than dimensions they are random unit vectors.  Labels cycle
    0, 1, ..., C-1, so every prefix is balanced.  Targets are one-hot.
    Defaults: num_classes=4, dim=20, separation=3, n_train=1000, n_test=500.
    """
    name = "gaussian-classes"
    num_classes = check_int(num_classes, "num_classes", name, minimum=2)
    dim, separation = check_int(dim, "dim", name), check_float(separation, "separation", name)
    means_rng, train_rng, test_rng = _streams(seed, 3)
    g = means_rng.standard_normal((dim, num_classes))
    directions = np.linalg.qr(g)[0] if num_classes <= dim else g / np.linalg.norm(g, axis=0)
    means = separation / math.sqrt(2) * directions.T

    def sample(rng, n):
        labels = np.arange(n) % num_classes
        x = means[labels] + rng.standard_normal((n, dim))
        return x.astype(np.float32), one_hot(labels, num_classes)

    return Dataset(name, *sample(train_rng, n_train or N_TRAIN), *sample(test_rng, n_test or N_TEST),
                   num_classes=num_classes)
