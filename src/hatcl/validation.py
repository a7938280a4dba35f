"""Small argument checks shared by constructors and the configuration; each error names the
argument, the value given and what is valid.

A value of the wrong type raises :class:`ArgumentTypeError`, which is both a ``TypeError`` and a
``ValueError``, so callers catching either kind see it. Every number checked here must be finite:
``inf`` and ``nan`` are refused everywhere.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from numbers import Integral, Real


class ArgumentTypeError(TypeError, ValueError):
    """A value of the wrong type (a ``TypeError`` that ``except ValueError`` also catches)."""


def check_positive_ints(values: Iterable[object], *, parameter: str) -> tuple[int, ...]:
    """Return ``values`` as a non-empty tuple of positive ints, or raise naming ``parameter``."""
    try:
        items = tuple(values)
    except TypeError:
        raise ArgumentTypeError(
            f"{parameter} must be a list of positive ints, got {values!r}"
        ) from None
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
    """Return ``value`` as a finite float inside the given bounds, or raise naming ``parameter``.

    Raises:
        ArgumentTypeError: ``value`` is not a real number (booleans and strings are not).
        ValueError: ``value`` is ``inf``, ``nan`` or outside the bounds.
    """
    interval = _interval(low, high, low_inclusive, high_inclusive)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ArgumentTypeError(f"{parameter} must be a number in {interval}, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{parameter} must be a finite number in {interval}, got {value!r}")
    too_low = low is not None and (number < low if low_inclusive else number <= low)
    too_high = high is not None and (number > high if high_inclusive else number >= high)
    if too_low or too_high:
        raise ValueError(f"{parameter} must be in {interval}, got {value!r}")
    return number


def check_finite(value: object, *, parameter: str, positive: bool = False) -> float:
    """A finite number, >= 0 (or > 0 when ``positive``), or an error naming ``parameter``."""
    return check_number(value, parameter=parameter, low=0.0, low_inclusive=not positive)


def check_fraction(value: object, *, parameter: str) -> float:
    """A probability-like number in [0, 1)."""
    return check_number(value, parameter=parameter, low=0.0, high=1.0, high_inclusive=False)


def check_int(value: object, *, parameter: str, low: int | None = None) -> int:
    """Return ``value`` as an int not below ``low``, or raise naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        valid = "an int" if low is None else f"an int >= {low}"
        raise ArgumentTypeError(f"{parameter} must be {valid}, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{parameter} must be an int >= {low}, got {value!r}")
    return int(value)


def check_bool(value: object, *, parameter: str) -> bool:
    """Return ``value`` if it is a bool (``true``/``false``); 0, 1 and strings are refused."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{parameter} must be a bool (true or false), got {value!r}")
    return value


def check_choice(value: object, *, parameter: str, choices: Iterable[object]) -> object:
    """Return ``value`` if it is one of ``choices``, or raise listing them."""
    options = tuple(choices)
    if value not in options:
        hint = closest_hint(value, [str(o) for o in options])
        raise ValueError(
            f"{parameter} must be one of {', '.join(map(str, options))}; got {value!r}{hint}"
        )
    return value


def check_keys(given: Iterable[str], *, valid: Iterable[str], section: str) -> None:
    """Refuse keys of ``section`` that are not ``valid``, naming the closest valid key."""
    known = sorted(valid)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(unknown_keys_message(unknown, valid=known, section=section))


def unknown_keys_message(unknown: Iterable[str], *, valid: Iterable[str], section: str) -> str:
    """``unknown key(s) ... (did you mean ...?); valid keys of <section>: ...``."""
    known = sorted(valid)
    names = ", ".join(_dotted(section, key) for key in unknown)
    hints = [
        _dotted(section, match[0])
        for key in unknown
        if (match := difflib.get_close_matches(key, known, n=1, cutoff=0.6))
    ]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    where = section or "the configuration"
    return f"unknown key(s) {names}{hint}; valid keys of {where}: {', '.join(known) or '(none)'}"


def closest_hint(value: object, choices: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest of ``choices`` to ``value``, or ``""``."""
    if not isinstance(value, str):
        return ""
    match = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _interval(low: float | None, high: float | None, low_inc: bool, high_inc: bool) -> str:
    left = "[" if low_inc and low is not None else "("
    right = "]" if high_inc and high is not None else ")"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
