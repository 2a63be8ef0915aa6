"""The `graphed` decoder's model calls in generate(): decode steps and question prefills, replayed.

A follow-up question about cached image, boxes and prefix is left with a prefill of its own few
dozen tokens. That is a few milliseconds of GPU work, but run uncompiled it waits on the CPU
launching the 3B model's kernels one by one, as long as an uncompiled decode step: on an H100 the
follow-up took 38 ms where a replayed step takes about 6. generate() hands the prompt to the same
hook as its decode steps when it prefills in chunks of `PREFILL_CHUNK` tokens, so both are
recorded (`recorded_step.py`).

A recording serves one length only, so each chunk is padded at its end to the next of
`PREFILL_BUCKETS`: a handful of recordings serve questions of any length. The padding changes
nothing the question's tokens compute: it comes after them, so causal attention keeps it out of
their results; the logits are taken at the question's last token; the padding's keys and values
land in the cache slots after the question, and the cache's fill level is wound back over them,
inside the recording, so the answer's tokens overwrite them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from transformers import StaticCache

from fo1_core.recorded_step import RecordedStep

PREFILL_BUCKETS = (16, 32, 64, 128, 256)
"""Lengths prefill chunks are padded to, one recording each."""

PREFILL_CHUNK = PREFILL_BUCKETS[-1]
"""generate()'s `prefill_chunk_size` for questions that continue a cached prefix."""


def padded_length(tokens: int) -> int | None:
    """The bucket a prefill chunk of `tokens` tokens is padded to, if any."""
    return next((bucket for bucket in PREFILL_BUCKETS if bucket >= tokens), None)


def _forward_then_unpad(
    forward: Callable[..., Any], padding: torch.Tensor | None = None, **inputs: Any
) -> Any:
    """`forward(**inputs)`, then the cache's fill level wound back by `padding` tokens."""
    output = forward(**inputs)
    if padding is not None:
        for layer in inputs["past_key_values"].layers:
            layer.cumulative_length.sub_(padding)
    return output


def _repeat_last(values: torch.Tensor, extra: int, dim: int) -> torch.Tensor:
    """`values` with `extra` copies of its last entry along `dim` appended."""
    size = list(values.shape)
    size[dim] = extra
    return torch.cat([values, values.narrow(dim, -1, 1).expand(size)], dim)


def pad_prompt(inputs: dict[str, Any], length: int) -> dict[str, Any]:
    """A prefill chunk's model inputs padded to `length` tokens, with the logits kept at its real
    last token and `padding` saying how many tokens to wind the cache back by afterwards."""
    tokens = inputs["input_ids"].shape[1]
    extra = length - tokens
    masks = inputs["attention_mask"]
    # A padding token attends where the last real one does: every row of attention needs a key,
    # or the padding's cached values turn NaN, and NaN poisons even fully masked slots.
    pad_rows = partial(_repeat_last, extra=extra, dim=-2)
    device = inputs["input_ids"].device
    positions = inputs["position_ids"]
    return inputs | {
        "input_ids": _repeat_last(inputs["input_ids"], extra, dim=-1),
        "mm_token_type_ids": _repeat_last(inputs["mm_token_type_ids"], extra, dim=-1),
        "position_ids": torch.cat(
            [positions, positions[..., -1:] + torch.arange(1, extra + 1, device=device)], dim=-1
        ),
        "attention_mask": (
            {kind: pad_rows(mask) for kind, mask in masks.items()}
            if isinstance(masks, dict)
            else pad_rows(masks)
        ),
        "logits_to_keep": torch.tensor([tokens - 1], device=device),
        "padding": torch.tensor(extra, device=device),
    }


class GraphedForward:
    """generate()'s model call on the fixed-size cache: decode steps as they come, prefill chunks
    padded to a bucket; each replayed from its recording (see `RecordedStep`).

    A chunk with no bucket, without 4-D masks to pad, or with too few free cache slots after it
    for the padding, runs as it comes, unrecorded; so does every call once recording has failed.
    """

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.forward = forward
        self.recorded = RecordedStep(partial(_forward_then_unpad, forward))

    @property
    def recordings(self) -> int:
        return self.recorded.recordings

    @property
    def failed(self) -> str | None:
        return self.recorded.failed

    def __call__(self, **inputs: Any) -> Any:
        if self.recorded.failed is not None:  # padding would only add work
            return self.forward(**inputs)
        tokens = inputs["input_ids"].shape[1]
        if tokens == 1:
            return self.recorded(**inputs)
        length = padded_length(tokens)
        if (
            length is None
            or not _rows_to_pad(inputs["attention_mask"])
            or length > _free_slots(inputs["past_key_values"])
        ):
            return self.forward(**inputs)
        return self.recorded(**pad_prompt(inputs, length))


def _rows_to_pad(masks: torch.Tensor | dict[str, Any]) -> bool:
    """True when every mask has a row per query token (4-D), which padding extends; attention
    given no mask or a 2-D one (flash-attention) gets its chunks as they come."""
    masks = masks.values() if isinstance(masks, dict) else [masks]
    return all(isinstance(mask, torch.Tensor) and mask.dim() == 4 for mask in masks)


def _free_slots(cache: StaticCache) -> int:
    """Slots after the cached tokens: a host read of the fill level, once per prefill chunk."""
    layer = cache.layers[0]
    return layer.get_max_length() - int(layer.get_seq_length())
