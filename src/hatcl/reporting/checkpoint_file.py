"""The checkpoint file format: a tagged, checksummed envelope around a ``torch.save`` payload.

A run folder's checkpoints are ``<run>/checkpoints/task_<t>.ckpt``. On disk the payload is
serialised with ``torch.save`` and wrapped in an envelope: a format tag, the format number, the
payload's size and SHA-256, and the payload bytes. Reading checks all four
(:func:`load_checkpoint`), so a truncated, empty, overwritten or altered file is named with its
problem instead of failing somewhere inside ``torch.load``; both levels load with
``weights_only=True``. Writing (atomic, durable) and what a payload holds are
:mod:`hatcl.training.checkpoint`'s; reports read run folders through this module, below
``training/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_TAG = "hatcl-checkpoint"
CHECKPOINT_FORMAT = 2
_NAME = re.compile(r"^task_(\d+)\.ckpt$")


def checkpoint_path(run_dir: str | os.PathLike[str], task_id: int) -> Path:
    """``<run_dir>/checkpoints/task_<task_id>.ckpt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"task_{task_id}.ckpt"


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint of the last completed task in ``run_dir`` (None if there is none)."""
    found = checkpoints_newest_first(run_dir)
    return found[0] if found else None


def checkpoints_newest_first(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Every ``task_<t>.ckpt`` of ``run_dir``, the last completed task first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem.

    Attributes:
        path: the file.
        problem: what is wrong with it (e.g. ``empty (0 bytes)``, ``checksum mismatch``).
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"checkpoint {str(self.path)!r} {problem}")


def checkpoint_envelope(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` serialised and wrapped in the tagged, sized, checksummed envelope."""
    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    body = buffer.getvalue()
    return {
        "tag": CHECKPOINT_TAG,
        "format": CHECKPOINT_FORMAT,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "payload": torch.frombuffer(bytearray(body), dtype=torch.uint8),
    }


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a checkpoint; the payload dict, or :class:`CheckpointError` naming it.

    Raises:
        CheckpointError: the file is missing, empty, truncated or not a torch file, carries no
            hatcl tag, has another format, or its payload fails the size or SHA-256 check.
    """
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(source, "does not exist")
    if source.stat().st_size == 0:
        raise CheckpointError(source, "is empty (0 bytes)")
    envelope = _read(source, lambda: torch.load(source, map_location="cpu", weights_only=True))
    body = _verified_body(source, envelope)
    payload = _read(
        source, lambda: torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    )
    if not isinstance(payload, dict):
        raise CheckpointError(source, "holds no checkpoint payload")
    payload["file"] = str(source)
    return payload


def _read(path: Path, load: Any) -> Any:
    try:
        return load()
    except Exception as error:  # torch reports damage as RuntimeError, EOFError, pickle errors
        detail = " ".join(str(error).split())[:160]
        raise CheckpointError(
            path, f"cannot be read: truncated or corrupt ({type(error).__name__}: {detail})"
        ) from None


def _verified_body(path: Path, envelope: Any) -> bytes:
    if not isinstance(envelope, dict) or envelope.get("tag") != CHECKPOINT_TAG:
        raise CheckpointError(path, f"is not a hatcl checkpoint (no {CHECKPOINT_TAG!r} tag)")
    if envelope.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path,
            f"has format {envelope.get('format')!r}; this hatcl reads format {CHECKPOINT_FORMAT}",
        )
    payload = envelope.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise CheckpointError(path, "holds no payload bytes")
    body = payload.numpy().tobytes()
    if len(body) != envelope.get("size"):
        raise CheckpointError(
            path, f"is damaged: payload of {len(body)} bytes, {envelope.get('size')} written"
        )
    if hashlib.sha256(body).hexdigest() != envelope.get("sha256"):
        raise CheckpointError(path, "is damaged: its payload fails the SHA-256 checksum")
    return body
