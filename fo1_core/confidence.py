"""How sure the model was of each region it named.

FO1 answers by naming boxes, so the probability greedy decoding gave a region's reference is the
model's own word on that box: high where `<region2>` was the only likely next token, low where
other regions, or closing the list, were nearly as likely. A region's confidence is the product
of the probabilities of its reference's tokens where the answer first names it. It is the
model's probability, not a calibrated detection score.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
from transformers import LogitsProcessor

from fo1_core.templates import REGION_REFERENCE


class TokenProbabilities(LogitsProcessor):
    """Records, at each step of greedy decoding, the probability of the token it picks (the most
    likely one), and leaves the scores as they are."""

    def __init__(self) -> None:
        self._steps: list[torch.Tensor] = []

    def reset(self) -> None:
        self._steps.clear()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # Kept where it was computed: reading it now would wait for the GPU at every token.
        self._steps.append(scores.float().softmax(dim=-1).amax(dim=-1))
        return scores

    def probabilities(self) -> list[float]:
        """One per generated token, in order."""
        return torch.cat(self._steps).tolist() if self._steps else []


def region_confidences(
    tokenizer, token_ids: Sequence[int], probabilities: Sequence[float]
) -> dict[int, float]:
    """Each region the answer `token_ids` names, with the probability of its first reference:
    the product of `probabilities` (one per id) over the tokens that spell it."""
    ids = list(token_ids[: len(probabilities)])

    @cache
    def chars_of(count: int) -> int:
        """How long the text of the first `count` tokens is."""
        return len(tokenizer.decode(ids[:count], skip_special_tokens=False))

    first: dict[int, tuple[int, int]] = {}
    for match in REGION_REFERENCE.finditer(tokenizer.decode(ids, skip_special_tokens=False)):
        first.setdefault(int(match["index"]), match.span())
    confidences = {}
    for region, (start, end) in first.items():
        # The first token whose text reaches past the reference's start, and those up to its end.
        token = bisect.bisect_right(range(1, len(ids) + 1), start, key=chars_of)
        spelt = []
        while token < len(ids) and chars_of(token) < end:
            spelt.append(probabilities[token])
            token += 1
        confidences[region] = math.prod(spelt)
    return confidences


def box_scores(confidences: dict[int, float], num_boxes: int) -> np.ndarray:
    """`(num_boxes,)`: each box's confidence, NaN for those the answer does not name; the
    `scores` of `fo1_core.answers.to_detections`."""
    scores = np.full(num_boxes, np.nan, dtype=np.float32)
    for region, confidence in confidences.items():
        if region < num_boxes:
            scores[region] = confidence
    return scores
