"""``nn.Embedding`` as a masked layer: its units are the embedding dim (the output's last dim).

The wrapped token model equals the one with the masks written out by hand; HAT's compensation of
the embedding table multiplies entry ``(token, j)`` by ``1 - a_j`` (spec: the weight's mask is
that of its output unit and its input unit; a table entry has no input unit), and of the Linear
reading it by ``1 - min(a_i, a_j)``; under HAT task 1's logits stay bit-identical after task 2.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hatcl
from hatcl.algorithms.hat import HAT
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage

VOCAB, TOKENS, SCALE = 12, 5, 3.0


class TokenNet(nn.Module):
    """Token embedding, a token-wise Linear, ReLU, the mean over tokens."""

    def __init__(self, **embedding_options) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 6, **embedding_options)
        self.fc = nn.Linear(6, 7)

    def forward(self, x):
        return torch.relu(self.fc(self.emb(x))).mean(1)


def _tokens(generator, count: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (count, TOKENS), generator=generator)


def test_the_embedding_dim_is_masked_as_written_by_hand():
    torch.manual_seed(0)
    net, x = TokenNet(), _tokens(torch.Generator().manual_seed(0), 4)
    backbone = hatcl.wrap(net, x)
    assert [
        (w.name, w.mask_key, w.input_mask_key, w.unit_dim) for w in backbone.weighted_layers
    ] == [
        ("network.emb", "emb", None, 1),
        ("network.fc", "fc", "emb", 0),
    ]
    assert backbone.masker.embeddings["emb"].numel() == 6
    masks = {}
    for index, (key, embedding) in enumerate(backbone.masker.embeddings.items()):
        values = torch.linspace(-1.0, 1.0, embedding.numel()) + 0.3 * index
        embedding.data = values.reshape(embedding.shape)
        masks[key] = torch.sigmoid(SCALE * values)
    out = backbone(x, task_id=1, stage=Stage.TRAIN, scale=SCALE)
    h = net.emb.weight[x] * masks["emb"]  # (batch, tokens, 6) masked along the last dim
    torch.testing.assert_close(out.activations["emb"], h.movedim(-1, 1))
    expected = torch.relu(h @ net.fc.weight.T + net.fc.bias) * masks["fc"]
    torch.testing.assert_close(out.features, (expected).mean(1))


def _learner(seed: int):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    backbone = hatcl.wrap(TokenNet(), _tokens(generator, 2))
    return backbone, hatcl.Learner(backbone=backbone, algorithm=HAT()), generator


def _task(generator, count: int, task_id: int):
    x = _tokens(generator, count)
    return x, ((x == task_id).sum(1) > (x == task_id + 3).sum(1)).long()


def _train(learner, task_id: int, x, y) -> None:
    learner.start_task(task_id, num_classes=2, num_batches=3)
    learner.train()
    optimizer = torch.optim.Adam(learner.trainable_parameters(), lr=0.02)
    for _ in range(3):
        for xb, yb in zip(x.split(16), y.split(16)):
            optimizer.zero_grad()
            (F.cross_entropy(learner(xb, yb), yb) + learner.penalty()).backward()
            learner.before_optimizer_step()
            optimizer.step()
            learner.after_optimizer_step()
    learner.end_task()


def test_hat_keeps_task_1_logits_of_a_token_model_bit_identical():
    backbone, learner, generator = _learner(1)
    test = _tokens(generator, 10)
    logits = []
    for task_id in (1, 2):
        _train(learner, task_id, *_task(generator, 48, task_id))
        learner.eval()
        with torch.no_grad():
            logits.append(learner.predict(test, task_id=1))
    assert torch.equal(logits[0], logits[1])
    cumulative = backbone.masker.store.cumulative()["emb"]
    assert 0 < float(cumulative.sum()) < 6  # some embedding units protected, some free


def test_hat_compensates_each_table_entry_with_its_units_cumulative_mask():
    backbone, learner, generator = _learner(2)
    _train(learner, 1, *_task(generator, 32, 1))
    learner.start_task(2, num_classes=2, num_batches=1)
    learner.train()
    x, y = _task(generator, 16, 2)
    (F.cross_entropy(learner(x, y), y) + learner.penalty()).backward()
    network = backbone.network
    raw = {name: getattr(network, name).weight.grad.clone() for name in ("emb", "fc")}
    learner.before_optimizer_step()
    cumulative = backbone.masker.store.cumulative()
    emb, fc = cumulative["emb"], cumulative["fc"]
    expected_emb = torch.empty_like(raw["emb"])
    for token in range(VOCAB):
        for unit in range(6):
            expected_emb[token, unit] = raw["emb"][token, unit] * (1 - float(emb[unit]))
    torch.testing.assert_close(network.emb.weight.grad, expected_emb)
    expected_fc = torch.empty_like(raw["fc"])
    for i in range(7):
        for j in range(6):
            expected_fc[i, j] = raw["fc"][i, j] * (1 - min(float(fc[i]), float(emb[j])))
    torch.testing.assert_close(network.fc.weight.grad, expected_fc)


def test_fan_in_of_an_embedding_unit_sums_its_column_over_the_tokens():
    torch.manual_seed(0)
    x = _tokens(torch.Generator().manual_seed(0), 3)
    backbone = hatcl.wrap(TokenNet(), x)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=7))
    model.setup_task(task_id=1, num_classes=2)
    output = model(x, task_id=1, stage=Stage.TRAIN, scale=1.0)
    context = ImportanceContext(
        model=model,
        task_id=1,
        inputs=x,
        targets=torch.zeros(3, dtype=torch.long),
        scale=1.0,
        output=output,
    )
    values = IMPORTANCE_TYPES.get("input_weight_abs_sum").compute(context)
    weight = backbone.network.emb.weight.detach()
    expected = torch.stack([weight[:, j].abs().sum() for j in range(6)])
    torch.testing.assert_close(values["emb"], expected)


@pytest.mark.parametrize("options", [{"max_norm": 1.0}, {"sparse": True}])
def test_an_embedding_rewriting_rows_or_with_sparse_gradients_is_refused(options):
    with pytest.raises(ValueError, match=r"embedding 'emb' has max_norm=.*use max_norm=None"):
        hatcl.wrap(TokenNet(**options), _tokens(torch.Generator().manual_seed(0), 2))
