"""Data problems are typed errors: the command line tells them by type, not by file names."""

from __future__ import annotations

import gzip

import pytest

from hatcl.cli_report import error_kind
from hatcl.data.errors import DataError, DataFileNotFoundError, DataTypeError, DataValueError
from hatcl.data.sources.files import read_maybe_gzip
from hatcl.data.sources.idx import load_fashion_mnist


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (DataValueError("damaged"), ValueError),
        (DataFileNotFoundError("missing"), FileNotFoundError),
        (DataTypeError("wrong kind"), TypeError),
    ],
)
def test_a_data_error_of_a_run_is_a_data_error(error, builtin):
    assert isinstance(error, builtin) and isinstance(error, DataError)
    assert error_kind(error) == "configuration error"  # refused before the run: configuration
    error.hatcl_during_run = True
    assert error_kind(error) == "data error"


def test_another_error_of_a_run_is_not_a_data_error():
    error = ValueError("a configuration value refused late")
    error.hatcl_during_run = True
    assert error_kind(error) == "configuration error"


def test_a_truncated_idx_file_raises_a_data_error_naming_it(tmp_path):
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    names += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for name in names:
        with gzip.open(tmp_path / f"{name}.gz", "wb") as handle:
            handle.write(b"\x00\x00\x08\x03")  # an IDX header cut short
    with pytest.raises(DataValueError, match="idx3-ubyte"):
        load_fashion_mnist(root=str(tmp_path))


def test_a_missing_file_raises_a_data_error(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        read_maybe_gzip(tmp_path / "train-images-idx3-ubyte.gz")
