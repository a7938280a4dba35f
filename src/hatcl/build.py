"""Build components from registry names and keyword options, with errors a user can act on."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from hatcl.registry import Registry


def instantiate(registry: Registry, name: str, options: Mapping[str, Any], *, section: str) -> Any:
    """Call the entry ``name`` of ``registry`` with ``options`` as keyword arguments.

    Unknown or missing options become a ``ValueError`` naming the section and the valid options.
    """
    factory = registry.resolve(name, parameter=f"{section}.name")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return factory(**options)
    _check_options(signature, options, section=section, name=name)
    return factory(**options)


def _check_options(
    signature: inspect.Signature, options: Mapping[str, Any], *, section: str, name: str
) -> None:
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [p for p in parameters if p != "self"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"{section} {name!r} has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    missing = [
        p.name
        for p in parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.name not in options
    ]
    if missing:
        raise ValueError(f"{section} {name!r} requires option(s) {', '.join(missing)}")
