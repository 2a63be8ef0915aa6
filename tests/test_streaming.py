"""`TokenQueue`: the text streamed token by token is the answer's text, at a constant cost."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from fo1_core.streaming import DONE, TokenQueue
from tests.conftest import REFERENCE_DIR

ANSWERS = [
    "<ground>red cup</ground><objects><region2><region5></objects>",  # special tokens
    "A cup (杯子) beside a cat 🐱, naïve café.",  # multi-byte characters split over tokens
    "  two  spaces, a tab\tand\nnew lines\n",  # spacing kept as it is
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(REFERENCE_DIR))


def _stream(tokenizer, ids: list[int]) -> list[str]:
    queue = TokenQueue(tokenizer)
    queue.put(torch.tensor([[1, 2, 3]]))  # generate() pushes the prompt first
    for token in ids:
        queue.put(torch.tensor([token]))
    queue.end()
    queue.events.put(DONE)
    return list(iter(queue.events.get, DONE))


@pytest.mark.parametrize("answer", ANSWERS)
def test_streamed_pieces_add_up_to_the_answer(tokenizer, answer: str) -> None:
    ids = tokenizer(answer, add_special_tokens=False).input_ids
    pieces = _stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=False)
    assert not any("\ufffd" in piece for piece in pieces)  # no half character shown


def test_each_token_decodes_only_the_last_few_ids(tokenizer) -> None:
    """A long answer streams at the same cost per token at its end as at its start."""
    lengths = []

    class Counting:
        def decode(self, ids: list[int], **kwargs) -> str:
            lengths.append(len(ids))
            return tokenizer.decode(ids, **kwargs)

    ids = tokenizer(" ".join(ANSWERS) * 20, add_special_tokens=False).input_ids
    pieces = _stream(Counting(), ids)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=False)
    assert len(ids) > 500 and max(lengths) <= 8
