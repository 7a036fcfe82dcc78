"""MNIST / Fashion-MNIST loader on tiny IDX files (plain and gzip)."""
import gzip
import re
import struct

import numpy as np
import pytest

from eoslab.data import load_dataset, read_idx
from eoslab.errors import DataError

N_TRAIN, N_TEST = 12, 5
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx(path, array, gz=False):
    """IDX: 0x00 0x00, type 0x08 (ubyte), ndim, big-endian uint32 sizes, then the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    train_x = rng.integers(0, 256, size=(N_TRAIN, 28, 28), dtype=np.uint8)
    train_x[0, 3, 17] = 200
    return (train_x, rng.integers(0, 10, N_TRAIN),
            rng.integers(0, 256, size=(N_TEST, 28, 28), dtype=np.uint8), rng.integers(0, 10, N_TEST))


def write_set(folder, arrays, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    return [write_idx(folder / name, a, gz) for name, a in zip(NAMES, arrays)]


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", array, gz)
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    assert raw[:16] == b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    np.testing.assert_array_equal(read_idx(path, ndim=3), array)


@pytest.mark.parametrize("gz,layout", [(False, "mnist"), (True, "MNIST/raw"), (False, "")])
def test_load_standardised_images(tmp_path, gz, layout):
    arrays = make_arrays()
    write_set(tmp_path / layout, arrays, gz)
    ds = load_dataset("mnist", data_dir=tmp_path)
    train_x, train_y, test_x, test_y = arrays
    assert ds.x_train.shape == (N_TRAIN, 28, 28, 1) and ds.x_test.shape == (N_TEST, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.shape == (N_TRAIN, 10)
    np.testing.assert_array_equal(ds.labels_train, train_y)
    np.testing.assert_array_equal(ds.labels_test, test_y)
    scaled = train_x / 255.0
    mean, std = scaled.mean(), scaled.std()
    assert ds.x_train[0, 3, 17, 0] == pytest.approx((200 / 255 - mean) / std, rel=1e-6)
    np.testing.assert_allclose(ds.x_test[..., 0], (test_x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    assert abs(ds.x_train.mean()) < 1e-5 and ds.x_train.std() == pytest.approx(1.0, rel=1e-5)


def test_flatten_and_subsets(tmp_path):
    write_set(tmp_path / "mnist", make_arrays())
    full = load_dataset("mnist", data_dir=tmp_path)
    flat = load_dataset("mnist", data_dir=tmp_path, flatten=True, n_train=4, n_test=2)
    assert flat.name == "mnist-4" and flat.x_train.shape == (4, 784) and flat.x_test.shape == (2, 784)
    np.testing.assert_array_equal(flat.x_train, full.x_train[:4].reshape(4, 784))   # full-set statistics
    with pytest.raises(ValueError, match="n_train=13.*12"):
        load_dataset("mnist", data_dir=tmp_path, n_train=13)


def test_search_order_and_fashion(tmp_path, monkeypatch):
    write_set(tmp_path / "mnist", make_arrays(1))
    write_set(tmp_path, make_arrays(2))                        # data_dir itself comes last
    write_set(tmp_path / "FashionMNIST" / "raw", make_arrays(3), gz=True)
    monkeypatch.setenv("EOSLAB_DATA", str(tmp_path))
    np.testing.assert_array_equal(load_dataset("mnist").labels_train, make_arrays(1)[1])
    fashion = load_dataset("fashion-mnist")
    assert fashion.name == "fashion-mnist"
    np.testing.assert_array_equal(fashion.labels_train, make_arrays(3)[1])
    np.testing.assert_array_equal(load_dataset("fashion_mnist").labels_test, make_arrays(3)[3])


def test_plain_file_preferred_to_gz(tmp_path):
    write_set(tmp_path, make_arrays(1), gz=True)
    write_set(tmp_path, make_arrays(2), gz=False)
    np.testing.assert_array_equal(load_dataset("mnist", data_dir=tmp_path).labels_train, make_arrays(2)[1])


def test_nothing_found_lists_every_folder(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    message = str(info.value)
    for folder in (tmp_path / "fashion-mnist", tmp_path / "FashionMNIST" / "raw", tmp_path):
        assert str(folder) in message
    assert "train-images-idx3-ubyte" in message and "zalandoresearch" in message and f"data_dir={tmp_path}" in message


def test_one_missing_file(tmp_path):
    paths = write_set(tmp_path / "mnist", make_arrays())
    paths[3].unlink()
    with pytest.raises(DataError, match=re.escape(f"t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz) not "
                                                  f"found in {tmp_path / 'mnist'}")):
        load_dataset("mnist", data_dir=tmp_path)


def test_bad_magic(tmp_path):
    paths = write_set(tmp_path, make_arrays())
    raw = bytearray(paths[0].read_bytes())
    raw[3] = 0x01
    paths[0].write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train-images-idx3-ubyte .*magic number 0x00000801.*0x00000803"):
        load_dataset("mnist", data_dir=tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file(tmp_path, gz):
    paths = write_set(tmp_path, make_arrays(), gz)
    target = paths[2]
    if gz:
        target.write_bytes(target.read_bytes()[:-30])   # cut the gzip stream
        match = "t10k-images-idx3-ubyte.gz .*could not be read"
    else:
        target.write_bytes(target.read_bytes()[:-100])
        match = r"t10k-images-idx3-ubyte .*declares dimensions 5x28x28 = 3920 bytes of data but holds 3820"
    with pytest.raises(DataError, match=match):
        load_dataset("mnist", data_dir=tmp_path)


def test_header_only_and_empty(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x01\x00")
    with pytest.raises(DataError, match="ends inside its 8-byte header"):
        read_idx(path, ndim=1)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="no header"):
        read_idx(path, ndim=1)


def test_count_mismatch_and_bad_labels(tmp_path):
    train_x, train_y, test_x, test_y = make_arrays()
    write_set(tmp_path, (train_x, train_y[:-1], test_x, test_y))
    with pytest.raises(DataError, match="train-images-idx3-ubyte and train-labels-idx1-ubyte .*12 images but 11 labels"):
        load_dataset("mnist", data_dir=tmp_path)
    write_set(tmp_path, (train_x, train_y, test_x, np.full(N_TEST, 11)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte .*label 11"):
        load_dataset("mnist", data_dir=tmp_path)
