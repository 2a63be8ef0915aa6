from __future__ import annotations

import io

import numpy as np
import pytest
import supervision as sv
from PIL import ExifTags, Image

from detect_tools.base import (
    MAX_PROPOSALS,
    ProposalOptions,
    ProposerError,
    check_image,
    finalize,
)

SIZE = (100, 50)  # width, height


def _detections(boxes: list[list[float]], scores: list[float]) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.array(scores, dtype=np.float32),
    )


@pytest.mark.parametrize(
    ("boxes", "scores", "options", "threshold", "expected_boxes"),
    [
        # empty in, empty out
        ([], [], ProposalOptions(), 0.0, []),
        # sorted best first
        ([[0, 0, 10, 10], [20, 0, 30, 10]], [0.2, 0.9], ProposalOptions(), 0.0,
         [[20, 0, 30, 10], [0, 0, 10, 10]]),
        # clipped to the image
        ([[-5, -5, 120, 60]], [0.5], ProposalOptions(), 0.0, [[0, 0, 100, 50]]),
        # corners given in the wrong order are a box all the same
        ([[30, 40, 10, 20]], [0.5], ProposalOptions(), 0.0, [[10, 20, 30, 40]]),
        # entirely outside the image: degenerate after clipping, dropped
        ([[150, 10, 160, 20]], [0.5], ProposalOptions(), 0.0, []),
        # zero-width box dropped
        ([[10, 10, 10, 20]], [0.5], ProposalOptions(), 0.0, []),
        # a pixel wide, but no whole pixel once rounded (half to even) as the box editor shows it
        ([[3.5, 10, 4.5, 20]], [0.5], ProposalOptions(), 0.0, []),
        # whole pixels once rounded: kept
        ([[3.46, 10, 4.54, 20]], [0.5], ProposalOptions(), 0.0, [[3.46, 10, 4.54, 20]]),
        # below threshold dropped
        ([[0, 0, 10, 10], [20, 0, 30, 10]], [0.2, 0.9], ProposalOptions(), 0.5, [[20, 0, 30, 10]]),
        # near-duplicate suppressed, the better one kept
        ([[0, 0, 10, 10], [0, 0, 10, 11]], [0.2, 0.9], ProposalOptions(nms_iou=0.7), 0.0,
         [[0, 0, 10, 11]]),
        # NMS off keeps both
        ([[0, 0, 10, 10], [0, 0, 10, 11]], [0.2, 0.9], ProposalOptions(nms_iou=None), 0.0,
         [[0, 0, 10, 11], [0, 0, 10, 10]]),
        # capped at max_count, the best kept
        ([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0.1, 0.3, 0.2],
         ProposalOptions(max_count=2), 0.0, [[20, 0, 30, 10], [40, 0, 50, 10]]),
    ],
)  # fmt: skip
def test_finalize(boxes, scores, options, threshold, expected_boxes):
    result = finalize(_detections(boxes, scores), SIZE, threshold, options)
    np.testing.assert_allclose(result.xyxy, np.array(expected_boxes).reshape(-1, 4))
    assert result.confidence is not None and len(result.confidence) == len(expected_boxes)


def test_finalize_keeps_masks_and_labels_aligned():
    detections = _detections([[0, 0, 10, 10], [20, 0, 30, 10]], [0.2, 0.9])
    detections.mask = np.zeros((2, 50, 100), dtype=bool)
    detections.mask[1, 0:10, 20:30] = True
    detections.data["class_name"] = np.array(["low", "high"])
    result = finalize(detections, SIZE, 0.0, ProposalOptions())
    assert list(result.data["class_name"]) == ["high", "low"]
    assert result.mask[0, 5, 25] and not result.mask[1].any()


def test_finalize_empty_mask_result_has_image_shape():
    detections = _detections([[0, 0, 10, 10]], [0.1])
    detections.mask = np.ones((1, 50, 100), dtype=bool)
    result = finalize(detections, SIZE, 0.5, ProposalOptions())
    assert len(result) == 0 and result.mask.shape == (0, 50, 100)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},  # a score is a probability
        {"nms_iou": 0.0},  # would suppress everything
        {"max_count": 0},
        {"max_count": MAX_PROPOSALS + 1},  # past the downstream model's region limit
        # accepted, then a TypeError after the whole inference
        {"max_count": 5.5},
        # a bare TypeError
        {"max_count": "5"},
        {"max_count": None},
        {"nms_iou": "0.5"},
    ],
)
def test_bad_options_are_user_errors(kwargs):
    with pytest.raises(ProposerError):
        ProposalOptions(**kwargs)


def test_numpy_numbers_are_options_like_any_other():
    """np.float64 passed for a threshold, np.float32 was refused."""
    options = ProposalOptions(threshold=np.float32(0.25), nms_iou=np.float32(0.5))
    assert options.threshold == 0.25
    assert ProposalOptions(max_count=np.int64(7)).max_count == 7


def test_an_exif_turned_image_is_proposed_on_as_shown():
    """As FO1 reads it, so that `fo1.prepare(image, proposer.propose(image))` names the pixels
    the proposer saw; the caller's image stays as it was."""
    image = Image.new("RGB", (60, 20))
    exif = image.getexif()
    exif[ExifTags.Base.Orientation] = 6  # stored wide, shown tall
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    opened = Image.open(buffer)
    assert check_image(opened).size == (20, 60)
    assert opened.size == (60, 20)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (Image.new("RGB", (0, 10)), "0×10 px; each side needs at least 8 px"),
        # 1-bit, so the test stays light
        (Image.new("1", (10_001, 10_000)), "100.01 megapixels; the limit is 100"),
        ("not an image", "PIL image"),
    ],
)
def test_bad_images_are_user_errors(image, message):
    with pytest.raises(ProposerError, match=message):
        check_image(image)


def test_grey_image_becomes_rgb():
    assert check_image(Image.new("L", (8, 8))).mode == "RGB"


@pytest.mark.parametrize(
    ("image", "shown"),
    [
        # 16-bit grey: scaled to 8 bits (plain RGB conversion clips it to white)
        (Image.new("I;16", (8, 8), 257 * 40), 40),
        # a transparent cut-out: on white (plain RGB conversion makes it black)
        (Image.new("RGBA", (8, 8), (0, 0, 0, 0)), 255),
        # and with its alpha premultiplied (Pillow would not convert "La" to RGB at all)
        (Image.new("LA", (8, 8), (0, 0)).convert("La"), 255),
        (Image.new("RGBA", (8, 8), (0, 0, 0, 0)).convert("RGBa"), 255),
        (Image.new("LA", (8, 8), (40, 255)).convert("La"), 40),
    ],
)
def test_proposers_see_the_picture_the_model_sees(image, shown):
    assert np.unique(np.asarray(check_image(image))).tolist() == [shown]
