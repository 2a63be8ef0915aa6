"""The DaViT input is sized as the checkpoint's `aux_image_aspect_ratio` says, boxes follow it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from fo1_core.processing import ImagePreprocessor
from tests.conftest import REFERENCE_DIR


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        ("squash", (140, 100), (768, 768)),
        ("squash", (2048, 300), (768, 768)),
        # the listed square whose area is closest the image's
        ("dynamic_square", (140, 100), (384, 384)),
        ("dynamic_square", (1000, 1000), (1024, 1024)),
        ("dynamic_square", (1600, 1200), (1280, 1280)),
        ("dynamic_square", (2048, 2048), (2048, 2048)),
        # exactly halfway between 1024² and 1280² by area: the smaller side, as upstream's search
        ("dynamic_square", (1312, 1024), (1024, 1024)),
        ("dynamic_square", (1313, 1024), (1280, 1280)),
        ("dynamic", (140, 100), (140, 100)),
    ],
)
def test_aux_input_size(mode: str, size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert ImagePreprocessor(REFERENCE_DIR, mode).aux_size(*size) == expected


@pytest.mark.parametrize("mode", ["squash", "dynamic_square", "dynamic"])
def test_aux_pixels_and_boxes_follow_the_aux_size(mode: str) -> None:
    preprocessor = ImagePreprocessor(REFERENCE_DIR, mode)
    image = Image.new("RGB", (300, 200), (200, 30, 30))
    boxes = [[30, 20, 150, 100], [0, 0, 300, 200]]
    vision = preprocessor(image, boxes)
    width, height = preprocessor.aux_size(300, 200)
    assert vision.aux_pixel_values.shape == (1, 3, height, width)
    scale = torch.tensor([width / 300, height / 200] * 2)
    torch.testing.assert_close(vision.aux_boxes, torch.tensor(boxes) * scale)
    # the ViT boxes are the same boxes on the ViT input, whichever size DaViT got
    _, gh, gw = vision.image_grid_thw[0].tolist()
    patch = preprocessor.patch_size
    vt_scale = torch.tensor([gw * patch / 300, gh * patch / 200] * 2)
    torch.testing.assert_close(vision.vt_boxes, torch.tensor(boxes) * vt_scale)


def test_an_unknown_aspect_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="aux_aspect_ratio"):
        ImagePreprocessor(REFERENCE_DIR, "pad")


@pytest.mark.parametrize("patch_size", [14, 16])
def test_a_thin_image_is_enlarged_to_one_merged_cell_of_the_checkpoints_vit(
    patch_size: int, tmp_path: Path
) -> None:
    settings = json.loads((REFERENCE_DIR / "preprocessor_config.json").read_text())
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({**settings, "patch_size": patch_size})
    )
    preprocessor = ImagePreprocessor(tmp_path)
    cell = patch_size * preprocessor.merge_size
    vision = preprocessor(Image.new("RGB", (200, 10), (200, 30, 30)), [[0, 0, 100, 10]])
    _, gh, gw = vision.image_grid_thw[0].tolist()
    assert gh * patch_size == cell  # one merged cell high, the box stretched with it
    assert vision.vt_boxes[0, 3] == cell
