"""Concatenation along the unit dim (DenseNet): a layer fed by several masks.

Generated cases (two convs, two convs of equal width, a conv and the input, DenseNet blocks of
two and three layers) x (a conv, a flatten, a pooling then flatten, a mean, each then a layer),
plus two Linears and a Linear and the input: each wrapped network equals the same network with
the masks written out by hand, and records the parts of its concatenated input counted by hand.
HAT's gradient compensation of such a layer uses, per input column, the mask of the part the
column comes from (spec: min of the output unit's and the input unit's cumulative mask; the
input's columns are always on); on a small DenseNet task 1's logits after task 2 are
bit-identical to those after task 1.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from concat_nets import PARTS, SIDE, SOURCES, TAILS, ConvConcat, LinearConcat, TinyDenseNet
from wrap_helpers import SCALE, set_distinct_embeddings, train_task

import hatcl
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.algorithms.hat import HAT
from hatcl.masking.stage import Stage


def _check_against_hand_masks(net, x) -> object:
    backbone = hatcl.wrap(net, x)
    backbone.setup_task(1)
    masks = set_distinct_embeddings(backbone)
    out = backbone(x, task_id=1, stage=Stage.TRAIN, scale=SCALE)
    net.masks = masks
    torch.testing.assert_close(out.features, net(x))
    return backbone


def _segments(backbone, name: str):
    layer = next(w for w in backbone.weighted_layers if w.name == f"network.{name}")
    return layer.input_mask_key, layer.input_segments


@pytest.mark.parametrize(("source", "tail"), list(itertools.product(SOURCES, TAILS)))
def test_conv_concatenations_equal_the_hand_masked_network(source, tail):
    torch.manual_seed(0)
    backbone = _check_against_hand_masks(
        ConvConcat(source=source, tail=tail), torch.randn(3, 1, SIDE, SIDE)
    )
    repeat = {"conv": 1, "flatten": SIDE * SIDE, "pool_flatten": (SIDE // 2) ** 2, "mean": 1}
    parts = tuple((key, width, repeat[tail]) for key, width in PARTS[source])
    assert _segments(backbone, "out") == (None, parts)
    if source.startswith("dense"):
        assert _segments(backbone, "c1") == (None, ())
        assert _segments(backbone, "c2") == (None, ((None, 1, 1), ("c1", 3, 1)))
    if source == "dense3":
        assert _segments(backbone, "c3") == (None, ((None, 1, 1), ("c1", 3, 1), ("c2", 2, 1)))


@pytest.mark.parametrize("with_input", [False, True], ids=["two_linears", "linear_and_input"])
def test_linear_concatenations_equal_the_hand_masked_network(with_input):
    torch.manual_seed(0)
    backbone = _check_against_hand_masks(LinearConcat(with_input=with_input), torch.randn(3, 6))
    second = (None, 6, 1) if with_input else ("b", 3, 1)
    assert _segments(backbone, "out") == (None, (("a", 4, 1), second))


def test_a_concatenation_returned_as_the_features_is_refused():
    class Returned(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(6, 3), torch.nn.Linear(6, 2)

        def forward(self, x):
            return torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1)

    with pytest.raises(ValueError, match=r"output concatenates the units of several layers"):
        hatcl.wrap(Returned(), torch.randn(2, 6))


def _data(generator, count: int, task_id: int):
    x = torch.randn(count, 1, SIDE, SIDE, generator=generator)
    return x, (x[:, 0, task_id].mean(1) > 0).long()


def _start(learner, task_id: int):
    learner.start_task(task_id, num_classes=2, num_batches=3)
    learner.train()
    return torch.optim.Adam(learner.trainable_parameters(), lr=0.01)




@pytest.mark.parametrize("preact", [False, True], ids=["densenet", "densenet_bc"])
def test_hat_keeps_task_1_logits_of_a_densenet_bit_identical(preact):
    """With ``preact`` the per-task batch norms read the concatenation: the concatenated masks
    are applied again after them (else task 2 would train on task 1's masked-off channels)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    test = torch.randn(12, 1, SIDE, SIDE, generator=generator)
    backbone = hatcl.wrap(TinyDenseNet(preact=preact), test[:2], unmasked="per_task")
    learner = hatcl.Learner(backbone=backbone, algorithm=HAT())
    logits = []
    for task_id in (1, 2):
        _start(learner, task_id)
        train_task(learner, *_data(generator, 48, task_id))
        learner.eval()
        with torch.no_grad():
            logits.append(learner.predict(test, task_id=1))
    assert torch.equal(logits[0], logits[1])


def test_hat_compensates_each_column_with_its_parts_cumulative_mask():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)
    backbone = hatcl.wrap(TinyDenseNet(), torch.randn(2, 1, SIDE, SIDE))
    learner = hatcl.Learner(backbone=backbone, algorithm=HAT())
    _start(learner, 1)
    train_task(learner, *_data(generator, 32, 1))
    _start(learner, 2)
    x, y = _data(generator, 16, 2)
    loss = F.cross_entropy(learner(x, y), y) + learner.penalty()
    loss.backward()
    network = backbone.network
    raw = {name: getattr(network, name).weight.grad.clone() for name in ("d3", "fc")}
    learner.before_optimizer_step()
    cumulative = backbone.masker.store.cumulative()
    assert 0 < float(cumulative["d2"].sum()) < cumulative["d2"].numel() + 1
    # d3 reads cat(stem 4, d1 3, d2 3): column j's mask is its part's unit's mask
    columns = torch.cat([cumulative["stem"], cumulative["d1"], cumulative["d2"]])
    out = cumulative["d3"]
    expected = torch.empty_like(raw["d3"])
    for i in range(expected.shape[0]):
        for j in range(expected.shape[1]):
            weight_mask = min(float(out[i]), float(columns[j]))
            expected[i, j] = raw["d3"][i, j] * (1 - weight_mask)
    torch.testing.assert_close(network.d3.weight.grad, expected)
    # fc reads the flattened transition output (6 channels x 16 positions): one key, repeated
    fc_columns = cumulative["transition"].repeat_interleave(16)
    fc_mask = torch.minimum(cumulative["fc"][:, None], fc_columns[None, :])
    torch.testing.assert_close(network.fc.weight.grad, raw["fc"] * (1 - fc_mask))


