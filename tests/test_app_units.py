"""Fast checks of the app's pure parts: answer HTML, box parsing and order, report, GPU sizing,
examples, and the command line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pickle
import re
import runpy
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import supervision as sv
import torch
from gradio.data_classes import FileData
from gradio.state_holder import SessionState
from gradio_image_annotation.image_annotator import AnnotatedImageData
from huggingface_hub import constants as hub_constants
from PIL import Image

import app
import detect_tools
import ui.gpu
import ui.layout
from app import decode_mode, parse_args, warms_up
from detect_tools import ProposerError, tiny
from detect_tools.base import Proposer, check_image
from detect_tools.florence2 import Florence2Proposer
from fo1_core.answers import parse_answer, to_detections
from fo1_core.errors import FO1Error
from fo1_core.inputs import box_problem, open_image
from fo1_core.render import color_for_region, text_color_for_region
from fo1_core.session import Generation, StopReason
from fo1_core.templates import DEFAULT_MAX_NEW_TOKENS, FREE_PROMPT, MAX_REGIONS, TASKS
from tests.browser.app_server import REPO
from tests.test_bad_input import EPS
from ui import editor
from ui.answer_view import answer_html, chip, detection_rows, reasoning_html, rich_text
from ui.answering import status_line
from ui.boxes import (
    MAX_TYPED_BOXES,
    Box,
    BoxesTyped,
    boxes_as_text,
    boxes_from_text,
    boxes_of,
    editor_boxes,
    editor_value,
    file_name_of,
    image_of,
    in_drawing_order,
    parse_boxes,
    region_hex,
)
from ui.editor import (
    DECODES_AT_ONCE,
    EDITOR_SIDE,
    SMALL_SIDE,
    UNREADABLE,
    box_editor,
    enlargement,
    shown_enlarged,
    turned,
)
from ui.examples import EXAMPLES_DIR, load_examples
from ui.files import delete_served_files
from ui.gpu import MAX_SECONDS, ZERO_GPU_MAX_NEW_TOKENS, duration_for, on_gpu, slot_refused
from ui.handlers import Handlers
from ui.layout import Settings, build_app
from ui.proposing import PackedMask, Proposing, box_key, masks_for
from ui.report import (
    FULL_SIZE_DRAWINGS,
    AnswerFolders,
    Result,
    file_stem,
    report_html,
    write_downloads,
)
from ui.sessions import OPEN_PAGES, Running, Sessions


@pytest.mark.parametrize(
    ("text", "present", "absent"),
    [
        # a grounded group: bold label, chips in region colours, no raw tags
        (
            "<ground>cat</ground><objects><region0><region2></objects>",
            ["<b>cat</b>", region_hex(0), region_hex(2), ">#2<"],
            ["&lt;ground", "&lt;objects", "&lt;region"],
        ),
        # model text trying to inject HTML is escaped
        ("<script>alert(1)</script><region1>", ["&lt;script&gt;", ">#1<"], ["<script>"]),
        # a reference to a box that does not exist is shown greyed, not coloured
        ("look at <region9>", ["fo1-missing", ">#9<"], [region_hex(9), 'data-region="9"']),
        # a number too long to be a region stays text
        (f"<region{'7' * 5000}>", ["&lt;region777"], ["fo1-chip"]),
        # quotes cannot break out of attributes
        ('" onmouseover="x', ["&quot; onmouseover=&quot;x"], ['" onmouseover']),
        # an answer cut off inside a label: its bold ends with it, not with the page
        ("next to a <ground>red", ["<b>red</b>"], []),
        ("<ground>a<ground>b</ground>c", ["<b>ab</b> c"], ["<b><b>"]),
    ],
)
def test_rich_text(text: str, present: list[str], absent: list[str]) -> None:
    rendered = rich_text(text, num_regions=3)
    for piece in present:
        assert piece in rendered
    for piece in absent:
        assert piece not in rendered


@pytest.mark.parametrize("index", [0, 10, 13, 31])
def test_chips_are_coloured_like_the_drawn_labels(index: int) -> None:
    html = chip(index)
    assert f"--chip:{color_for_region(index).as_hex()}" in html
    assert f"--chip-text:{text_color_for_region(index).as_hex()}" in html


def test_the_detections_table_writes_a_label_naming_a_region_as_its_tag() -> None:
    """A visual prompt's label is the region it is like: the table read "<region0>"."""
    text = "<ground><region0></ground><objects><region1><region2></objects>"
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype=np.float32)
    rows = detection_rows(to_detections(parse_answer(text, 3), boxes))
    assert [row[:2] for row in rows] == [[1, "#0"], [2, "#0"], [0, ""]]


def test_reasoning_is_shown_apart_from_the_answer() -> None:
    answer = parse_answer("<think>see <region1></think><answer>it is <region0></answer>", 2)
    assert "see" not in answer_html(answer, 2) and "it is" in answer_html(answer, 2)
    assert "see" in reasoning_html(answer, 2) and region_hex(1) in reasoning_html(answer, 2)


def test_reasoning_while_streaming() -> None:
    answer = parse_answer("<think>still thinking about <region0>", 1)
    assert "still thinking" in reasoning_html(answer, 1)
    assert "still thinking" not in answer_html(answer, 1)


