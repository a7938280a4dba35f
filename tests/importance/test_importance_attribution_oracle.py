"""Attribution importance against Captum called directly on a plain copy of each backbone.

The oracle shares no code with hatcl's attribution package: for every backbone (MLP with
per-task batch norm and dropout, the CNN with max pooling, ResNet-18 with its stem pool and
downsample shortcuts), a plain torch module written here reproduces the backbone's forward in
eval mode with the step's training masks ``sigmoid(s * e_l)`` and task 2's head, from weights
copied out of the hatcl model. Captum 0.9.0's layer methods are called on it directly, one
layer at a time, with docs/spec.md's settings (§6), and ``bam`` (mean of |.| over every dim but the
unit dim) is taken here. The masks are standard modules (a diagonal linear layer, a depthwise
1x1 conv), so every method, LRP included, treats them with Captum's own rules.

The only thing taken from the code under test is its random draws (DeepLift SHAP's reference
set, gradient SHAP's path coefficients), read through the measure's public ``draws``; they are
handed to Captum (gradient SHAP's through NumPy's ``uniform``, which Captum calls).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    InternalInfluence,
    LayerConductance,
    LayerDeepLift,
    LayerDeepLiftShap,
    LayerFeatureAblation,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    LayerLRP,
)
from captum.attr._utils.custom_modules import Addition_Module
from captum.attr._utils.lrp_rules import EpsilonRule
from torch import nn

from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.attribution.measures import attribution_measure
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage

TASK = 2
SCALE = 2.0
RTOL = 1e-5

# -- the plain networks ------------------------------------------------------------------------


class Tap(nn.Module):
    """Identity after a ReLU: h_l. The layer Captum's LRP attributes (the other methods take
    the ReLU itself).

    No module at all outside LRP (it returns its input). Under LRP (a rule attached) it returns
    a new tensor: Captum's rules hook a module's input and output tensors, which must differ.
    """

    def forward(self, x):
        return x.clone() if getattr(self, "rule", None) is not None else x


def _gates(model: ContinualModel) -> dict[str, torch.Tensor]:
    """The step's training masks, docs/spec.md §1: sigmoid(s * e_l)."""
    embeddings = model.backbone.masker.embeddings
    return {key: torch.sigmoid(SCALE * value.detach()) for key, value in embeddings.items()}


def _mask_module(mask: torch.Tensor, *, conv: bool) -> nn.Module:
    """Multiplication by the mask as a standard module (diagonal linear / depthwise 1x1 conv)."""
    units = mask.numel()
    if conv:
        module = nn.Conv2d(units, units, 1, groups=units, bias=False)
        weight = mask.view(-1, 1, 1, 1)
    else:
        module = nn.Linear(units, units, bias=False)
        weight = torch.diag(mask)
    module.weight = nn.Parameter(weight.clone())
    return module


def _copy(module: nn.Module) -> nn.Module:
    """A fresh torch module of the same kind with the same state."""
    double = {"dtype": torch.float64}
    if isinstance(module, nn.Linear):
        fresh = nn.Linear(
            module.in_features, module.out_features, bias=module.bias is not None, **double
        )
    elif isinstance(module, nn.Conv2d):
        fresh = nn.Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            bias=module.bias is not None,
            **double,
        )
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        fresh = type(module)(module.num_features, eps=module.eps, **double)
    else:
        raise TypeError(type(module))
    fresh.load_state_dict(module.state_dict())
    return fresh


def _norm(placement: nn.Module) -> nn.Module | None:
    """The task's batch norm of a hatcl norm placement (none, shared or per task)."""
    if hasattr(placement, "norms"):
        return _copy(placement.norms[str(TASK)])
    if hasattr(placement, "norm"):
        return _copy(placement.norm)
    return None


class MaskReluTap(nn.Module):
    """mask -> ReLU -> tap: h_l, the output of ``relu`` (and of ``tap``)."""

    def __init__(self, mask: torch.Tensor, *, conv: bool) -> None:
        super().__init__()
        self.mask = _mask_module(mask, conv=conv)
        self.relu = nn.ReLU()
        self.tap = Tap()

    def forward(self, z):
        return self.tap(self.relu(self.mask(z)))


