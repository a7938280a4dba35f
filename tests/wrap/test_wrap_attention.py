"""torch's attention modules rewritten with explicit projections give torch's outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformer_nets import EncoderNet

import hatcl
from hatcl.masking.stage import Stage
from hatcl.wrap.attention import ExplicitEncoderLayer, ExplicitMultiheadAttention


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_equals_torchs_module(batch_first, need_weights):
    torch.manual_seed(0)
    torchs = nn.MultiheadAttention(12, 3, batch_first=batch_first).eval()
    ours = ExplicitMultiheadAttention(torchs).eval()
    q, k, v = (torch.randn(2, 5, 12) if batch_first else torch.randn(5, 2, 12) for _ in range(3))
    for average in (True, False):
        expected = torchs(q, k, v, need_weights=need_weights, average_attn_weights=average)
        got = ours(q, k, v, need_weights=need_weights, average_attn_weights=average)
        torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
        if need_weights:
            torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-6)
        else:
            assert got[1] is None and expected[1] is None


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_equals_torchs_module_in_float64(norm_first, activation):
    torch.manual_seed(0)
    torchs = nn.TransformerEncoderLayer(
        12, 3, 20, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).double()
    ours = ExplicitEncoderLayer(torchs)
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    for mode in (True, False):  # training (the slow path) and eval (torch's fast path)
        torchs.train(mode), ours.train(mode)
        torch.testing.assert_close(ours(x), torchs(x), rtol=1e-10, atol=1e-12)


def test_attention_masks_are_refused():
    ours = ExplicitMultiheadAttention(nn.MultiheadAttention(4, 2, batch_first=True))
    x = torch.randn(1, 3, 4)
    with pytest.raises(ValueError, match="takes no attention masks"):
        ours(x, x, x, attn_mask=torch.zeros(3, 3))


@pytest.mark.parametrize("norm_first", [True, False])
def test_a_network_of_encoder_layers_wraps_with_unchanged_outputs(norm_first):
    torch.manual_seed(0)
    net = EncoderNet(norm_first=norm_first).eval()
    x = torch.randn(3, 1, 8, 8)
    backbone = hatcl.wrap(net, x, unmasked="per_task")
    names = [w.name.removeprefix("network.") for w in backbone.weighted_layers]
    assert names[:5] == [
        "embed",
        "layers.0.self_attn.q",
        "layers.0.self_attn.k",
        "layers.0.self_attn.v",
        "layers.0.self_attn.out_proj",
    ]
    reads = {w.name.rsplit(".", 1)[-1]: w.input_mask_key for w in backbone.weighted_layers[:5]}
    assert reads["out_proj"] == "layers_0_self_attn_v"  # v's units reach the output projection
    backbone.setup_task(1)
    backbone.eval()
    for embedding in backbone.masker.embeddings.values():
        embedding.data.fill_(10.0)  # every unit on: the network's own function
    out = backbone(x, task_id=1, stage=Stage.VALIDATION, scale=400.0)
    torch.testing.assert_close(out.features, net(x), rtol=1e-5, atol=1e-6)