@pytest.mark.parametrize(
    ("raw", "boxes"),
    [
        ([[1, 2, 3, 4]], [[1.0, 2.0, 3.0, 4.0]]),  # a JSON list
        ("[[1, 2, 3, 4.5]]", [[1.0, 2.0, 3.0, 4.5]]),  # its text
        ("", []),  # nothing: no boxes
        (None, []),  # nothing from a client
        ({"boxes": [[1, 2, 3, 4]], "scores": [0.5]}, [[1.0, 2.0, 3.0, 4.0]]),  # /propose output
    ],
)
def test_parse_boxes(raw, boxes) -> None:
    assert parse_boxes(raw).boxes == boxes


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[[1, 2", r"the boxes: it is not valid JSON \(Expecting"),  # broken JSON
        ({"a": 1}, "JSON list"),  # an object
        ([[1, 2, 3]], "four numbers"),  # too short
        ([[1, 2, 3, True]], "numbers only"),  # a boolean is not a coordinate
        ("[[1, 2, 3, NaN]]", "finite"),  # NaN sneaks through JSON text
        ({"boxes": 5}, "JSON list"),  # the /propose shape around no list
        ({"boxes": None}, "JSON list"),
        (f"[[1{'0' * 400}, 0, 1, 1]]", "finite"),  # a JSON integer too large for a float
        # Python's words were "use sys.set_int_max_str_digits()", "maximum recursion depth"
        (f"[[1{'0' * 5000}, 0, 1, 1]]", "the boxes: it holds a number with too many digits"),
        ("[" * 100_000 + "]" * 100_000, "the boxes: its lists or objects nest too deeply"),
        ([[1, 1, 5, 5]] * 1001, "1001 boxes sent; at most 1000"),
    ],
)
def test_parse_boxes_rejects(raw, message: str) -> None:
    with pytest.raises(FO1Error, match=message):
        parse_boxes(raw)


@pytest.mark.parametrize(
    ("typed", "boxes"),
    [
        ("10, 20, 110, 220\n\n5 5 50 60", [[10, 20, 110, 220], [5, 5, 50, 60]]),
        ("[10, 20, 110, 220]; (1.5,2,3,4)", None),  # one line, eight values: refused below
        ("[[10, 20, 110, 220], [0, 0, 9, 9]]", [[10, 20, 110, 220], [0, 0, 9, 9]]),  # JSON
        ('{"boxes": [[1, 2, 30, 40]], "scores": [0.9]}', [[1, 2, 30, 40]]),  # /propose's answer
        ("110, 220, 10, 20", [[10, 20, 110, 220]]),  # corners in the other order
        ("-20, -5, 700, 300", [[0, 0, 640, 300]]),  # cut to the image
        ("   \n", []),  # nothing: no boxes
    ],
)
def test_boxes_from_text(typed: str, boxes) -> None:
    if boxes is None:
        with pytest.raises(FO1Error, match=r"Line 1 \(.*\) holds 8 values"):
            boxes_from_text(typed, 640, 480)
    else:
        assert boxes_from_text(typed, 640, 480).boxes == boxes
        shown = boxes_as_text(boxes)  # read back
        assert boxes_from_text(shown, 640, 480) == BoxesTyped(boxes, 0)


def test_a_typed_line_that_is_not_a_box_is_quoted() -> None:
    with pytest.raises(FO1Error, match=r"^Line 2 \(abc\) holds 1 value; a box is four numbers"):
        boxes_from_text("1 2 3 4\nabc", 640, 480)


def test_every_typed_line_that_is_not_a_box_is_named_at_once() -> None:
    """A long paste is corrected in one go, not one line per try."""
    typed = ["1, 2, 3", "10, 10, 20, 20", "700, 700, 800, 800", "foo", "4 5", "6", "7, 8"]
    with pytest.raises(FO1Error) as raised:
        boxes_from_text("\n".join(typed), 640, 480)
    message = str(raised.value)
    assert message.startswith("Line 1 (1, 2, 3) holds 3 values")
    assert "Line 3 (700, 700, 800, 800) has no area" in message and "Line 4 (foo)" in message
    assert "Line 5" not in message and message.endswith(" 3 more lines cannot be set either.")
    with pytest.raises(FO1Error, match=r"Line 2 .* Line 3 .*no area.*image\.$"):
        boxes_from_text("0, 0, 9, 9\n1 2\n0, 0, 0, 50", 640, 480)


def test_yolo_label_lines_are_read_as_fractions_of_the_image() -> None:
    """A YOLO label file (`class cx cy w h`, fractions of the image), as a labelling tool writes
    it beside each image, sets that image's boxes in pixels; five numbers that are not one are
    named as a box with a label."""
    typed = "0 0.5 0.5 0.5 0.5\n3 0.35 0.5 0.2 0.4\n"
    assert boxes_from_text(typed, 640, 480).boxes == [[160, 120, 480, 360], [160, 144, 288, 336]]
    for line in ("0 1.5 0.5 0.2 0.2", "0.5 0.5 0.5 0.2 0.2", "-1 0.5 0.5 0.2 0.2", "10 20 30 40 5"):
        with pytest.raises(FO1Error, match=r"holds 5 values.*\(no label\), or a YOLO label line"):
            boxes_from_text(line, 640, 480)


@pytest.mark.parametrize(
    ("line", "box"),
    [
        ("2 0.5 0.5 0.5 0.5 0.87", [160, 120, 480, 360]),  # a prediction, its confidence after
        ("1 0.25 0.1 0.75 0.2 0.5 0.9", [160, 48, 480, 432]),  # a segmentation's polygon
        ("0 0.2 0.1 0.8 0.1 0.8 0.9 0.2 0.9", [128, 48, 512, 432]),  # an oriented box's corners
        ("0 0.2 0.1 0.8 0.1 0.8 0.9 0.2", None),  # half a point
        ("0 0.2 0.1 0.8 0.1 1.8 0.9", None),  # past the image: not fractions
        ("1 2 3 4 5 6", None),  # two boxes on one line? Not fractions either
    ],
)
def test_yolo_segmentation_and_prediction_lines_are_read(line: str, box: Box | None) -> None:
    """Ultralytics' other label lines: a class number, then a polygon's points (segmentation,
    oriented boxes), whose extent is the box; or a box and its confidence (predictions)."""
    if box is None:
        with pytest.raises(
            FO1Error, match=r"values; a box is four numbers.*\(or a polygon's points\)"
        ):
            boxes_from_text(line, 640, 480)
    else:
        assert boxes_from_text(line, 640, 480).boxes == [box]


VOC = """<?xml version="1.0"?>
<annotation><filename>coffee.jpg</filename><size><width>640</width><height>480</height></size>
  <object><name>cup</name><bndbox><xmin>170</xmin><ymin>10</ymin><xmax>420</xmax><ymax>200</ymax>
  </bndbox></object>
  <object><name>spoon</name><difficult>0</difficult><bndbox>
    <xmin> 320 </xmin><ymin>60.5</ymin><xmax>430</xmax><ymax>320</ymax></bndbox></object>
</annotation>"""


def test_a_pascal_voc_annotation_is_read_as_its_objects_boxes() -> None:
    """LabelImg's XML, one file an image: each object's box, in the file's order."""
    assert boxes_from_text("\ufeff" + VOC, 640, 480).boxes == [
        [170, 10, 420, 200],
        [320, 60.5, 430, 320],
    ]
    for text, message in [
        (
            VOC.replace("</annotation>", ""),
            r"Not a Pascal VOC or CVAT annotation: its XML is broken",
        ),
        ("<svg><rect/></svg>", r"Not a Pascal VOC or CVAT annotation: its XML is <svg>"),
        (VOC.replace("<xmax>430", "<xmax>far"), r"Box #1 must hold numbers only"),
        (VOC.replace("<ymax>200", "<ymax>nan"), r"Box #0 has a coordinate that is not a finite"),
    ]:
        with pytest.raises(FO1Error, match=message):
            boxes_from_text(text, 640, 480)


@pytest.mark.parametrize(
    ("recorded", "shown", "boxes"),
    [
        ((640, 480), (640, 480), [[170, 10, 420, 200]]),
        ((1280, 960), (640, 480), [[85, 5, 210, 100]]),
        ((0, 0), (640, 480), [[170, 10, 420, 200]]),  # a tool that did not know the size
        ((3000, 2000), (1001, 667), [[56.723, 3.335, 140.14, 66.7]]),  # a resize's rounding
    ],
)
def test_a_voc_annotation_on_the_image_at_another_size_is_scaled_to_it(
    recorded: tuple[int, int], shown: tuple[int, int], boxes: list[Box]
) -> None:
    width, height = recorded
    text = VOC.replace("<width>640</width><height>480", f"<width>{width}</width><height>{height}")
    typed = boxes_from_text(text, *shown)
    assert typed.boxes[:1] == boxes
    assert (typed.scaled is None) == (recorded in [shown, (0, 0)])
    if typed.scaled:
        assert typed.scaled == (
            f"scaled from the {width}×{height} image the VOC annotation records to this "
            f"{shown[0]}×{shown[1]} one"
        )
    with pytest.raises(FO1Error, match=r"drawn on a 640×480 image, and this one is 480×640, an"):
        boxes_from_text(VOC, 480, 640)  # turned, or another image


def test_a_labelme_annotation_is_read_as_its_shapes_boxes() -> None:
    """LabelMe's JSON, one file an image: a rectangle (its corners in the order dragged), a
    polygon's extent, a circle's; scaled from the 1280×960 photo labelled to the 640×480 copy.
    A point has no box, and is named."""
    shapes = [
        {"label": "cup", "points": [[840, 400], [340, 20]], "shape_type": "rectangle"},
        {"label": "spoon", "points": [[640, 120], [860, 200], [760, 640]], "shape_type": "polygon"},
        {"label": "coin", "points": [[200, 200], [200, 260]], "shape_type": "circle"},
    ]
    document = {"shapes": shapes, "imagePath": "coffee.jpg", "imageWidth": 1280, "imageHeight": 960}
    typed = boxes_from_text(json.dumps(document), 640, 480)
    assert typed.boxes == [[170, 10, 420, 200], [320, 60, 430, 320], [70, 70, 130, 130]]
    assert (
        typed.scaled
        == "scaled from the 1280×960 image the LabelMe file records to this 640×480 one"
    )
    shapes.append({"label": "tip", "points": [[10, 10]], "shape_type": "point"})
    with pytest.raises(FO1Error, match=r"^Box #3 is a LabelMe point, which has no area: FO1 reads"):
        boxes_from_text(json.dumps(document), 640, 480)


def label_studio_task(image: str, results: list[dict]) -> dict:
    """A task of a Label Studio JSON export: its image, as uploaded, and one annotation."""
    return {
        "id": 1,
        "data": {"image": f"/data/upload/3/{image}"},
        "annotations": [{"result": results}],
    }


def label_studio_rectangle(
    x: float, y: float, width: float, height: float, turn: float = 0
) -> dict:
    """A rectangle as Label Studio records it: percentages of the 1200×800 image it was drawn on."""
    value = {"x": x, "y": y, "width": width, "height": height, "rotation": turn}
    return {
        "type": "rectanglelabels",
        "original_width": 1200,
        "original_height": 800,
        "value": value,
    }


def test_a_label_studio_export_is_read_as_its_rectangles() -> None:
    """Label Studio's JSON: a task per image, its results percentages of the image. Of a
    project's export, the task of the image (uploaded, named `<id>-<name>`); a rectangle, a
    polygon's extent; a choice marks no region and is left out; a rotated box or a keypoint is
    named."""
    choice = {"type": "choices", "value": {"choices": ["indoor"]}}
    polygon = {"type": "polygonlabels", "value": {"points": [[50, 15], [70, 20], [60, 80]]}}
    export = [
        label_studio_task("a1b2c3d4-cat.jpg", [label_studio_rectangle(0, 0, 10, 10)]),
        label_studio_task(
            "e5f6a7b8-coffee.jpg", [label_studio_rectangle(25, 2.5, 50, 50), choice, polygon]
        ),
    ]
    typed = boxes_from_text(json.dumps(export), 640, 480, "coffee.jpg")
    assert typed.boxes == [[160, 12, 480, 252], [320, 72, 448, 384]]
    with pytest.raises(FO1Error, match=r"^The Label Studio file holds 2 tasks: none is of dog.jpg"):
        boxes_from_text(json.dumps(export), 640, 480, "dog.jpg")
    keypoint = {"type": "keypointlabels", "value": {"x": 10, "y": 10, "width": 0.5}}
    for result, message in [
        (label_studio_rectangle(5, 5, 20, 20, turn=30), "is a rotated Label Studio rectangle"),
        (keypoint, "is a Label Studio keypoint, which has no area"),
        (
            label_studio_rectangle("5", 5, 20, 20),  # it said the rectangle "has no area"
            "is a Label Studio rectangle whose x, y, width and height are not all numbers",
        ),
    ]:
        one = label_studio_task("coffee.jpg", [label_studio_rectangle(0, 0, 10, 10), result])
        with pytest.raises(FO1Error, match=rf"^Box #1 {message}"):
            boxes_from_text(json.dumps(one), 640, 480, "coffee.jpg")


CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><name>kitchen</name></task></meta>
  <image id="0" name="images/cat.jpg" width="800" height="600">
    <box label="cat" xtl="1" ytl="1" xbr="50" ybr="50"/></image>
  <image id="1" name="images/coffee.jpg" width="1280" height="960">
    <tag label="indoor"/>
    <box label="cup" occluded="0" xtl="340.0" ytl="20.0" xbr="840.0" ybr="400.0" z_order="0">
      <attribute name="full">true</attribute></box>
    <polygon label="spoon" points="640.0,120.0;860.0,200.0;760.0,640.0"/>
    <ellipse label="coin" cx="200" cy="230" rx="30" ry="30" rotation="0.0"/>
    <mask label="plate" rle="3, 4, 5" left="100" top="600" width="400" height="200"/>
  </image>
  <image id="2" name="images/dog.jpg" width="640" height="480"/>
</annotations>"""


def test_a_cvat_export_is_read_as_its_images_shapes() -> None:
    """CVAT's "for images" XML, a project's images in one file: the shapes of the image named as
    the upload (folders aside), in the file's order, scaled from the 1280×960 photo labelled to
    the 640×480 copy: a box, a polygon's extent, an ellipse's, a mask's; a tag marks no region."""
    typed = boxes_from_text(CVAT, 640, 480, "coffee.jpg")
    assert typed.boxes == [
        [170, 10, 420, 200],
        [320, 60, 430, 320],
        [85, 100, 115, 130],
        [50, 300, 250, 400],
    ]
    assert (
        typed.scaled == "scaled from the 1280×960 image the CVAT file records to this 640×480 one"
    )
    assert boxes_from_text(CVAT, 640, 480, "dog.jpg") == BoxesTyped([], 0)
    with pytest.raises(
        FO1Error,
        match=r"^The CVAT file holds 3 images \(cat.jpg, coffee.jpg, dog.jpg\): none is "
        "named espresso.jpg.",
    ):
        boxes_from_text(CVAT, 640, 480, "espresso.jpg")
    one = CVAT[: CVAT.index('<image id="0')] + CVAT[CVAT.index('<image id="1') :]
    one = one[: one.index('<image id="2')] + "</annotations>"
    assert boxes_from_text(one, 640, 480, "photo.jpg").boxes[0] == [170, 10, 420, 200]
    for shape, message in [
        ('<box xtl="1" ytl="1" xbr="9" ybr="9" rotation="30"/>', "is a turned CVAT box"),
        ('<polyline points="1,1;5,5"/>', "is a CVAT polyline, which has no area"),
        ('<polygon points="1,1;5"/>', 'is a CVAT polygon whose points are not "x,y;x,y;…"'),
        ('<polygon points="1,1;5,nan"/>', "is a CVAT polygon whose points are not .* numbers"),
        ('<cuboid xtl1="1"/>', r"is a CVAT cuboid: FO1 reads boxes, polygons, ellipses, masks\.$"),
    ]:
        with pytest.raises(FO1Error, match=rf"^Box #4 {message}"):
            boxes_from_text(one.replace("</image>", f"{shape}</image>"), 640, 480)
    video = '<annotations><track id="0" label="car"><box frame="0" xtl="1" ytl="1" xbr="9" ybr="9"'
    with pytest.raises(FO1Error, match=r"^The CVAT file is a video's .*\"CVAT for images\""):
        boxes_from_text(f'{video} outside="0"/></track></annotations>', 640, 480)


def label_studio_record(image: str, annotator: int, regions: list[dict]) -> dict:
    """A record of a Label Studio JSON-MIN export: one annotation, its regions flat under the
    control's name, a choice as its word."""
    return {
        "image": f"/data/upload/3/{image}",
        "id": 7,
        "label": regions,
        "scene": "indoor",
        "annotator": annotator,
        "annotation_id": 10 + annotator,
        "created_at": "2026-12-01T10:00:00.000000Z",
        "lead_time": 12.5,
    }


def test_a_label_studio_json_min_export_is_read_as_its_regions() -> None:
    """Label Studio's JSON-MIN: a record per annotation. Of the upload's image, the first
    annotator's regions: a rectangle from its percentages, a polygon's extent."""
    rectangle = {**label_studio_rectangle(25, 2.5, 50, 50)["value"], "rectanglelabels": ["cup"]}
    rectangle |= {"original_width": 1200, "original_height": 800}
    polygon = {"points": [[50, 15], [70, 20], [60, 80]], "polygonlabels": ["spoon"]}
    export = [
        label_studio_record("a1b2c3d4-cat.jpg", 1, [{**rectangle, "x": 0}]),
        label_studio_record("e5f6a7b8-coffee.jpg", 1, [rectangle, polygon]),
        label_studio_record("e5f6a7b8-coffee.jpg", 2, [polygon]),  # a second annotator's
    ]
    typed = boxes_from_text(json.dumps(export), 640, 480, "coffee.jpg")
    assert typed.boxes == [[160, 12, 480, 252], [320, 72, 448, 384]]
    with pytest.raises(FO1Error, match=r"^The Label Studio file holds 3 tasks: none is of dog.jpg"):
        boxes_from_text(json.dumps(export), 640, 480, "dog.jpg")
    turned = label_studio_record("coffee.jpg", 1, [{**rectangle, "rotation": 30}])
    with pytest.raises(FO1Error, match=r"^Box #0 is a rotated Label Studio rectangle"):
        boxes_from_text(json.dumps([turned]), 640, 480, "coffee.jpg")


def test_an_xml_bomb_or_an_outside_file_in_a_voc_annotation_is_refused() -> None:
    """Entities that expand a kilobyte into gigabytes, or read a file of the server's, are told
    as broken XML at once, not expanded nor read."""
    lol = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    bomb = f"<!DOCTYPE annotation [{''.join(lol)}]><annotation><object><bndbox><xmin>&lol9;"
    outside = '<!DOCTYPE annotation [<!ENTITY f SYSTEM "file:///etc/passwd">]>'
    outside += "<annotation><object><bndbox><xmin>&f;"
    for text in (bomb, outside):
        with pytest.raises(FO1Error, match=r"XML is broken \((limit on input|undefined entity)"):
            boxes_from_text(text + "</xmin></bndbox></object></annotation>", 640, 480)


def test_more_boxes_than_the_model_reads_are_set_as_the_editor_allows() -> None:
    many = [[i, 0, i + 5, 5] for i in range(MAX_REGIONS + 2)]
    assert boxes_from_text(boxes_as_text(many), 640, 480) == BoxesTyped(many, 0)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1, 2, 3, 4\n1, 2, 3", r"Line 2 \(1, 2, 3\) holds 3 values; a box is four numbers"),
        ("cup: 1, 2, 3, 4", r"Line 1 \(cup: 1, 2, 3, 4\) holds 5 values.*\(no label\)"),
        ("1, 2, 3, four", "Line 1 .* holds something that is not a number"),
        ("1, 2, inf, 4", "not finite"),
        # a YOLO label line but for one value: that value is named
        ("0 -0.5 0.5 0.2 0.2", r"as fractions of the image, from 0 to 1, which -0\.5 is not\."),
        ("0 0.5 nan 0.2 0.2", "from 0 to 1, which nan is not"),
        ("0, 0, 10, 10\n700, 10, 800, 50", r"Line 2 \(700, 10, 800, 50\) has no area inside"),
        ("5, 5, 5, 50", "no area"),
        ("0.1, 0.2, 0.5, 0.6", r"whole pixel each way\. Coordinates are pixels, not fractions"),
        # under a whole pixel, as the API and the command line refuse it
        ("10, 10, 10.2, 50", r"Line 1 \(10, 10, 10.2, 50\) is 0.2×40 px inside the 640×480"),
        ("[[1, 2, 3, NaN]]", "finite"),
        ("[[0, 0, 10, 10], [700, 0, 800, 10]]", "Box 1"),
        (
            "\n".join(["0, 0, 10, 10"] * (MAX_TYPED_BOXES + 1)),
            f"{MAX_TYPED_BOXES + 1} boxes typed; at most {MAX_TYPED_BOXES} can be set at once",
        ),
    ],
)
def test_boxes_from_text_names_the_mistake(typed: str, message: str) -> None:
    with pytest.raises(FO1Error, match=message):
        boxes_from_text(typed, 640, 480)


