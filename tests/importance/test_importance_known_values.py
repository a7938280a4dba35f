"""Known values of the 13 non-attribution importance types, computed by hand.

Fixed weights, gradients and activations on a linear network (MLP 3-2-2, head 2x2) and on a conv
network whose mask key ``c1`` has two producing layers (main conv and shortcut) and is consumed
by a linear layer through a flatten (4 features per channel).
"""

import pytest
import torch
from torch.testing import assert_close

from hatcl.backbones.base import BackboneOutput
from hatcl.backbones.model import ModelOutput
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES


def _set(parameter, value, grad):
    with torch.no_grad():
        parameter.copy_(torch.tensor(value).reshape(parameter.shape))
    parameter.grad = torch.tensor(grad).reshape(parameter.shape)


def _context(model, activations, task_id=1):
    batch = next(iter(activations.values())).shape[0]
    output = ModelOutput(
        logits=torch.zeros(batch, 2),
        backbone=BackboneOutput(
            features=torch.zeros(batch, 2),
            masks={key: torch.ones(a.shape[1]) for key, a in activations.items()},
            activations=activations,
        ),
    )
    return ImportanceContext(
        model=model,
        task_id=task_id,
        inputs=torch.zeros(batch, 3),
        targets=torch.zeros(batch, dtype=torch.long),
        scale=1.0,
        output=output,
    )


# -- linear network ---------------------------------------------------------------------------
# W1 = [[1,-2,0],[3,1,-1]]     fan_in|W1| = [3, 5]
# W2 = [[2,-1],[0.5,4]]        fan_in|W2| = [3, 4.5], fan_out|W2| = [2.5, 5]
# H  = [[1,-1],[-2,3]]         fan_out|H| = [3, 4]
# g1 = [[.1,-.2,.3],[0,.5,-.5]]  fan_in|g1| = [.6, 1], fan_in g1^2 = [.14, .5]
# g2 = [[1,-2],[3,0]]          fan_in|g2| = [3, 3], fan_in g2^2 = [5, 9],
#                              fan_out|g2| = [4, 2], fan_out g2^2 = [10, 4]
# gH = [[.5,0],[-1,2]]         fan_out|gH| = [1.5, 2], fan_out gH^2 = [1.25, 4]
# h1 = [[1,0],[3,2]] -> bam [2, 1];  h2 = [[0,4],[2,2]] -> bam [1, 3]
LINEAR_EXPECTED = {
    "input_weight_abs_sum": ([3, 5], [3, 4.5]),
    "output_weight_abs_sum": ([2.5, 5], [3, 4]),
    "input_weight_gradient_abs_sum": ([0.6, 1.0], [3, 3]),
    "output_weight_gradient_abs_sum": ([4, 2], [1.5, 2]),
    "activation_abs": ([2, 1], [1, 3]),
    "input_weight_abs_sum_x_activation_abs": ([6, 5], [3, 13.5]),
    "output_weight_abs_sum_x_activation_abs": ([5, 5], [3, 12]),
    "input_weight_gradient_square_sum": ([0.14, 0.5], [5, 9]),
    "output_weight_gradient_square_sum": ([10, 4], [1.25, 4]),
    "input_weight_gradient_square_sum_x_activation_abs": ([0.28, 0.5], [5, 27]),
    "output_weight_gradient_square_sum_x_activation_abs": ([20, 4], [1.25, 12]),
    "cbp_adaptation": ([1 / 3, 1 / 5], [1 / 3, 1 / 4.5]),
    "cbp_adaptive_contribution": ([2.5 * 2 / 3, 5 * 1 / 5], [3 * 1 / 3, 4 * 3 / 4.5]),
}

# -- conv network -------------------------------------------------------------------------------
# conv_a: ch0 [[1,-2],[0,1]], ch1 [[2,0],[-1,3]]; conv_b (1x1): [.5, -1.5]
#   fan_in|W| of c1 = [4 + .5, 6 + 1.5] = [4.5, 7.5]
# fc (2x8): row0 [1,0,0,1, 2,0,0,0], row1 [0,-1,1,0, 0,0,-3,1]
#   fan_in = [4, 6]; fan_out per feature [1,1,1,1, 2,0,3,1] -> per channel [4, 6]
# head [[1,2],[-1,0]]: fan_out = [2, 2]
# grads: conv_a ch0 [[.5,0],[0,-.5]], ch1 [[1,1],[0,0]] -> |.| [1, 2], sq [.5, 2]
#        conv_b [1, -2] -> |.| [1, 2], sq [1, 4]   => c1: IG [2, 4], g^2 [1.5, 6]
#        fc row0 all .5, row1 [0,0,0,0,1,1,1,1] -> IG [4, 4], g^2 [2, 4];
#           fan_out|.| per channel [2, 6], fan_out sq per channel [1, 5]
#        head [[1,0],[0,-3]] -> fan_out|.| [1, 3], sq [1, 9]
# h_c1: ch0 [[1,2],[3,2]] -> bam 2, ch1 [[0,4],[0,0]] -> bam 1;  h_fc [[5, .5]] -> [5, .5]
CONV_EXPECTED = {
    "input_weight_abs_sum": ([4.5, 7.5], [4, 6]),
    "output_weight_abs_sum": ([4, 6], [2, 2]),
    "input_weight_gradient_abs_sum": ([2, 4], [4, 4]),
    "output_weight_gradient_abs_sum": ([2, 6], [1, 3]),
    "activation_abs": ([2, 1], [5, 0.5]),
    "input_weight_abs_sum_x_activation_abs": ([9, 7.5], [20, 3]),
    "output_weight_abs_sum_x_activation_abs": ([8, 6], [10, 1]),
    "input_weight_gradient_square_sum": ([1.5, 6], [2, 4]),
    "output_weight_gradient_square_sum": ([1, 5], [1, 9]),
    "input_weight_gradient_square_sum_x_activation_abs": ([3, 6], [10, 2]),
    "output_weight_gradient_square_sum_x_activation_abs": ([2, 5], [5, 4.5]),
    "cbp_adaptation": ([1 / 4.5, 1 / 7.5], [1 / 4, 1 / 6]),
    "cbp_adaptive_contribution": ([4 * 2 / 4.5, 6 * 1 / 7.5], [2 * 5 / 4, 2 * 0.5 / 6]),
}


