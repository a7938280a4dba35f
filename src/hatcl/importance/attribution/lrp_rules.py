"""LRP rules for the modules of hatcl's models (Captum's LRP needs one for every leaf module).

Captum assigns rules to the standard modules it knows (linear, conv, pooling, 2-D batch norm;
ReLU, dropout and tanh pass relevance through). hatcl's own modules get theirs here, attached
for the duration of one attribution (Captum removes rules after each call):

- :class:`~hatcl.backbones.base.ActivationTap`: records the relevance arriving at h_l, does not
  change it (an identity), and hands a copy of h_l on (as Captum's rules do).
- :class:`~hatcl.backbones.base.ApplyMask` and ``nn.BatchNorm1d``: Captum's epsilon rule (as
  Captum's default for ``nn.BatchNorm2d``); a per-unit scaling so relevance passes through.
- :class:`~hatcl.backbones.base.Add` (residual sum): the epsilon rule, as Captum's
  ``Addition_Module``: relevance is split between the branches in proportion to their values.
- :class:`~hatcl.backbones.norms.NoNorm`, ``nn.Identity``, ``nn.Flatten``: no hooks (relevance
  passes unchanged through an identity or a reshape).
- modules never called in a forward (parameter and buffer containers such as the masker's
  embeddings and mask store): no hooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS
from captum.attr._utils.lrp_rules import EpsilonRule
from torch import nn

from hatcl.backbones.base import ActivationTap, Add, ApplyMask
from hatcl.backbones.norms import NoNorm

_LRP_ATTRIBUTES = ("rule", "activations")


class PassThroughRule(EpsilonRule):
    """No hooks: relevance flows through the module by plain autograd (identities, reshapes)."""

    def forward_hook(self, module: nn.Module, inputs, outputs) -> None:
        self._handle_input_hooks = []
        self._handle_output_hook = _NoHandle()

    def forward_hook_weights(self, module: nn.Module, inputs, outputs) -> None:
        """Nothing to store or change."""

    def forward_pre_hook_activations(self, module: nn.Module, inputs):
        return inputs


class RecordRule(PassThroughRule):
    """Identity rule that records the relevance arriving at the module's output.

    Like Captum's rules it hands a copy of its output on: the recorded tensor must not be the
    next module's input, or the record would run before that module's input hook turns the
    arriving gradient into relevance (multiplying by the input), and would hold R / h_l.
    """

    def forward_hook(self, module: nn.Module, inputs, outputs) -> torch.Tensor:
        def record(grad: torch.Tensor) -> None:
            self.relevance_output[grad.device] = grad.data

        self._handle_input_hooks = []
        self._handle_output_hook = outputs.register_hook(record)
        return outputs.clone()


class _NoHandle:
    def remove(self) -> None:
        """Nothing registered."""


_RULES: dict[type, type] = {
    ActivationTap: RecordRule,
    ApplyMask: EpsilonRule,
    Add: EpsilonRule,
    nn.BatchNorm1d: EpsilonRule,
    NoNorm: PassThroughRule,
    nn.Identity: PassThroughRule,
    nn.Flatten: PassThroughRule,
}


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    for child in module.children():
        if len(list(child.children())) == 0:
            yield child
        else:
            yield from _leaves(child)


def _rule_for(module: nn.Module):
    kind = type(module)
    if kind in SUPPORTED_LAYERS_WITH_RULES or kind in SUPPORTED_NON_LINEAR_LAYERS:
        return None
    if kind in _RULES:
        return _RULES[kind]()
    if kind.forward is nn.Module.forward:
        return PassThroughRule()
    raise TypeError(
        f"LRP has no rule for module type {kind.__name__}; supported are Captum's "
        f"({', '.join(t.__name__ for t in SUPPORTED_LAYERS_WITH_RULES)}, "
        f"{', '.join(t.__name__ for t in SUPPORTED_NON_LINEAR_LAYERS)}) and "
        f"{', '.join(t.__name__ for t in _RULES)}"
    )


@contextmanager
def lrp_rules(model: nn.Module) -> Iterator[None]:
    """Attach LRP rules to ``model``'s leaf modules for one attribution; remove all traces after."""
    leaves = list(_leaves(model))
    try:
        for leaf in leaves:
            rule = _rule_for(leaf)
            if rule is not None:
                leaf.rule = rule
        yield
    finally:
        for leaf in leaves:
            for name in _LRP_ATTRIBUTES:
                if name in leaf.__dict__:
                    delattr(leaf, name)
