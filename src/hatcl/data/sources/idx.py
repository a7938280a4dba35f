"""IDX-format image datasets: MNIST, Fashion-MNIST and Kuzushiji-MNIST."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hatcl.data.errors import DataFileNotFoundError, DataValueError
from hatcl.data.source import SourceData
from hatcl.data.sources.common import normalised_source
from hatcl.data.sources.files import download as download_file
from hatcl.data.sources.files import (
    download_dir,
    find_variant,
    read_maybe_gzip,
    search_dirs,
)

#: The four files of an IDX dataset (each may also be gzipped: ``<name>.gz``).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: Type code of unsigned bytes in the IDX header.
IDX_UBYTE = 0x08


@dataclass(frozen=True)
class IdxDataset:
    """Where an IDX dataset lives and how to fetch it.

    Attributes:
        name: source name.
        title: human-readable name for messages.
        mirrors: base URLs tried in order for downloads (file name + ``.gz`` appended).
        md5: MD5 of each official ``<file>.gz`` (verified for downloads).
        extra_dirs: directories searched after the root (e.g. a distribution package's path).
        hint: extra advice for the missing-files error.
    """

    name: str
    title: str
    mirrors: tuple[str, ...]
    md5: dict[str, str] = field(default_factory=dict)
    extra_dirs: tuple[str, ...] = ()
    hint: str = ""
    num_classes: int = 10


FASHION_MNIST = IdxDataset(
    name="fashion_mnist",
    title="Fashion-MNIST",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    extra_dirs=("/usr/share/datasets/fashion-mnist",),
    hint="on Debian/Ubuntu, `apt-get install dataset-fashion-mnist` installs them; ",
)
MNIST = IdxDataset(
    name="mnist",
    title="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)
KMNIST = IdxDataset(
    name="kmnist",
    title="Kuzushiji-MNIST",
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    md5={
        "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
    },
)


def load_fashion_mnist(*, root: str | None = None, download: bool = False) -> SourceData:
    """Fashion-MNIST from ``root``, the default root or the Debian package's directory."""
    return load_idx_dataset(FASHION_MNIST, root=root, allow_download=download)


def load_mnist(*, root: str | None = None, download: bool = False) -> SourceData:
    """MNIST from ``root`` or the default root."""
    return load_idx_dataset(MNIST, root=root, allow_download=download)


def load_kmnist(*, root: str | None = None, download: bool = False) -> SourceData:
    """Kuzushiji-MNIST from ``root`` or the default root."""
    return load_idx_dataset(KMNIST, root=root, allow_download=download)


def load_idx_dataset(dataset: IdxDataset, *, root: str | None, allow_download: bool) -> SourceData:
    """Locate (or download), read and validate the four IDX files of ``dataset``.

    Raises:
        FileNotFoundError: if the files are missing (says which files to put where).
        ValueError: naming the file and the problem when a file is truncated or corrupt.
    """
    paths = locate_idx_files(dataset, root=root, allow_download=allow_download)
    train_x = read_idx(paths[0], ndim=3)
    train_y = read_idx(paths[1], ndim=1)
    test_x = read_idx(paths[2], ndim=3)
    test_y = read_idx(paths[3], ndim=1)
    _check_pair(train_x, train_y, paths[0], paths[1], dataset.num_classes)
    _check_pair(test_x, test_y, paths[2], paths[3], dataset.num_classes)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataValueError(
            f"{paths[0]} holds {train_x.shape[1:]} images but {paths[2]} holds "
            f"{test_x.shape[1:]} images; both must have the same size"
        )
    return normalised_source(
        name=dataset.name,
        train_x=train_x[:, None],
        train_y=train_y.astype(np.int64),
        test_x=test_x[:, None],
        test_y=test_y.astype(np.int64),
        num_classes=dataset.num_classes,
        divisor=255.0,
    )


def locate_idx_files(
    dataset: IdxDataset, *, root: str | None, allow_download: bool
) -> tuple[Path, ...]:
    """The four files, from the first searched directory holding all of them."""
    dirs = search_dirs(dataset.name, root, dataset.extra_dirs)
    best: tuple[Path, list[str]] | None = None
    for directory in dirs:
        found = [find_variant(directory, name) for name in IDX_FILES]
        if all(found):
            return tuple(found)  # type: ignore[arg-type]
        missing = [n for n, f in zip(IDX_FILES, found) if f is None]
        if len(missing) < len(IDX_FILES) and (best is None or len(missing) < len(best[1])):
            best = (directory, missing)
    if allow_download:
        return _download_idx(dataset, download_dir(dataset.name, root))
    raise DataFileNotFoundError(_missing_message(dataset, dirs, best))


def _download_idx(dataset: IdxDataset, target: Path) -> tuple[Path, ...]:
    paths = []
    for name in IDX_FILES:
        existing = find_variant(target, name)
        if existing is not None:
            paths.append(existing)
            continue
        gz = f"{name}.gz"
        urls = [base + gz for base in dataset.mirrors]
        paths.append(download_file(urls=urls, dest=target / gz, md5=dataset.md5.get(gz)))
    return tuple(paths)


def _missing_message(
    dataset: IdxDataset, dirs: list[Path], best: tuple[Path, list[str]] | None
) -> str:
    names = ", ".join(f"{n}[.gz]" for n in IDX_FILES)
    where = ", ".join(str(d) for d in dirs)
    partial = ""
    if best is not None:
        partial = f" {best[0]} lacks {', '.join(best[1])}[.gz]."
    return (
        f"{dataset.title} files not found.{partial} Put {names} into one of: {where} "
        f"(or set data.root to their directory); {dataset.hint}or set data.download=true to "
        f"fetch them from {dataset.mirrors[0]} with checksum verification"
    )


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file of ``ndim`` dimensions, validating header and size.

    Raises:
        ValueError: naming the file for a wrong magic number or a size that disagrees with
            the header (truncated or trailing bytes).
    """
    data = read_maybe_gzip(path)
    expected_magic = (IDX_UBYTE << 8) | ndim
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataValueError(
            f"{path} is truncated: {len(data)} bytes, shorter than the {header_size}-byte header"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataValueError(
            f"{path} has magic number 0x{magic:08x}, expected 0x{expected_magic:08x} (an "
            f"unsigned-byte IDX file with {ndim} dimension(s)); is it the right file?"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header declares"
        raise DataValueError(
            f"{path} is {problem}: the header declares shape {dims} ({expected} bytes with "
            f"header) but the {'decompressed ' if path.suffix == '.gz' else ''}file holds "
            f"{len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def _check_pair(
    images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path, num_classes: int
) -> None:
    if images.shape[0] != labels.shape[0]:
        raise DataValueError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds "
            f"{labels.shape[0]} labels; the counts must agree"
        )
    if labels.size and int(labels.max()) >= num_classes:
        bad = sorted({int(v) for v in labels[labels >= num_classes]})[:5]
        raise DataValueError(
            f"{label_path} has label values {bad} outside the valid range [0, {num_classes})"
        )
