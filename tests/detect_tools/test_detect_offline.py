from __future__ import annotations

import cv2
import numpy as np
import pytest
import supervision as sv
from PIL import Image

from detect_tools.base import ProposalOptions
from detect_tools.offline import OfflineProposer


def _scene(seed: int, width: int = 1024, height: int = 768) -> tuple[Image.Image, np.ndarray]:
    """Solid rectangles and discs on blurred noise strewn with small random dots."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 200, (height, width, 3)).astype(np.uint8)
    pixels = cv2.GaussianBlur(pixels, (0, 0), 3)
    for _ in range(300):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = [int(v) for v in rng.integers(0, 256, 3)]
        cv2.circle(pixels, centre, int(rng.integers(2, 8)), colour, -1)
    # Objects on a 3×2 grid of cells, so they never overlap; sizes vary from 6% to 30% of a side.
    boxes = []
    cell_w, cell_h = width // 3, height // 2
    for cell in range(6):
        x0, y0 = (cell % 3) * cell_w, (cell // 3) * cell_h
        colour = [int(v) for v in rng.integers(0, 256, 3)]
        if cell % 2:
            radius = int(rng.integers(30, min(cell_w, cell_h) // 2 - 10))
            cx, cy = x0 + cell_w // 2, y0 + cell_h // 2
            cv2.circle(pixels, (cx, cy), radius, colour, -1)
            boxes.append([cx - radius, cy - radius, cx + radius + 1, cy + radius + 1])
        else:
            w, h = int(rng.integers(60, cell_w - 20)), int(rng.integers(60, cell_h - 20))
            left, top = x0 + 10, y0 + 10
            cv2.rectangle(pixels, (left, top), (left + w - 1, top + h - 1), colour, -1)
            boxes.append([left, top, left + w, top + h])
    return Image.fromarray(pixels), np.array(boxes, dtype=np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_every_drawn_object_in_its_top_100(seed, contract):
    image, objects = _scene(seed)
    options = ProposalOptions()
    proposals = OfflineProposer().propose(image, options=options)
    contract(proposals, image, options, threshold=0.0)
    best_iou = sv.box_iou_batch(objects, proposals.xyxy).max(1)
    assert (best_iou >= 0.7).all(), best_iou


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (64, 48), (120, 30, 30)),  # one flat colour: nothing stands out
        Image.new("RGB", (8, 8)),  # the smallest image FO1 takes
        Image.new("RGB", (1200, 8), (0, 0, 0)),  # a sliver; downscaling must not reach 0 rows
    ],
)
def test_degenerate_images_give_valid_results(image, contract):
    options = ProposalOptions(threshold=0.3)
    contract(OfflineProposer().propose(image, options=options), image, options, threshold=0.3)


def test_threshold_and_cap_respected(contract):
    image, _ = _scene(4)
    options = ProposalOptions(threshold=0.5, max_count=7)
    proposals = OfflineProposer().propose(image, options=options)
    assert len(proposals) == 7
    contract(proposals, image, options, threshold=0.5)
