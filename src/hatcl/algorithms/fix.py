"""Fix: train the first task normally, then freeze the backbone and train new heads only."""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn
from torch.utils.hooks import RemovableHandle

from hatcl.algorithms.base import Algorithm
from hatcl.backbones.model import ContinualModel


class Fix(Algorithm):
    """A feature extractor learnt on task 1 and then frozen; later tasks fit their heads on it.

    From task 2 on the backbone's parameters stop requiring gradients, the optimizer holds the
    heads only, and the backbone runs in evaluation mode (batch-norm statistics and dropout are
    frozen too), so the backbone stays bit-identical and task 1 is never forgotten (TIL).
    """

    def __init__(self) -> None:
        super().__init__()
        self._frozen = False
        self._eval_hook: RemovableHandle | None = None

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Freeze the backbone before every task after the first."""
        if task_id > 1:
            self._freeze(model.backbone)

    def trainable_parameters(self, model: ContinualModel) -> Iterator[nn.Parameter]:
        """Everything at task 1; afterwards the heads only."""
        source = model.heads if self._frozen else model
        return (p for p in source.parameters() if p.requires_grad)

    def _freeze(self, backbone: nn.Module) -> None:
        backbone.requires_grad_(False)
        self._frozen = True
        if self._eval_hook is None:
            # Lightning switches the whole module to train mode at every fit; the hook puts the
            # frozen backbone back into eval mode before each forward.
            self._eval_hook = backbone.register_forward_pre_hook(_to_eval)


def _to_eval(module: nn.Module, args: tuple) -> None:
    if module.training:
        module.eval()
