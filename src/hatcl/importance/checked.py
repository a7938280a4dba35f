"""A measure's output checked on its first call, so that a user's own measure fails clearly.

A measure must return ``{mask_key: tensor of shape (units,)}`` for every mask key, finite. A float,
a tensor of the wrong shape or values for only some layers would otherwise fail deep inside the
accumulator or, worse, leave the other layers with importance 0 (their protection silently gone).
The first call of a measure is checked (one host read-back for the finiteness test, once per
algorithm); later calls run unchecked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import torch

from hatcl.importance.base import ImportanceContext, ImportanceMeasure


class MeasureOutputError(ValueError):
    """A measure's output does not have the form FG-AdaHAT needs (the message says what to fix)."""


class FirstCallCheck:
    """Wraps a measure's ``compute``; validates the output of its first call.

    Args:
        compute: the measure's ``compute(context)``.
        name: how the user named the measure (``importance_type``), shown in every error.
    """

    def __init__(self, compute: Callable[[ImportanceContext], Mapping], *, name: str) -> None:
        self.compute = compute
        self.name = name
        self.checked = False

    def __call__(self, context: ImportanceContext) -> Mapping[str, torch.Tensor]:
        output = self.compute(context)
        if not self.checked:
            check_measure_output(output, masks=context.output.backbone.masks, name=self.name)
            self.checked = True
        return output


def checked_measure(measure: ImportanceMeasure, *, name: str) -> ImportanceMeasure:
    """``measure`` with its output checked on the first call (see :class:`FirstCallCheck`)."""
    return dataclasses.replace(measure, compute=FirstCallCheck(measure.compute, name=name))


def check_measure_output(
    output: object, *, masks: Mapping[str, torch.Tensor], name: str
) -> None:
    """Raise :class:`MeasureOutputError` unless ``output`` is one finite (units,) tensor per key.

    Args:
        output: what the measure returned.
        masks: the step's training masks, ``{mask_key: (units,)}``.
        name: the measure's name for the message.
    """
    form = "{mask_key: tensor of shape (units,)} for every mask key"
    expected = {key: int(mask.shape[-1]) for key, mask in masks.items()}
    if not isinstance(output, Mapping):
        raise MeasureOutputError(
            f"importance measure {name!r} returned {type(output).__name__}; it must return {form} "
            f"(here: {_shapes(expected)})"
        )
    missing = [key for key in expected if key not in output]
    unknown = [str(key) for key in output if key not in expected]
    if missing or unknown:
        raise MeasureOutputError(
            f"importance measure {name!r} returned values for {sorted(map(str, output))}; it "
            f"must return exactly the mask keys {list(expected)} (missing: {missing or 'none'}; "
            f"unknown: {unknown or 'none'}); a layer left out would get importance 0 and lose "
            "its protection"
        )
    for key, units in expected.items():
        _check_value(output[key], key=key, units=units, name=name)


def _check_value(value: object, *, key: str, units: int, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise MeasureOutputError(
            f"importance measure {name!r} returned {type(value).__name__} for {key!r}; it must "
            f"be a tensor of shape ({units},)"
        )
    if tuple(value.shape) != (units,):
        raise MeasureOutputError(
            f"importance measure {name!r} returned shape {tuple(value.shape)} for {key!r}; it "
            f"must be ({units},), one value per unit (reduce the batch and spatial dimensions)"
        )
    if not bool(torch.isfinite(value).all()):  # once per algorithm, on the first call
        raise MeasureOutputError(
            f"importance measure {name!r} returned non-finite values (inf or nan) for {key!r}"
        )


def _shapes(expected: Mapping[str, int]) -> str:
    return ", ".join(f"{key}: ({units},)" for key, units in expected.items())
