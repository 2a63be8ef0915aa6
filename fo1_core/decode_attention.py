"""Attention for decode steps on a fixed-size KV cache: one query token, grouped key/value heads.

Qwen2.5's KV heads are shared by groups of query heads. SDPA with a mask (which a fixed-size cache
always needs) cannot take grouped heads on CUDA, so transformers copies every KV head for each
query head of its group at every step, over every slot of the cache, compiled or not; the
compiled step cannot use transformers' own packed layout either. Here the query heads of a group
are stacked as the rows of one small matrix product against their shared KV head instead: the
cache is read once per step and never copied. Prompts (more than one query token) go to SDPA.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_grouped_decode"


def grouped_decode_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """`sdpa_attention_forward`'s contract: (batch, heads, tokens, dim) in, (batch, tokens, heads,
    dim) out, `attention_mask` as SDPA takes it (True or 0.0 where a token may attend)."""
    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, **kwargs
        )
    batch, heads, _, dim = query.shape
    rows = query.reshape(batch, heads // groups, groups, dim)
    scores = torch.matmul(rows, key.transpose(2, 3)) * (scaling or dim**-0.5)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(weights, value).reshape(batch, heads, 1, dim)
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, grouped_decode_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)