def test_fan_out_importance_of_a_concatenated_key_sums_its_own_columns():
    """FG-AdaHAT's output-weight importance (OG: fan_out(|g(W_next)|)) of d1 counts d1's
    columns in every later layer reading it (d2, d3, transition), and no other column."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(3)
    backbone = hatcl.wrap(TinyDenseNet(), torch.randn(2, 1, SIDE, SIDE))
    algorithm = FGAdaHAT(importance_type="output_weight_abs_sum")
    learner = hatcl.Learner(backbone=backbone, algorithm=algorithm)
    _start(learner, 1)
    from hatcl.importance.base import ImportanceContext
    from hatcl.importance.registry import IMPORTANCE_TYPES

    x, y = _data(generator, 4, 1)
    model = learner.model
    output = model(x, task_id=1, stage=Stage.TRAIN, scale=1.0)
    context = ImportanceContext(
        model=model, task_id=1, inputs=x, targets=y, scale=1.0, output=output
    )
    values = IMPORTANCE_TYPES.get("output_weight_abs_sum").compute(context)
    network = backbone.network
    # d1's 3 channels are columns 4..6 of d2, d3 and the transition conv (after stem's 4)
    expected = sum(
        getattr(network, name).weight.detach().abs()[:, 4:7].sum(dim=(0, 2, 3))
        for name in ("d2", "d3", "transition")
    )
    torch.testing.assert_close(values["d1"], expected)


@pytest.mark.parametrize("preact", [False, True], ids=["densenet", "densenet_bc"])
def test_task_export_of_a_densenet_predicts_as_the_model_or_is_refused(preact):
    """A plain DenseNet exports exactly (the concatenations run at full width); re-applied
    concatenated masks after per-task norms are refused by export, saying so."""
    from hatcl.product.export import task_network

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(8, 1, SIDE, SIDE, generator=generator)
    backbone = hatcl.wrap(TinyDenseNet(preact=preact), x[:2], unmasked="per_task")
    learner = hatcl.Learner(backbone=backbone, algorithm=HAT())
    _start(learner, 1)
    train_task(learner, *_data(generator, 32, 1))
    learner.eval()
    if preact:
        with pytest.raises(ValueError, match="concatenation applied again .* not supported"):
            task_network(learner.model, task_id=1)
        return
    exported = task_network(learner.model, task_id=1)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), learner.predict(x, task_id=1))


def test_every_importance_type_runs_on_a_densenet():
    """One value per unit of every key, finite (stochastic_gates needs its plugin)."""
    from hatcl.backbones.model import ContinualModel
    from hatcl.heads.heads import TaskIncrementalHeads
    from hatcl.importance.base import ImportanceContext
    from hatcl.importance.registry import IMPORTANCE_TYPES

    torch.manual_seed(0)
    x = torch.randn(4, 1, SIDE, SIDE)
    backbone = hatcl.wrap(TinyDenseNet(), x[:2])
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    model.setup_task(task_id=1, num_classes=2)
    model.train()
    output = model(x, task_id=1, stage=Stage.TRAIN, scale=3.0)
    output.logits.logsumexp(1).sum().backward()
    targets = torch.zeros(4, dtype=torch.long)
    context = ImportanceContext(
        model=model, task_id=1, inputs=x, targets=targets, scale=3.0, output=output
    )
    units = dict(backbone.masker.unit_counts)
    for name in IMPORTANCE_TYPES.names():
        if name == "stochastic_gates":
            continue
        values = IMPORTANCE_TYPES.get(name).compute(context)
        assert {key: value.shape[0] for key, value in values.items()} == units, name
        assert all(torch.isfinite(value).all() for value in values.values()), name
