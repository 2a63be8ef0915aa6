from __future__ import annotations

import json
import re

import numpy as np
import pytest
import supervision as sv
import torch
from transformers.image_transforms import center_to_corners_format

from detect_tools import registry
from detect_tools.__main__ import main
from detect_tools.base import ProposalOptions, ProposerError, check_image
from detect_tools.owlv2 import Owlv2LikeProposer, Owlv2ObjectnessProposer, Owlv2Proposer
from ui.proposing import Proposing


@pytest.fixture(scope="module")
def open_vocabulary(owlv2_checkpoint):
    return Owlv2Proposer(owlv2_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def objectness(owlv2_checkpoint):
    return Owlv2ObjectnessProposer(owlv2_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def like(owlv2_checkpoint):
    return Owlv2LikeProposer(owlv2_checkpoint, device="cpu")


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


@pytest.mark.parametrize(
    "options",
    [
        ProposalOptions(),  # everything, the best match scored 1
        ProposalOptions(nms_iou=None, max_count=5),
        ProposalOptions(threshold=0.99),  # the closest matches only
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_more_like_the_examples_keeps_the_contract(
    owlv2_checkpoint, photo, contract, options, dtype
):
    like = Owlv2LikeProposer(owlv2_checkpoint, device="cpu", dtype=dtype)
    proposals = like.propose(photo, None, options, [[10, 10, 50, 40], [100, 20, 150, 80]])
    contract(proposals, photo, options, threshold=options.threshold or 0.0)
    assert len(proposals) > 0 and proposals.confidence[0] == 1.0
    assert proposals.class_id is None and "class_name" not in proposals.data


@pytest.mark.parametrize(
    ("examples", "problem"),
    [
        (None, "give it at least one"),
        ([], "give it at least one"),
        ([[200, 100, 300, 200]], "give it at least one"),  # wholly outside the 160×90 photo
        ([[5, 5, 5.2, 30]], "give it at least one"),  # under a pixel wide
        ([[1, 2, 3]], "[x1, y1, x2, y2] numbers"),
        ([["a", 2, 3, 4]], "[x1, y1, x2, y2] numbers"),
    ],
)
def test_more_like_needs_an_example_box(like, photo, examples, problem):
    with pytest.raises(ProposerError, match=re.escape(problem)):
        like.propose(photo, None, None, examples)


@pytest.mark.parametrize(
    "examples",
    [
        # another proposer's detections, found more of
        sv.Detections(xyxy=np.array([[10, 10, 50, 40]], dtype=np.float32)),
        torch.tensor([[10, 10, 50, 40]], dtype=torch.bfloat16),  # a model's output as it ran
    ],
    ids=["detections", "bfloat16-tensor"],
)
def test_more_like_takes_examples_as_detectors_hand_them_over(like, photo, examples):
    expected = like.propose(photo, None, None, [[10, 10, 50, 40]])
    np.testing.assert_array_equal(like.propose(photo, None, None, examples).xyxy, expected.xyxy)


def test_more_like_finds_the_example_first_where_likeness_is_all_that_scores(
    owlv2_checkpoint, photo
):
    """With the head's per-patch shift and scale made constant, a patch's score is its
    likeness to the example: the patch whose box is the example's own comes first, scored 1."""
    like = Owlv2LikeProposer(owlv2_checkpoint, device="cpu", dtype=torch.float64)
    head = like.loaded.model.class_head
    with torch.no_grad():
        for layer in (head.logit_shift, head.logit_scale):
            layer.weight.zero_()
            layer.bias.fill_(1.0)
    _, boxes = like._patches(check_image(photo))
    corners = center_to_corners_format(boxes[0]) * max(photo.size)
    for patch in (3, 6):
        example = corners[patch].tolist()
        proposals = like.propose(photo, None, ProposalOptions(nms_iou=None), [example])
        cut = np.clip(example, 0, [160, 90, 160, 90])
        np.testing.assert_allclose(proposals.xyxy[0], cut, atol=1e-3)
        assert proposals.confidence[0] == 1.0 and proposals.confidence[1] < 1.0


def test_the_command_line_takes_example_boxes(owlv2_checkpoint, image_file, capsys):
    argv = ["--proposer", "owlv2-like", "--image", str(image_file), "--device", "cpu"]
    argv += ["--checkpoint", str(owlv2_checkpoint), "--max-count", "3"]
    assert main([*argv, "--like", "10,10,60,40", "--like", "5,5,20,20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["proposer"] == "owlv2-like" and 0 < printed["count"] <= 3
    assert main(argv) == 2
    assert "give it at least one" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--like", "10,10,60"])
    assert "expected X1,Y1,X2,Y2 in image pixels; got '10,10,60'" in capsys.readouterr().err
