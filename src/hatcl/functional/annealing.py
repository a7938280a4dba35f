"""Annealing of the HAT gate scale within an epoch."""

from __future__ import annotations

__all__ = ["annealed_scale"]


def annealed_scale(*, batch_index: int, num_batches: int, s_max: float) -> float:
    """Return the annealed gate scale for a 0-based batch index.

    ``s(b) = 1/s_max + (s_max - 1/s_max) * b / (B - 1)``, so the first batch of an epoch uses
    ``1/s_max`` and the last uses exactly ``s_max``. With a single batch (``B == 1``) the scale is
    ``s_max``.

    Args:
        batch_index: 0-based index ``b`` of the batch within the epoch, in ``[0, num_batches)``.
        num_batches: number of batches ``B`` in the epoch, at least 1.
        s_max: the maximum scale, strictly positive.

    Returns:
        The scale as a Python float.

    Raises:
        ValueError: if any argument is outside its valid range.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches!r}")
    if not 0 <= batch_index < num_batches:
        raise ValueError(
            f"batch_index must be in [0, {num_batches}) for num_batches={num_batches}, "
            f"got {batch_index!r}"
        )
    if not s_max > 0:
        raise ValueError(f"s_max must be > 0, got {s_max!r}")
    if num_batches == 1 or batch_index == num_batches - 1:
        return float(s_max)
    low = 1.0 / s_max
    return low + (s_max - low) * batch_index / (num_batches - 1)
