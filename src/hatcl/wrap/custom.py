"""The command line's ``backbone=custom``: a network factory given by import path, wrapped.

``hatcl run backbone=custom backbone.target=mypkg.nets:make_net +backbone.width=32`` imports
``make_net`` from ``mypkg.nets``, calls it with the remaining backbone options as keyword
arguments (and ``input_shape=`` if it takes one) and wraps the network it returns.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any


def resolve_target(target: object, *, parameter: str) -> Callable[..., Any]:
    """Import ``"package.module:attribute"`` and return the callable; clear errors otherwise."""
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise ValueError(
            f"{parameter} must be an import path 'package.module:function', got {target!r}"
        )
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"{parameter}={target!r}: cannot import module {module_name!r} ({error}); "
            "is its folder on PYTHONPATH (or the package installed)?"
        ) from error
    value = getattr(module, attribute, None)
    if not callable(value):
        found = "not found" if value is None else f"a {type(value).__name__}, not callable"
        raise ValueError(f"{parameter}={target!r}: {attribute!r} in {module_name!r} is {found}")
    return value


def custom_backbone(
    *,
    target: str,
    input_shape: Sequence[int],
    masked: bool = True,
    exclude: Sequence[str] = (),
    batch_norm: str = "independent",
    unmasked: str = "refuse",
    **options: Any,
):
    """Build the network ``target(**options)`` and :func:`hatcl.wrap` it.

    Args:
        target: ``"package.module:factory"``; the factory returns an ``nn.Module`` whose forward
            takes a batch ``(batch, *input_shape)`` and returns features.
        input_shape: shape of one sample (passed on as ``input_shape=`` when the factory
            accepts it).
        masked: set by hatcl (``False`` for the baselines).
        exclude: submodules left unmasked and unprotected on purpose (see ``hatcl.wrap``).
        batch_norm: ``independent`` or ``shared`` (see ``hatcl.wrap``).
        unmasked: ``refuse``, ``per_task`` or ``freeze`` (see ``hatcl.wrap``).
        options: keyword arguments of the factory.
    """
    import torch
    from torch import nn

    from hatcl.wrap.backbone import wrap
    from hatcl.wrap.graph import CLI_NAMES

    factory = resolve_target(target, parameter="backbone.target")
    kwargs = dict(options)
    if _accepts(factory, "input_shape"):
        kwargs["input_shape"] = tuple(int(d) for d in input_shape)
    network = factory(**kwargs)
    if not isinstance(network, nn.Module):
        raise TypeError(
            f"backbone.target={target!r} returned a {type(network).__name__}; it must return a "
            "torch.nn.Module"
        )
    example = torch.zeros(2, *input_shape)
    return wrap(
        network,
        example,
        exclude=list(exclude),
        batch_norm=batch_norm,
        unmasked=unmasked,
        masked=masked,
        option_names=CLI_NAMES,
    )


def check_custom_backbone(options: dict[str, Any]) -> None:
    """Validate ``backbone=custom`` options before any work: the target imports and is callable."""
    if "target" not in options:
        raise ValueError(
            "backbone=custom needs backbone.target=package.module:function (a factory returning "
            "a torch.nn.Module)"
        )
    resolve_target(options["target"], parameter="backbone.target")
    for key, valid in (
        ("batch_norm", ("independent", "shared")),
        ("unmasked", ("refuse", "per_task", "freeze")),
    ):
        if key in options and options[key] not in valid:
            raise ValueError(
                f"backbone.{key} must be one of {', '.join(valid)}, got {options[key]!r}"
            )


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
