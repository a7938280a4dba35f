"""MNIST-1D: procedurally generated 1-D digit signals (package ``mnist1d``), no download."""

from __future__ import annotations

import random

import numpy as np

from hatcl.data.source import SourceData
from hatcl.data.sources.common import normalised_source


def load_mnist1d(*, root: str | None = None, download: bool = False) -> SourceData:
    """Generate the standard MNIST-1D (package defaults: 4,000 train / 1,000 test, length 40).

    Generation is deterministic (the package's fixed seed) and offline; the global ``random``
    and ``numpy`` generator states, which the package reseeds, are restored afterwards.

    Args:
        root: ignored.
        download: ignored (nothing is downloaded).

    Raises:
        ModuleNotFoundError: if the optional package ``mnist1d`` is not installed.
    """
    del root, download
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as error:
        raise ModuleNotFoundError(
            "source 'mnist1d' needs the optional package mnist1d: pip install 'hatcl[extras]'"
        ) from error
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    train_x = np.asarray(data["x"], dtype=np.float32)
    test_x = np.asarray(data["x_test"], dtype=np.float32)
    return normalised_source(
        name="mnist1d",
        train_x=train_x[:, None, :],
        train_y=np.asarray(data["y"], dtype=np.int64),
        test_x=test_x[:, None, :],
        test_y=np.asarray(data["y_test"], dtype=np.int64),
        num_classes=10,
    )
