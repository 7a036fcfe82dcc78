"""Synthetic data: teacher-student regression and Gaussian classes."""
import numpy as np
import pytest

from eoslab.data import load_dataset
from eoslab.data.synthetic import make_teacher, teacher_outputs
from eoslab.errors import ConfigError


def test_teacher_student_defaults():
    ds = load_dataset("teacher-student")
    assert ds.task == "regression" and ds.num_classes is None and ds.name == "teacher-student"
    assert ds.x_train.shape == (1000, 20) and ds.y_train.shape == (1000, 1)
    assert ds.x_test.shape == (500, 20) and ds.y_test.shape == (500, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.float32
    assert abs(ds.x_train.mean()) < 0.02 and abs(ds.x_train.std() - 1) < 0.02
    assert 0.1 < ds.y_train.std() < 3


def test_teacher_student_targets_are_the_teacher():
    ds = load_dataset("teacher-student", seed=3, dim=5, teacher_width=7, num_outputs=2, n_train=40, n_test=30)
    w1, w2 = make_teacher(3, 5, 7, 2)
    assert w1.shape == (5, 7) and w2.shape == (7, 2)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):   # one teacher for both splits
        np.testing.assert_allclose(y, teacher_outputs(x.astype(np.float64), w1, w2), rtol=1e-5, atol=1e-6)
    expected = np.tanh(ds.x_train[:1].astype(np.float64) @ w1 / np.sqrt(5)) @ w2 / np.sqrt(7)
    np.testing.assert_allclose(ds.y_train[:1], expected, rtol=1e-5)


def test_teacher_student_noise():
    clean = load_dataset("teacher-student", n_train=4000, seed=1)
    noisy = load_dataset("teacher-student", n_train=4000, seed=1, noise=0.5)
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)
    assert (noisy.y_train - clean.y_train).std() == pytest.approx(0.5, rel=0.05)


def test_seed_determinism_and_prefixes():
    a = load_dataset("teacher-student", seed=2, n_train=50, noise=0.1)
    b = load_dataset("teacher-student", seed=2, n_train=80, n_test=10, noise=0.1)
    c = load_dataset("teacher-student", seed=3, n_train=50, noise=0.1)
    np.testing.assert_array_equal(a.x_train, b.x_train[:50])
    np.testing.assert_array_equal(a.y_train, b.y_train[:50])
    np.testing.assert_array_equal(a.x_test[:10], b.x_test)
    np.testing.assert_array_equal(b.subset(50).y_train, a.y_train)
    assert not np.allclose(a.x_train, c.x_train)


@pytest.mark.parametrize("options", [{"dim": 0}, {"teacher_width": 2.5}, {"num_outputs": -1}, {"noise": -0.1},
                                     {"noise": float("nan")}])
def test_teacher_student_bad_options(options):
    with pytest.raises(ConfigError, match=next(iter(options))):
        load_dataset("teacher-student", **options)


def test_gaussian_classes_layout():
    ds = load_dataset("gaussian-classes", num_classes=3, dim=6, n_train=30, n_test=9)
    assert ds.task == "classification" and ds.num_classes == 3 and ds.num_outputs == 3
    assert ds.x_train.shape == (30, 6) and ds.y_train.shape == (30, 3) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.labels_train, np.arange(30) % 3)
    np.testing.assert_array_equal(ds.labels_test, np.arange(9) % 3)
    np.testing.assert_array_equal(ds.y_train.sum(1), 1.0)


def test_gaussian_classes_separation():
    ds = load_dataset("gaussian-classes", num_classes=4, dim=5, separation=6.0, n_train=8000, seed=4)
    means = np.stack([ds.x_train[ds.labels_train == c].mean(0) for c in range(4)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(4, 1)]
    np.testing.assert_allclose(distances, 6.0, atol=0.15)
    residual = ds.x_train - means[ds.labels_train]
    assert residual.std() == pytest.approx(1.0, rel=0.03)
    again = load_dataset("gaussian-classes", num_classes=4, dim=5, separation=6.0, n_train=8000, seed=4)
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_gaussian_classes_more_classes_than_dims_and_zero_separation():
    many = load_dataset("gaussian-classes", num_classes=5, dim=2, n_train=50)
    assert many.y_train.shape == (50, 5) and np.isfinite(many.x_train).all()
    same = load_dataset("gaussian-classes", separation=0.0, dim=3, n_train=6000)
    means = np.stack([same.x_train[same.labels_train == c].mean(0) for c in range(4)])
    assert np.abs(means).max() < 0.1
    with pytest.raises(ConfigError, match="num_classes"):
        load_dataset("gaussian-classes", num_classes=1)
