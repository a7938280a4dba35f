"""The two ways to the diagonal Fisher (outer-product shortcut, vmap) give the same numbers."""

from __future__ import annotations

import torch
from torch import nn

from hatcl.algorithms import fisher
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.functional.ewc import linear_squared_gradient_sums
from hatcl.heads.heads import TaskIncrementalHeads


def test_linear_squared_gradient_sums_hand_values():
    # two samples: a = [1, 2], [3, 0]; g = [2], [-1] -> per-sample weight grads [2, 4], [-3, 0]
    inputs = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    gradient = torch.tensor([[2.0], [-1.0]])
    weight, bias = linear_squared_gradient_sums(inputs, output_gradient=gradient)
    torch.testing.assert_close(weight, torch.tensor([[4.0 + 9.0, 16.0 + 0.0]]))
    torch.testing.assert_close(bias, torch.tensor([4.0 + 1.0]))


def _mlp_model(tasks: int = 3) -> ContinualModel:
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(12,), hidden_dims=(16, 8), masked=False)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=8))
    for task in range(1, tasks + 1):
        model.setup_task(task_id=task, num_classes=4)
    return model


def _data(n: int = 37, shape: tuple[int, ...] = (12,)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, *shape, generator=generator), torch.randint(
        0, 4, (n,), generator=generator
    )


def test_outer_product_shortcut_equals_per_sample_gradients_on_the_mlp():
    model, (x, y) = _mlp_model(), _data()
    names = [n for n, _ in model.named_parameters()]
    assert fisher._linear_parameter_names(model) == set(names)
    shortcut = fisher._linear_fisher_sums(model, x, y, 2, 10, names=set(names))
    reference = fisher._vmap_fisher_sums(model, x, y, 2, 10, names=names)
    assert set(shortcut) == set(reference)
    for name in reference:
        torch.testing.assert_close(shortcut[name], reference[name], rtol=1e-5, atol=1e-7)
    # heads of other tasks get no Fisher; task 2's head does
    assert reference["heads.heads.1.weight"].abs().sum() == 0
    assert shortcut["heads.heads.2.weight"].abs().sum() > 0


def test_diagonal_fisher_leaves_gradients_and_mode_untouched():
    model, (x, y) = _mlp_model(), _data()
    model.train()
    first = next(model.parameters())
    first.grad = torch.ones_like(first)
    fisher.diagonal_fisher(model, inputs=x, targets=y, task_id=1)
    assert model.training
    torch.testing.assert_close(first.grad, torch.ones_like(first))


class _ReusedLinear(nn.Module):
    """One linear layer applied twice: the shortcut does not hold, vmap must be used."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x, *, task_id, stage):
        class Out:
            logits = self.linear(torch.tanh(self.linear(x)))

        return Out


def test_a_reused_linear_layer_falls_back_to_per_sample_gradients():
    torch.manual_seed(0)
    model = _ReusedLinear()
    x, y = _data(shape=(4,))
    result = fisher.diagonal_fisher(model, inputs=x, targets=y, task_id=1)
    reference = fisher._vmap_fisher_sums(
        model, x, y, 1, 128, names=["linear.weight", "linear.bias"]
    )
    for name in reference:
        torch.testing.assert_close(result[name], reference[name] / len(y))


def test_convolutional_models_mix_both_ways_and_match_per_sample_gradients():
    backbone = CNNBackbone(input_shape=(1, 8, 8), channels=(2, 3, 4), fc_dims=(5, 5), masked=False)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=5))
    model.setup_task(task_id=1, num_classes=4)
    names = [n for n, _ in model.named_parameters()]
    linear = fisher._linear_parameter_names(model)
    assert linear and set(names) - linear  # fully connected layers and convolutions
    x, y = _data(n=6, shape=(1, 8, 8))
    result = fisher.diagonal_fisher(model, inputs=x, targets=y, task_id=1, batch_size=4)
    model.eval()  # as diagonal_fisher runs it: no dropout
    reference = fisher._vmap_fisher_sums(model, x, y, 1, 4, names=names)
    assert set(result) == set(names)
    for name in names:
        torch.testing.assert_close(result[name], reference[name] / len(y), rtol=1e-5, atol=1e-8)
    # the Fisher becomes buffers of later losses: no autograd graph may hang on it
    assert not any(value.requires_grad for value in result.values())
