"""Datasets as plain float32 arrays, and the registry of named loaders.

A :class:`Dataset` is a train/test pair of NumPy arrays: inputs ``[N, ...]``
(images NHWC, flat features ``[N, D]``) and targets ``[N, k]`` (one-hot for
classification, real values for regression).  :func:`load_dataset` looks a name
up in the registry, checks the options, and calls the loader.

Sizes are part of the name: ``load_dataset("cifar10", n_train=5000)`` is named
``cifar10-5k`` and ``load_dataset("cifar10-5k")`` loads the same arrays.  A
size always means *the first n examples* of the fixed training set (after
standardising with the full training set's statistics), so a subset is named
and reproducible.  ``<name>-<n>k`` and ``<name>-<n>`` work for every dataset.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from eoslab.errors import ConfigError, DataError

DATA_ENV = "EOSLAB_DATA"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train and test arrays of one dataset (float32, examples first).

    Attributes:
      name: the name that loads these arrays again, e.g. ``"cifar10-5k"``.
      x_train, x_test: inputs, images NHWC ``[N, H, W, C]`` or flat ``[N, D]``.
      y_train, y_test: targets ``[N, k]``: one-hot for classification, real
        values for regression.
      num_classes: number of classes, or ``None`` for regression.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if np.ndim(x) < 2 or np.ndim(y) != 2 or len(x) != len(y):
                raise DataError(
                    f"dataset {self.name!r} has {split} inputs of shape {np.shape(x)} and targets of shape "
                    f"{np.shape(y)}; give inputs [N, ...] and targets [N, k] with the same N.")
        if self.x_test.shape[1:] != self.x_train.shape[1:] or self.y_test.shape[1] != self.y_train.shape[1]:
            raise DataError(
                f"dataset {self.name!r} has train examples {self.x_train.shape[1:]} -> {self.y_train.shape[1:]} "
                f"but test examples {self.x_test.shape[1:]} -> {self.y_test.shape[1:]}; give both splits the same shapes.")
        if self.num_classes is not None and self.y_train.shape[1] != self.num_classes:
            raise DataError(
                f"dataset {self.name!r} has num_classes={self.num_classes} but targets with {self.y_train.shape[1]} "
                f"columns; give one-hot targets with one column per class.")

    @property
    def task(self) -> str:
        """``'classification'`` or ``'regression'``."""
        return "regression" if self.num_classes is None else "classification"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the example axis."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Number of target columns (classes, or regression outputs)."""
        return int(self.y_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def labels_train(self) -> np.ndarray:
        """Integer class labels of the training set (classification only)."""
        return self._labels(self.y_train)

    @property
    def labels_test(self) -> np.ndarray:
        """Integer class labels of the test set (classification only)."""
        return self._labels(self.y_test)

    def _labels(self, y: np.ndarray) -> np.ndarray:
        if self.num_classes is None:
            raise ConfigError(
                f"dataset {self.name!r} is a regression task and has no class labels; use y_train / y_test instead.")
        return np.argmax(y, axis=1)

    def subset(self, n: int) -> "Dataset":
        """The first ``n`` training examples (test set unchanged), named ``<name>-<n>``."""
        n = check_count(n, "n", self.name, available=self.n_train)
        return dataclasses.replace(self, name=sized_name(self.name, n),
                                   x_train=self.x_train[:n], y_train=self.y_train[:n])

    def __repr__(self) -> str:
        def shape(a):
            return f"{a.dtype}[{', '.join(map(str, a.shape))}]"
        return (f"Dataset(name={self.name!r}, task={self.task!r}, num_classes={self.num_classes}, "
                f"x_train={shape(self.x_train)}, y_train={shape(self.y_train)}, "
                f"x_test={shape(self.x_test)}, y_test={shape(self.y_test)})")


# ----------------------------------------------------------------------------- registry

@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registered loader and the options it accepts (name -> default)."""
    name: str
    loader: Callable[..., Dataset]
    options: Mapping[str, Any]


REGISTRY: dict[str, DatasetSpec] = {}
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {}   # alias -> (name, preset arguments)
_SIZED = re.compile(r"^(?P<base>.+)-(?P<count>\d+)(?P<k>k?)$")


def register_dataset(name: str, *, options: Mapping[str, Any] | None = None,
                     aliases: Mapping[str, Mapping[str, Any]] | None = None):
    """Decorator registering ``loader(*, data_dir, n_train, n_test, flatten, seed, **options)``.

    ``options`` maps each extra keyword the loader takes to its default;
    ``aliases`` maps other names to preset arguments (e.g. ``{"n_train": 5000}``).
    """
    def decorate(loader):
        REGISTRY[name] = DatasetSpec(name, loader, dict(options or {}))
        for alias, presets in (aliases or {}).items():
            ALIASES[alias] = (name, dict(presets))
        return loader
    return decorate


def available_datasets() -> list[str]:
    """Names (and aliases) accepted by :func:`load_dataset`."""
    return sorted([*REGISTRY, *ALIASES])


def _lookup(key: str) -> tuple[DatasetSpec, dict[str, Any]] | None:
    if key in REGISTRY:
        return REGISTRY[key], {}
    if key in ALIASES:
        name, presets = ALIASES[key]
        return REGISTRY[name], dict(presets)
    return None


def _resolve(name: str) -> tuple[DatasetSpec, dict[str, Any]]:
    if not isinstance(name, str):
        raise ConfigError(f"dataset name must be a string, got {name!r}; pass one of {', '.join(available_datasets())}.")
    key = name.strip().lower()
    found = _lookup(key)
    match = _SIZED.match(key)
    if found is None and match and (base := _lookup(match["base"])) and "n_train" not in base[1]:
        found = base[0], {**base[1], "n_train": int(match["count"]) * (1000 if match["k"] else 1)}
    if found is None:
        raise ConfigError(
            f"unknown dataset {name!r}; use one of {', '.join(available_datasets())} "
            f"(append -<n>k or -<n> for the first n training examples, e.g. cifar10-5k).")
    return found


def check_dataset_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` (with an optional size suffix) is a known dataset."""
    _resolve(name)


def sized_name(name: str, n: int) -> str:
    """``name`` with its size suffix set to ``n`` (``-5k`` for 5000, ``-123`` otherwise)."""
    base = re.sub(r"-\d+k?$", "", name)
    return f"{base}-{n // 1000}k" if n % 1000 == 0 else f"{base}-{n}"


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None, n_train: int | None = None,
                 n_test: int | None = None, flatten: bool = False, seed: int = 0, **options) -> Dataset:
    """Load a registered dataset by name (see :func:`available_datasets`).

    Args:
      name: dataset name or alias, optionally with a size suffix (``cifar10-5k``).
      data_dir: folder holding the files of on-disk datasets; defaults to the
        ``EOSLAB_DATA`` environment variable.  Ignored by digits and synthetic data.
      n_train, n_test: keep the first n training / test examples (``None``: all,
        or the generator's default for synthetic data).
      flatten: return images as flat ``[N, H*W*C]`` vectors (HWC order).
      seed: seeds synthetic data; the real datasets have fixed splits.
      **options: dataset-specific options (e.g. ``image=True`` for digits,
        ``dim=`` for synthetic data).

    Raises:
      ConfigError: unknown name or option, or a bad size.
      DataError: missing or corrupt data files.
    """
    spec, presets = _resolve(name)
    if "n_train" in presets:
        if n_train is not None and n_train != presets["n_train"]:
            raise ConfigError(
                f"dataset name {name!r} already fixes n_train={presets['n_train']} but n_train={n_train} was also "
                f"given; pass only one of them.")
        n_train = presets["n_train"]
    for key in options:
        if key not in spec.options:
            valid = ", ".join(spec.options) or "none"
            raise ConfigError(f"unknown option {key!r} for dataset {spec.name!r}; its options are: {valid}.")
    n_train = None if n_train is None else check_count(n_train, "n_train", spec.name)
    n_test = None if n_test is None else check_count(n_test, "n_test", spec.name)
    check_bool(flatten, "flatten", spec.name)
    check_int(seed, "seed", spec.name, minimum=0)
    dataset = spec.loader(data_dir=data_dir, n_train=n_train, n_test=n_test, flatten=flatten, seed=seed,
                          **{**spec.options, **options})
    if n_train is not None:
        dataset = dataclasses.replace(dataset, name=sized_name(spec.name, n_train))
    return dataset


