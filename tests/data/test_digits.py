"""scikit-learn digits: split, standardisation, shapes."""
import numpy as np
import pytest
from sklearn import datasets

from eoslab.data import load_dataset
from eoslab.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def raw():
    return datasets.load_digits(return_X_y=True)


def test_shapes_and_targets(digits):
    assert digits.name == "digits" and digits.num_classes == 10 and digits.task == "classification"
    assert digits.x_train.shape == (1500, 64) and digits.x_test.shape == (297, 64)
    assert digits.y_train.shape == (1500, 10) and digits.y_test.shape == (297, 10)
    for a in (digits.x_train, digits.y_train, digits.x_test, digits.y_test):
        assert a.dtype == np.float32
    np.testing.assert_array_equal(digits.y_train.sum(1), 1.0)
    assert set(np.unique(digits.y_train)) == {0.0, 1.0}


def test_split_is_rng0_permutation(digits, raw):
    x, y = raw
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(digits.labels_train, y[order[:1500]])
    np.testing.assert_array_equal(digits.labels_test, y[order[1500:]])
    # same pixels, up to the per-feature affine map: compare one non-constant feature
    feature = 20
    raw_train = x[order[:1500], feature]
    expected = (raw_train - raw_train.mean()) / raw_train.std()
    np.testing.assert_allclose(digits.x_train[:, feature], expected, rtol=1e-5, atol=1e-5)


def test_standardised_with_training_statistics(digits, raw):
    x, _ = raw
    order = np.random.default_rng(0).permutation(1797)
    train = x[order[:1500]]
    constant = train.std(0) == 0
    assert constant.any()   # e.g. the corner pixel is always 0
    np.testing.assert_allclose(digits.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(digits.x_train.std(0)[~constant], 1.0, rtol=1e-4)
    np.testing.assert_array_equal(digits.x_train[:, constant], 0.0)
    # the test set uses the *training* statistics, so it is not exactly centred
    mean, std = train.mean(0), np.where(constant, 1.0, train.std(0))
    np.testing.assert_allclose(digits.x_test, (x[order[1500:]] - mean) / std, rtol=1e-5, atol=1e-5)


def test_deterministic_and_seed_independent(digits):
    again = load_dataset("digits", seed=7)
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_test, digits.y_test)


def test_image_option(digits, raw):
    images = load_dataset("digits", image=True)
    assert images.x_train.shape == (1500, 8, 8, 1) and images.input_shape == (8, 8, 1)
    np.testing.assert_array_equal(images.x_train.reshape(1500, 64), digits.x_train)
    # pixel (row 2, column 5) is feature 2 * 8 + 5 of the flat vector
    np.testing.assert_array_equal(images.x_test[:, 2, 5, 0], digits.x_test[:, 21])
    with pytest.raises(ConfigError, match="image=True and flatten=True"):
        load_dataset("digits", image=True, flatten=True)
    with pytest.raises(ConfigError, match="image"):
        load_dataset("digits", image="yes")


def test_subsets(digits):
    small = load_dataset("digits", n_train=100, n_test=50)
    assert small.name == "digits-100" and small.n_train == 100 and small.n_test == 50
    np.testing.assert_array_equal(small.x_train, digits.x_train[:100])
    np.testing.assert_array_equal(small.x_test, digits.x_test[:50])
    np.testing.assert_array_equal(digits.subset(100).x_train, small.x_train)
    with pytest.raises(ConfigError, match="n_test=298.*297"):
        load_dataset("digits", n_test=298)
