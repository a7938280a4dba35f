"""CIFAR pickle loader on small batches written by the tests."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from hatcl.data.sources.cifar import CIFAR100, load_cifar10, load_cifar100, read_batch


def write_batch(path, n, *, label_key=b"labels", num_classes=10, offset=0):
    rng = np.random.default_rng(offset)
    batch = {
        b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
        label_key: [(i + offset) % num_classes for i in range(n)],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def make_cifar10(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = [write_batch(folder / f"data_batch_{i}", 4, offset=i) for i in range(1, 6)]
    test = write_batch(folder / "test_batch", 3, offset=9)
    return folder, batches, test


def test_cifar10_valid(tmp_path):
    _, batches, test = make_cifar10(tmp_path)
    source = load_cifar10(root=str(tmp_path))
    assert source.train_x.shape == (20, 3, 32, 32) and source.test_x.shape == (3, 3, 32, 32)
    assert source.train_y.tolist() == [y for b in batches for y in b[b"labels"]]
    # channel-major layout: the first 1024 values are the red plane of image 0
    raw = batches[0][b"data"][0, :1024].reshape(32, 32) / 255.0
    assert source.train_x.dtype == torch.uint8 and source.divisor == 255.0
    red = source.normalise(source.train_x[:1])[0, 0] * source.std[0] + source.mean[0]
    assert torch.allclose(red, torch.tensor(raw, dtype=torch.float32), atol=1e-5)
    assert len(source.mean) == 3


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_batch(folder / "train", 6, label_key=b"fine_labels", num_classes=100, offset=95)
    write_batch(folder / "test", 2, label_key=b"fine_labels", num_classes=100)
    source = load_cifar100(root=str(tmp_path))
    assert source.train_y.tolist() == [95, 96, 97, 98, 99, 0]
    assert source.num_classes == 100


def test_truncated_batch_named(tmp_path):
    folder, _, _ = make_cifar10(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"data_batch_3 is not a readable CIFAR-10 batch"):
        load_cifar10(root=str(tmp_path))


def test_wrong_label_range_named(tmp_path):
    folder, _, _ = make_cifar10(tmp_path)
    write_batch(folder / "test_batch", 3, offset=9, num_classes=100)  # labels 9, 10, 11
    with pytest.raises(ValueError, match=r"test_batch has label values \[10, 11\] outside"):
        load_cifar10(root=str(tmp_path))


def test_wrong_shape_and_missing_key_named(tmp_path):
    path = tmp_path / "train"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"train: 'data' has shape \(2, 100\)"):
        read_batch(path, CIFAR100)
    write_batch(path, 2)  # CIFAR-10 style labels, no fine_labels
    with pytest.raises(ValueError, match=r"train has no 'fine_labels' entry"):
        read_batch(path, CIFAR100)


def test_pickle_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "train"
    path.write_bytes(pickle.dumps({b"data": object()}))
    with pytest.raises(ValueError, match="refusing to load builtins.object"):
        read_batch(path, CIFAR100)


def test_missing_batches_say_what_to_put_where(tmp_path):
    folder, _, _ = make_cifar10(tmp_path)
    (folder / "data_batch_5").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(root=str(tmp_path))
    message = str(info.value)
    assert "lacks data_batch_5" in message and "cifar-10-python.tar.gz" in message
    assert str(folder) in message
