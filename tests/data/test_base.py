"""Registry, name parsing, option checks and the Dataset container."""
import dataclasses
import re

import numpy as np
import pytest

from eoslab.data import Dataset, available_datasets, load_dataset, register_dataset
from eoslab.data import base
from eoslab.errors import ConfigError, DataError, InputError


def _toy(n=6, name="toy"):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    labels = np.arange(n) % 3
    y = np.eye(3, dtype=np.float32)[labels]
    return Dataset(name, x, y, x[:2], y[:2], num_classes=3)


def test_available_lists_every_loader_and_alias():
    names = available_datasets()
    for name in ("digits", "cifar10", "cifar10-5k", "mnist", "fashion-mnist", "teacher-student", "gaussian-classes"):
        assert name in names
    assert names == sorted(names)


def test_unknown_name_lists_available():
    with pytest.raises(ConfigError) as info:
        load_dataset("imagenet")
    message = str(info.value)
    assert "'imagenet'" in message and "digits" in message and "cifar10-5k" in message
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


def test_unknown_option_names_the_key():
    with pytest.raises(ConfigError, match="'widht'.*teacher-student.*teacher_width"):
        load_dataset("teacher-student", widht=3)


@pytest.mark.parametrize("n_train", [0, -5, 2.5, True, "10"])
def test_bad_n_train(n_train):
    with pytest.raises(ConfigError, match="n_train"):
        load_dataset("gaussian-classes", n_train=n_train)


def test_n_train_above_available():
    with pytest.raises(ConfigError, match="n_train=1501.*1500"):
        load_dataset("digits", n_train=1501)


def test_bad_seed_and_flatten():
    with pytest.raises(ConfigError, match="seed"):
        load_dataset("gaussian-classes", seed=-1)
    with pytest.raises(ConfigError, match="flatten"):
        load_dataset("gaussian-classes", flatten="yes")


def test_size_suffix_in_name():
    a = load_dataset("gaussian-classes-2k", dim=3)
    assert a.n_train == 2000 and a.name == "gaussian-classes-2k"
    b = load_dataset("Gaussian-Classes-123", dim=3)
    assert b.n_train == 123 and b.name == "gaussian-classes-123"
    c = load_dataset("gaussian-classes", n_train=3000, dim=3)
    assert c.name == "gaussian-classes-3k"
    np.testing.assert_array_equal(a.x_train, c.x_train[:2000])


def test_size_suffix_conflicts_with_n_train():
    with pytest.raises(ConfigError, match="n_train=5000.*n_train=100"):
        load_dataset("cifar10-5k", n_train=100)
    assert load_dataset("gaussian-classes-1k", n_train=1000, dim=2).n_train == 1000


def test_sized_name():
    assert base.sized_name("cifar10", 5000) == "cifar10-5k"
    assert base.sized_name("cifar10-5k", 1234) == "cifar10-1234"
    assert base.sized_name("teacher-student-10", 20000) == "teacher-student-20k"


def test_dataset_properties():
    ds = _toy()
    assert ds.task == "classification" and ds.input_shape == (2,) and ds.num_outputs == 3
    assert ds.n_train == 6 and ds.n_test == 2
    np.testing.assert_array_equal(ds.labels_train, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(ds.labels_test, [0, 1])
    assert "x_train=float32[6, 2]" in repr(ds) and "num_classes=3" in repr(ds)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"


def test_regression_has_no_labels():
    ds = Dataset("reg", np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32),
                 np.zeros((1, 2), np.float32), np.zeros((1, 1), np.float32), num_classes=None)
    assert ds.task == "regression" and ds.num_outputs == 1
    with pytest.raises(ConfigError, match="regression.*y_train"):
        ds.labels_train


def test_subset_is_first_n():
    ds = _toy()
    sub = ds.subset(4)
    assert sub.name == "toy-4" and sub.n_train == 4 and sub.n_test == 2
    np.testing.assert_array_equal(sub.x_train, ds.x_train[:4])
    np.testing.assert_array_equal(sub.y_train, ds.y_train[:4])
    assert sub.x_test is ds.x_test
    with pytest.raises(ConfigError, match="n=7.*6"):
        ds.subset(7)
    with pytest.raises(ConfigError):
        ds.subset(0)


def test_dataset_rejects_inconsistent_shapes():
    x, y = np.zeros((4, 2), np.float32), np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match="same N"):
        Dataset("bad", x, y, x, np.zeros((4, 2), np.float32), num_classes=2)
    with pytest.raises(DataError, match="num_classes=3"):
        Dataset("bad", x, np.zeros((4, 2), np.float32), x, np.zeros((4, 2), np.float32), num_classes=3)
    with pytest.raises(DataError, match="same shapes"):
        Dataset("bad", x, np.zeros((4, 2), np.float32), np.zeros((4, 5), np.float32),
                np.zeros((4, 2), np.float32), num_classes=2)


def test_register_custom_dataset(monkeypatch):
    monkeypatch.setattr(base, "REGISTRY", dict(base.REGISTRY))
    monkeypatch.setattr(base, "ALIASES", dict(base.ALIASES))

    @register_dataset("toy", options={"scale": 1.0}, aliases={"toy-small": {"n_train": 2}})
    def load_toy(*, data_dir, n_train, n_test, flatten, seed, scale):
        ds = _toy()
        return ds.subset(n_train) if n_train else ds

    assert "toy" in available_datasets() and "toy-small" in available_datasets()
    assert load_dataset("toy-small").n_train == 2
    assert load_dataset("toy-3").name == "toy-3"
    with pytest.raises(ConfigError, match="'shift'.*scale"):
        load_dataset("toy", shift=1)


def test_data_dir_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("EOSLAB_DATA", raising=False)
    with pytest.raises(DataError, match="no data directory.*EOSLAB_DATA"):
        load_dataset("mnist")
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"{re.escape(str(missing))} for CIFAR-10 does not exist.*data_dir={re.escape(str(missing))}"):
        load_dataset("cifar10", data_dir=missing)
    monkeypatch.setenv("EOSLAB_DATA", str(missing))
    with pytest.raises(DataError, match=re.escape(f"EOSLAB_DATA={missing}")):
        load_dataset("cifar10")
    with pytest.raises(ConfigError, match="data_dir must be a path"):
        load_dataset("cifar10", data_dir=3)


def test_histogram_mean_std_is_exact():
    values = np.random.default_rng(0).integers(0, 256, size=1000).astype(np.uint8)
    mean, std = base.histogram_mean_std(base.byte_histogram(values))
    assert mean == pytest.approx(values.astype(np.float64).mean(), rel=1e-15)
    assert std == pytest.approx(values.astype(np.float64).std(), rel=1e-12)
    assert base.histogram_mean_std(base.byte_histogram(np.full(5, 7, np.uint8))) == (7.0, 1.0)