def box(label: str, x: int) -> dict:
    return {"xmin": x, "ymin": 0, "xmax": x + 5, "ymax": 5, "label": label}


DRAWING_ORDERS = [
    (["#0", "#1"], [0, 1]),  # already in order
    (["", "#0", "#1"], [1, 2, 0]),  # one new box, put first by the editor
    (["", "", "#0"], [2, 1, 0]),  # two new boxes: the older one is further back
    (["#2", "#0"], [1, 0]),  # a gap after a deletion keeps the relative order
    (["a label", "#0"], [1, 0]),  # any other label counts as new
]
"""Box labels in the editor's list order, and the order they become regions in (by `xmin`)."""


@pytest.mark.parametrize(("labels", "order"), DRAWING_ORDERS)
def test_drawing_order(labels: list[str], order: list[int]) -> None:
    entries = [box(label, i) for i, label in enumerate(labels)]
    assert [entry["xmin"] for entry in in_drawing_order(entries)] == order


def test_the_editor_lists_the_smallest_box_first_named_in_region_order() -> None:
    """It selects the first box of its list under a click: a box inside another can be picked."""
    boxes = [[0, 0, 100, 100], [10, 10, 20, 20], [0, 0, 50, 50]]
    entries = editor_boxes(boxes)
    assert [entry["label"] for entry in entries] == ["#1", "#2", "#0"]
    assert boxes_of({"boxes": entries}) == boxes


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ([{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, "color": [1, 2, 3]}], "Boxes must"),
        ([{"xmin": 1, "ymin": 1}], "Boxes must"),  # corners missing
    ],
)
def test_editor_rejects_malformed_boxes_readably(boxes: list[dict], message: str) -> None:
    payload = AnnotatedImageData(image=FileData(path=str(EXAMPLES_DIR / "coffee.jpg")), boxes=boxes)
    with pytest.raises(gr.Error, match=message):
        box_editor().preprocess(payload)