class Unit(nn.Module):
    """weighted layer -> [batch norm] -> mask -> ReLU -> tap (h_l)."""

    def __init__(self, weighted: nn.Module, placement: nn.Module, mask, *, conv: bool) -> None:
        super().__init__()
        self.weighted = _copy(weighted)
        self.norm = _norm(placement)
        self.post = MaskReluTap(mask, conv=conv)

    def forward(self, x):
        z = self.weighted(x)
        return self.post(z if self.norm is None else self.norm(z))


class PlainMLP(nn.Module):
    def __init__(self, model: ContinualModel) -> None:
        super().__init__()
        backbone, gates = model.backbone, _gates(model)
        self.units = nn.ModuleList(
            Unit(linear, norm, gates[key], conv=False)
            for linear, norm, key in zip(backbone.linears, backbone.norms, backbone.keys)
        )
        self.head = _copy(model.heads.head(TASK))
        self.keys = backbone.keys

    def outputs(self):
        return dict(zip(self.keys, (unit.post for unit in self.units)))

    def forward(self, x):
        hidden = x.flatten(1)
        for unit in self.units:
            hidden = unit(hidden)
        return self.head(hidden)


class PlainCNN(nn.Module):
    def __init__(self, model: ContinualModel) -> None:
        super().__init__()
        backbone, gates = model.backbone, _gates(model)
        self.convs = nn.ModuleList(
            Unit(conv, norm, gates[key], conv=True)
            for conv, norm, key in zip(backbone.convs, backbone.conv_norms, backbone.conv_keys)
        )
        self.pools = nn.ModuleList(nn.MaxPool2d(2) for pool in backbone.pools if pool)
        self.pooled = backbone.pools
        self.paddings = backbone.paddings
        self.fcs = nn.ModuleList(
            Unit(linear, norm, gates[key], conv=False)
            for linear, norm, key in zip(backbone.linears, backbone.fc_norms, backbone.fc_keys)
        )
        self.head = _copy(model.heads.head(TASK))
        self.keys = backbone.conv_keys + backbone.fc_keys

    def outputs(self):
        return dict(zip(self.keys, (unit.post for unit in [*self.convs, *self.fcs])))

    def forward(self, x):
        pools = iter(self.pools)
        for unit, padding, pooled in zip(self.convs, self.paddings, self.pooled):
            x = unit(F.pad(x, padding))
            if pooled:
                x = next(pools)(x)
        x = torch.flatten(x, 1)
        for unit in self.fcs:
            x = unit(x)
        return self.head(x)


class PlainBlock(nn.Module):
    """h1 = unit(conv1); out = tap(ReLU(mask(BN2(conv2(h1)) + shortcut(x))))."""

    def __init__(self, block: nn.Module, gates) -> None:
        super().__init__()
        self.conv1 = Unit(block.conv1, block.norm1, gates[block.conv1_key], conv=True)
        self.conv2 = _copy(block.conv2)
        self.norm2 = _norm(block.norm2)
        self.shortcut = None if block.shortcut is None else _copy(block.shortcut)
        self.shortcut_norm = None if block.shortcut is None else _norm(block.shortcut_norm)
        self.add = Addition_Module()
        self.out = MaskReluTap(gates[block.out_key], conv=True)
        self.keys = (block.conv1_key, block.out_key)

    def outputs(self):
        return dict(zip(self.keys, (self.conv1.post, self.out)))

    def forward(self, x):
        main = self.conv2(self.conv1(x))
        main = main if self.norm2 is None else self.norm2(main)
        side = x
        if self.shortcut is not None:
            side = self.shortcut(x)
            side = side if self.shortcut_norm is None else self.shortcut_norm(side)
        return self.out(self.add(main, side))


