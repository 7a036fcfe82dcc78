"""CIFAR-10 from the standard "python version" batch files.

The archive ``cifar-10-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html
extracts to ``cifar-10-batches-py/`` holding ``data_batch_1`` ... ``data_batch_5``
(training) and ``test_batch``: pickled dicts with ``b'data'`` (uint8
``[10000, 3072]``, each row a 3x32x32 image in channel-major, row-major order)
and ``b'labels'`` (ints 0..9).  The files are pickles: only load copies you trust.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from eoslab.data.base import (Dataset, byte_histogram, check_count, histogram_mean_std, one_hot,
                              register_dataset, resolve_data_dir, standardise)
from eoslab.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
_FIX = f"download the 'python version' archive from {URL} and extract it there"
_REFETCH = f"download the 'python version' archive from {URL} again and re-extract it"


@register_dataset("cifar10", aliases={"cifar-10": {}, "cifar10-5k": {"n_train": 5000}})
def load_cifar10(*, data_dir, n_train, n_test, flatten, seed):
    """CIFAR-10 images as float32 NHWC ``[N, 32, 32, 3]`` with one-hot targets ``[N, 10]``.

    Reads ``<data_dir>/cifar-10-batches-py/`` or, if the batch files lie there,
    ``<data_dir>/`` itself (``data_dir`` defaults to ``$EOSLAB_DATA``).  Each
    channel is standardised with the mean and std of the *full* training set
    (all five batches, computed exactly while streaming over them), then the
    first ``n_train`` training images are kept, in file order; only those stay
    in memory.  ``cifar10-5k`` is the subset of the first 5000 images used by
    Cohen et al., "Gradient descent on neural networks typically occurs at the
    edge of stability" (ICLR 2021).  ``flatten=True`` gives ``[N, 3072]`` in HWC order.
    """
    root, how = resolve_data_dir(data_dir, "CIFAR-10", f"{URL} (python version)")
    folder = _find_folder(root, how)
    hist = np.zeros((3, 256), np.int64)
    kept_x, kept_y, total = [], [], 0
    for name in TRAIN_FILES:
        data, labels = read_batch(folder / name, how)
        hist += [byte_histogram(channel) for channel in np.split(data, 3, axis=1)]
        keep = len(data) if n_train is None else max(0, min(len(data), n_train - total))
        kept_x.append(data[:keep])
        kept_y.append(labels[:keep])
        total += len(data)
    if n_train is not None:
        check_count(n_train, "n_train", "cifar10", available=total)
    mean, std = np.transpose([histogram_mean_std(h) for h in hist])
    test_x, test_y = read_batch(folder / TEST_FILE, how)
    if n_test is not None:
        check_count(n_test, "n_test", "cifar10", available=len(test_x))
        test_x, test_y = test_x[:n_test], test_y[:n_test]

    def inputs(rows):
        x = standardise(to_nhwc(rows), mean, std)
        return x.reshape(len(x), -1) if flatten else x

    return Dataset("cifar10", inputs(np.concatenate(kept_x)), one_hot(np.concatenate(kept_y), 10),
                   inputs(test_x), one_hot(test_y, 10), num_classes=10)


def to_nhwc(rows: np.ndarray) -> np.ndarray:
    """Rows of 3072 channel-major bytes -> ``[N, 32, 32, 3]`` (pixel (h, w, c) is ``row[c*1024 + h*32 + w]``)."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _find_folder(root: Path, how: str) -> Path:
    names = (*TRAIN_FILES, TEST_FILE)
    for folder in (root / FOLDER, root):
        if folder.is_dir() and any((folder / name).is_file() for name in names):
            return folder
    raise DataError(
        f"CIFAR-10 batch files (data_batch_1 ... data_batch_5, test_batch) not found in {root / FOLDER} or {root} "
        f"(looked because {how}); {_FIX}, or set EOSLAB_DATA.")


def read_batch(path: Path, how: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``(data uint8 [n, 3072], labels int64 [n])`` of one CIFAR-10 batch file, checked."""
    where = f"{path.name} in {path.parent}"
    if not path.is_file():
        looked = f" (looked because {how})" if how else ""
        raise DataError(f"CIFAR-10 file {path.name} not found in {path.parent}{looked}; {_FIX}, or set EOSLAB_DATA.")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except Exception as e:   # a damaged pickle can raise almost anything
        raise DataError(f"CIFAR-10 file {where} could not be unpickled ({type(e).__name__}: {e}), so it is "
                        f"truncated or corrupt; {_REFETCH}.") from e
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
        raise DataError(f"CIFAR-10 file {where} is not a dict with b'data' and b'labels' entries, so it is not a "
                        f"CIFAR-10 python batch; {_REFETCH}.")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR-10 file {where} holds b'data' of shape {data.shape} and dtype {data.dtype} but "
                        f"expected uint8 rows of 3072 = 3x32x32 values, so it is corrupt; {_REFETCH}.")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer) \
            or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"CIFAR-10 file {where} holds {len(data)} images but its b'labels' (shape {labels.shape}, "
                        f"dtype {labels.dtype}) are not one integer 0..9 per image, so it is corrupt; {_REFETCH}.")
    return data, labels.astype(np.int64)