def test_the_editor_takes_back_the_boxes_the_server_gave_it() -> None:
    """The page echoes the value the server set until it renames the boxes itself: an event
    reading the editor just after "Set these boxes" sent colours as lists, and got an error."""
    editor = box_editor(image_type="filepath")
    sent = editor.postprocess(editor_value(str(EXAMPLES_DIR / "coffee.jpg"), [[1, 2, 30, 40]]))
    echoed = AnnotatedImageData.model_validate(json.loads(sent.model_dump_json()))
    assert boxes_of(editor.preprocess(echoed)) == [[1, 2, 30, 40]]


def test_the_editor_keeps_the_uploaded_files_own_name() -> None:
    upload = FileData(path=str(EXAMPLES_DIR / "coffee.jpg"), orig_name="My café photo.JPG")
    value = box_editor(image_type="filepath").preprocess(AnnotatedImageData(image=upload))
    assert Path(value["image"]).name != "My café photo.JPG"  # the component's own copy
    assert file_name_of(value) == "My café photo.JPG"
    assert file_name_of({**value, "orientation": 3}) == "My café photo-turned-270.png"
    unnamed = box_editor(image_type="filepath").preprocess(
        AnnotatedImageData(image=FileData(path=upload.path))
    )
    assert file_name_of(unnamed) == Path(unnamed["image"]).name


def test_the_editor_hands_on_the_uploaded_file_itself_not_a_recompressed_copy(tmp_path) -> None:
    """Each time the server sends the editor back, its image returns: saved again as a JPEG, it
    lost detail each round and read as another image."""
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)).save(photo)
    for _ in range(3):
        value = box_editor(image_type="filepath").preprocess(
            AnnotatedImageData(image=FileData(path=str(photo), orig_name="photo.jpg"))
        )
        assert value["image"] == str(photo)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photo.read_bytes()[:300])
    broken = box_editor(image_type="filepath").preprocess(
        AnnotatedImageData(image=FileData(path=str(truncated)))
    )
    assert UNREADABLE in broken  # still found out, as the component's own step did


def test_the_editor_hands_on_transparent_and_16_bit_images_as_the_browser_shows_them(
    tmp_path,
) -> None:
    Image.new("RGBA", (100, 80), (0, 0, 255, 128)).save(tmp_path / "half-transparent.png")
    ramp = np.tile(np.linspace(0, 65535, 100).astype(np.uint16), (80, 1))
    Image.fromarray(ramp).save(tmp_path / "16-bit.png")
    seen = {}
    for name in ("half-transparent.png", "16-bit.png"):
        upload = FileData(path=str(tmp_path / name), orig_name=name)
        value = box_editor(image_type="filepath").preprocess(AnnotatedImageData(image=upload))
        seen[name] = np.asarray(open_image(value["image"]))
        assert (seen[name] == np.asarray(open_image(upload.path))).all()
    # Half-transparent blue on white, as shown; not opaque blue (alpha dropped onto black).
    assert seen["half-transparent.png"][0, 0].tolist() == [127, 127, 255]
    assert seen["16-bit.png"][0, [0, 50, 99], 0].tolist() == [0, 129, 255]  # not clipped white


def test_an_image_written_back_to_the_editor_keeps_its_uploaded_name() -> None:
    editor = box_editor(image_type="filepath")
    value = editor_value(str(EXAMPLES_DIR / "coffee.jpg"), [[1, 2, 30, 40]], "kitchen.JPG")
    sent = editor.postprocess(value)  # as after Propose
    assert sent.image.orig_name == "kitchen.JPG" and len(sent.boxes) == 1
    back = editor.preprocess(AnnotatedImageData(image=sent.image))  # the page sends it back
    assert file_name_of(back) == "kitchen.JPG"


@pytest.mark.parametrize(
    ("size", "factor"),
    [
        ((40, 30), 32),  # an icon: to EDITOR_SIDE on its long side
        ((30, 120), 11),  # tall: by its long side (the page fits it to the window)
        ((SMALL_SIDE - 1, 300), 3),  # the largest enlarged: whole times, past EDITOR_SIDE
        ((SMALL_SIDE, 300), 1),  # from SMALL_SIDE on, the editor's own sizing
        ((600, 400), 1),  # the examples
    ],
)
def test_a_small_image_is_enlarged_for_the_editor_whole_times(size, factor) -> None:
    assert enlargement(*size) == factor
    assert factor == 1 or max(size) * factor >= EDITOR_SIDE


def pixel_picture(path: Path, size: tuple[int, int]) -> np.ndarray:
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_a_small_image_goes_to_the_editor_enlarged_and_comes_back_in_its_own_pixels(
    tmp_path,
) -> None:
    small = tmp_path / "icon.png"
    pixels = pixel_picture(small, (40, 30))
    editor = box_editor(image_type="filepath")
    sent = editor.postprocess(editor_value(str(small), [[10, 5, 30, 20]]))  # as after Propose
    shown = np.asarray(Image.open(sent.image.path))
    assert shown.shape == (960, 1280, 3)
    assert (shown[::32, ::32] == pixels).all() and (shown[31::32, 31::32] == pixels).all()
    assert [sent.boxes[0][key] for key in ("xmin", "ymin", "xmax", "ymax")] == [320, 160, 960, 640]
    assert sent.image.orig_name == "icon.png"  # not the copy's name
    # The page sends it back with a box drawn on the enlarged copy, shown at 0.5 of its size.
    drawn = {"xmin": 160, "ymin": 81, "xmax": 327, "ymax": 239, "scaleFactor": 0.5}
    back = editor.preprocess(AnnotatedImageData(image=sent.image, boxes=[drawn]))
    assert back["image"] == str(small)  # the model reads the file uploaded, not the copy
    assert boxes_of(back) == [[10, 5, 20, 15]]  # whole pixels of the image
    assert file_name_of(back) == "icon.png"
    # Written back again (Undo, typed boxes), it is handed the same copy.
    assert editor.postprocess(back).image.path == sent.image.path


