"""A region's confidence from the probabilities of the tokens that spell its reference, whether
the tokenizer has one token per region tag or spells it in pieces."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from fo1_core.confidence import TokenProbabilities, region_confidences
from fo1_core.templates import region_token
from tests.conftest import REFERENCE_DIR

SPLIT_TOKENS = Path(__file__).parent / "fixtures" / "fo1_variants" / "split_tokens"


@pytest.mark.parametrize("folder", [REFERENCE_DIR, SPLIT_TOKENS], ids=["one-token", "in-pieces"])
def test_a_region_is_as_sure_as_its_first_references_tokens_together(folder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def ids(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    pieces = [ids("cups "), ids(region_token(3)), ids(" and "), ids(region_token(12))]
    pieces += [ids(" again "), ids(region_token(3))]
    answer = [i for piece in pieces for i in piece]
    probabilities = [0.9 - 0.01 * n for n in range(len(answer))]
    starts = [sum(map(len, pieces[:k])) for k in range(len(pieces))]

    def product_of(k: int) -> float:
        return math.prod(probabilities[starts[k] : starts[k] + len(pieces[k])])

    confidences = region_confidences(tokenizer, answer, probabilities)
    assert confidences.keys() == {3, 12}
    assert math.isclose(confidences[3], product_of(1))  # the first of its two references
    assert math.isclose(confidences[12], product_of(3))
    if folder == SPLIT_TOKENS:
        assert len(pieces[1]) > 1


def test_an_answer_cut_before_its_last_probability_reads_only_what_was_scored() -> None:
    tokenizer = AutoTokenizer.from_pretrained(REFERENCE_DIR)
    answer = tokenizer.encode(region_token(0) + region_token(1), add_special_tokens=False)
    assert region_confidences(tokenizer, answer, [0.5]) == {0: 0.5}
    assert region_confidences(tokenizer, [], []) == {}


def test_the_recorded_probability_is_the_greedy_tokens_and_the_scores_are_left_alone() -> None:
    recorder = TokenProbabilities()
    for step in ([[2.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]):
        scores = torch.tensor(step)
        assert recorder(torch.zeros(1, 1, dtype=torch.long), scores) is scores
    expected = [math.exp(2) / (math.exp(2) + 2), 1 / 3]
    assert recorder.probabilities() == pytest.approx(expected)
    recorder.reset()
    assert recorder.probabilities() == []
