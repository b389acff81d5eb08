"""Dataset readers (spec section 1): CIFAR python/binary, Fashion-MNIST IDX, digits, safety."""
from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from synthperf.gafi.data import (UnsafePickleError, load_dataset, read_cifar_binary, read_cifar_python,
                                 read_idx)


def _cifar_py(path, n, k, seed, label_key=b"labels"):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(i % k) for i in range(n)]
    path.write_bytes(pickle.dumps({b"batch_label": b"x", label_key: labels, b"data": data}, protocol=2))
    return data, np.array(labels)


def test_cifar_python_round_trip(tmp_path):
    data, labels = _cifar_py(tmp_path / "data_batch_1", 6, 10, 0)
    x, y = read_cifar_python(tmp_path / "data_batch_1")
    assert x.shape == (6, 3, 32, 32) and x.dtype == np.uint8
    assert np.array_equal(x.reshape(6, -1), data) and np.array_equal(y, labels)


def test_cifar10_python_dataset_and_splits(tmp_path):
    for i in range(1, 6):
        _cifar_py(tmp_path / f"data_batch_{i}", 20, 10, i)
    _cifar_py(tmp_path / "test_batch", 10, 10, 9)
    s = load_dataset("cifar10", tmp_path)
    assert (len(s.train), len(s.val), len(s.test)) == (90, 10, 10)     # val size = test size
    assert torch.equal(torch.bincount(s.val.y), torch.ones(10, dtype=torch.long))  # stratified
    assert s.train.x.shape[1:] == (3, 32, 32) and float(s.train.x.min()) >= -1 and float(s.train.x.max()) <= 1
    merged = load_dataset("cifar10", tmp_path, merge_train_val=True)
    assert len(merged.train) == 100


def test_malicious_pickle_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global"):
        read_cifar_python(tmp_path / "data_batch_1")
    assert not marker.exists()


def test_corrupt_cifar_python(tmp_path):
    (tmp_path / "b").write_bytes(b"\x80\x02}q\x00(")
    with pytest.raises(ValueError, match="not a valid CIFAR"):
        read_cifar_python(tmp_path / "b")
    (tmp_path / "c").write_bytes(pickle.dumps({b"data": [1, 2], b"labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="uint8 array"):
        read_cifar_python(tmp_path / "c")


def test_cifar_binary_round_trip_and_corruption(tmp_path):
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    rec = np.concatenate([np.array([[3], [1], [4], [1]], dtype=np.uint8), np.array([[7], [8], [9], [5]], dtype=np.uint8),
                          px], axis=1)
    (tmp_path / "train.bin").write_bytes(rec.tobytes())
    x, y = read_cifar_binary(tmp_path / "train.bin", label_bytes=2, label_index=1)
    assert np.array_equal(y, [7, 8, 9, 5]) and np.array_equal(x.reshape(4, -1), px)
    (tmp_path / "bad.bin").write_bytes(rec.tobytes()[:-1])
    with pytest.raises(ValueError, match="corrupt"):
        read_cifar_binary(tmp_path / "bad.bin")


def _idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    return head + arr.astype(np.uint8).tobytes()


def test_fashion_mnist_idx(tmp_path):
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (40, 28, 28)).astype(np.uint8)
    ytr = np.arange(40) % 10
    xte = rng.integers(0, 256, (10, 28, 28)).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(xtr)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(ytr))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(xte))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.arange(10)))
    assert np.array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), xtr)
    s = load_dataset("fashionmnist", tmp_path)
    assert s.test.x.shape == (10, 1, 32, 32)
    assert float(s.test.x[:, :, :2].max()) == -1.0                      # 2-px zero pad -> -1
    expect = (torch.from_numpy(xte[3].astype(np.float32)) / 255 - 0.5) / 0.5
    assert torch.allclose(s.test.x[3, 0, 2:30, 2:30], expect)
    (tmp_path / "bad").write_bytes(_idx(xte)[:-3])
    with pytest.raises(ValueError, match="corrupt"):
        read_idx(tmp_path / "bad")


def test_digits_default_and_bad_names(tmp_path):
    s = load_dataset()
    assert s.name == "digits" and s.num_classes == 10 and s.image_shape == (1, 8, 8)
    assert len(s.train) + len(s.val) + len(s.test) == 1797 and len(s.val) == len(s.test)
    assert float(s.train.x.min()) == -1.0 and float(s.train.x.max()) == 1.0
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="needs root"):
        load_dataset("cifar10")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_dataset("cifar100", tmp_path)
