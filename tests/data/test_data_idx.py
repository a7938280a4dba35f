"""IDX loader on small files written by the tests: valid, gz, truncated, corrupt, missing."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hatcl.data.sources.idx import MNIST, load_idx_dataset, load_mnist, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + array.astype(np.uint8).tobytes()


def make_dataset(root: Path, *, gz: bool = False, n_train: int = 20, n_test: int = 10):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 4)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 4)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_valid_files_load_normalised(tmp_path, gz):
    arrays = make_dataset(tmp_path, gz=gz)
    source = load_mnist(root=str(tmp_path))
    assert source.train_x.shape == (20, 1, 4, 4) and source.test_x.shape == (10, 1, 4, 4)
    raw = arrays["train-images-idx3-ubyte"] / 255.0
    mean, std = raw.mean(), raw.std(ddof=1)
    assert source.mean[0] == pytest.approx(mean, rel=1e-5)
    expected = torch.tensor((raw - mean) / std, dtype=torch.float32)
    assert torch.equal(source.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.allclose(source.normalise(source.train_x)[:, 0], expected, atol=1e-5)
    assert source.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert source.train_y.dtype == torch.int64


def test_files_in_root_subdirectory_are_found(tmp_path):
    make_dataset(tmp_path / "mnist")
    assert load_mnist(root=str(tmp_path)).train_x.shape[0] == 20


def test_truncated_file_named(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte is truncated.*\(20, 4, 4\)"):
        load_mnist(root=str(tmp_path))


def test_trailing_bytes_and_short_header(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte is longer than its header"):
        load_mnist(root=str(tmp_path))
    path.write_bytes(b"\0\0\x08")
    with pytest.raises(ValueError, match="shorter than the 8-byte header"):
        read_idx(path, ndim=1)


def test_truncated_gzip_named(tmp_path):
    make_dataset(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz is a corrupt or truncated"):
        load_mnist(root=str(tmp_path))


def test_wrong_magic_named(tmp_path):
    make_dataset(tmp_path)
    # an images file where a labels file is expected: magic 0x803 instead of 0x801
    images = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(images)
    with pytest.raises(
        ValueError, match=r"train-labels-idx1-ubyte has magic number 0x00000803, expected 0x0+801"
    ):
        load_mnist(root=str(tmp_path))


def test_label_out_of_range_named(tmp_path):
    make_dataset(tmp_path)
    labels = np.array([0, 1, 12, 3, 4, 5, 6, 7, 8, 10])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte has label values \[10, 12\] outside"
    ):
        load_mnist(root=str(tmp_path))


def test_count_mismatch_named(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(19)))
    with pytest.raises(ValueError, match=r"holds 20 images but .*holds 19 labels"):
        load_mnist(root=str(tmp_path))


def test_missing_files_say_what_to_put_where(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(root=str(tmp_path))
    message = str(info.value)
    assert "lacks t10k-images-idx3-ubyte" in message
    assert "train-images-idx3-ubyte[.gz]" in message and str(tmp_path) in message
    assert "data.download=true" in message


def _file_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    make_dataset(mirror, gz=True)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    return replace(MNIST, mirrors=(mirror.as_uri() + "/",), md5=md5)


def test_download_verifies_checksums_and_writes_atomically(tmp_path):
    dataset = _file_mirror(tmp_path)
    target = tmp_path / "root"
    source = load_idx_dataset(dataset, root=str(target), allow_download=True)
    assert source.train_x.shape == (20, 1, 4, 4)
    assert sorted(p.name for p in target.iterdir()) == sorted(dataset.md5)


def test_download_with_bad_checksum_leaves_nothing(tmp_path):
    dataset = _file_mirror(tmp_path)
    bad = dict(dataset.md5, **{"train-images-idx3-ubyte.gz": "0" * 32})
    target = tmp_path / "root"
    with pytest.raises(ValueError, match="expected 0000"):
        load_idx_dataset(replace(dataset, md5=bad), root=str(target), allow_download=True)
    assert [p.name for p in target.iterdir()] == []


def test_download_unreachable_names_destination(tmp_path):
    dataset = replace(MNIST, mirrors=((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(FileNotFoundError, match=r"could not download train-images.*put the file"):
        load_idx_dataset(dataset, root=str(tmp_path / "root"), allow_download=True)
    assert list((tmp_path / "root").iterdir()) == []
