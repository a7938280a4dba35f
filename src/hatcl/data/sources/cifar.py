"""CIFAR-10 and CIFAR-100 from the "python version" pickled batches."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hatcl.data.errors import DataFileNotFoundError, DataValueError
from hatcl.data.source import SourceData
from hatcl.data.sources.common import normalised_source
from hatcl.data.sources.files import download as download_file
from hatcl.data.sources.files import download_dir, search_dirs

#: Values per image in a batch's ``data`` array: 3 channels of 32x32, channel-major.
CIFAR_IMAGE_SIZE = 3 * 32 * 32


@dataclass(frozen=True)
class CifarDataset:
    """Layout and origin of one CIFAR variant.

    Attributes:
        name: source name.
        title: human-readable name.
        folder: directory name inside the official archive.
        train_files: training batch file names.
        test_files: test batch file names.
        label_key: key of the labels in each batch.
        num_classes: number of classes.
        url: official archive URL.
        archive_md5: MD5 of the official archive.
    """

    name: str
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    url: str
    archive_md5: str

    @property
    def files(self) -> tuple[str, ...]:
        """All batch files."""
        return self.train_files + self.test_files


CIFAR10 = CifarDataset(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key="labels",
    num_classes=10,
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
)
CIFAR100 = CifarDataset(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    label_key="fine_labels",
    num_classes=100,
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def load_cifar10(*, root: str | None = None, download: bool = False) -> SourceData:
    """CIFAR-10 from ``root`` (``data_batch_1..5``, ``test_batch`` in ``cifar-10-batches-py``)."""
    return load_cifar(CIFAR10, root=root, allow_download=download)


def load_cifar100(*, root: str | None = None, download: bool = False) -> SourceData:
    """CIFAR-100 (fine labels) from ``root`` (``train`` and ``test`` in ``cifar-100-python``)."""
    return load_cifar(CIFAR100, root=root, allow_download=download)


def load_cifar(dataset: CifarDataset, *, root: str | None, allow_download: bool) -> SourceData:
    """Locate (or download), read and validate the pickled batches of ``dataset``.

    Raises:
        FileNotFoundError: if batches are missing (says which files to put where).
        ValueError: naming the file and the problem for a corrupt or malformed batch.
    """
    folder = locate_cifar_folder(dataset, root=root, allow_download=allow_download)
    train = [read_batch(folder / f, dataset) for f in dataset.train_files]
    test = [read_batch(folder / f, dataset) for f in dataset.test_files]
    train_x = np.concatenate([b[0] for b in train])
    test_x = np.concatenate([b[0] for b in test])
    return normalised_source(
        name=dataset.name,
        train_x=train_x.reshape(-1, 3, 32, 32),
        train_y=np.concatenate([b[1] for b in train]),
        test_x=test_x.reshape(-1, 3, 32, 32),
        test_y=np.concatenate([b[1] for b in test]),
        num_classes=dataset.num_classes,
        divisor=255.0,
    )


def locate_cifar_folder(dataset: CifarDataset, *, root: str | None, allow_download: bool) -> Path:
    """The first searched directory holding every batch file."""
    candidates = []
    for base in search_dirs(dataset.name, root):
        candidates += [base / dataset.folder, base]
    for folder in candidates:
        if all((folder / f).is_file() for f in dataset.files):
            return folder
    if allow_download:
        return _download_cifar(dataset, download_dir(dataset.name, root))
    partial = ""
    for folder in candidates:
        missing = [f for f in dataset.files if not (folder / f).is_file()]
        if len(missing) < len(dataset.files):
            partial = f" {folder} lacks {', '.join(missing)}."
            break
    raise DataFileNotFoundError(
        f"{dataset.title} batches not found.{partial} Put {', '.join(dataset.files)} (the "
        f"'python version', extracted from {dataset.url.rsplit('/', 1)[-1]}) into one of: "
        f"{', '.join(str(c) for c in candidates)} (or set data.root); or set "
        f"data.download=true to fetch {dataset.url} with checksum verification"
    )


def _download_cifar(dataset: CifarDataset, target: Path) -> Path:
    archive = target / dataset.url.rsplit("/", 1)[-1]
    if not archive.is_file():
        download_file(urls=[dataset.url], dest=archive, md5=dataset.archive_md5)
    folder = target / dataset.folder
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset.folder}.", dir=target))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in dataset.files:
                try:
                    member = tar.extractfile(f"{dataset.folder}/{name}")
                except KeyError as error:
                    raise DataValueError(f"archive {archive} has no member {name}") from error
                if member is None:
                    raise DataValueError(f"archive {archive}: {name} is not a regular file")
                (staging / name).write_bytes(member.read())
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataValueError(f"cannot extract {archive}: {error}; delete it and retry") from error
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and plain containers."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def read_batch(path: Path, dataset: CifarDataset) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled batch: ``(data (N, 3072) uint8, labels (N,) int64)``.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file for a corrupt pickle, missing keys, wrong shapes or labels.
    """
    if not path.is_file():
        raise DataFileNotFoundError(f"{dataset.title} batch file {path} does not exist")
    try:
        raw = path.read_bytes()
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise DataValueError(
            f"{path} is not a readable {dataset.title} batch (corrupt or truncated: {error})"
        ) from error
    if not isinstance(batch, dict):
        raise DataValueError(f"{path} holds a {type(batch).__name__}, expected a dict batch")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    for key in ("data", dataset.label_key):
        if key not in batch:
            raise DataValueError(f"{path} has no {key!r} entry (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[dataset.label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_IMAGE_SIZE:
        raise DataValueError(
            f"{path}: 'data' has shape {data.shape} and dtype {data.dtype}, expected "
            f"(N, {CIFAR_IMAGE_SIZE}) uint8"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DataValueError(
            f"{path}: {data.shape[0]} images but {labels.shape} labels; the counts must agree"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= dataset.num_classes):
        bad = sorted({int(v) for v in labels if not 0 <= v < dataset.num_classes})[:5]
        raise DataValueError(
            f"{path} has label values {bad} outside the valid range [0, {dataset.num_classes})"
        )
    return data, labels.astype(np.int64)