# ----------------------------------------------------------------------------- helpers for loaders

def check_count(n, key: str, dataset: str, available: int | None = None) -> int:
    """``n`` as a positive int not above ``available``, else :class:`ConfigError`."""
    n = check_int(n, key, dataset, minimum=1)
    if available is not None and n > available:
        raise ConfigError(
            f"{key}={n} is more than the {available} examples that {dataset!r} has; pass {key} <= {available}.")
    return n


def check_int(value, key: str, dataset: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{key} for dataset {dataset!r} must be an integer, got {value!r}; pass e.g. {key}={max(minimum, 1)}.")
    if value < minimum:
        raise ConfigError(f"{key}={value} for dataset {dataset!r} is below {minimum}; pass {key} >= {minimum}.")
    return int(value)


def check_float(value, key: str, dataset: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{key} for dataset {dataset!r} must be a finite number >= {minimum}, got {value!r}; fix {key}.")
    return float(value)


def check_bool(value, key: str, dataset: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{key} for dataset {dataset!r} must be True or False, got {value!r}; pass {key}=True or False.")
    return bool(value)


def resolve_data_dir(data_dir, what: str, source: str) -> tuple[Path, str]:
    """The data folder and how it was chosen (``"data_dir=..."`` or ``"EOSLAB_DATA=..."``).

    ``what`` names the dataset and ``source`` says where to download it (for error messages).
    """
    if data_dir is None:
        env = os.environ.get(DATA_ENV, "")
        if not env:
            raise DataError(
                f"{what} is read from files on disk but no data directory was given; download it from {source}, "
                f"then pass data_dir=FOLDER or set the {DATA_ENV} environment variable to that folder.")
        data_dir, how = env, f"{DATA_ENV}={env}"
    elif isinstance(data_dir, (str, os.PathLike)):
        how = f"data_dir={os.fspath(data_dir)}"
    else:
        raise ConfigError(f"data_dir must be a path, got {data_dir!r}; pass a folder name or set {DATA_ENV}.")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(
            f"data directory {path} for {what} does not exist (looked because {how}); download {what} from {source} "
            f"into it, or point data_dir / {DATA_ENV} at the folder that holds it.")
    return path, how


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 one-hot rows of integer ``labels``."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def byte_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of each value 0..255 in a uint8 array (exact sufficient statistics)."""
    return np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256).astype(np.int64)


def histogram_mean_std(hist: np.ndarray) -> tuple[float, float]:
    """Exact mean and (population) std of the bytes counted in ``hist``; a zero std becomes 1."""
    v = np.arange(256, dtype=np.int64)
    n, s, ss = int(hist.sum()), int(hist @ v), int(hist @ (v * v))
    if n == 0:
        return 0.0, 1.0
    std = math.sqrt((n * ss - s * s) / (n * n))   # integer numerator: no cancellation
    return s / n, (std if std > 0 else 1.0)


def standardise(x: np.ndarray, mean, std) -> np.ndarray:
    """``(x - mean) / std`` as float32 (mean and std broadcast over the last axis)."""
    return (x.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
