"""What every proposer of boxes for the prompt's categories promises, each on its tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from detect_tools import registry
from detect_tools.base import ProposalOptions, ProposerError

CHECKPOINTS = {
    "omdet-turbo": "omdet_turbo_checkpoint",
    "grounding-dino": "grounding_dino_checkpoint",
    "owlv2": "owlv2_checkpoint",
}


@pytest.fixture(params=list(CHECKPOINTS))
def proposer(request):
    checkpoint = request.getfixturevalue(CHECKPOINTS[request.param])
    return registry.get(request.param, checkpoint, "cpu")


@pytest.mark.parametrize(
    "options",
    [
        ProposalOptions(threshold=0.0),  # everything the model scores
        ProposalOptions(threshold=0.0, nms_iou=None, max_count=5),  # cap below its candidates
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
    proposals = proposer.propose(photo, " Red cup ,person;; ", ProposalOptions(threshold=0.0))
    assert len(proposals) > 0
    names = np.array(["Red cup", "person"])
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