@pytest.fixture
def linear_context(mlp_model):
    backbone = mlp_model.backbone
    _set(
        backbone.linears[0].weight,
        [[1.0, -2, 0], [3, 1, -1]],
        [[0.1, -0.2, 0.3], [0, 0.5, -0.5]],
    )
    _set(backbone.linears[1].weight, [[2.0, -1], [0.5, 4]], [[1.0, -2], [3, 0]])
    _set(mlp_model.heads.head(1).weight, [[1.0, -1], [-2, 3]], [[0.5, 0], [-1, 2]])
    activations = {
        "fc1": torch.tensor([[1.0, 0], [3, 2]]),
        "fc2": torch.tensor([[0.0, 4], [2, 2]]),
    }
    return _context(mlp_model, activations)


@pytest.fixture
def conv_context(conv_model):
    backbone = conv_model.backbone
    _set(
        backbone.conv_a.weight,
        [1.0, -2, 0, 1, 2, 0, -1, 3],
        [0.5, 0, 0, -0.5, 1, 1, 0, 0],
    )
    _set(backbone.conv_b.weight, [0.5, -1.5], [1.0, -2])
    _set(
        backbone.fc.weight,
        [[1.0, 0, 0, 1, 2, 0, 0, 0], [0, -1, 1, 0, 0, 0, -3, 1]],
        [[0.5] * 8, [0.0] * 4 + [1.0] * 4],
    )
    _set(conv_model.heads.head(1).weight, [[1.0, 2], [-1, 0]], [[1.0, 0], [0, -3]])
    activations = {
        "c1": torch.tensor([[[[1.0, 2], [3, 2]], [[0, 4], [0, 0]]]]),
        "fc": torch.tensor([[5.0, 0.5]]),
    }
    return _context(conv_model, activations)


def test_tables_cover_the_thirteen_non_attribution_types():
    assert set(LINEAR_EXPECTED) == set(CONV_EXPECTED)
    assert len(LINEAR_EXPECTED) == 13
    assert set(LINEAR_EXPECTED) <= set(IMPORTANCE_TYPES.names())


@pytest.mark.parametrize("name", sorted(LINEAR_EXPECTED))
def test_linear_known_values(name, linear_context):
    result = IMPORTANCE_TYPES.get(name).compute(linear_context)
    first, second = LINEAR_EXPECTED[name]
    assert set(result) == {"fc1", "fc2"}
    assert_close(result["fc1"], torch.tensor(first, dtype=torch.float32))
    assert_close(result["fc2"], torch.tensor(second, dtype=torch.float32))


@pytest.mark.parametrize("name", sorted(CONV_EXPECTED))
def test_conv_known_values(name, conv_context):
    result = IMPORTANCE_TYPES.get(name).compute(conv_context)
    first, second = CONV_EXPECTED[name]
    assert set(result) == {"c1", "fc"}
    assert_close(result["c1"], torch.tensor(first, dtype=torch.float32))
    assert_close(result["fc"], torch.tensor(second, dtype=torch.float32))


def test_last_layer_uses_the_current_tasks_head(mlp_model):
    """W_next of the last layer is the head of the task being trained, not task 1's."""
    mlp_model.setup_task(task_id=2, num_classes=2)
    with torch.no_grad():
        mlp_model.heads.head(1).weight.fill_(1.0)
        mlp_model.heads.head(2).weight.copy_(torch.tensor([[2.0, -1], [1, 0]]))
    activations = {"fc1": torch.ones(1, 2), "fc2": torch.ones(1, 2)}
    result = IMPORTANCE_TYPES.get("output_weight_abs_sum").compute(
        _context(mlp_model, activations, task_id=2)
    )
    assert_close(result["fc2"], torch.tensor([3.0, 1.0]))


def test_missing_gradient_counts_as_zero(mlp_model):
    activations = {"fc1": torch.ones(1, 2), "fc2": torch.ones(1, 2)}
    result = IMPORTANCE_TYPES.get("input_weight_gradient_abs_sum").compute(
        _context(mlp_model, activations)
    )
    assert_close(result["fc1"], torch.zeros(2))