@pytest.mark.parametrize(
    ("drawn", "pixels"),
    [
        ((64, 64, 192, 96), [2, 2, 6, 3]),  # rounded to the nearest pixel edge
        ((70, 70, 74, 74), [2, 2, 3, 3]),  # within one pixel (4 px, the editor's least): kept
        ((90, 0, 97, 5), [2, 0, 3, 1]),  # across a pixel edge, under a pixel wide: its first
    ],
)
def test_a_box_drawn_on_an_enlarged_image_keeps_its_area(tmp_path, drawn, pixels) -> None:
    small = tmp_path / "icon.png"
    pixel_picture(small, (40, 30))  # enlarged 32 times
    editor = box_editor(image_type="filepath")
    sent = editor.postprocess(editor_value(str(small), []))
    box = dict(zip(("xmin", "ymin", "xmax", "ymax"), drawn, strict=True))
    back = editor.preprocess(AnnotatedImageData(image=sent.image, boxes=[box]))
    assert boxes_of(back) == [pixels]


def test_only_a_small_upload_is_sent_back_enlarged(tmp_path) -> None:
    """The page takes the copy itself (`TAKE_THE_ENLARGED_COPY`), with the boxes drawn since."""
    small = tmp_path / "icon.png"
    pixel_picture(small, (40, 30))
    value = {"image": str(small), "boxes": [{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}]}
    copy, made = shown_enlarged(value)
    assert copy == {"image": str(small), "boxes": []}
    assert made == {"source": str(small), "factor": enlargement(40, 30)}
    for kept in ({"image": str(EXAMPLES_DIR / "coffee.jpg"), "boxes": []}, None, {UNREADABLE: "x"}):
        assert shown_enlarged(kept) == (gr.skip(), gr.skip())


@pytest.mark.parametrize("content", [b"nope", EPS])  # EPS: decoded by running Ghostscript
def test_editor_rejects_a_broken_file_readably(tmp_path, content: bytes) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(content)
    # Not an exception: every later event reading the editor would fail on it too.
    value = box_editor().preprocess(AnnotatedImageData(image=FileData(path=str(broken))))
    assert "not an image" in value["unreadable"]
    assert (image_of(value), boxes_of(value)) == (None, [])


@pytest.mark.parametrize(
    ("size", "message"),
    [((8, 1300), "an aspect ratio above 150:1"), ((5, 40), "each side needs at least 8 px")],
)
def test_editor_refuses_an_image_the_model_cannot_take_at_once(
    tmp_path, size: tuple[int, int], message: str
) -> None:
    """Said on upload, before boxes are drawn on it, not at Run."""
    path = tmp_path / "thin.png"
    Image.new("RGB", size).save(path)
    value = box_editor().preprocess(AnnotatedImageData(image=FileData(path=str(path))))
    assert message in value["unreadable"]
    assert (image_of(value), boxes_of(value)) == (None, [])


@pytest.mark.parametrize(
    ("prompt", "selection", "text", "caret"),
    [
        # caret mid-sentence: spaced from the words either side, caret just after the reference
        ("What is next to?", [15, 15], "What is next to <region3>?", 25),
        ("Is  red?", [3, 3], "Is <region3> red?", 12),
        # a selection is replaced
        ("Is the cup red?", [3, 10], "Is <region3> red?", 12),
        ("Is the cup red?", [10, 3], "Is <region3> red?", 12),
        # no caret from the page (API caller, prompt never focused): appended
        ("What is", None, "What is <region3> ", 18),
        # out-of-range ends clamp into the prompt
        ("What is ", [99, -4], "<region3> ", 10),
        ("", [0, 0], "<region3> ", 10),
        (None, None, "<region3> ", 10),
        # emoji before the caret count once, as Python counts them
        ("🐱🐶 or", [2, 2], "🐱🐶 <region3> or", 12),
        ("What", ["x", 1], "What <region3> ", 15),
        ("What", [float("nan"), 1], "What <region3> ", 15),
    ],
)
def test_region_reference_goes_where_the_caret_was(prompt, selection, text, caret) -> None:
    inserted, picker, placed = Handlers.insert_region(prompt, 3, selection)
    assert (inserted, placed) == (text, [caret, caret])
    assert picker["value"] is None


def test_the_reference_lists_clearing_inserts_nothing_and_places_no_caret() -> None:
    # The insertion empties the list, which runs the handler again with no reference: had it
    # kept the caret, the page would put the caret back there as the user typed on.
    outputs = Handlers.insert_region("What is <region3> ", None, [18, 18])
    assert outputs == (gr.skip(), gr.skip(), None)


def test_gpu_duration_fits_the_request() -> None:
    assert duration_for(64) < duration_for(1024) < duration_for(4096) <= MAX_SECONDS
    assert duration_for(10**6) == MAX_SECONDS


QUOTA = (
    "You have exceeded your free ZeroGPU quota ({}s requested vs. {}s left). Try again in 0:12:00."
)
"""How `spaces` 0.51 words a visitor's quota too short for the slot asked for."""


@pytest.mark.parametrize(
    ("message", "max_new_tokens", "hint"),
    [
        # 1024 tokens ask for 122 s; 95 s hold 750 tokens, 736 in the slider's steps.
        (QUOTA.format(122, 95), 1024, "With Max new tokens at 736 or fewer, this question fits."),
        # `spaces` doubled the seconds asked for: 95 s left hold half as many.
        (QUOTA.format(244, 95), 1024, "With Max new tokens at 256 or fewer, this question fits."),
        # A quota short of even the shortest answer's slot: nothing to suggest.
        (QUOTA.format(26, 21), 64, None),
        # The slot asked for is over what ZeroGPU gives anyone at once.
        (
            "The requested GPU duration (122s) is larger than the maximum allowed",
            1024,
            "Lower Max new tokens: a shorter answer asks for a shorter GPU slot.",
        ),
        # Any other refusal (no GPU free) has nothing to do with the answer's length.
        ("No GPU was available after 60s. Retry later", 1024, None),
    ],
)
def test_a_refused_zerogpu_slot_says_what_answer_length_would_fit(
    message: str, max_new_tokens: int, hint: str | None
) -> None:
    told = slot_refused(message, max_new_tokens)
    assert told.startswith(message)
    assert told == (message if hint is None else f"{message} {hint}")


def test_gpu_wrapper_is_a_no_op_off_spaces() -> None:
    def work(n: int) -> int:
        return n + 1

    assert on_gpu(work)(1) == 2
    assert on_gpu(work, max_new_tokens=lambda n: n) is work


