from __future__ import annotations

import numpy as np
import pytest

from detect_tools.base import ProposalOptions, ProposerError
from detect_tools.omdet_turbo import OmDetTurboProposer


@pytest.fixture(scope="module")
def proposer(omdet_turbo_checkpoint):
    return OmDetTurboProposer(omdet_turbo_checkpoint, device="cpu")


@pytest.mark.parametrize(
    "options",
    [
        ProposalOptions(threshold=0.0),  # everything the model scores
        ProposalOptions(threshold=0.0, nms_iou=None, max_count=5),  # cap below the 30 queries
        ProposalOptions(threshold=0.45),  # some random scores fall below
        ProposalOptions(threshold=1.0),  # nothing passes: a valid empty result
    ],
)
def test_keeps_the_contract(proposer, photo, contract, options):
    proposals = proposer.propose(photo, "red cup, person", options)
    contract(proposals, photo, options, threshold=options.threshold)
    if options.threshold == 0.0:
        assert len(proposals) > 0


def test_labels_are_the_prompted_classes(proposer, photo):
    proposals = proposer.propose(photo, " red cup ,person;; ", ProposalOptions(threshold=0.0))
    assert set(proposals.data["class_name"]) <= {"red cup", "person"}
    names = np.array(["red cup", "person"])
    assert (names[proposals.class_id] == proposals.data["class_name"]).all()


@pytest.mark.parametrize(
    "text",
    [
        None,  # no prompt at all
        "  ",  # blank
        ", ;",  # only separators
    ],
)
def test_needs_a_category(proposer, photo, text):
    with pytest.raises(ProposerError, match="red cup, person"):
        proposer.propose(photo, text)