class PlainResNet(nn.Module):
    def __init__(self, model: ContinualModel) -> None:
        super().__init__()
        backbone, gates = model.backbone, _gates(model)
        self.stem = Unit(backbone.stem, backbone.stem_norm, gates["stem"], conv=True)
        self.pool = None if backbone.small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.blocks = nn.ModuleList(PlainBlock(block, gates) for block in backbone.blocks)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head = _copy(model.heads.head(TASK))

    def outputs(self):
        outputs = {"stem": self.stem.post}
        for block in self.blocks:
            outputs.update(block.outputs())
        return outputs

    def forward(self, x):
        x = self.stem(x)
        if self.pool is not None:
            x = self.pool(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.global_pool(x).flatten(1))


# -- the hatcl models --------------------------------------------------------------------------


def _randomise_norms(model: nn.Module) -> None:
    """Batch norms with non-trivial affine parameters and running statistics."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.3)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 1.5)


def _mlp():
    return MLPBackbone(
        input_shape=(2, 3), hidden_dims=(7, 6, 5), batch_norm="independent", dropout=0.3
    ), (2, 3)


def _cnn():
    backbone = CNNBackbone(
        input_shape=(2, 8, 8), channels=(3, 4), kernel_sizes=(3, 2), fc_dims=(6, 5)
    )
    return backbone, (2, 8, 8)


def _resnet():
    backbone = ResNetBackbone(input_shape=(2, 8, 8), width=4, num_blocks=(2, 2, 2, 2))
    return backbone, (2, 8, 8)


BACKBONES = {"mlp": (_mlp, PlainMLP), "cnn": (_cnn, PlainCNN), "resnet18": (_resnet, PlainResNet)}


def _setup(name: str, *, batch: int = 12, seed: int = 0):
    """A float64 hatcl model with tasks 1 and 2, task 2's step context, and its plain twin."""
    torch.manual_seed(seed)
    build, plain = BACKBONES[name]
    backbone, shape = build()
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    model.setup_task(task_id=1, num_classes=4)
    model.setup_task(task_id=TASK, num_classes=4)
    model.to(torch.float64)
    _randomise_norms(model)
    x = torch.randn(batch, *shape, dtype=torch.float64)
    targets = torch.arange(batch) % 4
    model.eval()
    with torch.no_grad():
        output = model(x, task_id=TASK, stage=Stage.TRAIN, scale=SCALE)
    model.train()
    context = ImportanceContext(
        model=model, task_id=TASK, inputs=x, targets=targets, scale=SCALE, output=output, step=7
    )
    twin = plain(model).to(torch.float64).eval()
    return model, context, twin


# -- Captum, called directly -------------------------------------------------------------------


def _gradient_x_activation(net, post, x, targets, draws):
    return LayerGradientXActivation(net, post.relu).attribute(x, target=targets)


def _gradcam(net, post, x, targets, draws):
    return LayerGradCam(net, post.relu).attribute(x, target=targets, attr_dim_summation=False)


def _deeplift(net, post, x, targets, draws):
    return LayerDeepLift(net, post.relu).attribute(x, baselines=torch.zeros_like(x), target=targets)


def _deepliftshap(net, post, x, targets, draws):
    return LayerDeepLiftShap(net, post.relu).attribute(
        x, baselines=draws.references, target=targets
    )


def _gradientshap(net, post, x, targets, draws):
    coefficients = draws.alphas.reshape(-1).numpy()

    def uniform(low, high, size):
        assert (low, high, size) == (0.0, 1.0, coefficients.size)
        return coefficients.copy()

    original = np.random.uniform
    np.random.uniform = uniform
    try:
        return LayerGradientShap(net, post.relu).attribute(
            x, baselines=torch.zeros_like(x), n_samples=5, stdevs=0.0, target=targets
        )
    finally:
        np.random.uniform = original


def _integrated_gradients(net, post, x, targets, draws):
    return LayerIntegratedGradients(net, post.relu).attribute(x, target=targets, n_steps=50)


