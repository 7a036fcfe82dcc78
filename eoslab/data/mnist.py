"""MNIST and Fashion-MNIST from the standard IDX files.

An IDX file is a big-endian header -- two zero bytes, a type byte (0x08 =
unsigned byte), the number of dimensions d, then d uint32 sizes -- followed by
the values in row-major order.  Images files start with 0x00000803 ([N, 28, 28])
and labels files with 0x00000801 ([N]).  Both datasets use the file names
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
and ``t10k-labels-idx1-ubyte``, each optionally gzip-compressed (``.gz``).

Search order (the first folder holding the training images wins; a plain file
is preferred to its ``.gz``):

- mnist: ``<data_dir>/mnist/``, ``<data_dir>/MNIST/raw/`` (torchvision), ``<data_dir>/``
- fashion-mnist: ``<data_dir>/fashion-mnist/``, ``<data_dir>/FashionMNIST/raw/``, ``<data_dir>/``
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from eoslab.data.base import (Dataset, byte_histogram, check_count, histogram_mean_std, one_hot,
                              register_dataset, resolve_data_dir, standardise)
from eoslab.errors import DataError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_SOURCES = {   # name -> (title, sub-folders searched before data_dir itself, where to download)
    "mnist": ("MNIST", ("mnist", "MNIST/raw"), "https://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("Fashion-MNIST", ("fashion-mnist", "FashionMNIST/raw"),
                      "https://github.com/zalandoresearch/fashion-mnist"),
}


@register_dataset("mnist")
def load_mnist(*, data_dir, n_train, n_test, flatten, seed):
    """MNIST digits as float32 ``[N, 28, 28, 1]`` with one-hot targets ``[N, 10]``.

    Pixels are scaled to [0, 1] and standardised with the scalar mean and std
    of all 60000 training images; ``n_train`` / ``n_test`` keep the first
    images in file order.  See the module docstring for where files are looked up.
    """
    return _load_idx_dataset("mnist", data_dir, n_train, n_test, flatten)


@register_dataset("fashion-mnist", aliases={"fashion_mnist": {}, "fashionmnist": {}})
def load_fashion_mnist(*, data_dir, n_train, n_test, flatten, seed):
    """Fashion-MNIST (Xiao et al. 2017), read and standardised exactly as :func:`load_mnist`."""
    return _load_idx_dataset("fashion-mnist", data_dir, n_train, n_test, flatten)


def _load_idx_dataset(name, data_dir, n_train, n_test, flatten) -> Dataset:
    title, subfolders, url = _SOURCES[name]
    root, how = resolve_data_dir(data_dir, title, url)
    folders = [root / sub for sub in subfolders] + [root]
    folder = next((f for f in folders if _find(f, FILES[0])), None)
    if folder is None:
        raise DataError(f"{title} file {FILES[0]} (or {FILES[0]}.gz) not found in any of "
                        f"{', '.join(map(str, folders))} (looked in that order because {how}); "
                        f"download the four {title} IDX files from {url} into one of them, or set EOSLAB_DATA.")
    paths = []
    for file in FILES:
        path = _find(folder, file)
        if path is None:
            raise DataError(f"{title} file {file} (or {file}.gz) not found in {folder} (looked because {how}); "
                            f"download the four {title} IDX files from {url} into it, or set EOSLAB_DATA.")
        paths.append(path)
    train_x, train_y, test_x, test_y = (read_idx(p, ndim=3 if i % 2 == 0 else 1, what=title)
                                        for i, p in enumerate(paths))
    for x, y, (px, py) in ((train_x, train_y, paths[:2]), (test_x, test_y, paths[2:])):
        if len(x) != len(y):
            raise DataError(f"{title} files {px.name} and {py.name} in {folder} hold {len(x)} images but {len(y)} "
                            f"labels, so one of them is corrupt or from another download; download both again from {url}.")
        if y.size and y.max() > 9:
            raise DataError(f"{title} file {py.name} in {folder} holds label {y.max()} but labels must be 0..9, so it "
                            f"is corrupt or not a labels file; download it again from {url}.")
    mean, std = histogram_mean_std(byte_histogram(train_x))   # byte units: same as [0, 1] scaling then standardising
    n_train = len(train_x) if n_train is None else check_count(n_train, "n_train", name, available=len(train_x))
    n_test = len(test_x) if n_test is None else check_count(n_test, "n_test", name, available=len(test_x))

    def inputs(images):
        x = standardise(images[..., None], mean, std)
        return x.reshape(len(x), -1) if flatten else x

    return Dataset(name, inputs(train_x[:n_train]), one_hot(train_y[:n_train], 10),
                   inputs(test_x[:n_test]), one_hot(test_y[:n_test], 10), num_classes=10)


def _find(folder: Path, file: str) -> Path | None:
    for path in (folder / file, folder / f"{file}.gz"):
        if path.is_file():
            return path
    return None


def read_idx(path: Path, ndim: int, what: str = "IDX") -> np.ndarray:
    """The uint8 array stored in an IDX file (plain or ``.gz``) whose magic number is ``0x0800 + ndim``."""
    path = Path(path)
    where = f"{what} file {path.name} in {path.parent}"
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{where} could not be read ({type(e).__name__}: {e}); download it again.") from e
    expected = 0x0800 + ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != expected:
        found = "no header" if magic is None else f"magic number 0x{magic:08x}"
        kind = "images" if ndim == 3 else "labels"
        raise DataError(f"{where} has {found} but an IDX {kind} file starts with 0x{expected:08x}, so it is corrupt "
                        f"or not an IDX {kind} file; download it again.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{where} ends inside its {header}-byte header, so it is truncated; download it again.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(raw) != header + size:
        raise DataError(f"{where} declares dimensions {'x'.join(map(str, dims))} = {size} bytes of data but holds "
                        f"{max(len(raw) - header, 0)}, so it is truncated or corrupt; download it again.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
