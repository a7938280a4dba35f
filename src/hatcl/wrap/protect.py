"""What wrap refuses: unprotected parameters, layers it cannot mask, unknown exclusions."""

from __future__ import annotations

from collections.abc import Sequence

from torch import fx, nn

from hatcl.wrap.graph import OptionNames
from hatcl.wrap.rewrite import UnitGroup


def check_excludes(model: nn.Module, exclude: Sequence[str]) -> tuple[str, ...]:
    """Return ``exclude`` as a tuple after checking every name is a submodule or parameter."""
    if isinstance(exclude, str):
        raise TypeError(f"exclude must be a list of module names, got the string {exclude!r}")
    names = {name for name, _ in model.named_modules() if name}
    names |= {name for name, _ in model.named_parameters()}
    unknown = [name for name in exclude if name not in names]
    if unknown:
        top = sorted(name for name in names if "." not in name)
        raise ValueError(
            f"exclude names {unknown} are not submodules or parameters of {type(model).__name__}; "
            f"its top-level names are {top} (nested ones are named like 'block.0.conv')"
        )
    return tuple(exclude)


def is_excluded(name: str, excluded: tuple[str, ...]) -> bool:
    """Whether module ``name`` is, or lies inside, an excluded module."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in excluded)


def check_layers(network: fx.GraphModule, weighted: list[fx.Node]) -> None:
    """Refuse weighted layers whose units wrap cannot mask as docs/spec.md says."""
    if not weighted:
        raise ValueError(
            "wrap found no Linear, Conv1d/2d/3d or Embedding layer to mask (outside exclude) "
            "in the network"
        )
    for node in weighted:
        module = network.get_submodule(node.target)
        if isinstance(module, nn.Embedding) and (module.max_norm is not None or module.sparse):
            raise ValueError(
                f"embedding {node.target!r} has max_norm={module.max_norm}, "
                f"sparse={module.sparse}: max_norm rewrites rows in the forward (earlier tasks' "
                "rows too) and sparse gradients cannot be compensated; use max_norm=None, "
                "sparse=False"
            )
        if getattr(module, "groups", 1) != 1:
            raise ValueError(
                f"layer {node.target!r} is a grouped convolution (groups={module.groups}); "
                "wrap masks convolutions whose every output channel reads every input channel"
            )


def loose_parameters(
    network: fx.GraphModule,
    groups: list[UnitGroup],
    excluded: tuple[str, ...],
) -> list[str]:
    """Trainable parameters neither masked, in a masked layer's batch norm, nor excluded."""
    covered: set[int] = set()
    for group in groups:
        for node in group.layers:
            covered.update(id(p) for p in network.get_submodule(node.target).parameters())
        for node in group.norms:
            covered.update(id(p) for p in network.get_submodule(node.target).parameters())
    for name, module in network.named_modules():
        if name and is_excluded(name, excluded):
            covered.update(id(p) for p in module.parameters())
    return sorted(
        name
        for name, p in network.named_parameters()
        if id(p) not in covered and p.requires_grad and not is_excluded(name, excluded)
    )


def refuse_unprotected(loose: Sequence[str], names: OptionNames) -> None:
    """Refuse parameters that would train unprotected, saying the options that accept them."""
    raise ValueError(
        f"these parameters would train unprotected by HAT masks: {list(loose)}. wrap masks "
        "Linear, Conv1d/2d/3d and Embedding layers (with a batch norm directly following "
        "one); any other parameter (layer norms, a batch norm elsewhere, raw nn.Parameters, "
        "weights used through torch.nn.functional) would change for every task. Give each "
        f"task its own copy ({names.unmasked}per_task) or train them on the first task only "
        f"({names.unmasked}freeze); or pass their modules in {names.exclude} to train them "
        "unprotected on purpose, or freeze them first"
    )