def test_report_is_one_offline_file() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    answer = parse_answer("<ground>a<script></ground><objects><region0></objects>", 1)
    detections = to_detections(answer, np.array([[1, 2, 10, 12.5]]))
    result = Result(
        image,
        "cat.jpg",
        image,
        [[1, 2, 10, 12.5]],
        "Detection",
        "find <b>",
        answer,
        detections,
        "Done",
    )
    html = report_html(result)
    assert html.count("<img") == 2 and html.count("data:image/jpeg;base64,") == 2
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "find &lt;b&gt;" in html
    assert "<h1>VLM-FO1 answer about cat.jpg</h1>" in html  # names its image, opened on its own
    # The box in both tables alike, in tenths of a pixel: 10, not 10.0, and 12.5, not 12
    assert html.count("<td>1</td><td>2</td><td>10</td><td>12.5</td>") == 2
    assert "Reasoning" not in html  # the answer has none
    result.answer = parse_answer("<think>the <region0> is round</think><ground>a</ground>", 1)
    assert "<summary>Reasoning</summary>" in report_html(result)


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (1, 9), (37, 53)])
def test_packed_masks_come_back_as_they_were(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    masks = [np.zeros(shape, bool), np.ones(shape, bool)]
    for _ in range(30):
        mask = np.zeros(shape, bool)
        y0, x0 = rng.integers(shape[0]), rng.integers(shape[1])
        y1, x1 = rng.integers(y0, shape[0]) + 1, rng.integers(x0, shape[1]) + 1
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.5
        masks.append(mask)
    for mask in masks:
        assert (PackedMask.pack(mask).unpack() == mask).all()


def test_a_session_keeps_a_small_mask_of_a_large_photo_small() -> None:
    mask = np.zeros((3000, 4000), bool)  # 12 MB as it comes from the proposer
    mask[1000:1100, 2000:2150] = True
    store = {box_key([2000, 1000, 2150, 1100]): PackedMask.pack(mask)}
    assert store[box_key([2000, 1000, 2150, 1100])].bits.nbytes < 2_000
    found = masks_for([[0, 0, 10, 10], [2000, 1000, 2150, 1100]], store)
    assert found.shape == (2, 3000, 4000) and not found[0].any() and (found[1] == mask).all()


class OnePixelWide(Proposer):
    name = "one-pixel"
    label = "One pixel wide"

    def _predict(self, image, text, threshold, options) -> sv.Detections:
        corners = [[3.46, 1, 4.54, 9], [10.451, 1, 11.549, 9], [20.5, 1, 21.5, 9]]
        return sv.Detections(xyxy=np.array(corners, np.float32), confidence=np.ones(3, np.float32))


def test_proposals_given_by_the_api_are_taken_back_by_it(monkeypatch) -> None:
    monkeypatch.setattr(Proposing, "proposer", lambda self, name: OnePixelWide())
    proposals = Proposing().propose(Image.new("RGB", (40, 10)), "one-pixel", None, None, 5)
    assert len(proposals.boxes) == 3
    assert [box_problem(box, 40, 10) for box in proposals.boxes] == [None] * 3
    assert proposals.boxes[0] == [3.46, 1.0, 4.54, 9.0]


def test_answer_files_are_removed_once_old() -> None:
    folders = AnswerFolders(keep_s=60)
    first = folders.new()
    (first / "fo1-answer.png").write_bytes(b"png")
    recent = folders.new()
    os.utime(first, (0, 0))  # written long ago
    latest = folders.new()
    assert not first.exists() and recent.exists() and latest.exists()
    assert {recent.parent, latest.parent} == {folders.root}


def test_turned_copies_go_once_unused_for_long(tmp_path) -> None:
    for name, colour in (("a.png", "red"), ("b.png", "blue")):  # two images, not one twice
        Image.new("RGB", (40, 20), colour).save(tmp_path / name)
    old, used = turned(str(tmp_path / "a.png"), 1), turned(str(tmp_path / "b.png"), 1)
    for copy in (old, used):
        os.utime(copy, (0, 0))  # made long ago
    assert turned(str(tmp_path / "b.png"), 1) == used  # looked at again: kept
    turned(str(tmp_path / "a.png"), 2)  # a new copy clears the old ones
    assert not Path(old).exists() and Path(used).exists()
    assert Image.open(used).size == (20, 40)


def test_copies_of_one_image_share_its_turned_copy(tmp_path) -> None:
    """Gradio copies the editor's image again each time the server sends it back: turning one
    copy is not redone for the next."""
    Image.new("RGB", (40, 20), "green").save(tmp_path / "first.png")
    (tmp_path / "again").mkdir()
    shutil.copy(tmp_path / "first.png", tmp_path / "again" / "first.png")
    assert turned(str(tmp_path / "first.png"), 1) == turned(str(tmp_path / "again/first.png"), 1)


def test_a_turned_copy_is_never_read_half_written(tmp_path) -> None:
    """The editor's events for one turn come together: each reader gets the whole image."""
    source = tmp_path / "large.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), np.uint8)).save(
        source
    )

    def read_turned(delay: float) -> tuple[int, int]:
        time.sleep(delay)
        return open_image(turned(str(source), 1)).size

    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(read_turned, [0, 0.05, 0.1, 0.2]))
    assert sizes == [(1500, 2000)] * 4


def test_answers_finishing_together_both_get_their_folder() -> None:
    folders = AnswerFolders(keep_s=60)

    def finish(barrier: threading.Barrier) -> Path:
        barrier.wait()
        return folders.new()

    for _ in range(20):
        for _ in range(30):  # expired answers, which both cleanups go for at once
            os.utime(folders.new(), (0, 0))
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            made = list(pool.map(finish, [barrier, barrier]))
        assert all(folder.is_dir() for folder in made)


@pytest.mark.parametrize(
    ("uploaded", "stem"),
    [
        ("cafe\u0301.jpg", "café-fo1"),  # decomposed, as macOS names files: composed again
        ("nai\u0308ve photo.jpg", "naïve_photo-fo1"),
        ("हिन्दी.png", "हिन्दी-fo1"),  # vowel signs are marks, not separators
        ('my "photo" & <b>.png', "my_photo_b-fo1"),
        ("...png", "fo1"),
    ],
)
def test_downloads_are_named_by_the_image_in_its_own_letters(uploaded: str, stem: str) -> None:
    assert file_stem(uploaded) == stem


def test_downloads_are_written_as_utf8_whatever_the_locale(tmp_path) -> None:
    # An ASCII locale (a bare container, say): "·" in the report and a CJK label must not fail.
    # (The script itself is ASCII: such a locale cannot pass other text on a command line.)
    script = f"""
import numpy as np
from pathlib import Path
from fo1_core.answers import parse_answer, to_detections
from ui.report import Result, write_downloads
answer = parse_answer("<ground>\\u732b</ground><objects><region0></objects>", 1)
image = np.zeros((20, 30, 3), np.uint8)
boxes = [[1, 2, 10, 12]]
detections = to_detections(answer, np.array(boxes))
result = Result(image, "cat.jpg", image, boxes, "Detection", "cat", answer, detections, "Done")
write_downloads(result, Path({str(tmp_path)!r}))
"""
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "猫" in (tmp_path / "cat-fo1-report.html").read_text(encoding="utf-8")
    assert "猫" in (tmp_path / "cat-fo1-answer.json").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name",
    [
        "𝐜𝐨𝐟𝐟𝐞𝐞" * 10 + ".jpg",  # 60 letters of 4 bytes each: a legal file name
        "a\udcffb.png",  # lone surrogates, as a crafted upload's name can hold
        "a\ud800b.png",
    ],
)
def test_downloads_of_an_image_with_an_unusual_name(tmp_path, name: str) -> None:
    answer = parse_answer("<ground>cup</ground><objects><region0></objects>", 1)
    image = np.zeros((20, 30, 3), np.uint8)
    boxes = [[1, 2, 10, 12]]
    detections = to_detections(answer, np.array(boxes))
    result = Result(image, name, image, boxes, "Detection", "cup", answer, detections, "Done")
    files = write_downloads(result, tmp_path)
    assert all(Path(path).exists() for path in (files.image, files.json, files.coco, files.report))
    shown = json.loads(Path(files.json).read_text(encoding="utf-8"))["image"]
    assert shown == name.encode("utf-8", "replace").decode("utf-8")


def test_downloads_wait_only_behind_a_huge_images_full_size_drawing(
    tmp_path: Path, pipeline
) -> None:
    """One at a time across every visitor, the downloads of a small image waited seconds behind
    those of a stranger's 100-megapixel photo, drawn again at its own size."""
    downloads = [fn for fn in build_app(pipeline).fns.values() if fn.name == "downloads"]
    assert [fn.concurrency_limit for fn in downloads] == [None]
    answer = parse_answer("<ground>cup</ground><objects><region0></objects>", 1)
    image = np.zeros((20, 30, 3), np.uint8)
    boxes = [[1, 2, 10, 12]]
    detections = to_detections(answer, np.array(boxes))
    small = Result(image, "small.jpg", image, boxes, "Detection", "cup", answer, detections, "")
    huge = dataclasses.replace(small, image_name="huge.jpg", source=Image.new("RGB", (60, 40)))
    huge.reduced = 2
    written = []
    with FULL_SIZE_DRAWINGS:  # another huge image's drawing under way
        assert Path(write_downloads(small, tmp_path).image).is_file()  # not kept waiting
        waiting = threading.Thread(target=lambda: written.append(write_downloads(huge, tmp_path)))
        waiting.start()
        waiting.join(0.5)
        assert not written  # kept waiting: one full-size copy at a time
    waiting.join(30)
    assert Path(written[0].image).name == "huge-fo1-answer.png"  # drawn at its own size


def test_report_without_detections() -> None:
    answer = parse_answer("nothing here", 0)
    empty = to_detections(answer, np.zeros((0, 4)))
    image = np.zeros((8, 8, 3), np.uint8)
    result = Result(image, "cat.jpg", image, [], "Free prompt", "hi", answer, empty, "Done")
    assert "nothing here" in report_html(result)
    assert isinstance(empty, sv.Detections)


