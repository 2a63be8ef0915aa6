"""Hundreds of generated bad inputs to the parser and to request preparation: each ends in a
correct result or an `FO1Error` with a message, never another exception."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fo1_core.answers import parse_answer
from fo1_core.box_archives import boxes_file_text
from fo1_core.box_files import unwrap_boxes
from fo1_core.errors import FO1Error
from fo1_core.inputs import check_boxes, open_image
from fo1_core.session import FO1Pipeline, Request
from fo1_core.templates import FREE_PROMPT, MAX_REGIONS, TASKS
from tests.images import animated_gif, encoded
from ui.boxes import boxes_from_text, parse_boxes

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

ANSWER_PIECES = st.sampled_from(
    ["<ground>", "</ground>", "<objects>", "</objects>", "<think>", "</think>", "<answer>",
     "</answer>", "<|im_end|>", "<|endoftext|>", "cat", "red cup", " ", "\n", "3", "two", "<",
     "<gro", "</obj", "<region", ">", "猫", "\ud83d\ude00"]
)  # fmt: skip
REGION_TAGS = st.integers(0, 130).map(lambda i: f"<region{i}>")
ANSWERS = st.lists(st.one_of(ANSWER_PIECES, REGION_TAGS, st.text(max_size=5)), max_size=40)


@FUZZ
@given(pieces=ANSWERS, num_regions=st.integers(0, MAX_REGIONS))
def test_parser_never_raises_and_streaming_only_adds(pieces: list[str], num_regions: int) -> None:
    text = "".join(pieces)
    final = parse_answer(text, num_regions).label_to_indexes()
    assert all(i < num_regions for indexes in final.values() for i in indexes)
    for cut in range(0, len(text), 7):
        for label, indexes in parse_answer(text[:cut], num_regions).label_to_indexes().items():
            assert set(indexes) <= set(final[label])


COORDINATES = st.one_of(
    st.floats(-1e6, 1e6),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1e30, -1.0]),
    st.integers(-50, 300),
)
BOXES = st.one_of(
    st.none(),
    st.lists(st.lists(COORDINATES, min_size=4, max_size=4), max_size=130),
    st.lists(st.lists(COORDINATES, max_size=6), max_size=4),  # wrong arity
    st.just([[10, 10, 40, 40]] * 120),  # duplicates, past the region limit
    st.text(max_size=10),  # not boxes at all
)
TEXTS = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(["<image>", "<regionfeat>", "<|im_start|>", "<|im_end|>", "system",
                         "<|vision_start|>", "<|image_pad|>", "<region0>", "<region99>", "\ud800",
                         "cat", " ", "\x00", "<ima", "ge>", "<|im_", "end|>"]),
        max_size=20,
    ).map("".join),
    st.just("x" * 100_000),
)  # fmt: skip
TASK_NAMES = st.sampled_from([*TASKS, FREE_PROMPT, "", "OD_template ", "nonsense"])
IMAGE_SIZES = st.tuples(st.integers(1, 90), st.integers(1, 90))
IMAGE_MODES = st.sampled_from(["RGB", "L", "1", "P", "RGBA", "LA", "I;16", "I", "F", "CMYK"])


def _check(pipeline: FO1Pipeline, image, boxes, task: str, text: str) -> Request | None:
    try:
        request = pipeline.prepare(image, boxes, task, text)
    except FO1Error as error:
        assert str(error).strip()
        return None
    assert request.prompt.count("<image>") == 1
    assert request.prompt.count("<regionfeat>") == request.vision.num_regions <= MAX_REGIONS
    assert request.prompt_ids.count(-300) == request.vision.num_regions
    return request


@FUZZ
@given(size=IMAGE_SIZES, mode=IMAGE_MODES, boxes=BOXES, task=TASK_NAMES, text=TEXTS)
def test_prepare_gives_a_request_or_a_named_error(
    pipeline: FO1Pipeline, size, mode: str, boxes, task: str, text: str
) -> None:
    _check(pipeline, Image.new(mode, size), boxes, task, text)


PHOTO = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("data", "accepted"),
    [
        (b"", False),  # an empty file
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, False),  # a PNG signature and nothing else
        (encoded(PHOTO, "JPEG")[:300], False),  # a JPEG cut short
        (encoded(PHOTO, "JPEG")[::2], False),  # every other byte
        (encoded(Image.new("1", (20_000, 10)), "PNG"), False),  # 20 000 px wide strip
        (encoded(Image.new("I;16", (50, 40), 60_000), "PNG"), True),  # 16-bit grey
        (encoded(PHOTO.convert("P"), "PNG"), True),  # palette
        (encoded(PHOTO.convert("RGBA"), "PNG"), True),  # alpha
        (encoded(PHOTO.convert("CMYK"), "TIFF"), True),  # CMYK
        (animated_gif(), True),  # animated: the first frame is used
        (encoded(Image.new("RGB", (1, 500)), "PNG"), False),  # 1×N
    ],
)
def test_image_files(pipeline: FO1Pipeline, data: bytes, accepted: bool) -> None:
    request = _check(pipeline, data, [[0, 0, 20, 20]], "OD_template", "cat")
    assert (request is not None) == accepted


def test_sixteen_bit_image_keeps_its_contrast(pipeline: FO1Pipeline) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64), (32, 1)).astype(np.uint16)
    request = _check(pipeline, Image.fromarray(ramp), [[0, 0, 20, 20]], "OD_template", "cat")
    assert request is not None
    pixels = request.vision.pixel_values
    assert float(pixels.max() - pixels.min()) > 3  # not flattened to one grey level


def test_sixteen_bit_images_keep_their_brightness() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64), (32, 1)).astype(np.uint16)
    dark = open_image(encoded(Image.fromarray(ramp // 256), "PNG"))  # values 0..255 of 65535
    assert np.asarray(dark).max() <= 1
    # A PNG naming a transparent grey level: that level on white, the rest as without it.
    keyed = np.asarray(open_image(encoded(Image.fromarray(ramp), "PNG", transparency=0)))
    plain = np.asarray(open_image(encoded(Image.fromarray(ramp), "PNG")))
    assert (keyed[:, 0] == 255).all() and (keyed[:, 1:] == plain[:, 1:]).all()


def test_transparent_pixels_are_shown_on_white() -> None:
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert open_image(clear).getpixel((5, 5)) == (255, 255, 255)


FILE_KEYS = st.sampled_from(
    ["annotations", "images", "shapes", "boxes", "proposals", "box", "bbox", "points",
     "shape_type", "id", "image_id", "file_name", "width", "height", "imageWidth", "imageHeight",
     "data", "predictions", "result", "value", "x", "y", "rotation", "type", "original_width",
     "annotation_id", "rectanglelabels", "label", "image"]
)  # fmt: skip
FILE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.just(10**400), st.floats(),
    st.text(max_size=8),
    st.sampled_from(["rectangle", "polygon", "circle", "mask", "point", "coffee.jpg", "1"]),
)  # fmt: skip
FILE_DOCUMENTS = st.recursive(
    FILE_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(FILE_KEYS, inner, max_size=5)
    ),
    max_leaves=30,
)
VOC_PIECES = st.sampled_from(
    ["<annotation>", "</annotation>", "<object>", "</object>", "<bndbox>", "</bndbox>",
     "<xmin>", "</xmin>", "<ymax>", "</ymax>", "<size>", "</size>", "<width>", "</width>",
     "<height>", "</height>", "10", "-3", "1e400", "nan", "abc", " ", "&amp;", "<"]
)  # fmt: skip


@FUZZ
@given(document=FILE_DOCUMENTS)
def test_a_boxes_file_is_read_or_refused_with_a_message(document: object) -> None:
    """A labelling tool's file, or what passes for one (COCO, LabelMe, Label Studio, the app's
    JSON): boxes inside the image, or an `FO1Error`; in the app, the API and the command line
    alike."""
    text = json.dumps(document)
    for read in (
        lambda: boxes_from_text(text, 640, 480, "coffee.jpg").boxes,
        lambda: parse_boxes(text, "coffee.jpg", (640, 480)).boxes,
        lambda: check_boxes(unwrap_boxes(document, "coffee.jpg", (640, 480)).boxes, (640, 480))[0],
    ):
        try:
            boxes = np.asarray(read(), dtype=np.float64).reshape(-1, 4)
        except FO1Error as error:
            assert str(error)
        else:
            assert np.isfinite(boxes).all()


@FUZZ
@given(pieces=st.lists(VOC_PIECES, max_size=30))
def test_a_voc_annotation_is_read_or_refused_with_a_message(pieces: list[str]) -> None:
    try:
        boxes = boxes_from_text("".join(["<annotation>", *pieces]), 640, 480).boxes
    except FO1Error as error:
        assert str(error)
    else:
        assert all(math.isfinite(value) for box in boxes for value in box)


CVAT_VALUES = st.one_of(
    st.sampled_from(["10", "-3", "0", "1e400", "nan", "", "abc", "1,2;30,40", "1,2;x", "5;6",
                     "coffee.jpg", "images/coffee.jpg", "cat.jpg", "1280", "960"]),
    st.floats().map(str), st.text(max_size=6),
)  # fmt: skip
CVAT_ATTRIBUTES = st.dictionaries(
    st.sampled_from(["xtl", "ytl", "xbr", "ybr", "rotation", "points", "cx", "cy", "rx", "ry",
                     "left", "top", "width", "height", "outside", "name"]),
    CVAT_VALUES, max_size=8,
)  # fmt: skip
CVAT_SHAPES = st.tuples(
    st.sampled_from(["box", "polygon", "ellipse", "mask", "polyline", "points", "tag", "cuboid"]),
    CVAT_ATTRIBUTES,
)
CVAT_IMAGES = st.tuples(
    st.sampled_from(["image", "track"]), CVAT_ATTRIBUTES, st.lists(CVAT_SHAPES, max_size=6)
)


def _cvat_file(images: list[tuple[str, dict, list[tuple[str, dict]]]]) -> str:
    root = ElementTree.Element("annotations")
    for tag, attributes, shapes in images:
        image = ElementTree.SubElement(root, tag, attributes)
        for shape, shape_attributes in shapes:
            ElementTree.SubElement(image, shape, shape_attributes)
    return ElementTree.tostring(root, encoding="unicode")


@FUZZ
@given(images=st.lists(CVAT_IMAGES, max_size=4))
def test_a_cvat_export_is_read_or_refused_with_a_message(images: list) -> None:
    """CVAT's XML with any shapes, attributes and images: boxes inside the image, or an
    `FO1Error`."""
    try:
        boxes = boxes_from_text(_cvat_file(images), 640, 480, "coffee.jpg").boxes
    except FO1Error as error:
        assert str(error)
    else:
        assert all(math.isfinite(value) for box in boxes for value in box)


ARCHIVE_NAMES = st.sampled_from(
    ["coffee.txt", "labels/coffee.txt", "coffee.json", "annotations.xml", "result.json",
     "classes.txt", "dir/", "__MACOSX/._coffee.json", "a.xml", "b.JSON", "coffee.jpg"]
)  # fmt: skip
ARCHIVE_TEXTS = st.one_of(
    st.sampled_from(["0 0.5 0.5 0.2 0.2", "[[1, 2, 30, 40]]", "coffee.jpg", "<annotations/>"]),
    FILE_DOCUMENTS.map(json.dumps), st.builds(_cvat_file, st.lists(CVAT_IMAGES, max_size=2)),
    st.binary(max_size=40),
)  # fmt: skip


@FUZZ
@given(
    files=st.dictionaries(ARCHIVE_NAMES, ARCHIVE_TEXTS, max_size=5),
    damage=st.none() | st.tuples(st.integers(0, 2000), st.binary(min_size=1, max_size=8)),
)
def test_a_zip_export_is_read_or_refused_with_a_message(
    tmp_path_factory: pytest.TempPathFactory, files: dict, damage: tuple | None
) -> None:
    """An archive of any labels files, whole or with some bytes overwritten: boxes inside the
    image, or an `FO1Error`."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as written:
        for name, content in files.items():
            written.writestr(name, content)
    archive = bytearray(data.getvalue())
    if damage:
        at, bytes_ = damage
        archive[at : at + len(bytes_)] = bytes_
    path = Path(tmp_path_factory.mktemp("zip")) / "export.zip"
    path.write_bytes(bytes(archive))
    try:
        labels = boxes_file_text(path, "export.zip", "coffee.jpg")
        boxes = boxes_from_text(labels.text, 640, 480, "coffee.jpg").boxes
    except FO1Error as error:
        assert str(error)
    else:
        assert all(math.isfinite(value) for box in boxes for value in box)
