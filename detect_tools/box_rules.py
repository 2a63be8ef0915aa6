"""The rule every box meets, whatever path it takes (proposals, boxes typed in the page, boxes
given to FO1 or with a benchmark's data): at least one whole pixel each way once cut to its
image; and boxes as detectors hand them over read as rows. Light (numpy only), so that a command
line can judge boxes before torch loads."""

from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt

MIN_BOX_SIDE = 1.0
"""Boxes thinner than one whole pixel after clipping cannot be drawn or pooled: proposals are
dropped, boxes given to FO1 refused (`covers_a_pixel`)."""


def whole_pixel_sides(xyxy: npt.ArrayLike) -> np.ndarray:
    """Widths and heights (shape (..., 2)) of boxes `[x1, y1, x2, y2]` (shape (..., 4)) in whole
    pixels, as the box editor shows them: [3.5, 4.5] is a pixel wide but rounds (half to even)
    to [4, 4], a box with no area."""
    whole = np.round(np.asarray(xyxy, dtype=np.float64))
    return whole[..., 2:] - whole[..., :2]


def covers_a_pixel(xyxy: npt.ArrayLike) -> np.ndarray:
    """Whether boxes (shape (..., 4), cut to the image) are at least `MIN_BOX_SIDE` wide and
    high in whole pixels. The one rule for every path a box takes: proposals, boxes typed in the
    page and boxes given to FO1."""
    return (whole_pixel_sides(xyxy) >= MIN_BOX_SIDE).all(-1)


def cut_to_image(xyxy: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Boxes (N, 4) cut to a (width, height) image; one wholly outside keeps no area, for
    `covers_a_pixel` to drop: proposals and boxes given with a benchmark's data alike."""
    width, height = image_size
    return np.clip(xyxy, 0, [width, height, width, height])


def is_number(value: object) -> bool:
    """A real number (numpy's included), as read from JSON or given by code; not a yes/no."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def box_rows(boxes: object) -> object:
    """Boxes as a detector hands them over, as rows of corners: a `sv.Detections`' `xyxy`, a
    torch tensor on any device and of any type (bfloat16, with gradients). Other values are
    returned as they are."""
    boxes = getattr(boxes, "xyxy", boxes)
    if callable(getattr(boxes, "detach", None)):  # a tensor, told without importing torch here
        boxes = boxes.detach().float().cpu().numpy()
    return boxes