def test_examples_are_valid_and_small() -> None:
    examples = load_examples()
    licences = (EXAMPLES_DIR / "README.md").read_text()
    total = 0
    for example in examples:
        assert example.image.name in licences
        assert example.task in TASKS or example.task == FREE_PROMPT
        width, height = Image.open(example.image).size
        for x1, y1, x2, y2 in example.boxes:
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert all(0 <= i < len(example.boxes) for i in example.regions)
        total += example.image.stat().st_size
    assert len(examples) >= 4 and total < 1_500_000
    assert json.loads((EXAMPLES_DIR / "examples.json").read_text())


def test_the_drawn_example_is_the_one_its_script_draws() -> None:
    """`examples/signs.jpg` is drawn, not photographed: its script, which the examples' README
    names as its source, draws it again, with the boxes the example gives its signs."""
    script = runpy.run_path(str(EXAMPLES_DIR.parent / "scripts" / "draw_signs_example.py"))
    drawn, boxes = script["draw"]()
    example = next(e for e in load_examples() if e.image.name == "signs.jpg")
    assert example.boxes == [list(map(float, box)) for box in boxes]
    shipped = np.asarray(Image.open(example.image), np.float32)
    assert np.abs(shipped - np.asarray(drawn, np.float32)).mean() < 2  # JPEG's loss only


def test_command_line_defaults() -> None:
    args = parse_args([])
    assert args.checkpoint == "omlab/VLM-FO1_Qwen2.5-VL-3B-v01"
    assert (args.host, args.port, args.device) == ("127.0.0.1", 7860, None)
    assert args.encode_ahead and not parse_args(["--no-encode-ahead"]).encode_ahead


def test_the_app_serves_where_a_space_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hugging Face Space names the address to serve on in Gradio's variables (0.0.0.0):
    serving on 127.0.0.1 there leaves the Space unreachable."""
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert (parse_args([]).host, parse_args([]).port) == ("0.0.0.0", 7861)
    assert parse_args(["--host", "::1", "--port", "80"]).port == 80


@pytest.mark.parametrize(
    "argv",
    [
        ["--concurrency", "0"],  # every question would wait forever
        ["--queue-size", "-3"],  # every question would be refused as "queue full"
        ["--file-ttl", "-5"],  # results would be gone before the browser fetched them
        ["--max-new-tokens", "0"],
        ["--port", "70000"],
        ["--proposer", "nosuch"],  # was ignored without a word
        ["--proposer-checkpoint", "florence2"],  # no folder
        ["--proposer-checkpoint", "offline=/models/x"],  # loads no model
        ["--max-file-size", "banana"],  # a traceback at launch, after the model loaded
        ["--max-file-size", "0"],
        ["--max-file-size", "50mib"],
    ],
)
def test_command_line_refuses_settings_that_cannot_work(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    ("written", "size"), [("50mb", 50 * 2**20), ("1.5 GB", 3 * 2**29), ("1000", 1000)]
)
def test_upload_sizes_are_read_as_written(written: str, size: int) -> None:
    assert parse_args(["--max-file-size", written]).max_file_size == size


def test_each_proposer_can_be_given_its_folder() -> None:
    argv = ["--proposer-checkpoint", "sam3=/models/sam3", "--proposer-checkpoint", "florence2=f2"]
    assert dict(parse_args(argv).proposer_checkpoint) == {"sam3": "/models/sam3", "florence2": "f2"}
    assert parse_args([]).proposer_checkpoint == []


def test_a_proposer_whose_model_class_is_missing_says_so_and_logs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An older transformers without the model's class: not "damaged files, download again"."""

    def import_fails(self: Florence2Proposer) -> None:
        raise ImportError("cannot import name 'Florence2ForConditionalGeneration'")

    monkeypatch.setattr(Florence2Proposer, "_load", import_fails)
    proposing = Proposing("cpu", {"florence2": str(tiny.build_florence2(tmp_path))})
    with pytest.raises(ProposerError) as raised:
        proposing.propose(Image.new("RGB", (64, 48)), "florence2", None, None, 10)
    assert "ImportError: cannot import name 'Florence2" in str(raised.value)
    assert "damaged" not in str(raised.value)
    assert any(record.exc_info for record in caplog.records)  # the server log has the traceback


@pytest.mark.parametrize(
    "size", [(8, 8), (7, 400), (400, 7), (1200, 8), (1201, 8), (10_001, 10_000)]
)
def test_an_image_the_model_takes_can_have_proposals_and_no_other(size) -> None:
    """The same limits, in the same words, for FO1 and the proposers (the command lines too)."""
    image = Image.new("1", size)  # a bit per pixel: the refused large one stays small
    try:
        open_image(image)
    except FO1Error as refused:
        with pytest.raises(ProposerError, match=re.escape(str(refused))):
            check_image(image)
    else:
        assert check_image(image).size == size


def test_an_unknown_device_is_one_message() -> None:
    with pytest.raises(FO1Error, match="Unknown device 'quantum'"):
        decode_mode(parse_args(["--device", "quantum"]))


CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_decoding_is_compiled_only_on_a_gpu_the_app_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    assert decode_mode(parse_args(["--device", "cpu"])) == "dynamic"
    assert decode_mode(parse_args(["--device", "cuda"])) == "compiled"
    assert decode_mode(parse_args(["--device", "cpu", "--decode", "static"])) == "static"
    assert not warms_up("dynamic", CPU)
    assert warms_up("compiled", CPU) and warms_up("dynamic", CUDA)
    monkeypatch.setattr(app, "ON_ZERO_GPU", True)
    assert decode_mode(parse_args(["--device", "cuda"])) == "dynamic"
    assert not warms_up("compiled", CUDA)  # the server process has no GPU there


def test_on_zerogpu_a_visitor_not_logged_in_can_ask_at_the_length_the_page_starts_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ZeroGPU refuses a slot longer than the quota left, and gives a visitor not logged in 2
    minutes a day: at 1024 tokens the slot was 122 s (183 s on a card `spaces` scales by 1.5)."""
    assert parse_args([]).max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    monkeypatch.setattr(app, "ON_ZERO_GPU", True)
    tokens = parse_args([]).max_new_tokens
    assert tokens == ZERO_GPU_MAX_NEW_TOKENS and duration_for(tokens) * 1.5 <= 120
    assert parse_args(["--max-new-tokens", "2048"]).max_new_tokens == 2048


def test_a_space_sets_options_in_its_variables(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A Space runs `python app.py` as it is: its owner sets options among its variables, and
    the command line's still win."""
    monkeypatch.setenv(app.OPTIONS_VARIABLE, "--concurrency 2 --proposer owlv2")
    assert parse_args([]).concurrency == 2 and parse_args([]).proposer == "owlv2"
    assert parse_args(["--concurrency", "3"]).concurrency == 3
    monkeypatch.setenv(app.OPTIONS_VARIABLE, "--proposer 'owlv2")
    with pytest.raises(SystemExit):
        parse_args([])
    assert "FO1_APP_OPTIONS: No closing quotation" in capsys.readouterr().err


