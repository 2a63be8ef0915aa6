from __future__ import annotations

import numpy as np
import pytest
import torch

from detect_tools import registry
from detect_tools.base import ProposalOptions
from detect_tools.owlv2 import Owlv2ObjectnessProposer, Owlv2Proposer
from ui.proposing import Proposing


@pytest.fixture(scope="module")
def open_vocabulary(owlv2_checkpoint):
    return Owlv2Proposer(owlv2_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def objectness(owlv2_checkpoint):
    return Owlv2ObjectnessProposer(owlv2_checkpoint, device="cpu")


@pytest.mark.parametrize(
    "options",
    [
        ProposalOptions(threshold=0.0),  # everything the model scores
        ProposalOptions(threshold=0.0, nms_iou=None, max_count=5),  # cap below the 16 patches
        ProposalOptions(threshold=0.4),  # some random scores fall below
        ProposalOptions(threshold=1.0),  # nothing passes: a valid empty result
    ],
)
def test_objectness_keeps_the_contract(objectness, photo, contract, options):
    proposals = objectness.propose(photo, None, options)
    contract(proposals, photo, options, threshold=options.threshold)
    if options.threshold == 0.0:
        assert len(proposals) > 0


def test_objectness_proposals_carry_no_label(objectness, photo):
    proposals = objectness.propose(photo)
    assert len(proposals) > 0
    assert proposals.class_id is None and "class_name" not in proposals.data


def test_a_category_longer_than_the_text_model_reads_is_cut_not_refused(open_vocabulary, photo):
    # The tiny tokenizer spells by letters: this is far past the text model's 16 positions.
    long = "a red ceramic cup with a chipped handle on the left"
    proposals = open_vocabulary.propose(photo, f"{long}, person", ProposalOptions(0.0))
    assert set(proposals.data["class_name"]) <= {long, "person"}


def test_boxes_are_measured_on_the_padded_square_the_model_sees(owlv2_checkpoint, photo):
    """OWLv2 pads a wide image at its bottom to a square: a box it places at the square's
    middle top, half its side wide and high, covers the photo's middle 80 px by its top 80 px
    of 90 (a box read against the photo's own height would stop at 45)."""
    proposer = Owlv2ObjectnessProposer(owlv2_checkpoint, device="cpu", dtype=torch.float64)
    model = proposer.loaded.model
    with torch.no_grad():
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.copy_(torch.logit(torch.tensor([0.5, 0.25, 0.5, 0.5])))
        model.box_bias.zero_()  # every patch places the same box
    proposals = proposer.propose(photo, None, ProposalOptions(threshold=0.0))
    assert photo.size == (160, 90)
    assert len(proposals) == 1  # the same box sixteen times, one after NMS
    np.testing.assert_allclose(proposals.xyxy[0], [40, 0, 120, 80], atol=1e-3)


def test_both_share_one_loaded_model(owlv2_checkpoint):
    first = registry.get("owlv2", owlv2_checkpoint, "cpu")
    second = registry.get("owlv2-objects", owlv2_checkpoint, "cpu")
    assert first.loaded.model is second.loaded.model
    assert registry.with_shared_models({"owlv2": "/models/owl"})["owlv2-objects"] == "/models/owl"


def test_the_app_proposes_with_either_from_the_one_folder_given(owlv2_checkpoint, photo):
    """`app.py --proposer-checkpoint owlv2=FOLDER` offers, and runs, both ways of scoring."""
    proposing = Proposing("cpu", {"owlv2": str(owlv2_checkpoint)})
    assert proposing.default() == "owlv2-objects"
    anything = proposing.propose(photo, "owlv2-objects", None, None, 5)
    assert 0 < len(anything.boxes) <= 5 and set(anything.labels) == {""}
    named = proposing.propose(photo, "owlv2", "red cup, person", 0.0, 5)
    assert 0 < len(named.boxes) <= 5 and set(named.labels) <= {"red cup", "person"}
