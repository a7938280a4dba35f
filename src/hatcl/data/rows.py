"""Lazy rows: a split's samples as a plan (source rows + a per-batch map), never a copy.

A :class:`PlannedRows` is what a task holds instead of a transformed tensor: the compact source
tensor it shares with every other task, the row indices it uses and the function that turns a
gathered batch into model input (normalisation and the task's transform) or into the task's
labels. Indexing it with a slice or an index tensor builds just that batch, so memory and build
time do not grow with the number of tasks.

Code written for whole tensors keeps working: ``torch.cat`` of planned rows is again lazy (the
union of joint training), and any other torch function, or a tensor attribute that rows do not
define, receives the whole split materialised (O(N) memory: use it for small splits only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


class LazyRows:
    """Common behaviour of lazy row containers (subclasses define ``__len__`` and ``rows``)."""

    #: Per-sample shape of what ``rows`` returns.
    sample_shape: tuple[int, ...]
    #: dtype of what ``rows`` returns.
    dtype: torch.dtype

    def __len__(self) -> int:
        raise NotImplementedError

    def rows(self, index: Tensor) -> Tensor:
        """The batch of the samples at positions ``index`` (int64, 1-D)."""
        raise NotImplementedError

    @property
    def shape(self) -> torch.Size:
        """Shape of the materialised split."""
        return torch.Size((len(self), *self.sample_shape))

    @property
    def ndim(self) -> int:
        """Number of dimensions of the materialised split."""
        return 1 + len(self.sample_shape)

    @property
    def device(self) -> torch.device:
        """Rows are built on the CPU."""
        return torch.device("cpu")

    def dim(self) -> int:
        """Number of dimensions of the materialised split."""
        return self.ndim

    def size(self, dim: int | None = None) -> torch.Size | int:
        """As ``Tensor.size``."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        """Number of elements of the materialised split."""
        return self.shape.numel()

    def __getitem__(self, key: int | slice | Tensor | Sequence[int]) -> Tensor:
        if isinstance(key, int):
            position = key + len(self) if key < 0 else key
            if not 0 <= position < len(self):
                raise IndexError(f"index {key} is out of range for {len(self)} rows")
            return self.rows(torch.tensor([position]))[0]
        if isinstance(key, slice):
            return self.rows(torch.arange(len(self))[key])
        index = torch.as_tensor(key)
        if index.dtype == torch.bool:
            index = torch.nonzero(index, as_tuple=False).flatten()
        index = index.long()
        index = torch.where(index < 0, index + len(self), index)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise IndexError(f"an index is out of range for {len(self)} rows")
        return self.rows(index)

    def materialize(self) -> Tensor:
        """The whole split as one tensor (O(N) memory)."""
        return self.rows(torch.arange(len(self)))

    def __iter__(self):
        return iter(self.materialize())

    def __getattr__(self, name: str) -> Any:
        # Only reached for names rows do not define: a tensor attribute gets the materialised
        # split; any other name is an error at once (building a whole split to then fail would
        # hide a typo behind O(N) work).
        if name.startswith("__") or name in {"sample_shape", "dtype"} or not hasattr(Tensor, name):
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} (lazy rows answer torch.Tensor "
                "attributes by materialising the split; index them for a batch)"
            )
        return getattr(self.materialize(), name)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.cat:
            lazy = _lazy_cat(*args, **kwargs)
            if lazy is not None:
                return lazy
        return func(*_materialized(args), **_materialized(kwargs))


def _lazy_cat(tensors: Sequence[Any], dim: int = 0, **rest: Any) -> ConcatenatedRows | None:
    if dim != 0 or rest or not tensors:
        return None
    return ConcatenatedRows(list(tensors))


def _materialized(value: Any) -> Any:
    if isinstance(value, LazyRows):
        return value.materialize()
    if isinstance(value, (list, tuple)):
        return type(value)(_materialized(v) for v in value)
    if isinstance(value, dict):
        return {k: _materialized(v) for k, v in value.items()}
    return value


class PlannedRows(LazyRows):
    """Rows ``indices`` of a shared ``source`` tensor, mapped batch by batch by ``apply``.

    Args:
        source: the compact source tensor (shared, never copied), first dim = samples.
        indices: source rows of this split in order (stored as int32), or ``None`` for all rows.
        apply: maps a gathered raw batch to the final batch (normalise + transform, or relabel);
            ``None`` returns the raw rows.
        sample_shape: per-sample shape of ``apply``'s output (default: the source's).
        dtype: dtype of ``apply``'s output (default: the source's).
    """

    def __init__(
        self,
        source: Tensor,
        *,
        indices: Tensor | None = None,
        apply: Callable[[Tensor], Tensor] | None = None,
        sample_shape: tuple[int, ...] | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if indices is not None:
            if indices.dim() != 1:
                raise ValueError(f"indices must be 1-D, got shape {tuple(indices.shape)}")
            indices = indices.to(torch.int32 if source.shape[0] < 2**31 else torch.int64)
        self.source = source
        self.indices = indices
        self.apply = apply
        self.sample_shape = sample_shape or tuple(int(d) for d in source.shape[1:])
        self.dtype = dtype or source.dtype

    def __len__(self) -> int:
        return int(self.source.shape[0] if self.indices is None else self.indices.shape[0])

    def rows(self, index: Tensor) -> Tensor:
        """Gather, then map, the samples at positions ``index``."""
        chosen = index if self.indices is None else self.indices[index].long()
        batch = self.source[chosen]
        return batch if self.apply is None else self.apply(batch)


class ConcatenatedRows(LazyRows):
    """Several row containers (lazy rows or tensors) one after another, still lazy."""

    def __init__(self, parts: Sequence[LazyRows | Tensor]) -> None:
        if not parts:
            raise ValueError("cannot concatenate an empty list of rows")
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"cannot concatenate rows of different sample shapes {shapes}")
        self.parts = list(parts)
        self.sample_shape = tuple(int(d) for d in shapes.pop())
        self.dtype = parts[0].dtype
        lengths = torch.tensor([len(p) for p in parts], dtype=torch.int64)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def rows(self, index: Tensor) -> Tensor:
        """Each part builds its own samples; they are placed back in the order of ``index``."""
        part = torch.searchsorted(self.offsets[1:], index, right=True)
        out: Tensor | None = None
        for p in torch.unique(part).tolist():
            where = torch.nonzero(part == p, as_tuple=False).flatten()
            local = index[where] - self.offsets[p]
            values = self.parts[p][local]
            if out is None:
                out = values.new_empty((index.numel(), *values.shape[1:]))
            out[where] = values
        if out is None:
            return torch.empty((0, *self.sample_shape), dtype=self.dtype)
        return out