def _conductance(net, post, x, targets, draws):
    return LayerConductance(net, post.relu).attribute(x, target=targets, n_steps=50)


def _internal_influence(net, post, x, targets, draws):
    return InternalInfluence(net, post.relu).attribute(x, target=targets, n_steps=5)


def _feature_ablation(net, post, x, targets, draws):
    with torch.no_grad():
        shape = _output(net, post.relu, x).shape[1:]
    mask = None
    if len(shape) > 1:  # a conv unit is a whole channel
        mask = torch.arange(shape[0]).view(1, -1, 1, 1).expand(1, *shape)
    return LayerFeatureAblation(net, post.relu).attribute(x, target=targets, layer_mask=mask)


def _lrp(net, post, x, targets, draws):
    # Captum removes every rule after a call, so they are set for each. A tap gets the
    # epsilon rule with a float64-sized epsilon: R h / (h + 1e-15) passes the relevance on
    # (Captum's IdentityRule does not hand it to the ReLU before the tap). Batch norm 1d gets
    # the epsilon rule Captum gives batch norm 2d.
    for module in net.modules():
        if isinstance(module, Tap):
            module.rule = EpsilonRule(epsilon=1e-15)
        elif isinstance(module, nn.BatchNorm1d):
            module.rule = EpsilonRule()
    return LayerLRP(net, post.tap).attribute(x, target=targets)


def _output(net, layer, x):
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
    try:
        net(x)
    finally:
        handle.remove()
    return seen[0]


CAPTUM = {
    "gradient_x_activation_abs": _gradient_x_activation,
    "gradcam_abs": _gradcam,
    "deeplift_abs": _deeplift,
    "deepliftshap_abs": _deepliftshap,
    "gradientshap_abs": _gradientshap,
    "integrated_gradients_abs": _integrated_gradients,
    "conductance_abs": _conductance,
    "internal_influence_abs": _internal_influence,
    "feature_ablation_abs": _feature_ablation,
    "lrp_abs": _lrp,
}


def _bam(value: torch.Tensor) -> torch.Tensor:
    """Mean of |value| over every dim but the unit dim 1."""
    dims = [0, *range(2, value.dim())]
    return value.abs().mean(dim=dims)


def oracle(name: str, net: nn.Module, context: ImportanceContext, draws) -> dict:
    """u_l = bam(Captum's attribution of h_l) for every layer of the plain network ``net``."""
    call = CAPTUM[name]
    x = context.inputs.detach().clone().requires_grad_()
    return {
        key: _bam(call(net, post, x, context.targets, draws).detach())
        for key, post in net.outputs().items()
    }


def _draws(name: str, context: ImportanceContext):
    return IMPORTANCE_TYPES.get(name).compute.draws(context)


def relative_errors(ours: dict, reference: dict) -> dict[str, float]:
    """Per layer: max |ours - reference| / max |reference| (the layer's scale)."""
    assert list(ours) == list(reference)
    errors = {}
    for key, expected in reference.items():
        scale = float(expected.abs().max())
        assert scale > 0, f"layer {key}: all-zero reference, the comparison would be empty"
        errors[key] = float((ours[key] - expected).abs().max()) / scale
    return errors


def _assert_matches(ours: dict, reference: dict) -> None:
    assert list(ours) == list(reference)
    for key, expected in reference.items():
        scale = float(expected.abs().max())
        assert scale > 0, f"layer {key}: all-zero reference, the comparison would be empty"
        torch.testing.assert_close(
            ours[key], expected, rtol=RTOL, atol=RTOL * scale * 1e-2, msg=f"layer {key}"
        )


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("name", list(CAPTUM))
@pytest.mark.parametrize("implementation", ["shared", "captum_per_layer"])
def test_importance_equals_captum_on_a_plain_twin(name, backbone, implementation):
    model, context, twin = _setup(backbone)
    method = IMPORTANCE_TYPES.get(name).compute.method
    ours = attribution_measure(method, implementation=implementation).compute(context)
    reference = oracle(name, twin, context, _draws(name, context))
    assert list(ours) == list(model.backbone.masker.unit_counts)
    _assert_matches(ours, reference)


