"""Options of the HAT family, each defined once, and the plumbing of flat keyword options.

:class:`HATOptions` holds the options every HAT-family algorithm shares (docs/spec.md §1, §2) with
their defaults, the values of ``conf/algorithm/shared/hat_family.yaml``. ``HAT``,
``AdaHAT`` and ``FGAdaHAT`` name their own options as keyword-only parameters and take the shared
ones (and, for FG-AdaHAT, the importance tracker's and the measure plugins') as ``**options``;
:func:`options_signature` spells those out in the class's signature, so that
``inspect.signature``, the configuration checks and ``hatcl run``'s unknown-option errors see every
option with its default, from its one definition.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class HATOptions:
    """The options every HAT-family algorithm shares; validated by ``HATFamily``.

    Attributes:
        s_max: the largest mask scale (> 1; end of annealing, validation).
        clamp_threshold: clamp of ``s * e`` in the embedding gradient compensation (> 0).
        mask_sparsity_reg_factor: weight of the mask sparsity regulariser (>= 0).
        mask_sparsity_reg_mode: ``original`` or ``cross``.
        task_embedding_init_mode: ``N01``, ``U-11``, ``U01``, ``U-10`` or ``last``.
        embedding_clamp: clamp embeddings to [-value, value] after each step (> 0; None: off;
            the original HAT used 6).
    """

    s_max: float = 400.0
    clamp_threshold: float = 50.0
    mask_sparsity_reg_factor: float = 0.1
    mask_sparsity_reg_mode: str = "original"
    task_embedding_init_mode: str = "N01"
    embedding_clamp: float | None = None


#: Where a group of options is defined: an options dataclass or a callable (its keyword-only
#: parameters with defaults, e.g. an importance plugin's constructor).
OptionSource = type | Callable[..., Any]


def option_defaults(source: OptionSource) -> dict[str, Any]:
    """``{name: default}`` of an options dataclass's fields or a callable's keyword parameters."""
    if dataclasses.is_dataclass(source):
        return {f.name: f.default for f in dataclasses.fields(source)}
    parameters = inspect.signature(source).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }


def split_options(
    options: Mapping[str, Any], sources: Sequence[OptionSource], *, owner: str
) -> list[dict[str, Any]]:
    """One ``{name: value}`` per source, defaults filled in, from flat keyword ``options``.

    Raises:
        TypeError: an option no source defines, naming the valid ones (as Python would for an
            unexpected keyword argument).
    """
    groups = [option_defaults(source) for source in sources]
    valid = [name for group in groups for name in group]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"{owner} got unexpected option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid)} (and the ones named in its signature)"
        )
    return [{name: options.get(name, d) for name, d in group.items()} for group in groups]


def options_signature(*sources: OptionSource) -> Callable[[type], type]:
    """Class decorator: ``__init__``'s ``**options`` spelled out as the sources' options.

    The explicit keyword-only parameters of ``__init__`` come first, then every source's options
    with their defaults; the resulting signature has no ``**`` parameter.
    """

    def decorate(cls: type) -> type:
        init = cls.__init__
        explicit = [
            p
            for p in inspect.signature(init).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        taken = {p.name for p in explicit}
        spelled = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for source in sources
            for name, default in option_defaults(source).items()
            if name not in taken
        ]
        init.__signature__ = inspect.Signature([*explicit, *spelled])
        return cls

    return decorate
