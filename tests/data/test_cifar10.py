"""CIFAR-10 loader on tiny batch files written in the real "python version" format."""
import pickle
import re

import numpy as np
import pytest

from eoslab.data import load_dataset
from eoslab.data.cifar10 import read_batch, to_nhwc
from eoslab.errors import ConfigError, DataError

PER_BATCH, N_TEST = 20, 10


def write_batch(path, data, labels, protocol=2):
    """A batch as the CIFAR-10 site ships it: a pickled dict with bytes keys, labels as a list."""
    batch = {b"batch_label": path.name.encode(), b"labels": [int(v) for v in labels], b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(len(data))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)


@pytest.fixture
def cifar(tmp_path):
    """Five training batches of 20 images and a test batch of 10 under <tmp>/cifar-10-batches-py."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train = rng.integers(0, 256, size=(5 * PER_BATCH, 3072), dtype=np.uint8)
    train[:, 1024:2048] //= 2          # give the channels different statistics
    train_labels = rng.integers(0, 10, size=5 * PER_BATCH)
    train[0, 2 * 1024 + 5 * 32 + 7] = 251   # channel 2 (blue), row 5, column 7 of the first image
    for i in range(5):
        rows = slice(i * PER_BATCH, (i + 1) * PER_BATCH)
        write_batch(folder / f"data_batch_{i + 1}", train[rows], train_labels[rows])
    test = rng.integers(0, 256, size=(N_TEST, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=N_TEST)
    write_batch(folder / "test_batch", test, test_labels)
    return tmp_path, folder, train, train_labels, test, test_labels


def channel_stats(train):
    per_channel = train.reshape(-1, 3, 1024).transpose(1, 0, 2).reshape(3, -1).astype(np.float64)
    return per_channel.mean(1), per_channel.std(1)


def test_shapes_labels_and_dtype(cifar):
    root, _, train, train_labels, test, test_labels = cifar
    ds = load_dataset("cifar10", data_dir=root)
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.shape == (100, 32, 32, 3) and ds.x_test.shape == (N_TEST, 32, 32, 3)
    assert ds.y_train.shape == (100, 10) and ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.float32
    np.testing.assert_array_equal(ds.labels_train, train_labels)   # batch 1 first, then 2, ...
    np.testing.assert_array_equal(ds.labels_test, test_labels)


def test_chw_to_hwc_and_standardisation(cifar):
    root, _, train, _, test, _ = cifar
    ds = load_dataset("cifar10", data_dir=root)
    mean, std = channel_stats(train)
    assert ds.x_train[0, 5, 7, 2] == pytest.approx((251 - mean[2]) / std[2], rel=1e-6)
    # pixel (h, w, c) of an image is byte c*1024 + h*32 + w of its row
    h, w, c = 31, 0, 1
    assert ds.x_test[3, h, w, c] == pytest.approx((test[3, c * 1024 + h * 32 + w] - mean[c]) / std[c], rel=1e-6)
    expected = (train.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) - mean) / std
    np.testing.assert_allclose(ds.x_train, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 1, 2)), 1.0, rtol=1e-5)
    assert abs(mean[1] - mean[0]) > 30   # the per-channel statistics really differ


def test_to_nhwc_pixel():
    row = np.zeros((1, 3072), np.uint8)
    row[0, 1 * 1024 + 2 * 32 + 3] = 9
    image = to_nhwc(row)
    assert image.shape == (1, 32, 32, 3) and image[0, 2, 3, 1] == 9 and image.sum() == 9


def test_subset_keeps_full_training_statistics(cifar):
    root, _, train, train_labels, _, _ = cifar
    full = load_dataset("cifar10", data_dir=root)
    sub = load_dataset("cifar10", data_dir=root, n_train=30, n_test=4)   # spans batches 1 and 2
    assert sub.name == "cifar10-30" and sub.n_train == 30 and sub.n_test == 4
    np.testing.assert_array_equal(sub.x_train, full.x_train[:30])
    np.testing.assert_array_equal(sub.labels_train, train_labels[:30])
    np.testing.assert_array_equal(sub.x_test, full.x_test[:4])
    assert abs(sub.x_train.mean(axis=(0, 1, 2))).max() > 1e-3   # not re-standardised on the subset
    np.testing.assert_array_equal(load_dataset("cifar10-30", data_dir=root).x_train, sub.x_train)


def test_sizes_beyond_the_files(cifar):
    root = cifar[0]
    with pytest.raises(ConfigError, match="n_train=5000.*100"):
        load_dataset("cifar10-5k", data_dir=root)
    with pytest.raises(ConfigError, match="n_test=11.*10"):
        load_dataset("cifar10", data_dir=root, n_test=11)


def test_flatten(cifar):
    root = cifar[0]
    images = load_dataset("cifar10", data_dir=root, n_train=5)
    flat = load_dataset("cifar10", data_dir=root, n_train=5, flatten=True)
    assert flat.x_train.shape == (5, 3072) and flat.x_test.shape == (N_TEST, 3072)
    np.testing.assert_array_equal(flat.x_train, images.x_train.reshape(5, -1))


def test_files_directly_in_data_dir_and_env(cifar, monkeypatch):
    _, folder, train, _, _, _ = cifar
    monkeypatch.setenv("EOSLAB_DATA", str(folder))
    ds = load_dataset("cifar10", n_train=20)
    assert ds.n_train == 20
    assert ds.x_train[0, 5, 7, 2] == pytest.approx((251 - channel_stats(train)[0][2]) / channel_stats(train)[1][2],
                                                   rel=1e-6)


def test_missing_batch_names_file_and_folder(cifar):
    root, folder, *_ = cifar
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=root, n_train=5)   # the statistics need every batch
    message = str(info.value)
    assert "data_batch_3 not found in" in message and str(folder) in message
    assert f"data_dir={root}" in message and "cs.toronto.edu" in message and "EOSLAB_DATA" in message


def test_missing_test_batch(cifar):
    root, folder, *_ = cifar
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match=re.escape(f"test_batch not found in {folder}")):
        load_dataset("cifar10", data_dir=root)


def test_no_batches_anywhere(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value) and "python version" in str(info.value)


def test_truncated_pickle(cifar):
    root, folder, *_ = cifar
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"data_batch_2 in .* could not be unpickled .*truncated or corrupt"):
        load_dataset("cifar10", data_dir=root)


def test_wrong_shape(cifar):
    root, folder, *_ = cifar
    write_batch(folder / "data_batch_4", np.zeros((20, 100), np.uint8), np.zeros(20))
    with pytest.raises(DataError, match=r"data_batch_4 .*shape \(20, 100\).*3072"):
        load_dataset("cifar10", data_dir=root)


def test_bad_labels_and_not_a_batch(cifar):
    root, folder, *_ = cifar
    write_batch(folder / "data_batch_5", np.zeros((20, 3072), np.uint8), np.full(20, 10))
    with pytest.raises(DataError, match="data_batch_5 .*not one integer 0..9"):
        load_dataset("cifar10", data_dir=root)
    with open(folder / "data_batch_5", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DataError, match="data_batch_5 .*not a CIFAR-10 python batch"):
        read_batch(folder / "data_batch_5")


def test_read_batch_accepts_newer_pickle_protocols(tmp_path):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    write_batch(tmp_path / "b", data, [3, 4], protocol=pickle.HIGHEST_PROTOCOL)
    got, labels = read_batch(tmp_path / "b")
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(labels, [3, 4])
