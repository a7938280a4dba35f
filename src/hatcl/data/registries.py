"""Registries of data sources and continual-learning scenarios (importing this needs no torch)."""

from __future__ import annotations

from hatcl.registry import Registry

SOURCES = Registry("data source")
SOURCES.add(
    "digits",
    "hatcl.data.sources.digits:load_digits",
    summary="scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), no download",
)
SOURCES.add(
    "fashion_mnist",
    "hatcl.data.sources.idx:load_fashion_mnist",
    summary="Fashion-MNIST IDX files (28x28, 10 classes); Debian dataset-fashion-mnist found",
)
SOURCES.add(
    "mnist",
    "hatcl.data.sources.idx:load_mnist",
    summary="MNIST IDX files (28x28 handwritten digits, 10 classes)",
)
SOURCES.add(
    "kmnist",
    "hatcl.data.sources.idx:load_kmnist",
    summary="Kuzushiji-MNIST IDX files (28x28 cursive Japanese characters, 10 classes)",
)
SOURCES.add(
    "cifar10",
    "hatcl.data.sources.cifar:load_cifar10",
    summary="CIFAR-10 'python version' pickled batches (3x32x32, 10 classes)",
)
SOURCES.add(
    "cifar100",
    "hatcl.data.sources.cifar:load_cifar100",
    summary="CIFAR-100 'python version' pickles (3x32x32, 100 fine classes)",
)
SOURCES.add(
    "mnist1d",
    "hatcl.data.sources.mnist1d:load_mnist1d",
    summary="MNIST-1D, procedurally generated 1-D signals (length 40, 10 classes), no download",
)

#: Number of classes of every source, known without loading it (used to validate configurations).
SOURCE_NUM_CLASSES: dict[str, int] = {
    "digits": 10,
    "fashion_mnist": 10,
    "mnist": 10,
    "kmnist": 10,
    "cifar10": 10,
    "cifar100": 100,
    "mnist1d": 10,
}

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

AUGMENTATIONS = Registry("augmentation")
AUGMENTATIONS.add(
    "crop",
    "hatcl.data.augment:crop",
    summary="random crop after zero padding of data.crop_padding pixels (offset per sample)",
)
AUGMENTATIONS.add(
    "flip", "hatcl.data.augment:flip", summary="horizontal flip with probability 0.5 per sample"
)
