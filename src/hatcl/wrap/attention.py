"""torch's attention modules rewritten into explicit projections wrap can follow.

``nn.MultiheadAttention`` keeps its q, k, v projections in one fused ``in_proj_weight`` and runs
them in a native kernel that torch.fx cannot look into; ``nn.TransformerEncoderLayer`` checks its
inputs with Python control flow. Before tracing, wrap replaces each by a module computing the same
function from separate ``nn.Linear`` layers (weights copied), so every projection gets its own
units and mask. Masks passed to the attention (``attn_mask``, ``key_padding_mask``) are refused.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ExplicitMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` (same outputs) with separate q, k, v and output Linears."""

    def __init__(self, source: nn.MultiheadAttention) -> None:
        super().__init__()
        if not source._qkv_same_embed_dim or source.bias_k is not None or source.add_zero_attn:
            raise ValueError(
                "wrap rewrites nn.MultiheadAttention with kdim == vdim == embed_dim and without "
                "add_bias_kv / add_zero_attn; write the attention out with nn.Linear layers"
            )
        dim, self.heads = source.embed_dim, source.num_heads
        self.batch_first, self.attn_drop = source.batch_first, nn.Dropout(source.dropout)
        for index, name in enumerate(("q", "k", "v")):
            linear = nn.Linear(dim, dim, bias=source.in_proj_bias is not None)
            rows = slice(index * dim, (index + 1) * dim)
            linear.to(source.in_proj_weight)
            with torch.no_grad():
                linear.weight.copy_(source.in_proj_weight[rows])
                if source.in_proj_bias is not None:
                    linear.bias.copy_(source.in_proj_bias[rows])
            setattr(self, name, linear)
        self.out_proj = nn.Linear(dim, dim, bias=source.out_proj.bias is not None)
        self.out_proj.load_state_dict(source.out_proj.state_dict())
        self.out_proj.to(source.out_proj.weight)

    def forward(
        self,
        query,
        key,
        value,
        key_padding_mask=None,
        need_weights=True,
        attn_mask=None,
        average_attn_weights=True,
        is_causal=False,
    ):
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise ValueError("wrap's rewritten nn.MultiheadAttention takes no attention masks")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        q, k, v = (self._heads(p(t)) for p, t in ((self.q, query), (self.k, key), (self.v, value)))
        weights = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
        weights = self.attn_drop(weights)
        out = (weights @ v).transpose(1, 2).flatten(2)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, (weights.mean(1) if average_attn_weights else weights)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)


class ExplicitEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (same outputs, no fast path) with explicit attention."""

    def __init__(self, source: nn.TransformerEncoderLayer) -> None:
        super().__init__()
        self.self_attn = ExplicitMultiheadAttention(source.self_attn)
        for name in ("linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"):
            setattr(self, name, getattr(source, name))
        self.norm_first = source.norm_first
        self.activation = source.activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        if src_mask is not None or src_key_padding_mask is not None or is_causal:
            raise ValueError("wrap's rewritten nn.TransformerEncoderLayer takes no masks")
        x = src
        if self.norm_first:
            x = x + self._attend(self.norm1(x))
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self._attend(x))
        return self.norm2(x + self._feed_forward(x))

    def _attend(self, x):
        return self.dropout1(self.self_attn(x, x, x, need_weights=False)[0])

    def _feed_forward(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


_EXPLICIT = {
    nn.TransformerEncoderLayer: ExplicitEncoderLayer,
    nn.MultiheadAttention: ExplicitMultiheadAttention,
}


def make_explicit(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with torch's attention modules replaced (the original is untouched)."""
    model = copy.deepcopy(model)
    if type(model) in _EXPLICIT:
        return _EXPLICIT[type(model)](model)
    for name, child in list(model.named_children()):
        replaced = make_explicit(child) if _has_attention(child) else child
        setattr(model, name, replaced)
    return model


def _has_attention(module: nn.Module) -> bool:
    return any(type(m) in _EXPLICIT for m in module.modules())
