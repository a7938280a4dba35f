"""scikit-learn's bundled 8x8 handwritten digits: the default source, nothing to download."""

from __future__ import annotations

import numpy as np

from hatcl.data.source import SourceData
from hatcl.data.sources.common import normalised_source

#: Fraction of the 1,797 images held out as the fixed test split (stratified).
DIGITS_TEST_FRACTION = 0.2
#: Seed of the fixed stratified train/test split.
DIGITS_SPLIT_SEED = 0


def load_digits(*, root: str | None = None, download: bool = False) -> SourceData:
    """Load the 8x8 digits as ``(N, 1, 8, 8)`` tensors with a fixed stratified 80/20 split.

    Args:
        root: ignored (the data ship with scikit-learn).
        download: ignored.
    """
    del root, download
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = np.asarray(bunch.images, dtype=np.uint8)  # integer intensities 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images,
        labels,
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    return normalised_source(
        name="digits",
        train_x=train_x[:, None],
        train_y=train_y,
        test_x=test_x[:, None],
        test_y=test_y,
        num_classes=10,
        divisor=16.0,
    )
