from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from detect_tools import sam3
from detect_tools.base import ProposalOptions, ProposerError
from detect_tools.sam3 import Sam3LikeProposer, Sam3Proposer

# The tiny random model scores every query near 0.25 (sigmoid ≈ 0.5 twice): weak, so the
# adaptive threshold keeps the low one.


@pytest.fixture(scope="module")
def proposer(sam3_checkpoint):
    return Sam3Proposer(sam3_checkpoint, device="cpu")


@pytest.mark.parametrize(
    "options",
    [
        ProposalOptions(),  # default low threshold, NMS on
        ProposalOptions(nms_iou=None, max_count=7),  # cap below the 2 × 20 candidates
        ProposalOptions(threshold=0.9),  # nothing passes: empty, with an empty mask stack
    ],
)
def test_keeps_the_contract_with_masks(proposer, photo, contract, options):
    proposals = proposer.propose(photo, "red cup, person", options)
    threshold = sam3.LOW_THRESHOLD if options.threshold is None else options.threshold
    contract(proposals, photo, options, threshold)
    assert proposals.mask is not None, "masks are kept so answers can be drawn as masks"


def test_every_concept_contributes_labelled_instances(proposer, photo):
    proposals = proposer.propose(photo, "red cup, person", ProposalOptions(nms_iou=None))
    assert set(proposals.data["class_name"]) == {"red cup", "person"}
    assert len(proposals) == 2 * 20  # both concepts' queries, all above the low threshold


def test_confident_instances_raise_the_threshold(proposer, photo, monkeypatch):
    # With the confidence bar below the tiny model's best score, only "confident" ones stay.
    everything = proposer.propose(photo, "cup", ProposalOptions(nms_iou=None))
    bar = float(np.median(everything.confidence))
    monkeypatch.setattr(sam3, "CONFIDENT_THRESHOLD", bar)
    confident = proposer.propose(photo, "cup", ProposalOptions(nms_iou=None))
    assert 0 < len(confident) < len(everything)
    assert (confident.confidence >= bar).all()


def test_needs_a_prompt(proposer, photo):
    with pytest.raises(ProposerError, match="text prompt"):
        proposer.propose(photo)


def test_a_long_description_is_cut_to_what_sam3_reads(proposer, photo):
    # Longer than the text encoder's positions (the tiny tokenizer spells it letter by letter).
    pasted = "the small red ceramic coffee cup on the kitchen table next to the window"
    proposals = proposer.propose(photo, f"person, {pasted}", ProposalOptions(nms_iou=None))
    assert set(proposals.data["class_name"]) == {"person", pasted}


def test_only_the_kept_candidates_get_full_size_masks(proposer, photo, monkeypatch):
    upsampled = []
    paint_masks = proposer._paint_masks
    monkeypatch.setattr(
        proposer,
        "_paint_masks",
        lambda output, queries, *rest: (
            upsampled.append(len(queries)),
            paint_masks(output, queries, *rest),
        )[1],
    )
    proposals = proposer.propose(photo, "red cup, person", ProposalOptions(max_count=3))
    assert len(proposals) <= 3 and sum(upsampled) <= 3  # not the 2 × 20 candidates


def test_duplicates_are_sought_among_the_best_candidates_only(proposer, photo, monkeypatch):
    """Every concept's queries at threshold 0 (10 000 for 50 concepts) made an overlap table of
    gigabytes; the best `CANDIDATES` are more than any proposal keeps."""
    everything = proposer.propose(photo, "red cup, person", ProposalOptions(nms_iou=None))
    monkeypatch.setattr(sam3, "CANDIDATES", 25)  # of the 2 × 20 here
    sought = []
    monkeypatch.setattr(sam3, "finalize", lambda found, *rest: sought.append(found) or found[:0])
    proposer.propose(photo, "red cup, person", ProposalOptions(threshold=0.0))
    assert len(sought[0]) == 25
    assert sorted(sought[0].confidence) == sorted(everything.confidence)[-25:]


def test_full_size_masks_are_held_once(proposer):
    # 40 masks of a 12-megapixel photo are 480 MB: a copy for merging the concepts or sorting
    # them would double what a Propose takes. tracemalloc sees numpy's arrays (not torch's).
    image = Image.new("RGB", (800, 600), "white")
    tracemalloc.start()
    try:
        proposals = proposer.propose(image, "red cup, person", ProposalOptions(nms_iou=None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(proposals) == 40
    assert peak < 1.25 * proposals.mask.nbytes


@pytest.fixture(scope="module")
def like(sam3_checkpoint):
    return Sam3LikeProposer(sam3_checkpoint, device="cpu")


@pytest.mark.parametrize(
    "options",
    [ProposalOptions(nms_iou=None), ProposalOptions(max_count=3), ProposalOptions(threshold=0.9)],
)
def test_more_like_the_examples_keeps_the_contract_with_masks(like, photo, contract, options):
    proposals = like.propose(photo, None, options, [[10, 10, 50, 40], [100, 20, 150, 80]])
    threshold = sam3.LOW_THRESHOLD if options.threshold is None else options.threshold
    contract(proposals, photo, options, threshold)
    assert proposals.mask is not None and proposals.class_id is None
    if options.nms_iou is None:
        assert len(proposals) == 20  # one concept's queries, all above the low threshold


def test_the_example_boxes_reach_sam3_as_its_visual_prompt(like, photo):
    """As SAM3 reads boxes: centre and size as fractions of the image, each a positive example,
    under the concept "visual"."""
    seen = {}
    hook = like.loaded.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True
    )
    try:
        like.propose(photo, None, None, [[10, 10, 50, 40], [100, 20, 160, 90]])
    finally:
        hook.remove()
    expected = [[30 / 160, 25 / 90, 40 / 160, 30 / 90], [130 / 160, 55 / 90, 60 / 160, 70 / 90]]
    np.testing.assert_allclose(seen["input_boxes"][0].numpy(), expected, rtol=1e-6)
    assert seen["input_boxes_labels"].tolist() == [[1, 1]]
    tokens = like.loaded.processor.tokenizer.decode(seen["input_ids"][0], skip_special_tokens=True)
    assert tokens.replace(" ", "") == "visual"


def test_more_like_needs_an_example_box(like, photo):
    with pytest.raises(ProposerError, match="give it at least one"):
        like.propose(photo)
