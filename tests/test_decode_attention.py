"""The grouped single-token attention of fixed-size-cache decoding computes what SDPA computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from fo1_core.decode_attention import grouped_decode_attention


def _attention_inputs(tokens: int, slots: int = 12, heads: int = 8, kv_heads: int = 2):
    torch.manual_seed(0)
    module = nn.Module()
    module.num_key_value_groups = heads // kv_heads
    module.is_causal = True
    query = torch.randn(1, heads, tokens, 16)
    key, value = torch.randn(2, 1, kv_heads, slots, 16).unbind(0)
    # A fixed-size cache: only the first slots are filled, and each token sees those before it.
    filled = slots - 4
    seen = torch.arange(slots) < (filled - tokens + 1 + torch.arange(tokens)[:, None])
    return module, query, key, value, seen[None, None]


@pytest.mark.parametrize("mask_kind", ["bool", "additive"])
def test_one_token_against_grouped_heads_matches_sdpa(mask_kind: str) -> None:
    module, query, key, value, seen = _attention_inputs(tokens=1)
    mask = seen if mask_kind == "bool" else torch.zeros(seen.shape).masked_fill(~seen, -torch.inf)
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    output, _ = grouped_decode_attention(module, query, key, value, mask, scaling=0.25)
    assert output.shape == expected.shape == (1, 1, 8, 16)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-6)


def test_prompts_of_several_tokens_go_to_sdpa_unchanged() -> None:
    module, query, key, value, seen = _attention_inputs(tokens=3)
    expected, _ = sdpa_attention_forward(module, query, key, value, seen, scaling=0.25)
    output, _ = grouped_decode_attention(module, query, key, value, seen, scaling=0.25)
    assert torch.equal(output, expected)
