"""Which image a labels file names: the user's upload, as it is or as a labelling tool renamed
it on the way in."""

from __future__ import annotations

import pytest

from fo1_core.box_files import coco_boxes, is_named

ROBOFLOW_HASH = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("stored", "image_name", "named"),
    [
        ("coffee.jpg", "coffee.jpg", True),
        ("images/train/coffee.jpg", "coffee.jpg", True),  # folders aside
        ("/data/local-files/?d=photos/coffee.jpg", "coffee.jpg", True),  # a URL's path
        ("/data/upload/3/a1b2c3d4-coffee.jpg", "coffee.jpg", True),  # Label Studio's upload
        ("a1b2c3d4-coffee.jpg", "a1b2c3d4-coffee.jpg", True),  # that file, downloaded
        (f"coffee_jpg.rf.{ROBOFLOW_HASH}.jpg", "coffee.jpg", True),  # Roboflow's export
        (f"coffee_png.rf.{ROBOFLOW_HASH}.jpg", "coffee.png", True),  # converted by it
        ("coffee.jpeg", "coffee.jpg", False),
        ("my-coffee.jpg", "coffee.jpg", False),  # a hyphen is no upload's prefix
        ("a1b2c3d4-coffee.jpg", "tea.jpg", False),
        (f"coffee_jpg.rf.{ROBOFLOW_HASH}.jpg", "coffee_jpg.jpg", False),
        ("Coffee.jpg", "coffee.jpg", False),  # file names have case on most systems
    ],
)
def test_an_image_is_named_as_a_tool_renamed_it(stored: str, image_name: str, named: bool) -> None:
    assert is_named(stored, image_name) is named


def test_a_roboflow_coco_export_gives_the_boxes_of_the_original_image() -> None:
    """Roboflow renames `coffee.jpg` to `coffee_jpg.rf.<hash>.jpg` in its exports: the user
    uploads the photo they had."""
    images = [
        {"id": 0, "file_name": f"dog_jpg.rf.{ROBOFLOW_HASH}.jpg"},
        {"id": 1, "file_name": f"coffee_jpg.rf.{ROBOFLOW_HASH}.jpg"},
    ]
    annotations = [{"image_id": 0, "bbox": [1, 1, 5, 5]}, {"image_id": 1, "bbox": [10, 20, 30, 40]}]
    document = {"images": images, "annotations": annotations}
    assert coco_boxes(document, "coffee.jpg").boxes == [[10, 20, 40, 60]]