def test_on_zerogpu_every_proposer_loads_as_the_app_starts(
    tmp_path: Path, pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On ZeroGPU only the main thread may put weights on the GPU outside a slot: a proposer
    loaded at a visitor's Propose, in a handler's thread, failed with "Low-level CUDA init
    reached". All load as the app starts (in the test's main thread here), where `spaces` hands
    their weights to each slot's worker; one that cannot load is not offered, and the app
    serves all the same."""
    # Only the folders given: no hub, and no weights this machine's cache may hold.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    florence2 = str(tiny.build_florence2(tmp_path / "florence2"))
    owlv2 = str(tiny.build_owlv2(tmp_path / "owlv2"))
    checkpoints = {"florence2": florence2, "owlv2": owlv2, "grounding-dino": "/nowhere/gdino"}
    monkeypatch.setattr(ui.layout, "ON_ZERO_GPU", True)
    build_app(pipeline, Settings(proposer_checkpoints=checkpoints))
    assert detect_tools.get("florence2", florence2).is_loaded
    assert detect_tools.get("owlv2", owlv2).is_loaded
    assert "The proposer grounding-dino did not load at start: not offered" in caplog.text
    proposing = Proposing(None, checkpoints, loads_at_start=True)
    proposing.load_all()
    assert "grounding-dino" not in {name for _, name in proposing.choices()}
    assert {"florence2", "owlv2", "offline"} <= {name for _, name in proposing.choices()}


def test_on_zerogpu_an_error_in_a_slot_keeps_its_words(monkeypatch) -> None:
    """`spaces` hands an error from a slot's worker to the server as its class name alone,
    unless it is a `gr.Error`: a proposer's missing folder reached the visitor as
    "ProposerError". Here `spaces.GPU` runs in this process, the worker's error pickled across
    as `spaces` would."""
    monkeypatch.setattr(ui.gpu, "ON_ZERO_GPU", True)
    crossings = []

    def across(function):  # what `spaces` does with an error raised in its worker
        def slot(*args):
            try:
                yield from function(*args)
            except gr.Error as error:
                crossed = pickle.loads(pickle.dumps(error))
                crossings.append((type(crossed), crossed.print_exception))
                raise crossed from None

        return slot

    monkeypatch.setattr(ui.gpu.spaces, "GPU", lambda duration: across)

    def streams(error: Exception):
        yield "a piece"
        raise error

    for raised in (
        ProposerError("The folder /nowhere does not exist"),
        FO1Error("The image is too large"),
        MemoryError("out of memory"),
    ):
        pieces = on_gpu(streams, max_new_tokens=lambda _error: 16)(raised)
        assert next(pieces) == "a piece"
        with pytest.raises(type(raised), match=str(raised)):
            next(pieces)
    refused = gr.Error("You have exceeded your GPU quota (122s requested vs. 95s left).")
    with pytest.raises(gr.Error, match="exceeded your GPU quota"):
        list(on_gpu(streams, max_new_tokens=lambda _error: 16)(refused))
    # `spaces` prints the worker's traceback of a fault, not of a visitor's mistake.
    failure = ui.gpu.SlotFailure
    assert crossings == [(failure, False), (failure, False), (failure, True), (gr.Error, True)]


def test_what_a_proposer_lacks_is_told_before_a_gpu_slot(monkeypatch) -> None:
    """A slot costs the visitor quota and queue time: an API call without the text or example
    boxes a proposer needs asked for one, to be refused in it."""
    proposing = Proposing("cpu", {"owlv2": "/nowhere/owlv2"})
    slots = []
    monkeypatch.setattr(proposing, "_propose_on_gpu", lambda *inputs: slots.append(inputs))
    image = Image.new("RGB", (64, 48))
    with pytest.raises(ProposerError, match="needs a text prompt"):
        proposing.propose(image, "owlv2", None, None, 5)
    with pytest.raises(ProposerError, match="example"):
        proposing.propose(image, "owlv2-like", None, None, 5)
    assert slots == []


def test_a_proposer_without_a_model_asks_for_no_gpu_slot(monkeypatch) -> None:
    """On ZeroGPU a slot costs the visitor queue time and quota: the offline proposer took one."""
    proposing = Proposing("cpu")
    slots = []
    monkeypatch.setattr(proposing, "_propose_on_gpu", lambda *inputs: slots.append(inputs))
    proposing.propose(Image.new("RGB", (40, 10)), "offline", None, None, 5)
    assert slots == []


def test_a_proposer_that_fails_to_load_at_start_leaves_the_app_serving(
    pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(ui.layout, "ON_ZERO_GPU", True)
    settings = Settings(
        default_proposer="florence2", proposer_checkpoints={"florence2": "/nowhere/florence2"}
    )
    assert build_app(pipeline, settings) is not None
    assert "The proposer florence2 did not load at start" in caplog.text


@pytest.mark.slow
def test_unreachable_hub_says_how_to_pass_a_local_folder() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "app.py", "--port", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "local folder" in done.stderr and "--checkpoint" in done.stderr


def test_pages_that_never_close_keep_a_bounded_number_of_records() -> None:
    """A script calling the page's events with made-up session hashes never unloads a page; the
    records of the pages heard from least recently go, the one in use keeps what it had."""
    sessions = Sessions()
    in_use = gr.Request(session_hash="in-use")
    sessions.of(in_use).stopped_at = 12.5
    answering = gr.Request(session_hash="answering")  # heard from once, its answer running
    running = sessions.of(answering).running = Running()
    for index in range(2 * OPEN_PAGES):
        sessions.of(gr.Request(session_hash=f"script-{index}"))
        if index % 100 == 0:
            sessions.of(in_use)
    assert len(sessions._open) == OPEN_PAGES
    assert "script-0" not in sessions and f"script-{2 * OPEN_PAGES - 1}" in sessions
    assert sessions.of(in_use).stopped_at == 12.5
    # Its Stop still reaches its answer.
    assert "answering" in sessions and sessions.of(answering).running is running


def test_files_served_through_a_sessions_copy_of_a_component_are_deleted_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradio gives a session its own copy of a component once a handler skips it, as the
    answer area's steps skip the result and downloads; the files it then serves were never
    deleted, neither after `--file-ttl` nor when the app stopped."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "served"))
    answer = tmp_path / "answer.json"
    answer.write_text("{}")
    steps = iter([gr.skip(), gr.skip(), [str(answer)]])
    with gr.Blocks() as demo:
        downloads = gr.File(file_count="multiple")
        gr.Button().click(lambda: next(steps), None, downloads)
    lists = len(demo.temp_file_sets)
    state = SessionState(demo)
    for _ in range(2):  # the skips: each a new copy of the component for the session
        asyncio.run(demo.process_api(0, [], state))
    served = asyncio.run(demo.process_api(0, [], state))["data"][0][0]["path"]
    assert Path(served).is_relative_to(tmp_path / "served") and Path(served).is_file()
    assert len(demo.temp_file_sets) == lists  # nothing added per copy, or per step
    delete_served_files(demo)
    assert not Path(served).exists()


def test_editor_events_decode_a_bounded_number_of_images_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each editor event decodes its upload whole to check it; Gradio runs up to 40 at once,
    and each huge image holds 300 MB."""
    at_once, most = 0, 0
    lock = threading.Lock()

    def slow_check(width: int, height: int) -> None:
        nonlocal at_once, most
        with lock:
            at_once += 1
            most = max(most, at_once)
        time.sleep(0.2)
        with lock:
            at_once -= 1

    monkeypatch.setattr(editor, "check_size", slow_check)
    paths = []
    for i in range(3 * DECODES_AT_ONCE):
        paths.append(tmp_path / f"upload{i}.png")
        Image.new("RGB", (40 + i, 30)).save(paths[-1])
    uploads = [FileData(path=str(path), orig_name=path.name) for path in paths]
    with ThreadPoolExecutor(len(uploads)) as pool:
        assert list(pool.map(lambda upload: editor.as_uploaded(None, upload), uploads))
    assert most == DECODES_AT_ONCE


@pytest.mark.parametrize(
    ("token_ids", "said", "not_said"),
    [
        # stopped while the image was encoded: no token, so no token times either
        ([], "Stopped by you before the first token · 2 boxes", ("0 tokens", "0.40", "/s")),
        # one token has a time to it but no rate
        ([7], "Stopped by you · 1 token · 2 boxes · first token 0.40 s", ("tokens/s",)),
        ([7, 8, 9], "Stopped by you · 3 tokens · 2 boxes · first token 0.40 s", ()),
    ],
)
def test_the_status_tells_only_the_times_an_answer_has(
    token_ids: list[int], said: str, not_said: tuple[str, ...]
) -> None:
    generation = Generation(
        "", token_ids, StopReason.CANCELLED,
        {"first_token_s": 0.4, "decode_tokens_per_s": 12.0, "total_s": 1.5},
    )  # fmt: skip
    status = status_line(generation, 2, None)
    assert status.startswith(said) and status.endswith("total 1.50 s")
    assert not any(words in status for words in not_said)


def test_a_tiff_goes_to_the_editor_as_a_png_and_comes_back_as_the_tiff(tmp_path) -> None:
    """Chrome and Firefox draw no TIFF: the editor stayed empty, with nothing to box."""
    tiff = tmp_path / "scan.tiff"
    pixels = pixel_picture(tiff, (640, 480))
    copy, made = shown_enlarged({"image": str(tiff), "boxes": []})
    assert made == {"source": str(tiff), "factor": 1}
    editor = box_editor(image_type="filepath")
    sent = editor.postprocess(editor_value(str(tiff), [[10, 5, 300, 200]]))
    assert Image.open(sent.image.path).format == "PNG"
    assert (np.asarray(Image.open(sent.image.path)) == pixels).all()
    assert sent.image.orig_name == "scan.tiff"
    back = editor.preprocess(AnnotatedImageData(image=sent.image, boxes=sent.boxes))
    assert back["image"] == str(tiff)  # the model reads the file uploaded
    assert boxes_of(back) == [[10, 5, 300, 200]]
