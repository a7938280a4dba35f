"""Task T's compact network as plain torch modules, written as ``torch.export`` or state dict.

:func:`task_network` lowers the backbone (registry :data:`~hatcl.product.lower.LOWERINGS`) and
attaches task T's head with the input columns of the kept features. The result computes exactly
the model's test-time function of task T (``model(x, task_id=T, stage=TEST).logits``) up to
float rounding of the shorter sums. Algorithms without masks export the unpruned network.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from hatcl.product.lower import lower
from hatcl.product.prune import slice_layer
from hatcl.registry import Registry

EXPORT_FORMATS = Registry("export format")
EXPORT_FORMATS.add(
    "exported",
    "hatcl.product.export:write_exported",
    summary="torch.export program (.pt2): torch.export.load(path).module()(x), no hatcl needed",
)
EXPORT_FORMATS.add(
    "state_dict",
    "hatcl.product.export:write_state_dict",
    summary="the compact network's state dict (torch.save; loads with weights_only=True)",
)


def task_network(model: nn.Module, *, task_id: int, prune: bool = True) -> nn.Sequential:
    """Task ``task_id``'s compact network of ``model`` (a ``ContinualModel``), in eval mode.

    ``Sequential(features, head)``: masked-off units removed (``prune=False``: kept, the same
    function unpruned), task T's batch norms and head. Parameters keep the model's device and
    dtype and do not require gradients.
    """
    lowered = lower(model.backbone, task_id=task_id, prune=prune)
    head = slice_layer(model.heads.head(task_id), rows=None, columns=lowered.kept_features)
    network = nn.Sequential(lowered.features, head).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def check_export_target(path: str | os.PathLike[str], *, format: str) -> Path:
    """The output path, checked before any work: a valid format, a folder, no file there yet.

    Raises:
        ValueError: unknown format (the valid ones are listed) or ``path`` exists.
        FileNotFoundError: the folder of ``path`` does not exist.
    """
    EXPORT_FORMATS.validate(format, parameter="export format")
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"export: the folder {str(target.parent)!r} does not exist")
    if target.exists():
        raise ValueError(
            f"export: {str(target)!r} exists; export never overwrites a file: remove it or "
            "choose another path"
        )
    return target


def write_task(
    network: nn.Module, *, path: str | os.PathLike[str], format: str, example: torch.Tensor
) -> Path:
    """Write ``network`` to ``path`` in ``format`` (written to a temporary name, then renamed)."""
    target = check_export_target(path, format=format)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        EXPORT_FORMATS.get(format)(network, path=temporary, example=example)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def write_exported(network: nn.Module, *, path: Path, example: torch.Tensor) -> None:
    """``torch.export`` of ``network`` with a dynamic batch size, saved as a ``.pt2`` archive.

    ``example`` (at least two samples, so the batch size is not specialised) sets the per-sample
    shape and dtype.
    """
    example = torch.cat([example[:1], example[:1]]) if example.shape[0] < 2 else example
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(network, (example,), dynamic_shapes=({0: batch},))
    with open(path, "wb") as handle:
        torch.export.save(program, handle)


def write_state_dict(network: nn.Module, *, path: Path, example: torch.Tensor) -> None:
    """``torch.save`` of the network's state dict (tensors only)."""
    with open(path, "wb") as handle:
        torch.save(network.state_dict(), handle)
