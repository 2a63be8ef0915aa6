from __future__ import annotations

import pytest

from detect_tools.base import ProposalOptions
from detect_tools.grounding_dino import GroundingDinoProposer


@pytest.fixture(scope="module")
def proposer(grounding_dino_checkpoint):
    return GroundingDinoProposer(grounding_dino_checkpoint, device="cpu")


def test_each_category_is_scored_on_its_own_words(proposer):
    caption, tokens_of_class = proposer._caption(["Red cup", "person", "dog"])
    words = proposer.loaded.processor.tokenizer.convert_ids_to_tokens(caption["input_ids"][0])
    assert words == ["[CLS]", "red", "cup", ".", "person", ".", "dog", ".", "[SEP]"]
    assert [[words[k] for k in tokens] for tokens in tokens_of_class] == [
        ["red", "cup"],
        ["person"],
        ["dog"],
    ]


def test_categories_past_the_text_the_model_reads_are_left_out_not_refused(proposer, photo, caplog):
    # 40 categories of two tokens each ("thingN" is unknown to the tiny vocabulary, then ".")
    # against the tiny model's 32 text positions.
    classes = [f"thing{k}" for k in range(40)]
    _, tokens_of_class = proposer._caption(classes)
    read = [name for name, tokens in zip(classes, tokens_of_class, strict=True) if tokens]
    assert 0 < len(read) < len(classes)
    proposals = proposer.propose(photo, ", ".join(classes), ProposalOptions(threshold=0.0))
    assert len(proposals) > 0 and set(proposals.data["class_name"]) <= set(read)
    assert f"{len(classes) - len(read)} categories left out (thing{len(read)}," in caplog.text
