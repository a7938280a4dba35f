"""Small argument checks shared by constructors; each raises an error a user can act on."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real


def check_positive_ints(values: Iterable[object], *, parameter: str) -> tuple[int, ...]:
    """Return ``values`` as a non-empty tuple of positive ints, or raise naming ``parameter``."""
    try:
        items = tuple(values)
    except TypeError:
        raise TypeError(f"{parameter} must be a list of positive ints, got {values!r}") from None
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if not items or bad:
        raise ValueError(f"{parameter} must be a non-empty list of positive ints, got {values!r}")
    return items


def check_number(
    value: object,
    *,
    parameter: str,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float inside the given bounds, or raise naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(float(value)):
        raise TypeError(f"{parameter} must be a number, got {value!r}")
    number = float(value)
    too_low = low is not None and (number < low if low_inclusive else number <= low)
    too_high = high is not None and (number > high if high_inclusive else number >= high)
    if too_low or too_high:
        raise ValueError(
            f"{parameter} must be in {_interval(low, high, low_inclusive, high_inclusive)}, "
            f"got {value!r}"
        )
    return number


def check_finite(value: object, *, parameter: str, positive: bool = False) -> float:
    """A finite number, >= 0 (or > 0 when ``positive``), or an error naming ``parameter``."""
    return check_number(
        value,
        parameter=parameter,
        low=0.0,
        low_inclusive=not positive,
        high=math.inf,
        high_inclusive=False,
    )


def check_fraction(value: object, *, parameter: str) -> float:
    """A probability-like number in [0, 1)."""
    return check_number(value, parameter=parameter, low=0.0, high=1.0, high_inclusive=False)


def check_int(value: object, *, parameter: str, low: int | None = None) -> int:
    """Return ``value`` as an int not below ``low``, or raise naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be an int, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{parameter} must be an int >= {low}, got {value!r}")
    return value


def check_choice(value: object, *, parameter: str, choices: Iterable[object]) -> object:
    """Return ``value`` if it is one of ``choices``, or raise listing them."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(
            f"{parameter} must be one of {', '.join(map(str, options))}; got {value!r}"
        )
    return value


def _interval(low: float | None, high: float | None, low_inc: bool, high_inc: bool) -> str:
    left = "[" if low_inc and low is not None else "("
    right = "]" if high_inc and high is not None else ")"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def check_bool(value: object, *, parameter: str) -> bool:
    """Return ``value`` if it is a bool, or raise naming ``parameter`` (no truthy strings)."""
    if not isinstance(value, bool):
        raise TypeError(f"{parameter} must be a bool (true or false), got {value!r}")
    return value
