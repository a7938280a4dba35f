"""Deterministic derivation of independent seeds from an experiment seed."""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, tag: str, *keys: int) -> int:
    """A 63-bit seed derived from ``seed``, a purpose ``tag`` and integer ``keys``.

    The same inputs always give the same seed; different tags or keys give unrelated streams.
    """
    entropy = [int(seed), zlib.crc32(tag.encode("utf-8")), *(int(k) for k in keys)]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
