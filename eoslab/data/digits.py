"""scikit-learn's handwritten digits: the default dataset, it needs no download."""
from __future__ import annotations

import numpy as np

from eoslab.data.base import Dataset, check_bool, check_count, one_hot, register_dataset
from eoslab.errors import ConfigError

N_TRAIN = 1500   # of 1797; the remaining 297 are the test set


@register_dataset("digits", options={"image": False})
def load_digits(*, data_dir, n_train, n_test, flatten, seed, image):
    """The 1797 8x8 digit images of ``sklearn.datasets.load_digits`` (10 classes).

    Split: the examples are permuted with ``np.random.default_rng(0)``; the
    first 1500 are the training set and the other 297 the test set (the split
    never depends on ``seed``).  Each of the 64 pixels is standardised with the
    mean and std of the 1500 training images (a pixel that is constant over the
    training set has its std taken as 1, so it becomes 0).  Inputs are flat
    ``[N, 64]``; ``image=True`` gives ``[N, 8, 8, 1]`` for convolutional models.
    Targets are one-hot float32 ``[N, 10]``.  ``data_dir`` is not used.
    """
    image = check_bool(image, "image", "digits")
    if image and flatten:
        raise ConfigError("digits options image=True and flatten=True contradict each other; pass image=True for "
                          "[N, 8, 8, 1] images or leave it False for flat [N, 64] features.")
    from sklearn import datasets

    x, y = datasets.load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:N_TRAIN], order[N_TRAIN:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std[std == 0] = 1.0
    n_train = N_TRAIN if n_train is None else check_count(n_train, "n_train", "digits", available=N_TRAIN)
    n_test = len(test) if n_test is None else check_count(n_test, "n_test", "digits", available=len(test))
    train, test = train[:n_train], test[:n_test]
    shape = (-1, 8, 8, 1) if image else (-1, 64)

    def inputs(idx):
        return ((x[idx] - mean) / std).astype(np.float32).reshape(shape)

    return Dataset("digits", inputs(train), one_hot(y[train], 10), inputs(test), one_hot(y[test], 10), num_classes=10)
