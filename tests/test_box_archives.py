"""A labelling tool's ZIP export as it downloads: the file holding the labels of the user's
image is found and read, and a broken, hostile or unrelated archive is named, never unpacked."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fo1_core.box_archives import boxes_file_text
from fo1_core.errors import FO1Error
from tests.test_app_units import CVAT
from ui.boxes import boxes_from_text


def archive(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as written:
        for name, content in files.items():
            written.writestr(name, content)
    return path


@pytest.mark.parametrize(
    ("files", "image", "read"),
    [
        # YOLO (Label Studio's, CVAT's "YOLO 1.1"): a label file per image, and a class list.
        (
            {"classes.txt": "cup\n", "labels/dog.txt": "0 .5 .5 .1 .1", "labels/coffee.txt": "0"},
            "coffee.jpg",
            "labels/coffee.txt",
        ),
        # Pascal VOC: an XML file per image.
        ({"Annotations/coffee.xml": "<annotation/>", "Annotations/a.xml": ""}, "coffee.jpg", ""),
        # CVAT: one annotations.xml naming every image.
        ({"annotations.xml": CVAT, "images/coffee.jpg": b"\xff\xd8"}, "coffee.jpg", ""),
        # COCO's splits: the one naming the image, in JSON's ASCII escapes.
        (
            {
                "annotations/instances_train.json": '{"images": [{"file_name": "dog.jpg"}]}',
                "annotations/instances_val.json": '{"images": [{"file_name": "caf\\u00e9.jpg"}]}',
            },
            "café.jpg",
            "annotations/instances_val.json",
        ),
        # Label Studio's YOLO export: each label file named as the upload was stored.
        (
            {
                "classes.txt": "cup\n",
                "notes.json": '{"categories": []}',
                "labels/e5f6a7b8-dog.txt": "0 .5 .5 .1 .1",
                "labels/a1b2c3d4-coffee.txt": "0 .5 .5 .2 .2",
            },
            "coffee.jpg",
            "labels/a1b2c3d4-coffee.txt",
        ),
        # Roboflow's COCO export: a file per split, the images renamed `coffee_jpg.rf.<hash>.jpg`.
        (
            {
                "train/_annotations.coco.json": '{"images": [{"file_name": "dog_jpg.rf.1.jpg"}]}',
                "valid/_annotations.coco.json": '{"images": [{"file_name": "coffee_jpg.rf.2"}]}',
                "README.roboflow.txt": "Exported via roboflow.com",
            },
            "coffee.jpg",
            "valid/_annotations.coco.json",
        ),
        # One export's one file, the image renamed since: the reader takes its one image.
        ({"result.json": "[]", "__MACOSX/._result.json": b"\x00\x05"}, "photo.jpg", "result.json"),
    ],
)
def test_the_labels_file_of_the_image_is_read_out_of_an_export(
    tmp_path: Path, files: dict, image: str, read: str
) -> None:
    path = archive(tmp_path / "export.zip", files)
    expected = read or next(name for name in files if name.endswith((".xml", ".json")))
    labels = boxes_file_text(path, "export.zip", image)
    assert labels.source == f"{expected} in export.zip"
    assert labels.text == files[expected]


def test_a_cvat_export_is_loaded_as_it_downloads(tmp_path: Path) -> None:
    path = archive(tmp_path / "task.zip", {"annotations.xml": CVAT})
    labels = boxes_file_text(path, "task.zip", "coffee.jpg")
    assert boxes_from_text(labels.text, 640, 480, "coffee.jpg").boxes[0] == [170, 10, 420, 200]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, r"^export.zip holds no labels file \(.json, .xml, .txt\)\.$"),
        ({"images/coffee.jpg": b"\xff\xd8"}, r"holds no labels file"),
        (
            {"a.json": "{}", "b.json": "{}", "labels/dog.txt": ""},
            r"^No file in export.zip holds the labels of coffee.jpg: none is named coffee.json, "
            r"coffee.xml, coffee.txt, and none of its 2 JSON and XML files names it\.$",
        ),
        (
            {"labels/coffee.txt": b"\xff\xfe0 0.5"},
            r"^Could not read labels/coffee.txt in export.zip: it is not UTF-8 text \(byte 0\)",
        ),
        # A bomb: 20 MB of zeros in a few kilobytes, read no further than the limit.
        (
            {"coffee.json": b"\x00" * 20_000_000},
            r"^Could not read coffee.json in export.zip: it is 20 MB; at most 10 MB is read",
        ),
    ],
)
def test_an_export_without_the_images_labels_is_named(
    tmp_path: Path, files: dict, message: str
) -> None:
    path = archive(tmp_path / "export.zip", files)
    with pytest.raises(FO1Error, match=message):
        boxes_file_text(path, "export.zip", "coffee.jpg")


def test_a_file_of_no_name_is_passed_over(tmp_path: Path) -> None:
    """A damaged directory can name a file "", which zipfile's own `is_dir` fails on (the fuzz
    found it): the image's labels are still read."""
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as written:
        for name in ("labels/coffee.txt", ""):
            with written.open(zipfile.ZipInfo(name), "w") as member:
                member.write(b"0 0.5 0.5 0.2 0.2")
    assert boxes_file_text(path, "export.zip", "coffee.jpg").source == (
        "labels/coffee.txt in export.zip"
    )


def test_a_damaged_archive_is_named(tmp_path: Path) -> None:
    path = archive(tmp_path / "export.zip", {"coffee.json": "[[1, 2, 3, 4]]" * 100})
    data = bytearray(path.read_bytes())
    data[40:60] = b"\x00" * 20  # inside the member's compressed bytes
    path.write_bytes(bytes(data))
    with pytest.raises(FO1Error, match=r"^Could not read export.zip: it is a damaged ZIP archive"):
        boxes_file_text(path, "export.zip", "coffee.jpg")