def test_the_twin_reproduces_the_backbone_forward():
    for backbone in BACKBONES:
        model, context, twin = _setup(backbone)
        model.eval()
        with torch.no_grad():
            expected = model(context.inputs, task_id=TASK, stage=Stage.TRAIN, scale=SCALE)
            logits = twin(context.inputs)
        torch.testing.assert_close(logits, expected.logits, rtol=1e-12, atol=1e-12)


def test_the_oracle_deeplift_sums_to_the_change_of_the_target_logit():
    """DeepLift's summation-to-delta, a check of the oracle's set-up, at every layer all paths
    go through, except two where Captum 0.9.0 itself breaks it: ResNet's stem (its rule for an
    overlapping max pool) and the CNN's conv1, below a ReLU that feeds a max pool directly
    (the ReLU's hook reads the pool's plain gradient, before the pool's own hook rewrites it:
    both hook one tensor). hatcl follows Captum there. A block's conv1 is bypassed by the
    shortcut."""
    for backbone in BACKBONES:
        _, context, twin = _setup(backbone)
        x, targets = context.inputs, context.targets
        with torch.no_grad():
            delta = twin(x) - twin(torch.zeros_like(x))
        delta = delta.gather(1, targets.view(-1, 1)).squeeze(1)
        for key, post in twin.outputs().items():
            if (
                backbone == "resnet18"
                and not key.endswith("_out")
                or (backbone, key)
                == (
                    "cnn",
                    "conv1",
                )
            ):
                continue
            total = _deeplift(twin, post, x, targets, None).detach().flatten(1).sum(1)
            torch.testing.assert_close(total, delta, rtol=1e-9, atol=1e-12, msg=key)


def test_attribution_leaves_no_hooks_on_the_taps():
    model, context, _ = _setup("cnn")
    for name in ("deeplift_abs", "lrp_abs", "integrated_gradients_abs"):
        for implementation in ("shared", "captum_per_layer"):
            method = IMPORTANCE_TYPES.get(name).compute.method
            attribution_measure(method, implementation=implementation).compute(context)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, module
        assert not module._backward_hooks, module


@pytest.mark.parametrize("wrong", ["target", "head"])
def test_a_wrong_oracle_does_not_match(wrong):
    model, context, twin = _setup("cnn")
    ours = IMPORTANCE_TYPES.get("gradient_x_activation_abs").compute(context)
    if wrong == "target":
        shifted = (context.targets + 1) % 4
        context = ImportanceContext(**{**context.__dict__, "targets": shifted})
    else:
        twin.head = _copy(model.heads.head(1))
    reference = oracle("gradient_x_activation_abs", twin, context, None)
    with pytest.raises(AssertionError):
        _assert_matches(ours, reference)
    assert max(relative_errors(ours, reference).values()) > 0.05


def error_table(implementation: str = "shared") -> dict[tuple[str, str], float]:
    """Largest relative error over the layers, per (type, backbone)."""
    table = {}
    for backbone in BACKBONES:
        for name in CAPTUM:
            _, context, twin = _setup(backbone)
            method = IMPORTANCE_TYPES.get(name).compute.method
            ours = attribution_measure(method, implementation=implementation).compute(context)
            reference = oracle(name, twin, context, _draws(name, context))
            table[name, backbone] = max(relative_errors(ours, reference).values())
    return table


if __name__ == "__main__":  # the report's table: python <this file> [shared|captum_per_layer]
    import sys

    torch.set_num_threads(1)
    chosen = sys.argv[1] if len(sys.argv) > 1 else "shared"
    errors = error_table(chosen)
    print(f"largest relative error per layer set ({chosen}); columns: {', '.join(BACKBONES)}")
    for name in CAPTUM:
        print(f"{name:28s}" + "".join(f"{errors[name, b]:12.2e}" for b in BACKBONES))
