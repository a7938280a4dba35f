"""Finding, reading and downloading dataset files, with errors that name the file and problem."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

from hatcl.data.errors import DataFileNotFoundError, DataValueError

#: Where sources look for (and download) their files when ``data.root`` is not set.
DEFAULT_DATA_HOME = Path("~/.cache/hatcl/data")
#: Seconds before a download attempt gives up.
DOWNLOAD_TIMEOUT = 60.0


def default_root(source: str) -> Path:
    """The default data directory of ``source`` (``~/.cache/hatcl/data/<source>``)."""
    return DEFAULT_DATA_HOME.expanduser() / source


def search_dirs(source: str, root: str | None, extra: Sequence[str] = ()) -> list[Path]:
    """Directories searched for ``source``'s files, in order (duplicates removed).

    With ``root``: ``root`` and ``root/<source>``; without: the default root. Then ``extra``
    (e.g. where a distribution package installs the files).
    """
    if root is not None:
        base = Path(root).expanduser()
        dirs = [base, base / source]
    else:
        dirs = [default_root(source)]
    dirs += [Path(d) for d in extra]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def download_dir(source: str, root: str | None) -> Path:
    """Where downloads of ``source`` go: ``root`` if given, else the default root."""
    return Path(root).expanduser() if root is not None else default_root(source)


def find_variant(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists (plain first)."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_maybe_gzip(path: Path) -> bytes:
    """The bytes of ``path``, decompressed if it ends in ``.gz``.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it cannot be read or is a corrupt or truncated gzip file.
    """
    if not path.is_file():
        raise DataFileNotFoundError(f"dataset file {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataValueError(f"cannot read dataset file {path}: {error}") from error
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataValueError(
            f"dataset file {path} is a corrupt or truncated gzip file ({error}); "
            "delete it and put a complete copy there"
        ) from error


def download(*, urls: Sequence[str], dest: Path, md5: str | None) -> Path:
    """Download the first reachable of ``urls`` to ``dest`` atomically, verifying ``md5``.

    The data go to a temporary file next to ``dest`` that is renamed only once complete and
    verified, so nothing half-written is ever left at ``dest``.

    Raises:
        FileNotFoundError: if no URL could be fetched (the message lists the attempts).
        ValueError: if the downloaded data do not match the checksum.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _fetch(url, dest, md5)
            return dest
        except (urllib.error.URLError, OSError) as error:
            failures.append(f"{url}: {error}")
    raise DataFileNotFoundError(
        f"could not download {dest.name} ({'; '.join(failures)}); put the file at {dest}"
    )


def _fetch(url: str, dest: Path, md5: str | None) -> None:
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(  # noqa: S310
                url, timeout=DOWNLOAD_TIMEOUT
            ) as response,
        ):
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if md5 is not None and digest.hexdigest() != md5:
            raise DataValueError(
                f"download of {url} has MD5 {digest.hexdigest()}, expected {md5}; "
                f"nothing was written to {dest}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
