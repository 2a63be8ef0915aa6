"""Which image a labels file names: the user's upload, as it is or as a labelling tool renamed
it on the way in; and the name it gives each box."""

from __future__ import annotations

import pytest

from fo1_core.box_files import coco_boxes, is_named, unwrap_boxes, xml_boxes
from tests.test_app_units import CVAT, VOC, label_studio_rectangle, label_studio_task

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


COCO = {
    "images": [{"id": 1, "file_name": "coffee.jpg"}],
    "categories": [{"id": 3, "name": "cup"}, {"id": 4, "name": " tea\n spoon "}],
    "annotations": [
        {"image_id": 1, "category_id": 4, "bbox": [1, 1, 5, 5]},
        {"image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]},  # a category not listed
        {"image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]},
    ],
}
LABELME = {
    "shapes": [
        {"label": "cup", "points": [[1, 1], [9, 9]], "shape_type": "rectangle"},
        {"label": ["not", "text"], "points": [[1, 1], [9, 9]], "shape_type": "rectangle"},
    ]
}
CHOICE = {"type": "choices", "value": {"choices": ["indoor"]}}


@pytest.mark.parametrize(
    ("read", "labels"),
    [
        (lambda: unwrap_boxes(COCO, "coffee.jpg"), ("tea spoon", "", "cup")),  # spaces as one
        (lambda: unwrap_boxes(LABELME), ("cup", "")),
        (
            lambda: unwrap_boxes(
                [label_studio_task("cat.jpg", [CHOICE, label_studio_rectangle(1, 1, 5, 5)])]
            ),
            (),  # a rectangle with no label, the choice left out: nothing named
        ),
        (lambda: xml_boxes(VOC), ("cup", "spoon")),
        (lambda: xml_boxes(CVAT, "coffee.jpg"), ("cup", "spoon", "coin", "plate")),
        (lambda: unwrap_boxes({"boxes": [[1, 1, 5, 5]], "labels": ["cup"]}), ()),  # the app's
        (
            lambda: unwrap_boxes({"shapes": [{"label": "x" * 99, "points": [[1, 1], [2, 2]]}]}),
            ("x" * 40,),
        ),
    ],
)
def test_each_box_keeps_the_name_its_file_gives_it(read, labels: tuple[str, ...]) -> None:
    """An annotator's classes, in the boxes' order, to be shown beside FO1's answers."""
    assert read().labels == labels
