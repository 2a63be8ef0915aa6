"""Shared fixtures: tiny random checkpoints (built once per session), images, a contract check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import supervision as sv
from PIL import Image

from detect_tools import tiny
from detect_tools.base import ProposalOptions


@pytest.fixture(scope="module", autouse=True)
def hub_offline():
    # Without this, a hub id that cannot be reached costs minutes of retries instead of one error.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture
def photo() -> Image.Image:
    """A small noisy RGB image with a non-square shape, so width/height mix-ups show."""
    pixels = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def check_proposals(
    detections: sv.Detections,
    image: Image.Image,
    options: ProposalOptions,
    threshold: float,
) -> None:
    """Everything a caller relies on: in-image boxes, sorted scores, threshold, cap, masks."""
    width, height = image.size
    assert isinstance(detections, sv.Detections)
    assert detections.xyxy.shape == (len(detections), 4)
    assert detections.confidence is not None and detections.confidence.shape == (len(detections),)
    assert len(detections) <= options.max_count
    assert (detections.xyxy[:, :2] >= 0).all() and (detections.xyxy[:, 2] <= width).all()
    assert (detections.xyxy[:, 3] <= height).all()
    assert (detections.xyxy[:, 2:] > detections.xyxy[:, :2]).all()
    assert (np.diff(detections.confidence) <= 0).all(), "scores must be sorted, best first"
    assert (detections.confidence >= threshold).all()
    if detections.mask is not None:
        assert detections.mask.shape == (len(detections), height, width)
        assert detections.mask.dtype == bool
        for box, mask in zip(detections.xyxy, detections.mask, strict=True):
            if mask.any():
                # The mask's own bounding box lies inside its box (up to the 1-pixel rounding).
                ys, xs = np.nonzero(mask)
                assert xs.min() >= box[0] - 1 and xs.max() + 1 <= box[2] + 1
                assert ys.min() >= box[1] - 1 and ys.max() + 1 <= box[3] + 1


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    """A PNG file: a blue rectangle on grey."""
    path = tmp_path / "scene.png"
    pixels = np.full((120, 160, 3), 200, dtype=np.uint8)
    pixels[30:90, 40:120] = (20, 40, 200)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def contract():
    return check_proposals


def _tiny_checkpoint(build: Callable[[Path], Path]) -> Callable:
    """A session fixture named for `build` (`build_sam3` → `sam3_checkpoint`): its tiny random
    checkpoint, built once."""
    name = build.__name__.removeprefix("build_")

    @pytest.fixture(scope="session", name=f"{name}_checkpoint")
    def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return build(tmp_path_factory.mktemp(name))

    return checkpoint


florence2_checkpoint = _tiny_checkpoint(tiny.build_florence2)
omdet_turbo_checkpoint = _tiny_checkpoint(tiny.build_omdet_turbo)
sam3_checkpoint = _tiny_checkpoint(tiny.build_sam3)
grounding_dino_checkpoint = _tiny_checkpoint(tiny.build_grounding_dino)
