"""Optional on-disk cache of decoded source tensors (atomic writes, safe loads)."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from hatcl.data.errors import DataValueError
from hatcl.data.source import SourceData

#: Bumped whenever decoding or normalisation changes, so stale caches are not reused.
CACHE_FORMAT = 2


def cache_path(cache_dir: str | os.PathLike[str], name: str) -> Path:
    """Where the cache of source ``name`` lives."""
    return Path(cache_dir).expanduser() / f"{name}-v{CACHE_FORMAT}.pt"


def cached_source(
    *, name: str, cache_dir: str | None, load: Callable[[], SourceData]
) -> SourceData:
    """Return the cached tensors of ``name`` if present, else ``load()`` them and cache them.

    An unreadable cache file is reported with a warning and rebuilt.
    """
    if cache_dir is None:
        return load()
    path = cache_path(cache_dir, name)
    if path.exists():
        try:
            return read_cache(path)
        except (ValueError, OSError, RuntimeError, KeyError, TypeError) as error:
            warnings.warn(f"ignoring unreadable data cache {path}: {error}", stacklevel=2)
    source = load()
    write_cache(path, source)
    return source


def write_cache(path: Path, source: SourceData) -> None:
    """Save ``source`` to ``path`` atomically (temporary file in the same directory + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CACHE_FORMAT,
        "name": source.name,
        "num_classes": source.num_classes,
        "train_x": source.train_x,
        "train_y": source.train_y,
        "test_x": source.test_x,
        "test_y": source.test_y,
        "mean": list(source.mean),
        "std": list(source.std),
        "divisor": source.divisor,
    }
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_cache(path: Path) -> SourceData:
    """Load a cache file written by :func:`write_cache` (``weights_only=True``).

    Raises:
        ValueError: if the file is not a complete cache of the current format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt cache
        raise DataValueError(f"cannot read data cache {path}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise DataValueError(f"data cache {path} has an unknown format")
    return SourceData(
        train_x=payload["train_x"],
        train_y=payload["train_y"],
        test_x=payload["test_x"],
        test_y=payload["test_y"],
        num_classes=int(payload["num_classes"]),
        name=str(payload["name"]),
        mean=tuple(float(m) for m in payload["mean"]),
        std=tuple(float(s) for s in payload["std"]),
        divisor=float(payload["divisor"]),
    )
