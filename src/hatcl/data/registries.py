"""Registries of data sources and continual-learning scenarios (importing this needs no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from hatcl.registry import Registry


@dataclass(frozen=True)
class SourceInfo:
    """What is known about a data source without loading it (checks before any work).

    Attributes:
        num_classes: number of classes of the source.
        input_shape: per-sample input shape, e.g. ``(1, 28, 28)``.
    """

    num_classes: int
    input_shape: tuple[int, ...]


SOURCES = Registry("data source")
"""Data sources; each entry carries its :class:`SourceInfo` (``SOURCES.info(name)``)."""
SOURCES.add(
    "digits",
    "hatcl.data.sources.digits:load_digits",
    summary="scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), no download",
    info=SourceInfo(num_classes=10, input_shape=(1, 8, 8)),
)
SOURCES.add(
    "fashion_mnist",
    "hatcl.data.sources.idx:load_fashion_mnist",
    summary="Fashion-MNIST IDX files (28x28, 10 classes); Debian dataset-fashion-mnist found",
    info=SourceInfo(num_classes=10, input_shape=(1, 28, 28)),
)
SOURCES.add(
    "mnist",
    "hatcl.data.sources.idx:load_mnist",
    summary="MNIST IDX files (28x28 handwritten digits, 10 classes)",
    info=SourceInfo(num_classes=10, input_shape=(1, 28, 28)),
)
SOURCES.add(
    "kmnist",
    "hatcl.data.sources.idx:load_kmnist",
    summary="Kuzushiji-MNIST IDX files (28x28 cursive Japanese characters, 10 classes)",
    info=SourceInfo(num_classes=10, input_shape=(1, 28, 28)),
)
SOURCES.add(
    "cifar10",
    "hatcl.data.sources.cifar:load_cifar10",
    summary="CIFAR-10 'python version' pickled batches (3x32x32, 10 classes)",
    info=SourceInfo(num_classes=10, input_shape=(3, 32, 32)),
)
SOURCES.add(
    "cifar100",
    "hatcl.data.sources.cifar:load_cifar100",
    summary="CIFAR-100 'python version' pickles (3x32x32, 100 fine classes)",
    info=SourceInfo(num_classes=100, input_shape=(3, 32, 32)),
)
SOURCES.add(
    "mnist1d",
    "hatcl.data.sources.mnist1d:load_mnist1d",
    summary="MNIST-1D, procedurally generated 1-D signals (length 40, 10 classes), no download",
    info=SourceInfo(num_classes=10, input_shape=(1, 40)),
)

def source_info(name: object) -> SourceInfo:
    """The :class:`SourceInfo` of data source ``name``.

    Raises:
        ValueError: an unknown source (the valid ones named).
        TypeError: a source registered without its ``SourceInfo``.
    """
    info = SOURCES.info(name, parameter="data.source")
    if not isinstance(info, SourceInfo):
        raise TypeError(
            f"data source {name!r} is registered without its SourceInfo; register it with "
            "SOURCES.add(name, target, summary=..., info=SourceInfo(num_classes=..., "
            "input_shape=...))"
        )
    return info


SCENARIOS = Registry("scenario")
SCENARIOS.add(
    "permuted",
    "hatcl.data.scenarios:plan_permuted",
    summary="every task: all classes, one fixed pixel permutation per task",
)
SCENARIOS.add(
    "split",
    "hatcl.data.scenarios:plan_split",
    summary="classes partitioned into num_tasks groups, each relabelled 0..k-1 (task-incremental)",
)
SCENARIOS.add(
    "rotated",
    "hatcl.data.scenarios:plan_rotated",
    summary="every task: all classes, images rotated by one angle per task",
)
