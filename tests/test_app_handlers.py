"""The UI's handlers in-process on real rigged checkpoints: streaming, Stop, downloads, and
every bad input ending in a visible message with the user's boxes left alone."""

from __future__ import annotations

import contextlib
import html
import io
import json
import math
import re
import shutil
import threading
import time
import zipfile
from pathlib import Path

import gradio as gr
import huggingface_hub.constants
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile
from pycocotools.coco import COCO
from spaces.zero.gradio import error as spaces_error

import ui.handlers as handlers_module
import ui.sessions
from fo1_core import model_thread
from fo1_core.errors import FO1Error
from fo1_core.export import decode_rle
from fo1_core.render import color_for_region
from fo1_core.session import load
from fo1_core.templates import DEFAULT_TASK, MAX_REGIONS
from tests.conftest import RIGGED_ANSWER
from tests.images import animated_gif
from tests.test_app_units import CVAT, VOC
from tests.test_render import label_height
from ui.ahead import EncodeAhead
from ui.answer_area import cleared_answer
from ui.answer_view import DETECTION_COLUMNS, LATEST_TURN_NOTE, Turn
from ui.answering import Answerer, Question
from ui.api import Api
from ui.box_edits import BOXES_KEPT
from ui.boxes import boxes_as_text, boxes_of, editor_value, image_of, in_drawing_order
from ui.conversation import CONVERSATION, ENDED_CONVERSATION, conversation_key
from ui.editor import FILE_NAME
from ui.examples import EXAMPLES_DIR, load_examples
from ui.handlers import Handlers
from ui.page_left import MASKS_KEPT_BYTES
from ui.proposing import PackedMask, Proposals, Proposed, Proposing, box_key, within
from ui.spotlight import BOXES_ATTRIBUTE
from ui.status import ANSWERING, STALE_NOTES, STOPPED_EARLY, status_html

pytestmark = pytest.mark.slow

VISUAL_PROMPT = "Visual_Prompt_OD_template"

IMAGE = str(EXAMPLES_DIR / "coffee.jpg")
BOXES = [[170, 10, 420, 200], [80, 60, 490, 390], [320, 60, 430, 320]]
SKIP = gr.skip()
REQUEST = gr.Request(session_hash="test-session")


@pytest.fixture(scope="module", autouse=True)
def hub_offline():
    # A model proposer must fail at once here, not after minutes of download retries.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


def make_handlers(checkpoint: Path) -> Handlers:
    pipeline = load(checkpoint, device="cpu")
    return Handlers(Answerer(pipeline), Proposing("cpu"), load_examples())


@pytest.fixture(scope="module")
def answering(answering_checkpoint: Path) -> Handlers:
    return make_handlers(answering_checkpoint)


@pytest.fixture(scope="module")
def endless(endless_checkpoint: Path) -> Handlers:
    return make_handlers(endless_checkpoint)


def propose(
    handlers: Handlers,
    value,
    proposer: str,
    text="",
    task=DEFAULT_TASK,
    task_text="",
    regions=(),
    threshold=0.0,
    max_count=5,
    mode="add",
    masks=None,
    prompt="",
    clicked_at=None,
    request=REQUEST,
):
    """Propose's outputs, for its inputs as the page sends them."""
    return handlers.propose(
        value,
        proposer,
        text,
        task,
        task_text,
        list(regions),
        threshold,
        max_count,
        mode,
        masks or {},
        prompt,
        clicked_at,
        request,
    )


def run(
    handlers: Handlers,
    value,
    task="OD_template",
    text="cup",
    regions=(),
    free="",
    limit=64,
    follow_up=False,
    conversation=None,
    clicked_at=None,
    masks=None,
    request=REQUEST,
    proposed=None,
    shown_width=None,
):
    return handlers.run(
        value,
        task,
        text,
        list(regions),
        free,
        limit,
        masks or {},
        proposed,
        follow_up,
        conversation,
        shown_width,
        clicked_at,
        request,
    )


def with_downloads(handlers: Handlers, outputs, request=REQUEST) -> tuple:
    """The last of `run`'s `outputs` up to its downloads, those the page gets after it
    (`Handlers.downloads`)."""
    *_, last = outputs
    return (*last[:5], handlers.downloads(request))


def boxes_changed(
    handlers: Handlers,
    value,
    status: str = "",
    follow_up=False,
    conversation=None,
    at=None,
    request=REQUEST,
) -> tuple:
    return handlers.boxes_changed(value, status, follow_up, conversation, at, request)


_UNDO_STATUS = 12
"""Where `Handlers.undo_boxes` lists the status: after the editor, picked regions, the five
task fields, masks, proposal time, answer, reasoning and result image."""


def undo(handlers: Handlers, value, request: gr.Request, picked=()):
    """The editor Undo sends back (`Handlers.undo_boxes`)."""
    editor, *_ = handlers.undo_boxes(value, list(picked), "", "", request)
    return editor


def load_example(
    handlers: Handlers,
    index: int,
    fields=("OD_template", "", "", "OD_template", {}),
    request=REQUEST,
) -> tuple:
    """Example `index` clicked over the task `fields` (task, text, free prompt, task picked,
    texts kept by kind)."""
    event = gr.SelectData(None, {"index": index, "value": None})
    return handlers.load_example(*fields, event, request)


def test_run_streams_then_finishes_with_table_and_downloads(answering: Handlers) -> None:
    steps = list(run(answering, editor_value(IMAGE, BOXES)))
    # While it streams, the table fills with each drawing: never rows the image does not show.
    streamed = [
        (image, table) for _, _, image, status, table, _, _ in steps if ANSWERING in str(status)
    ]
    left = [(isinstance(image, dict), table == SKIP) for image, table in streamed]
    assert all(image_left == table_left for image_left, table_left in left)
    assert (False, False) in left
    answer, reasoning, image, status, table, files, _ = steps[-1]
    assert files == SKIP  # written once the answer leaves the model's slot:
    files = answering.downloads(REQUEST)
    assert "Done" in status and "fo1-done" in status
    assert "red circle" in answer and answer.count("fo1-chip") == 2
    assert np.asarray(Image.open(image)).shape == (400, 600, 3)
    assert Path(image).name == "coffee-fo1-answer.png"  # what its download button saves
    assert [row[:2] for row in table] == [[0, "red circle"], [2, "red circle"]]
    # How sure the model was of each region: known once the answer is complete (the rigged
    # model is certain); the JSON carries it as each detection's score.
    assert all(row[6] == "" for _, table in streamed if table != SKIP for row in table)
    assert [row[6] for row in table] == [1.0, 1.0]
    assert [d["score"] for d in json.loads(Path(files[1]).read_text())["detections"]] == [1, 1]
    assert [Path(f).name for f in files] == [
        "coffee-fo1-answer.png",
        "coffee-fo1-answer.json",
        "coffee-fo1-coco.json",
        "coffee-fo1-report.html",
    ]
    # The COCO file loads as a dataset (and its annotations as results) in pycocotools.
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(files[2])
        coco.loadRes(coco.dataset["annotations"])
    assert coco.imgs[1] == {"id": 1, "file_name": "coffee.jpg", "width": 600, "height": 400}
    assert [c["name"] for c in coco.cats.values()] == ["red circle"]
    boxes = sorted(a["bbox"] for a in coco.anns.values())
    assert boxes == [[170.0, 10.0, 250.0, 190.0], [320.0, 60.0, 110.0, 260.0]]
    report = Path(files[3]).read_text(encoding="utf-8")
    assert report.count("data:image/jpeg;base64,") == 2
    assert "http://" not in report and "https://" not in report and "<script" not in report
    assert RIGGED_ANSWER.replace("<", "&lt;").replace(">", "&gt;") in report


def test_the_answer_names_the_question_it_answers(answering: Handlers) -> None:
    """Above the answer, from the first step to the last: the task and what the user asked it,
    so picking another task or text while it streams does not mislabel it."""
    value = editor_value(IMAGE, BOXES)
    steps = list(run(answering, value, task="Brief_Region_Caption_template", regions=[1]))
    for answer, *_ in (steps[0], steps[-1]):
        asked = re.search(r'<div class="fo1-asked"[^>]*>(.*?)</div>', answer).group(1)
        assert asked.startswith('<span class="fo1-task">Brief region caption:</span>')
        assert asked.count("fo1-chip") == 1 and ">#1<" in asked  # the picked region, as a chip
    # What the user typed, not the template around it (the whole prompt is the tooltip).
    cup = list(run(answering, value, text=" cup <b> "))[-1][0]
    assert 'title="Please detect cup &lt;b&gt; in this image.' in cup
    assert "Detection:</span> cup &lt;b&gt;</div>" in cup
    whole = list(run(answering, value, task="Grounding_template", text="cup"))[-1][0]
    assert '<span class="fo1-task">Grounded caption</span> </div>' in whole
    # A string the model keeps for itself is taken out, shown so, and the status says so.
    free = "Is <image> a cup<|im_end|>? <ima<image>ge>"
    first, *_, last = run(answering, value, task="free", free=free)
    assert "Free prompt:</span> Is  a cup?</div>" in last[0]
    for step in (first, last):
        assert "Removed &lt;image&gt;, &lt;|im_end|&gt; from the question" in step[3]
    # A reference whose box was deleted (the page marks it so) is not sent as text.
    for gone, undo in (("<region?>", False), ("<region?2>", True)):
        (*_, status, _, _, _), *_ = list(
            run(answering, value, task="free", free=f"Is {gone} a cup?")
        )
        assert "fo1-error" in status
        assert f"names {html.escape(gone)}: a box deleted or replaced" in status
        assert ("Undo brings a box back" in status) is undo


def test_the_answer_places_its_regions_on_the_result_image(answering: Handlers) -> None:
    """For the page's spotlight (`ui.spotlight`): each region's box as fractions of the image,
    as the model read it (a box reaching out of the image, cut to it), from the first step on;
    the answer's chips name their region."""
    reaching_out = [*BOXES[:2], [320, 60, 700, 500]]
    first, *_, last = run(answering, editor_value(IMAGE, reaching_out))
    for answer in (first[0], last[0]):
        carried = re.search(f'{BOXES_ATTRIBUTE}="([^"]*)"', answer).group(1)
        fractions = np.array(json.loads(html.unescape(carried)))
        expected = np.array([*BOXES[:2], [320, 60, 600, 400]]) / [600, 400, 600, 400]
        np.testing.assert_allclose(fractions, expected, atol=1e-4)
    assert 'data-region="0"' in last[0] and 'data-region="2"' in last[0]


def test_the_answer_is_drawn_to_be_read_in_the_pages_result_panel(answering: Handlers) -> None:
    """On a phone the 600 px drawing is shown 330 px wide: its labels were about 10 px high."""
    panel = 330
    drawings = []
    for width in (None, panel):
        *_, last = run(answering, editor_value(IMAGE, BOXES), shown_width=width)
        drawings.append(np.asarray(Image.open(last[2])))
    box_top, colour = BOXES[2][1], color_for_region(2).as_rgb()
    desktop, phone = (label_height(drawing, box_top, colour) for drawing in drawings)
    shrunk = drawings[1].shape[1] / panel
    assert desktop / shrunk < 12 and phone / shrunk >= 14


def test_the_coco_file_names_the_image_as_uploaded(answering: Handlers) -> None:
    value = {**editor_value(IMAGE, BOXES), FILE_NAME: "kitchen table.JPG"}
    files = with_downloads(answering, run(answering, value))[-1]
    coco = json.loads(Path(files[2]).read_text(encoding="utf-8"))
    assert coco["images"][0]["file_name"] == "kitchen table.JPG"


def test_a_small_images_files_keep_its_size_though_its_drawing_is_enlarged(
    answering: Handlers, tmp_path: Path
) -> None:
    small = tmp_path / "small.png"
    Image.open(IMAGE).resize((150, 100)).save(small)
    boxes = [[v // 4 for v in box] for box in BOXES]
    _, _, image, _, table, files = with_downloads(
        answering, run(answering, editor_value(str(small), boxes))
    )
    assert np.asarray(Image.open(image)).shape == (400, 600, 3)  # drawn 4 times as large
    coco = json.loads(Path(files[2]).read_text(encoding="utf-8"))
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (150, 100)
    assert [row[2:6] for row in table] == [boxes[0], boxes[2]]  # in the image's own pixels


HUGE_BOXES = [[300, 300, 3000, 2400], [4000, 600, 6000, 3000], [4500, 3300, 8400, 5700]]


@pytest.fixture(scope="module")
def huge_photo(tmp_path_factory: pytest.TempPathFactory) -> str:
    # 9000×6000, 54 megapixels (a phone's largest photos): more than any screen shows.
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("RGB", (9000, 6000), "white").save(path)
    return str(path)


def region_colour_at(image: str | np.ndarray, x: float, y: float) -> bool:
    pixel = np.asarray(Image.open(image) if isinstance(image, str) else image)[int(y), int(x)]
    return tuple(int(v) for v in pixel) == color_for_region(2).as_rgb()


def test_a_huge_image_is_shown_reduced_and_downloaded_whole(
    answering: Handlers, huge_photo: str
) -> None:
    _, _, image, _, table, files = with_downloads(
        answering, run(answering, editor_value(huge_photo, HUGE_BOXES))
    )
    # Shown three times smaller, box 2's bottom edge where it is on the image, in its colour.
    assert np.asarray(Image.open(image)).shape == (2000, 3000, 3)
    assert Path(image).name == "huge-fo1-answer-3000x2000.png"
    assert region_colour_at(image, (4500 + 8400) / 6, 5700 / 3)
    assert [row[2:6] for row in table] == [HUGE_BOXES[0], HUGE_BOXES[2]]  # the image's pixels
    # The download is the whole image, drawn on at its own size.
    assert Path(files[0]).name == "huge-fo1-answer.png"
    assert np.asarray(Image.open(files[0])).shape == (6000, 9000, 3)
    assert region_colour_at(files[0], (4500 + 8400) / 2, 5700)
    coco = json.loads(Path(files[2]).read_text(encoding="utf-8"))
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (9000, 6000)
    # The API sends the drawing as the page shows it, its detections in the image's pixels.
    api = Api(answering.answerer, answering.proposing)
    image, _, document = list(api.answer(huge_photo, HUGE_BOXES, "OD_template", "cup"))[-1]
    assert image.shape == (2000, 3000, 3)
    assert region_colour_at(image, (4500 + 8400) / 6, 5700 / 3)
    assert document["detections"][1]["box_xyxy"] == HUGE_BOXES[2]


def test_a_new_image_before_the_downloads_are_written_gets_none_of_them(
    answering: Handlers,
) -> None:
    list(run(answering, editor_value(IMAGE, BOXES)))
    answering.new_image(REQUEST)
    assert answering.downloads(REQUEST) == SKIP


def test_stop_really_stops_the_worker(endless: Handlers) -> None:
    stream = run(endless, editor_value(IMAGE, BOXES), limit=100_000)
    next(stream)  # "Answering…"
    next(stream)  # the first pieces
    endless.stop(None, gr.Request(session_hash="test-session"))
    *_, last = stream
    status = last[3]
    assert "Stopped by you" in status and "fo1-done" not in status  # not styled as a success
    tokens = int(status.split(" tokens")[0].split("·")[-1].split()[-1])
    assert tokens < 5_000
    assert_model_is_free(endless)


def test_an_answer_at_the_token_limit_says_it_may_be_cut_short(endless: Handlers) -> None:
    *_, (_, _, _, status, _, _, _) = run(endless, editor_value(IMAGE, BOXES), limit=16)
    assert "Stopped at the token limit" in status and "fo1-warning" in status
    assert "raise “Max new tokens”" in status
    endless.remember_turn(False, {}, "", REQUEST)  # as the page does after every answer


def test_an_answer_at_the_pages_most_tokens_does_not_say_to_raise_them(
    endless: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endless, "token_limit", 16)
    *_, (_, _, _, status, _, _, _) = run(endless, editor_value(IMAGE, BOXES), limit=16)
    assert "cut short at 16 new tokens, the most this app writes" in status
    assert "raise" not in status
    endless.remember_turn(False, {}, "", REQUEST)


def test_an_answer_at_the_models_length_says_so(
    endless: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = Question(IMAGE, BOXES, "OD_template", "cup")
    config = endless.answerer.pipeline.model.config.text_config
    length = config.max_position_embeddings - endless.answerer.prepare(question).request.room
    monkeypatch.setattr(config, "max_position_embeddings", length + 6)
    *_, (_, _, _, status, _, _, _) = run(endless, editor_value(IMAGE, BOXES), limit=64)
    assert "Stopped at the model&#x27;s length · 6 tokens" in status and "fo1-warning" in status
    assert "cut at 6 tokens: with the prompt, that is all the model reads" in status
    assert "raise" not in status and "Max new tokens" not in status
    endless.remember_turn(False, {}, "", REQUEST)


def test_stop_pressed_while_the_question_waits_stops_it_before_it_starts(
    answering: Handlers,
) -> None:
    session = gr.Request(session_hash="test-session")
    answering.stop(2_000.0, session)  # the page's clock: after the Run click below
    steps = list(run(answering, editor_value(IMAGE, BOXES), clicked_at=1_000.0))
    assert len(steps) == 1 and "Stopped by you before the answer started" in steps[0][3]
    answering.stop(2_000.0, session)  # a Stop before the click does not stop it
    steps = list(run(answering, editor_value(IMAGE, BOXES), clicked_at=3_000.0))
    assert "Done" in steps[-1][3]


def test_the_latest_turn_is_marked_as_the_answer_shown_until_another_replaces_it(
    endless: Handlers,
) -> None:
    value = editor_value(IMAGE, BOXES)
    boxes_changed(endless, value)
    list(run(endless, value, limit=8, follow_up=True))
    conversation, history, _ = endless.remember_turn(True, {}, "", REQUEST)
    assert LATEST_TURN_NOTE in history and 'class="fo1-latest"' in history
    # A refused question leaves that answer on screen.
    list(run(endless, value, task="Region_OCR_template", follow_up=True))
    assert 'class="fo1-latest"' in endless.remember_turn(True, conversation, "", REQUEST)[1]
    # A stopped one takes its place and is not kept: the latest turn kept is listed as any other.
    stream = run(endless, value, limit=100_000, follow_up=True, conversation=conversation)
    next(stream)
    endless.stop(None, REQUEST)
    list(stream)
    kept, history, _ = endless.remember_turn(True, conversation, "", REQUEST)
    assert kept == SKIP and "<li>" in history and "fo1-latest" not in history
    # The page may still hold the conversation before the latest turn: none of it is hidden.
    list(run(endless, value, text="spoon", limit=8, follow_up=True, conversation=conversation))
    newer = endless.remember_turn(True, conversation, "", REQUEST)[0]
    assert len(newer["turns"]) == 2
    assert "fo1-latest" not in endless.follow_up_toggled(True, conversation, REQUEST)
    assert "fo1-latest" in endless.follow_up_toggled(True, newer, REQUEST)


def test_closing_the_stream_stops_the_worker(endless: Handlers) -> None:
    stream = run(endless, editor_value(IMAGE, BOXES), limit=100_000)
    next(stream)
    next(stream)
    stream.close()  # what Gradio does when a job is cancelled or the tab is closed
    assert_model_is_free(endless)


def assert_model_is_free(handlers: Handlers) -> None:
    """A short question gets its answer at once: nothing is still generating 100 000 tokens."""
    pipeline = handlers.answerer.pipeline
    request = pipeline.prepare(IMAGE, BOXES, "OD_template", "cup")
    answered = []
    asker = threading.Thread(target=lambda: answered.append(pipeline.generate(request, 4)))
    asker.start()
    asker.join(timeout=30)
    assert answered and len(answered[0].token_ids) == 4


@pytest.mark.parametrize(
    ("value", "task", "text", "regions", "message"),
    [
        # no image uploaded
        (None, "OD_template", "cup", (), "No image"),
        # a region task with no boxes
        (editor_value(IMAGE, []), "Brief_Region_Caption_template", "", (), "there are none"),
        # a detection with no boxes: FO1 could only name boxes that do not exist
        (editor_value(IMAGE, []), "OD_template", "cup", (), "draw boxes on the image"),
        # … with nothing typed either: both are said at once
        (
            editor_value(IMAGE, []),
            "OD_template",
            "",
            (),
            "needs none). Type the categories to detect as well.",
        ),
        # a region task with boxes but none picked
        (
            editor_value(IMAGE, BOXES),
            "Region_OCR_template",
            "",
            (),
            "tick at least one under “Regions to ask about”",
        ),
        # the same, with the detection task's (hidden) text box still filled in
        (
            editor_value(IMAGE, BOXES),
            "Region_OCR_template",
            "cup",
            (),
            "tick at least one under “Regions to ask about”",
        ),
        # a detection task with nothing typed: the message names what to type
        (editor_value(IMAGE, BOXES), "OD_template", "  ", (), "type the categories to detect"),
        # a picked region that was deleted since
        (editor_value(IMAGE, BOXES[:1]), "Brief_Region_Caption_template", "", (2,), "region2"),
    ],
)
def test_bad_input_is_a_visible_message(answering, value, task, text, regions, message) -> None:
    steps = list(run(answering, value, task, text, regions))
    assert len(steps) == 1
    answer, reasoning, image, status, table, files, _ = steps[0]
    assert "fo1-error" in status and message in status
    assert all(output == SKIP for output in (answer, reasoning, image, table, files))


def test_broken_image_is_a_visible_message(answering: Handlers, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    (*_, status, _, _, _), *_ = list(run(answering, editor_value(str(broken), BOXES)))
    assert "fo1-error" in status and "image" in status
    turned = {**editor_value(str(broken), BOXES), "orientation": 1}
    (*_, status, _, _, _), *_ = list(run(answering, turned))
    assert "fo1-error" in status and "image" in status


CORNER_LINES = "170, 10, 420, 200\n80 60 490 390\n[320, 60, 430, 320]"
YOLO_LINES = "0 0.5 0.5 0.5 0.5\n1 0.1 0.1 0.1 0.1\n0 0.25 0.25 0.1 0.1"  # of the 600×400 photo
CVAT_OF_A_LARGER_COPY = CVAT.replace('width="1280" height="960"', 'width="1200" height="800"')


@pytest.mark.parametrize(
    ("boxes", "region0", "region2", "scaled"),
    [
        (CORNER_LINES, [170, 10, 420, 200], [320, 60, 430, 320], False),
        (YOLO_LINES, [150, 100, 450, 300], [120, 80, 180, 120], False),
        (CVAT_OF_A_LARGER_COPY, [170, 10, 420, 200], [85, 100, 115, 130], True),
    ],
)
def test_the_api_reads_a_labels_files_text_as_the_page_does(
    answering: Handlers, boxes: str, region0: list, region2: list, scaled: bool
) -> None:
    api = Api(answering.answerer, answering.proposing)
    *_, (_, _, document) = api.answer(IMAGE, boxes, "OD_template", "cup")
    found = {entry["region_index"]: entry["box_xyxy"] for entry in document["detections"]}
    assert found == {0: region0, 2: region2}  # the rigged answer names regions 0 and 2
    told = any("scaled from the 1200×800 image" in warning for warning in document["warnings"])
    assert told == scaled


def zerogpu_refusal(left_s: int, requested_s: int):
    """`spaces`' own refusal of a GPU slot for want of quota, raised as the wrapped function
    starts (ZeroGPU cannot be reached from here)."""
    message = (
        f"You have exceeded your free ZeroGPU quota ({requested_s}s requested vs. {left_s}s "
        "left). Try again in 0:12:00."
    )

    def refused(*_):
        raise spaces_error("ZeroGPU quota exceeded", message)
        yield  # a generator, as the answer's stream is

    return message, refused


def test_a_zerogpu_slot_refused_for_want_of_quota_says_what_length_fits(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    message, refused = zerogpu_refusal(95, 122)  # 1024 tokens asked for 122 s
    monkeypatch.setattr(answering.answerer, "_stream_on_gpu", refused)
    value = editor_value(IMAGE, BOXES)
    *_, (_, _, _, status, _, _, _) = run(answering, value, limit=1024)
    assert "fo1-error" in status and html.escape(message) in status
    assert "With Max new tokens at 736 or fewer, this question fits." in status
    assert "Generation failed" not in status
    with pytest.raises(gr.Error) as raised:  # the API passes it on as it is
        list(
            Api(answering.answerer, answering.proposing).answer(IMAGE, BOXES, "OD_template", "cup")
        )
    assert raised.value.message == message
    monkeypatch.setattr(answering.proposing, "_propose_on_gpu", lambda *_: next(refused()))
    *_, status, _, _, _ = propose(answering, value, "florence2")  # the offline one asks none
    assert "fo1-error" in status and html.escape(message) in status
    assert "failed" not in status


def test_failing_proposer_keeps_the_boxes(answering: Handlers) -> None:
    value = editor_value(IMAGE, BOXES)
    editor, masks, status, seconds, picked, prompt = propose(
        answering, value, "florence2", threshold=0.1, max_count=10, mode="replace"
    )
    assert editor == masks == seconds == picked == prompt == SKIP
    assert "fo1-error" in status and "not on this machine" in status


def test_offline_proposals_add_to_the_boxes(answering: Handlers) -> None:
    value = editor_value(IMAGE, BOXES)
    editor, _, status, proposed, picked, prompt = propose(answering, value, "offline")
    labels = [box["label"] for box in in_drawing_order(editor["boxes"])]
    assert labels == [f"#{i}" for i in range(len(BOXES) + 5)]
    assert picked == prompt == SKIP  # the boxes picked from are still there, numbered as before
    assert boxes_of(editor)[:3] == BOXES
    assert proposed.seconds > 0 and f"5 proposals in {proposed.seconds:.2f} s; 5 added." in status
    # An answer about the proposed boxes says how long proposing took; once they are undone, not.
    about_proposals = list(run(answering, editor, proposed=proposed))[-1][3]
    assert f"proposals {proposed.seconds:.2f} s" in about_proposals
    assert "proposals" not in list(run(answering, value, proposed=proposed))[-1][3]


def test_proposing_twice_does_not_add_the_same_boxes_again(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    nudged = [v + 2 for v in BOXES[1]]  # the same object, a proposer's pixel or two away
    found = Proposals([BOXES[0], nudged, [5, 5, 60, 60]], [0.9] * 3, ["cup"] * 3, None, 0.1)
    monkeypatch.setattr(answering.proposing, "propose", lambda *_: found)
    value = editor_value(IMAGE, BOXES)
    editor, _, status, *_ = propose(answering, value, "offline")
    assert boxes_of(editor) == [*BOXES, [5, 5, 60, 60]]
    assert "3 proposals in 0.10 s, 2 already among your boxes; 1 added." in status
    again, _, status, proposed, *_ = propose(answering, editor, "offline")
    assert len(again["boxes"]) == 4 and "all already among your boxes" in status
    assert proposed == SKIP  # the first Propose's boxes are still its own


def test_proposals_added_past_the_models_regions_are_named(answering: Handlers) -> None:
    drawn = [[i, 0, i + 10, 10] for i in range(MAX_REGIONS - 2)]
    value = editor_value(IMAGE, drawn)
    editor, _, status, *_ = propose(answering, value, "offline")
    assert len(boxes_of(editor)) == MAX_REGIONS + 3 and "fo1-warning" in status
    assert f"5 added. 3 of them come after the first {MAX_REGIONS} boxes" in status


@pytest.mark.parametrize("meanwhile", ["box drawn", "new image", "image turned"])
def test_proposals_land_on_the_boxes_as_they_are_when_the_proposer_ends(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    page = gr.Request(session_hash=f"propose-{meanwhile}")
    found = Proposals([[5, 5, 60, 60]], [0.9], ["cup"], None, 0.1)
    clicked = editor_value(IMAGE, BOXES[:1])

    def propose_while_the_user_works(*_):
        if meanwhile == "box drawn":
            boxes_changed(answering, editor_value(IMAGE, BOXES[:2]), at=2.0, request=page)
        elif meanwhile == "new image":
            answering.supersede(2.0, page)
        else:  # the editor's rotate buttons send the turned file as an edit
            turned_value = {**editor_value(IMAGE, BOXES[:1]), "orientation": 1}
            boxes_changed(answering, turned_value, at=2.0, request=page)
        return found

    monkeypatch.setattr(answering.proposing, "propose", propose_while_the_user_works)
    editor, masks, status, *_ = propose(answering, clicked, "offline", clicked_at=1.0, request=page)
    if meanwhile == "box drawn":
        assert boxes_of(editor) == [*BOXES[:2], [5, 5, 60, 60]]  # the new box stays
    else:
        assert (editor, masks) == (SKIP, SKIP) and "The image changed" in status


def test_no_proposals_leave_the_boxes_even_when_replacing(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answering.proposing, "propose", lambda *_: Proposals([], [], [], None, 0.1))
    value = editor_value(IMAGE, BOXES)
    editor, masks, status, *_ = propose(answering, value, "offline", mode="replace")
    assert (editor, masks) == (SKIP, SKIP)
    assert "No proposals in 0.10 s: your boxes are as they were." in status


def test_proposed_masks_are_kept_drawn_and_exported(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    width, height = Image.open(IMAGE).size
    masks = np.zeros((len(BOXES), height, width), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, BOXES, strict=True):
        mask[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20] = True
    found = Proposals(BOXES, [0.9] * 3, ["cup"] * 3, masks, seconds=0.1)
    monkeypatch.setattr(answering.proposing, "propose", lambda *_: found)
    value = editor_value(IMAGE, [])
    editor, kept, *_, picked, _ = propose(
        answering, value, "sam3", text="cup", threshold=0.5, max_count=10, mode="replace"
    )
    assert picked == []  # the proposals took the place of the boxes picked from
    *_, files = with_downloads(answering, run(answering, editor, masks=kept))
    detections = json.loads(Path(files[1]).read_text())["detections"]
    assert [d["region_index"] for d in detections] == [0, 2]
    for detection in detections:
        assert (decode_rle(detection["mask"]) == masks[detection["region_index"]]).all()


def test_a_prompted_proposer_left_blank_looks_for_what_the_task_names(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str | None] = []
    found = Proposals([[5, 5, 60, 60]], [0.9], ["cup"], None, seconds=0.1)

    def propose_fake(image, name, text, threshold, max_count, examples=None):
        asked.append(text)
        return found

    monkeypatch.setattr(answering.proposing, "propose", propose_fake)
    value = editor_value(IMAGE, [])

    def propose_for(text: str, task: str, task_text: str) -> str:
        return propose(
            answering,
            value,
            "sam3",
            text=text,
            task=task,
            task_text=task_text,
            threshold=0.5,
            max_count=10,
        )[2]

    status = propose_for("  ", "OD_template", " cup, spoon ")
    assert asked.pop() == "cup, spoon"
    assert "1 proposal for “cup, spoon” (from the task) in 0.10 s; 1 added." in status
    assert "from the task" not in propose_for("dog", "OD_template", "cup, spoon")
    assert asked.pop() == "dog", "what is typed for the proposer comes first"
    propose_for("", "REC_template", "the man in blue")
    assert asked.pop() == "the man in blue"
    # A question, region references or no text at all name nothing to look for.
    for task, task_text in [
        ("Viusal_Region_Reasoning_template", "Which of these can I eat?"),
        ("Region_OCR_template", "<region0>"),
        ("OD_Counting_template", " "),
    ]:
        status = propose_for("", task, task_text)
        assert "fo1-error" in status and "type what to find" in status
        assert "Detection, Counting or Referring expression task" in status
    assert not asked
    # A proposer that needs no text is not given the task's.
    propose(
        answering,
        value,
        "offline",
        task="OD_template",
        task_text="cup",
        threshold=0.5,
        max_count=10,
    )
    assert asked == [""]


def test_a_proposer_of_more_like_the_examples_is_given_the_boxes(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[list | None] = []
    found = Proposals([[5, 5, 60, 60]], [1.0], [""], None, seconds=0.1)

    def propose_fake(image, name, text, threshold, max_count, examples=None):
        asked.append(examples)
        return found

    monkeypatch.setattr(answering.proposing, "propose", propose_fake)
    status = propose(answering, editor_value(IMAGE, BOXES), "owlv2-like", task_text="cup")[2]
    assert asked.pop() == BOXES
    assert "1 proposal like your 3 boxes in 0.10 s; 1 added." in status
    # A region task's picks are its examples: a Visual-prompt detection's reference.
    value = editor_value(IMAGE, BOXES)
    status = propose(answering, value, "owlv2-like", task=VISUAL_PROMPT, regions=[2, 0])[2]
    assert asked.pop() == [BOXES[0], BOXES[2]] and "like #0, #2 in" in status
    # Picks left from a region task count no more once another task is picked.
    status = propose(answering, value, "owlv2-like", task=DEFAULT_TASK, regions=[2])[2]
    assert asked.pop() == BOXES and "like your 3 boxes" in status
    status = propose(answering, editor_value(IMAGE, []), "owlv2-like")[2]
    assert "fo1-error" in status and "draw a box around one example first" in status
    assert not asked


def test_undo_after_proposals_replaced_the_boxes_brings_back_their_masks(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = gr.Request(session_hash="undo-replace")
    width, height = Image.open(IMAGE).size
    masks = np.zeros((len(BOXES), height, width), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, BOXES, strict=True):
        mask[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20] = True
    segmented = Proposals(BOXES, [0.9] * 3, ["cup"] * 3, masks, seconds=0.1)
    boxed = Proposals([[5, 5, 50, 50]], [0.8], [""], None, seconds=0.1)
    value, kept = editor_value(IMAGE, []), {}
    boxes_changed(answering, value, request=page)
    for found in (segmented, boxed):
        monkeypatch.setattr(answering.proposing, "propose", lambda *_, found=found: found)
        value, kept, *_ = propose(
            answering,
            value,
            "sam3",
            text="cup",
            threshold=0.5,
            max_count=10,
            mode="replace",
            masks=kept,
            request=page,
        )
        boxes_changed(answering, value, request=page)
    back = undo(answering, value, page)
    assert boxes_of(back) == BOXES
    boxes_changed(answering, back, request=page)
    *_, files = with_downloads(answering, run(answering, back, masks=kept, request=page), page)
    detections = json.loads(Path(files[1]).read_text())["detections"]
    assert detections and all(
        (decode_rle(d["mask"]) == masks[d["region_index"]]).all() for d in detections
    )


def test_undo_of_proposals_takes_away_the_status_saying_what_they_did(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = gr.Request(session_hash="undo-proposals-status")
    value = editor_value(IMAGE, BOXES)
    boxes_changed(answering, value, request=page)
    found = Proposals([[5, 5, 50, 50]], [0.8], [""], None, seconds=0.1)
    monkeypatch.setattr(answering.proposing, "propose", lambda *_: found)
    proposed, _, status, *_ = propose(
        answering, value, "offline", threshold=0.5, max_count=10, mode="replace", request=page
    )
    assert "in place of your boxes" in status
    boxes_changed(answering, proposed, status, request=page)
    back, *outputs = answering.undo_boxes(proposed, [], "", status, page)
    assert boxes_of(back) == BOXES and outputs[_UNDO_STATUS - 1] == ""
    # Undo of a box drawn leaves the status as it is, and so does an Undo with nothing to undo.
    drawn = editor_value(IMAGE, [*BOXES, [5, 5, 50, 50]])
    boxes_changed(answering, drawn, request=page)
    assert answering.undo_boxes(drawn, [], "", "Answered.", page)[_UNDO_STATUS] == SKIP
    fresh = gr.Request(session_hash="nothing-to-undo")
    assert answering.undo_boxes(value, [], "", status, fresh)[_UNDO_STATUS] == SKIP


def test_masks_of_boxes_no_longer_shown_are_dropped_oldest_first_past_the_bound() -> None:
    half = np.zeros(MASKS_KEPT_BYTES // 3, np.uint8)
    store = {(i, 0, 9, 9): PackedMask((3000, 4000), 0, 0, 1, 1, half) for i in range(5)}
    shown = [[0, 0, 9, 9], [4, 0, 9, 9]]
    assert list(within(store, shown, MASKS_KEPT_BYTES)) == [
        (0, 0, 9, 9),
        (3, 0, 9, 9),
        (4, 0, 9, 9),
    ]
    assert within(store, shown, 10 * MASKS_KEPT_BYTES) == store


def test_a_question_decodes_its_image_once_in_the_models_turn(
    answering: Handlers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's copy and the copy drawn on were each decoded from the file: half a second of
    a 100-megapixel PNG, with every question behind it waiting for the model."""
    decoded = []
    load = ImageFile.ImageFile.load

    def counted(image: ImageFile.ImageFile):
        if image.tile:  # not decoded yet
            decoded.append(image.filename)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    path = tmp_path / "frames.gif"
    path.write_bytes(animated_gif())
    *_, (_, _, image, status, *_) = run(answering, editor_value(str(path), [[0, 0, 20, 20]]))
    assert "Done" in status and "3 frames" in status  # what the file says is still told
    assert decoded == [str(path)]


def test_the_editors_rotate_buttons_turn_the_image_the_model_sees(answering: Handlers) -> None:
    boxes = [[10, 10, 200, 300], [50, 320, 390, 590], [100, 100, 300, 200]]
    value = {**editor_value(IMAGE, boxes), "orientation": 1}  # a quarter turn clockwise
    *_, (_, _, image, status, table, _, _) = run(answering, value)
    assert "Done" in status
    width, height = Image.open(IMAGE).size
    # Drawn on the turned image, as the boxes were.
    assert np.asarray(Image.open(image)).shape == (width, height, 3)
    assert [row[2:6] for row in table] == [boxes[0], boxes[2]]


def test_box_changes_refresh_the_region_pickers(answering: Handlers) -> None:
    value = editor_value(IMAGE, BOXES[:2])
    # The editor puts a new box first, unnamed, until the page numbers it.
    value["boxes"].insert(0, {**value["boxes"][1], "label": "", "color": (0, 0, 0), "xmin": 1})
    regions, insert, note, *_ = boxes_changed(answering, value)
    assert regions["choices"] == [("#0", 0), ("#1", 1), ("#2", 2)]
    assert insert["choices"] == regions["choices"] and insert["value"] is None
    assert note == "3 boxes" and regions["info"] == ""
    none, _, note, *_ = boxes_changed(answering, editor_value(IMAGE, []))
    assert "No boxes yet" in note and "No boxes yet" in none["info"]  # not an empty picker only
    assert boxes_changed(answering, None)[2] == "No image yet."


def test_boxes_drawn_into_the_margin_are_named_at_once(answering: Handlers) -> None:
    """The editor draws a box past the image's edge into the margin around it; the model will
    read it cut to the image, and the note says so before Run does."""
    past_the_corner = [510, 280, 720, 480]  # the image is 600×400
    note = boxes_changed(answering, editor_value(IMAGE, [*BOXES, past_the_corner]))[2]
    assert note == "4 boxes — #3 reaches out of the image: the model reads it cut to it."
    boxes = [[-5, 0, 50, 50], BOXES[0], [0, 0, 1e4, 9], [610, 10, 700, 50]]
    note = boxes_changed(answering, editor_value(IMAGE, boxes))[2]
    assert "#0 and #2 reach out of the image: the model reads them cut to it." in note
    assert note.endswith(
        "#3 lies outside the image: move it onto it or delete it (Run refuses it)."
    )
    # Boxes past the model's 100 are not named: the note says it ignores them.
    many = [[i, 0, i + 10, 10] for i in range(100)] + [past_the_corner]
    assert "reaches out" not in boxes_changed(answering, editor_value(IMAGE, many))[2]


def test_downloads_hold_boxes_cut_to_the_image_as_the_model_read_them(answering: Handlers) -> None:
    boxes = [[-20, -5, 200, 200], BOXES[1], [320, 60, 900, 500]]
    _, _, _, status, table, files = with_downloads(
        answering, run(answering, editor_value(IMAGE, boxes))
    )
    read = [[0, 0, 200, 200], BOXES[1], [320, 60, 600, 400]]
    assert "Cut to the image: 2 boxes" in status
    assert [row[2:6] for row in table] == [read[0], read[2]]
    document = json.loads(Path(files[1]).read_text(encoding="utf-8"))
    assert document["boxes"] == read
    coco = json.loads(Path(files[2]).read_text(encoding="utf-8"))
    assert [annotation["bbox"] for annotation in coco["annotations"]] == [
        [0, 0, 200, 200],
        [320, 60, 280, 340],
    ]
    # The files say what the status said of it.
    assert [note[:25] for note in document["warnings"]] == ["Cut to the image: 2 boxes"]
    assert "⚠ Cut to the image: 2 boxes" in Path(files[3]).read_text(encoding="utf-8")


def test_undo_goes_back_through_this_images_box_edits(answering: Handlers) -> None:
    page = gr.Request(session_hash="undo")
    three, two = editor_value(IMAGE, BOXES), editor_value(IMAGE, BOXES[:2])
    boxes_changed(answering, three, request=page)
    boxes_changed(answering, two, request=page)  # a box deleted
    drawing = editor_value(IMAGE, [*BOXES[:2], [50, 50, 50, 50]])  # a box as its drag starts
    boxes_changed(answering, drawing, request=page)
    undone = undo(answering, drawing, page)
    assert boxes_of(undone) == BOXES  # back before the deletion, the half-drawn box gone too
    boxes_changed(answering, undone, request=page)  # the editor reports what undo set
    assert undo(answering, undone, page) == SKIP  # nothing before the first state
    # Undo before the page's report of a box drawn has landed: that box goes, no more.
    drawn = editor_value(IMAGE, [*BOXES, [5, 5, 60, 60]])
    assert boxes_of(undo(answering, drawn, page)) == BOXES
    # Another image (an example clicked, say): Undo brings back the one before with its boxes,
    # once; that image's own box edits are not undone from there.
    rocket = editor_value(str(EXAMPLES_DIR / "rocket.jpg"), [[10, 10, 90, 90]])
    boxes_changed(answering, rocket, request=page)
    back = undo(answering, rocket, page)
    assert (image_of(back), boxes_of(back)) == (IMAGE, BOXES)
    boxes_changed(answering, back, request=page)
    assert undo(answering, back, page) == SKIP


def test_undo_keeps_a_bounded_number_of_boxes_per_page(answering: Handlers) -> None:
    """The editor takes any number of boxes; a page sending lists of 20 000 made the server
    keep 210 MB for it, of the thousand pages it keeps."""
    page = gr.Request(session_hash="many-boxes")
    steps = answering._session(page).undo
    lists = [
        [[x, y, x + 5 + i, y + 5] for x in range(0, 200, 5) for y in range(0, 150, 3)]
        for i in range(8)
    ]
    assert len(lists[0]) == 2000
    for boxes in lists:
        value = editor_value(IMAGE, boxes)
        boxes_changed(answering, value, request=page)
        answering.regions_picked(value, [0], page)
    kept = [len(edit.key[1]) for edit in steps.edits]
    assert sum(kept) <= BOXES_KEPT and kept[-1] == 2000  # the newest steps, as many as fit
    assert sum(len(key[1]) for key in steps.picks) <= BOXES_KEPT
    huge = editor_value(IMAGE, [[x, 0, x + 1, 1] for x in range(BOXES_KEPT + 1)])
    boxes_changed(answering, huge, request=page)
    assert len(steps.edits[-1].key[1]) == 2000  # not kept as a step: Undo goes back before it
    assert boxes_of(undo(answering, huge, page)) == lists[-1]


def test_undo_keeps_each_picked_region_on_its_box(answering: Handlers) -> None:
    """The spoon (#2) picked, the cup (#0) deleted, so the spoon is #1: Undo brings the cup back
    as #0, and the pick goes back to the spoon, #2, not to the saucer that is #1 again."""
    page = gr.Request(session_hash="undo-picks")
    boxes_changed(answering, editor_value(IMAGE, BOXES), request=page)
    deleted = editor_value(IMAGE, BOXES[1:])
    boxes_changed(answering, deleted, request=page)
    marked = "<region1> on <region0>, by <region?0>"  # the page marks the cup's reference gone
    editor, regions, *fields = answering.undo_boxes(deleted, [1], marked, "", page)
    prompt = fields[2]  # after the task and its text
    assert boxes_of(editor) == BOXES
    assert regions["value"] == [2] and [i for _, i in regions["choices"]] == [0, 1, 2]
    assert prompt == "<region2> on <region1>, by <region0>"  # the references follow too
    # A box picked and then undone away is picked no more.
    drawn = editor_value(IMAGE, [*BOXES, [5, 5, 60, 60]])
    boxes_changed(answering, drawn, request=page)
    editor, regions, *_ = answering.undo_boxes(drawn, [0, 3], "", "", page)
    assert boxes_of(editor) == BOXES and regions["value"] == [0]
    # Of two boxes alike, the one picked stays the only one picked.
    twice = editor_value(IMAGE, [*BOXES, BOXES[0], [5, 5, 60, 60]])
    boxes_changed(answering, editor_value(IMAGE, [*BOXES, BOXES[0]]), request=page)
    boxes_changed(answering, twice, request=page)
    _, regions, _, _, prompt, *_ = answering.undo_boxes(
        twice, [3], "<region4>, <region3>", "", page
    )
    assert regions["value"] == [3] and prompt == "<region?>, <region3>"


def test_undo_keeps_the_prompts_references_on_boxes_moved_or_turned(answering: Handlers) -> None:
    """Undo of a move, or of the image turned (every box with it), brings back the same boxes
    where they were: the picks and references stay. Undo of a box drawn takes its reference."""
    page = gr.Request(session_hash="undo-moved-prompt")
    boxes_changed(answering, editor_value(IMAGE, BOXES), request=page)
    moved = editor_value(IMAGE, [BOXES[0], [90, 70, 480, 380], BOXES[2]])
    boxes_changed(answering, moved, request=page)
    _, regions, *fields = answering.undo_boxes(moved, [1], "<region1> by <region2>", "", page)
    assert fields[2] == SKIP  # after the task and its text: the free prompt, as it is
    assert regions["value"] == [1]  # and the pick stays on the box too
    height = Image.open(IMAGE).height
    turned_boxes = [[height - y2, x1, height - y1, x2] for x1, y1, x2, y2 in BOXES]
    turned = {**editor_value(IMAGE, turned_boxes), "orientation": 1}
    boxes_changed(answering, turned, request=page)
    _, _, *fields = answering.undo_boxes(turned, [], "<region1> by <region2>", "", page)
    assert fields[2] == SKIP
    drawn = editor_value(IMAGE, [*BOXES, [5, 5, 60, 60]])
    boxes_changed(answering, drawn, request=page)
    _, _, *fields = answering.undo_boxes(drawn, [], "<region3> by <region2>", "", page)
    assert fields[2] == "<region?> by <region2>"


def test_undo_picks_again_a_region_whose_box_an_edit_took_away(answering: Handlers) -> None:
    """The saucer (#1) picked, then deleted (or retyped elsewhere): the page unticks it, and
    Undo, which brings the box back, ticks it again, keeping what was picked since."""
    page = gr.Request(session_hash="undo-dropped-pick")
    three = editor_value(IMAGE, BOXES)
    boxes_changed(answering, three, request=page)
    answering.regions_picked(three, [1], page)
    deleted = editor_value(IMAGE, [BOXES[0], BOXES[2]])
    boxes_changed(answering, deleted, request=page)
    answering.regions_picked(deleted, [], page)  # the page unticks the deleted box
    answering.regions_picked(deleted, [1], page)  # and the spoon, #1 now, is ticked
    editor, regions, *_ = answering.undo_boxes(deleted, [1], "", "", page)
    assert boxes_of(editor) == BOXES and regions["value"] == [1, 2]
    boxes_changed(answering, editor, request=page)
    answering.regions_picked(editor, [1, 2], page)
    # Boxes typed as numbers move the saucer: its pick goes, and Undo brings both back.
    moved = [BOXES[0], [10, 10, 60, 60], BOXES[2]]
    typed, _, picks, _ = answering.boxes_typed(editor, boxes_as_text(moved), [1, 2], "")
    assert picks == [2]
    boxes_changed(answering, typed, request=page)
    answering.regions_picked(typed, picks, page)
    editor, regions, *_ = answering.undo_boxes(typed, picks, "", "", page)
    assert boxes_of(editor) == BOXES and regions["value"] == [1, 2]


def test_undo_after_an_example_brings_back_the_task_and_text_it_replaced(
    answering: Handlers,
) -> None:
    page = gr.Request(session_hash="undo-example")
    mine = editor_value(IMAGE, BOXES[:1])
    boxes_changed(answering, mine, request=page)
    fields = ("OD_Counting_template", "saucers", "", "OD_Counting_template", {"names": "saucers"})
    example, task, text, *_ = load_example(answering, 2, fields, page)  # Chelsea's question
    assert (task, text) != fields[:2]
    boxes_changed(answering, example, request=page)
    editor, _, *restored = answering.undo_boxes(example, [], "", "", page)
    assert boxes_of(editor) == BOXES[:1] and tuple(restored[:5]) == fields
    # Once: Undo within the image brought back leaves the fields the user has since typed.
    boxes_changed(answering, editor, request=page)
    drawn = editor_value(IMAGE, BOXES[:2])
    boxes_changed(answering, drawn, request=page)
    _, _, *restored = answering.undo_boxes(drawn, [], "", "", page)
    assert restored[:5] == [SKIP] * 5


def test_undo_after_an_example_loaded_again_takes_back_a_box_edit_only(
    answering: Handlers,
) -> None:
    """The same example loaded twice shows the same boxes: Undo of a box deleted since brings
    the box back, not the task the user had before the example."""
    page = gr.Request(session_hash="undo-example-twice")
    fields = ("OD_Counting_template", "saucers", "", "OD_Counting_template", {"names": "saucers"})
    example, *_ = load_example(answering, 2, fields, page)
    boxes_changed(answering, example, request=page)
    typed = ("OD_Counting_template", "cats", "", "OD_Counting_template", {"names": "cats"})
    again, *_ = load_example(answering, 2, typed, page)
    assert boxes_of(again) == boxes_of(example)
    boxes_changed(answering, again, request=page)
    deleted = editor_value(image_of(again), boxes_of(again)[1:])
    boxes_changed(answering, deleted, request=page)
    editor, _, *restored = answering.undo_boxes(deleted, [], "", "", page)
    assert boxes_of(editor) == boxes_of(again) and restored[:5] == [SKIP] * 5
    # From the example's boxes, Undo still brings back what the second loading replaced.
    boxes_changed(answering, editor, request=page)
    _, _, *restored = answering.undo_boxes(editor, [], "", "", page)
    assert tuple(restored[:5]) == typed


def test_undo_turns_the_image_back_and_brings_a_removed_one_back(answering: Handlers) -> None:
    """The editor's rotate arrows look like undo and redo, and its × empties it: neither may
    lose the user's boxes for good."""
    page = gr.Request(session_hash="undo-turn")
    named = {**editor_value(IMAGE, BOXES), FILE_NAME: "kitchen.jpg"}
    boxes_changed(answering, named, request=page)
    turned = {**named, "boxes": editor_value(IMAGE, [[10, 10, 90, 90]])["boxes"], "orientation": 1}
    boxes_changed(answering, turned, request=page)  # the boxes turned with the image
    undone = undo(answering, turned, page)
    assert (undone["orientation"], boxes_of(undone), undone[FILE_NAME]) == (0, BOXES, "kitchen.jpg")
    boxes_changed(answering, undone, request=page)
    boxes_changed(answering, None, request=page)  # the editor's ×
    back = undo(answering, None, page)
    assert (Path(back["image"]), boxes_of(back), back["orientation"]) == (Path(IMAGE), BOXES, 0)
    boxes_changed(answering, back, request=page)
    assert undo(answering, back, page) == SKIP  # nothing before the first state


def test_undo_brings_back_the_answer_and_masks_shown_with_the_image_left(
    answering: Handlers,
) -> None:
    """The editor's ×, or another image uploaded, empties the answer area and drops the SAM3
    masks: Undo, bringing the image and boxes back, brings them back too."""
    page = gr.Request(session_hash="undo-answer")
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked, request=page)
    answer, reasoning, image, done, table, files = with_downloads(
        answering, run(answering, asked, request=page), page
    )
    conversation, history, _ = answering.remember_turn(True, {}, done, page)
    mask = np.zeros((400, 600), bool)
    mask[20:180, 200:400] = True
    masks = {box_key(BOXES[0]): PackedMask.pack(mask)}
    proposed = Proposed(1.5, frozenset({box_key(BOXES[0])}))
    shown = (answer, reasoning, image, done, table, files, conversation, history)
    for coming in (None, editor_value(str(EXAMPLES_DIR / "rocket.jpg"), [])):
        if coming is not None:  # the editor may report the new image first
            boxes_changed(answering, coming, request=page)
        answering.image_left(coming, masks, proposed, *shown, page)
        answering.new_image(page)
        boxes_changed(answering, coming, request=page)
        editor, _, *restored = answering.undo_boxes(coming, [], "", "", page)
        assert boxes_of(editor) == BOXES
        assert restored[5:] == [masks, proposed, *shown]
        # The answer on screen is about these boxes again: its conversation's latest turn.
        after = boxes_changed(answering, editor, done, True, conversation, request=page)
        assert after[3] == SKIP and LATEST_TURN_NOTE in after[4]
    # Masks past the bound are not kept: Undo brings the boxes back without them.
    half = np.zeros(4000 * 1500 // 8, np.uint8)  # half of a 4000×3000 photo, packed
    huge = {(i, 0, 9, 9): PackedMask((3000, 4000), 0, 0, 1500, 4000, half) for i in range(100)}
    assert len(huge) * half.nbytes > MASKS_KEPT_BYTES
    answering.image_left(None, huge, proposed, *shown, page)
    answering.new_image(page)
    with pytest.warns(UserWarning, match="masks were too large to keep"):
        _, _, *restored = answering.undo_boxes(None, [], "", "", page)
    assert restored[5:8] == [{}, proposed, answer]
    # Emptied by the ×, then given an image: Undo brings back what the × took, not the empty
    # page the image came to.
    answering.image_left(None, masks, proposed, *shown, page)
    answering.new_image(page)
    boxes_changed(answering, None, request=page)
    rocket = editor_value(str(EXAMPLES_DIR / "rocket.jpg"), [])
    answering.image_left(rocket, {}, None, *cleared_answer(), page)
    answering.new_image(page)
    boxes_changed(answering, rocket, request=page)
    _, _, *restored = answering.undo_boxes(rocket, [], "", "", page)
    assert restored[5:] == [masks, proposed, *shown]


def test_undo_brings_back_the_files_of_an_answer_left_before_they_came(
    answering: Handlers,
) -> None:
    """The files come a step after the answer (`Handlers.downloads`): an image removed in
    between leaves an answer without them, and Undo brings it back with its four files."""
    page = gr.Request(session_hash="undo-files")
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked, request=page)
    *_, (answer, reasoning, image, done, table, _, _) = run(answering, asked, request=page)
    shown = (answer, reasoning, image, done, table, None, {}, "")
    answering.image_left(None, {}, None, *shown, page)
    answering.new_image(page)
    assert answering.downloads(page) == SKIP  # not onto the emptied page
    _, _, *restored = answering.undo_boxes(None, [], "", "", page)
    back = restored[5:]
    assert back[2] == answer and len(back[7]) == 4
    assert [Path(name).suffix for name in back[7]] == [".png", ".json", ".json", ".html"]
    assert all(Path(name).is_file() for name in back[7])


def test_the_image_is_known_by_its_content_not_by_the_copy_the_editor_holds(
    answering: Handlers, tmp_path: Path
) -> None:
    """Gradio copies the image again each time the server sends the editor back (Undo, Propose,
    typed boxes): the conversation, the stale note and Undo still know it."""
    page = gr.Request(session_hash="copies")
    copy = tmp_path / "again" / "coffee.jpg"
    copy.parent.mkdir()
    shutil.copy(IMAGE, copy)
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked, request=page)
    *_, (_, _, _, done, _, _, _) = run(answering, asked, follow_up=True, request=page)
    conversation, *_ = answering.remember_turn(True, {}, done, page)
    moved = editor_value(str(copy), BOXES[:2])
    assert boxes_changed(answering, moved, done, True, conversation, request=page)[3].endswith(
        STALE_NOTES["boxes"]
    )
    put_back = undo(answering, moved, page)
    assert boxes_of(put_back) == BOXES
    shown = done + STALE_NOTES["boxes"]
    changed = boxes_changed(answering, put_back, shown, True, conversation, request=page)
    assert changed[3] == done and CONVERSATION in changed[4]  # the conversation goes on


def picked(answering: Handlers, task: str, text: str, texts: dict, before: str) -> tuple:
    """The text field's value (or SKIP), the texts kept by kind, the task now picked."""
    shown, _, _, texts, before = answering.task_changed(task, text, texts, before)
    return shown.get("value", SKIP), texts, before


def test_each_kind_of_task_keeps_its_own_text(answering: Handlers) -> None:
    texts = {}
    # Categories carry over to counting: both name things.
    text, texts, before = picked(answering, "OD_Counting_template", "cup", texts, "OD_template")
    assert text == SKIP and before == "OD_Counting_template"
    # A question is not asked with them; it gets its own text, which comes back later.
    reasoning = "Viusal_Region_Reasoning_template"
    text, texts, before = picked(answering, reasoning, "cup", texts, before)
    assert text == ""
    text, texts, before = picked(answering, "REC_template", "Which is hot?", texts, before)
    assert text == "cup"
    assert picked(answering, reasoning, "cup", texts, before)[0] == "Which is hot?"


def test_a_task_set_with_its_text_keeps_it(answering: Handlers) -> None:
    # An example or Undo sets the task, its text and the task picked in one step: the change
    # that follows relabels the field and leaves the text as set.
    shown, _, _, texts, before = answering.task_changed(
        "Viusal_Region_Reasoning_template",
        "Where is the cat looking?",
        {},
        "Viusal_Region_Reasoning_template",
    )
    assert "value" not in shown and shown["label"] == "Question"
    assert texts == SKIP and before == "Viusal_Region_Reasoning_template"


def test_boxes_typed_as_numbers_replace_the_drawn_ones(answering: Handlers) -> None:
    value = editor_value(IMAGE, BOXES)
    assert (
        boxes_changed(answering, value)[5]
        == "170, 10, 420, 200\n80, 60, 490, 390\n320, 60, 430, 320"
    )
    width = Image.open(IMAGE).width
    typed = f"10, 10, 60, 60\n[{width + 100}, 0, {width - 50}, 40]"  # out of the image, inverted
    shown, status, picked, prompt = answering.boxes_typed(value, typed, [1], "<region1>?")
    assert boxes_of(shown) == [[10, 10, 60, 60], [width - 50, 0, width, 40]]
    assert "2 boxes set" in status and f"Cut to the {width}×" in status
    assert "1 box reached out of it" in status and "fo1-warning" in status
    assert picked == []  # the regions picked were the drawn boxes'
    assert prompt == "<region?1>?"  # and so was the box the prompt named, #1 before
    shown, status, picked, prompt = answering.boxes_typed(value, "10, 10, 60", [1], "<region1>")
    assert (
        shown == SKIP and "Line 1 (10, 10, 60) holds 3 values" in status and "fo1-error" in status
    )
    assert picked == prompt == SKIP  # nothing set: the picks and the prompt stay
    # A box added in front of the others (and one deleted): the picked ones stay picked.
    typed = "0, 0, 50, 50\n" + boxes_as_text([BOXES[1], BOXES[2]])
    shown, _, picked, prompt = answering.boxes_typed(value, typed, [1, 2], "<region1>")
    assert boxes_of(shown)[1:] == [BOXES[1], BOXES[2]] and picked == [1, 2] and prompt == SKIP
    # Swapped: the references swap with them.
    typed = boxes_as_text([BOXES[2], BOXES[1]])
    prompt = answering.boxes_typed(value, typed, [], "Is <region1> left of <region2>?")[3]
    assert prompt == "Is <region1> left of <region0>?"
    assert answering.boxes_typed(value, boxes_as_text(BOXES[:1]), [1, 2], "")[2] == []
    assert "upload one" in answering.boxes_typed(None, "1, 2, 3, 4", [], "")[1]
    shown, status, *_ = answering.boxes_typed(value, "  ", None, None)  # the numbers field emptied
    assert boxes_of(shown) == [] and "every box was removed (Undo brings them back)" in status


def coco_file(
    folder: Path,
    images: list[tuple[int, str]],
    bboxes: list[tuple[int, list]],
    size: tuple[int, int] = (600, 400),
) -> str:
    """A COCO annotations file of `images` (id, file name; each of `size`) and their `bboxes`
    (image id, x, y, width, height), as an upload's path (named as uploaded)."""
    width, height = size
    document = {
        "images": [
            {"id": id_, "file_name": name, "width": width, "height": height} for id_, name in images
        ],
        "annotations": [
            {"id": i, "image_id": image, "bbox": bbox, "category_id": 1}
            for i, (image, bbox) in enumerate(bboxes)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = folder / "labels.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_boxes_are_loaded_from_a_coco_file_of_the_image(
    answering: Handlers, tmp_path: Path
) -> None:
    """An annotator's boxes, in a COCO file too long to paste: those of the image shown, as
    corners (COCO's are x, y, width, height), in the file's order."""
    value = editor_value(IMAGE, BOXES)
    one = coco_file(tmp_path, [(7, "coffee.jpg")], [(7, [10, 20, 100, 50]), (7, [300, 0, 40, 40])])
    shown, status, picked, prompt = answering.boxes_loaded(value, one, [2], "<region2>?")
    assert boxes_of(shown) == [[10, 20, 110, 70], [300, 0, 340, 40]]
    assert "2 boxes set from labels.json" in status
    assert picked == [] and prompt == "<region?2>?"  # box #2 is gone
    # A dataset's file: the image's own boxes, found by its file name (folders aside).
    images = [(1, "train/dog.jpg"), (2, "train/coffee.jpg"), (3, "cat.jpg"), (4, "owl.jpg")]
    boxes = [(1, [0, 0, 9, 9]), (2, [5, 5, 50, 50]), (3, [1, 1, 9, 9]), (4, [2, 2, 9, 9])]
    many = coco_file(tmp_path, images, [*boxes, (2, [60, 60, 10, 10])])
    assert boxes_of(answering.boxes_loaded(value, many, [], "")[0]) == [
        [5, 5, 55, 55],
        [60, 60, 70, 70],
    ]
    # Where none is the image's, the file names them and the boxes stay.
    other = editor_value(IMAGE, BOXES, "espresso.jpg")
    shown, status, picked, prompt = answering.boxes_loaded(other, many, [1], "<region1>")
    assert shown == picked == prompt == SKIP and "fo1-error" in status
    assert "holds boxes of 4 images (cat.jpg, coffee.jpg, dog.jpg and 1 more)" in status
    assert "none is named espresso.jpg" in status
    # A file with no boxes is the wrong file, not a wish to remove them all.
    empty = coco_file(tmp_path, [(1, "coffee.jpg")], [])
    shown, status, *_ = answering.boxes_loaded(value, empty, [], "")
    assert shown == SKIP and "No boxes in labels.json; your boxes are left as they were" in status


def test_boxes_drawn_on_the_image_at_another_size_land_where_they_were_drawn(
    answering: Handlers, tmp_path: Path
) -> None:
    """The 600×400 coffee.jpg is the web copy of a 3000×2000 photo the annotator labelled: the
    boxes the file records on the photo are scaled to the copy, and the status says so. A file
    recording another shape was drawn on another image (a crop), and is refused."""
    value = editor_value(IMAGE, BOXES)
    photo = coco_file(tmp_path, [(1, "coffee.jpg")], [(1, [500, 1000, 1000, 500])], (3000, 2000))
    shown, status, *_ = answering.boxes_loaded(value, photo, [], "")
    assert boxes_of(shown) == [[100, 200, 300, 300]]
    assert (
        "1 box set from labels.json, scaled from the 3000×2000 image the COCO file records to "
        "this 600×400 one: #0 thing." in status
    )
    cropped = coco_file(tmp_path, [(1, "coffee.jpg")], [(1, [5, 10, 10, 5])], (2000, 2000))
    shown, status, *_ = answering.boxes_loaded(value, cropped, [], "")
    assert shown == SKIP and "fo1-error" in status
    assert "drawn on a 2000×2000 image, and this one is 600×400, another shape" in status


def test_boxes_are_loaded_from_the_apps_own_files_and_a_bad_one_is_named(
    answering: Handlers, tmp_path: Path
) -> None:
    value = editor_value(IMAGE, BOXES)
    answer = tmp_path / "coffee-fo1-answer.json"  # the answer's JSON keeps every box asked about
    answer.write_text(json.dumps({"image": "coffee.jpg", "boxes": BOXES[:2], "detections": []}))
    assert boxes_of(answering.boxes_loaded(value, str(answer), [], "")[0]) == BOXES[:2]
    lines = tmp_path / "boxes.txt"
    lines.write_text("1, 2, 30, 40\n[5 6 70 80]\n")
    assert boxes_of(answering.boxes_loaded(value, str(lines), [], "")[0]) == [
        [1, 2, 30, 40],
        [5, 6, 70, 80],
    ]
    yolo = tmp_path / "coffee.txt"  # a labelling tool's, beside the 600×400 image
    yolo.write_text("0 0.5 0.25 0.5 0.5\n1 0.1 0.9 0.2 0.2\n")
    assert boxes_of(answering.boxes_loaded(value, str(yolo), [], "")[0]) == [
        [150, 0, 450, 200],
        [0, 320, 120, 400],
    ]
    voc = tmp_path / "coffee.xml"  # LabelImg's, of the 600×400 image
    voc.write_text(VOC.replace("<width>640</width><height>480", "<width>600</width><height>400"))
    assert "2 boxes set from coffee.xml" in answering.boxes_loaded(value, str(voc), [], "")[1]
    cvat = tmp_path / "annotations.xml"  # CVAT's, of three images: the upload's four shapes
    cvat.write_text(CVAT.replace('width="1280" height="960"', 'width="1200" height="800"'))
    shown, status, *_ = answering.boxes_loaded(value, str(cvat), [], "")
    assert boxes_of(shown)[0] == [170, 10, 420, 200]
    assert "4 boxes set from annotations.xml, scaled from the 1200×800 image the CVAT" in status
    # The annotator's classes, to compare FO1's answers with.
    assert status.endswith("one: #0 cup, #1 spoon, #2 coin, #3 plate.</div>")
    coins = tmp_path / "coins.json"  # LabelMe's, 14 coins: the first 12 named, the rest counted
    shapes = [{"label": "coin", "points": [[i, 0], [i + 9, 9]]} for i in range(0, 140, 10)]
    coins.write_text(json.dumps({"shapes": shapes}))
    shown, status, *_ = answering.boxes_loaded(value, str(coins), [], "")
    assert len(boxes_of(shown)) == 14 and "#10 coin, #11 coin and 2 more.</div>" in status
    export = tmp_path / "task_7.zip"  # CVAT's download: that file in a ZIP archive
    with zipfile.ZipFile(export, "w") as written:
        written.write(cvat, "annotations.xml")
    shown, status, *_ = answering.boxes_loaded(value, str(export), [], "")
    assert boxes_of(shown)[0] == [170, 10, 420, 200]
    assert "4 boxes set from annotations.xml in task_7.zip, scaled from the 1200×800" in status
    binary = tmp_path / "photo.json"
    binary.write_bytes(b"\xff\xd8\xff\xe0 not text")
    shown, status, *_ = answering.boxes_loaded(value, str(binary), [], "")
    assert shown == SKIP and "Could not read photo.json: it is not UTF-8 text" in status
    assert str(tmp_path) not in status  # the server's folders are not the user's business
    assert "upload one" in answering.boxes_loaded(None, str(lines), [], "")[1]


def test_picking_another_proposer_keeps_what_the_status_says_of_the_answer(
    answering: Handlers,
) -> None:
    about_the_answer = status_html("The boxes changed after this answer.", "warning")
    assert answering.proposer_changed("offline", about_the_answer)[2] == SKIP
    # an error about the proposer picked before goes with it
    failed = answering.proposer_changed("no such proposer", "")[2]
    assert "fo1-error" in failed
    assert answering.proposer_changed("offline", failed)[2] == ""


def test_an_answer_is_marked_stale_while_the_boxes_differ_from_those_asked_about(
    answering: Handlers,
) -> None:
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked)
    *_, (_, _, _, done, _, _, _) = run(answering, asked)
    assert STALE_NOTES["boxes"] not in done
    assert boxes_changed(answering, asked, done)[3] == SKIP
    moved = editor_value(IMAGE, [BOXES[0], [v + 30 for v in BOXES[1]], BOXES[2]])
    stale = boxes_changed(answering, moved, done)[3]
    assert stale == done + STALE_NOTES["boxes"] and "Run again" in stale
    assert boxes_changed(answering, asked, stale)[3] == done  # moved back: the answer fits again


def test_an_answer_about_the_image_before_it_was_turned_says_so(answering: Handlers) -> None:
    """The rotate buttons turn the boxes with the image: the note names what the user did."""
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked)
    *_, (_, _, _, done, _, _, _) = run(answering, asked)
    turned = {**editor_value(IMAGE, BOXES), "orientation": 1}
    stale = boxes_changed(answering, turned, done)[3]
    assert stale == done + STALE_NOTES["image"] and "image was turned" in stale
    assert boxes_changed(answering, asked, stale)[3] == done  # turned back: the answer fits again


def test_boxes_changed_while_streaming_mark_the_finished_answer(answering: Handlers) -> None:
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked)
    steps = run(answering, asked)
    next(steps)  # the answer has started
    fewer = editor_value(IMAGE, BOXES[:2])
    assert boxes_changed(answering, fewer, "Answering…")[3] == SKIP  # the stream owns the status
    *_, (_, _, _, status, _, _, _) = steps
    assert "Done" in status and status.endswith(STALE_NOTES["boxes"])


def test_a_question_refused_says_the_answer_shown_is_the_one_before(answering: Handlers) -> None:
    answering.new_image(REQUEST)
    *_, (_, _, _, refused, _, _, _) = run(answering, editor_value(IMAGE, BOXES), text="")
    assert "type the categories to detect" in refused and "question before" not in refused
    list(run(answering, editor_value(IMAGE, BOXES)))
    *_, (answer, _, image, refused, _, _, _) = run(answering, editor_value(IMAGE, BOXES), text="")
    assert answer == SKIP and image == SKIP  # the answer stays on screen
    assert "The answer shown is the one to the question before." in refused
    answering.remember_turn(False, {}, "", REQUEST)


def test_a_box_change_takes_away_the_refusal_of_the_question_before(answering: Handlers) -> None:
    page = gr.Request(session_hash="refused-then-drawn")
    bare = editor_value(IMAGE, [])
    boxes_changed(answering, bare, request=page)
    *_, (_, _, _, refused, _, _, _) = run(answering, bare, request=page)
    assert "draw boxes on the image" in refused
    drawn = editor_value(IMAGE, BOXES[:1])
    assert boxes_changed(answering, drawn, refused, request=page)[3] == ""
    # Another status stays: what an answer or a proposer said is not the boxes' to take away.
    assert boxes_changed(answering, bare, "Answered.", request=page)[3] == SKIP


def test_a_failed_answer_is_not_marked_stale(
    answering: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering.new_image(REQUEST)
    boxes_changed(answering, editor_value(IMAGE, BOXES))
    list(run(answering, editor_value(IMAGE, BOXES)))  # an answer, then one that fails
    answering.remember_turn(False, {}, "", REQUEST)

    def failing(*_):
        raise FO1Error("The GPU is out of memory.")
        yield

    monkeypatch.setattr(answering.answerer, "steps", failing)
    *_, (_, _, _, status, _, _, _) = run(answering, editor_value(IMAGE, BOXES))
    assert "out of memory" in status
    # The failed question emptied the answer area: no answer is there to be stale or earlier.
    assert boxes_changed(answering, editor_value(IMAGE, BOXES[:1]), status)[3] == SKIP
    *_, (_, _, _, refused, _, _, _) = run(answering, editor_value(IMAGE, BOXES), text="")
    assert "question before" not in refused


def test_a_refused_question_keeps_the_note_that_the_answer_is_about_other_boxes(
    answering: Handlers,
) -> None:
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked)
    *_, (_, _, _, done, _, _, _) = run(answering, asked)
    answering.remember_turn(False, {}, done, REQUEST)
    moved = editor_value(IMAGE, BOXES[:2])
    boxes_changed(answering, moved, done)
    *_, (_, _, _, refused, _, _, _) = run(answering, moved, text="")
    assert "type the categories" in refused and refused.endswith(STALE_NOTES["boxes"])


def test_a_box_change_sent_with_the_streaming_status_is_marked_once_the_answer_ends(
    answering: Handlers,
) -> None:
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked)
    *_, (_, _, _, streaming, _, _, _), (_, _, _, done, _, _, _) = run(answering, asked)
    # The page sent the status it showed while streaming; the answer had ended meanwhile: its
    # final status is the one marked, and the conversation is left to `remember_turn`.
    _, _, _, marked, history, _ = boxes_changed(
        answering, editor_value(IMAGE, BOXES[:2]), streaming
    )
    assert marked == done + STALE_NOTES["boxes"] and history == SKIP
    assert answering.remember_turn(False, {}, marked, REQUEST)[2] == SKIP  # already said
    assert (
        answering.remember_turn(False, {}, done, REQUEST)[2] == done + STALE_NOTES["boxes"]
    )  # if first


def test_a_box_change_after_an_answer_cut_off_mid_stream_is_marked(endless: Handlers) -> None:
    """On ZeroGPU, Stop cancels the job: the page keeps the last streaming status."""
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(endless, asked)
    steps = run(endless, asked, limit=100_000)
    *_, (_, _, _, streaming, _, _, _) = [next(steps) for _ in range(3)]
    steps.close()
    follow_up = {"key": conversation_key(IMAGE, BOXES), "turns": [Turn("q", "a", "q")]}
    _, _, _, marked, history, _ = boxes_changed(
        endless, editor_value(IMAGE, BOXES[:2]), streaming, True, follow_up
    )
    assert marked == streaming + STALE_NOTES["boxes"] and ENDED_CONVERSATION in history


@pytest.mark.parametrize("event", ["stop", "supersede"])
def test_a_stop_or_new_image_while_the_question_is_prepared_ends_it(
    endless: Handlers, monkeypatch: pytest.MonkeyPatch, event: str
) -> None:
    prepare = endless.answerer.prepare
    page = gr.Request(session_hash=f"interrupted-by-{event}")
    # A new image waits for the answer to end: here it is the same thread, which would wait it out.
    monkeypatch.setattr(handlers_module, "SUPERSEDE_WAIT_S", 0)

    def interrupted(*args):
        getattr(endless, event)(2.0, page)  # after the Run click at 1.0 (a large photo)
        return prepare(*args)

    monkeypatch.setattr(endless.answerer, "prepare", interrupted)
    value = editor_value(IMAGE, BOXES)
    steps = list(run(endless, value, limit=64, clicked_at=1.0, request=page))
    stopped = (SKIP, SKIP, SKIP, STOPPED_EARLY, SKIP, SKIP, SKIP)
    assert steps == ([stopped] if event == "stop" else [])
    assert endless._session(page).running is None


def test_a_turn_that_ended_just_before_a_new_image_is_not_filed(answering: Handlers) -> None:
    list(run(answering, editor_value(IMAGE, BOXES), follow_up=True))
    answering.new_image(REQUEST)  # before the page files the turn
    assert answering.remember_turn(True, {}, "", REQUEST)[:2] == (SKIP, "")


def test_a_question_closed_as_it_starts_leaves_nothing_running(endless: Handlers) -> None:
    steps = run(endless, editor_value(IMAGE, BOXES), limit=100_000)
    next(steps)  # "Answering…", then the page is closed (or ZeroGPU cancels the job)
    steps.close()
    assert endless._session(REQUEST).running is None


def test_a_new_image_has_no_stale_answer(answering: Handlers) -> None:
    boxes_changed(answering, editor_value(IMAGE, BOXES))
    list(run(answering, editor_value(IMAGE, BOXES)))
    answering.new_image(REQUEST)
    other = editor_value(str(EXAMPLES_DIR / "rocket.jpg"), [])
    assert boxes_changed(answering, other)[3] == SKIP


@pytest.mark.parametrize("index", range(len(load_examples())))
def test_examples_load_with_numbered_boxes(answering: Handlers, index: int) -> None:
    fields = ("free", "", "Is <region0> by <region12>?", "free", {})
    editor, task, _, _, free, *_ = load_example(answering, index, fields)
    assert free == "Is <region?0> by <region?12>?"  # those were the boxes of the image left
    example = load_examples()[index]
    assert task == example.task
    labels = [box["label"] for box in in_drawing_order(editor["boxes"])]
    assert labels == [f"#{i}" for i in range(len(example.boxes))]
    assert boxes_of(editor) == example.boxes


def test_after_moving_a_box_the_status_says_what_was_reused(answering: Handlers) -> None:
    answering.answerer.pipeline.encoder.clear()
    list(run(answering, editor_value(IMAGE, BOXES)))
    moved = [BOXES[0], [90, 70, 480, 380], BOXES[2]]
    steps = list(run(answering, editor_value(IMAGE, moved)))
    assert "Done" in steps[-1][3]
    reused = r"image and its \d+ prompt tokens and 2 of 3 boxes already encoded"
    assert re.search(reused, steps[-1][3])


def test_boxes_on_screen_are_encoded_before_the_first_question(answering: Handlers) -> None:
    pipeline = answering.answerer.pipeline
    pipeline.encoder.clear()
    ahead = Handlers(answering.answerer, answering.proposing, [], EncodeAhead(pipeline))
    value = editor_value(IMAGE, BOXES)
    boxes_changed(ahead, value)
    assert ahead.ahead.wait(60)
    *_, (_, _, _, status, _, _, _) = run(ahead, value)
    assert "Done" in status
    assert re.search(r"image, boxes and \d+ prompt tokens already encoded", status)


def test_only_the_newest_boxes_are_encoded_once_the_model_is_free(answering: Handlers) -> None:
    pipeline = answering.answerer.pipeline
    pipeline.encoder.clear()
    ahead = EncodeAhead(pipeline)
    release = threading.Event()
    busy = model_thread.submit(release.wait)  # a question of another user, say
    ahead.want(IMAGE, BOXES)
    ahead.want(str(EXAMPLES_DIR / "rocket.jpg"), [[10, 10, 100, 100]])
    time.sleep(0.3)
    assert pipeline.encoder.images.stats().misses == 0  # nothing runs before that question
    release.set()
    busy.wait()
    assert ahead.wait(60)
    assert pipeline.encoder.images.stats().misses == 1  # the rocket only: the cup was replaced
    prefixes = pipeline.encoder.prefixes.stats()
    assert prefixes.misses == 1
    ahead.want(str(EXAMPLES_DIR / "rocket.jpg"), [[10, 10, 100, 100]])  # the editor's echo
    assert ahead.wait(60)
    assert pipeline.encoder.prefixes.stats() == prefixes  # not even looked up again


def test_nothing_is_encoded_ahead_while_a_proposer_runs(answering: Handlers) -> None:
    pipeline = answering.answerer.pipeline
    pipeline.encoder.clear()
    ahead = EncodeAhead(pipeline)
    with ahead.held():
        ahead.want(IMAGE, BOXES)
        time.sleep(0.3)
        assert pipeline.encoder.images.stats().misses == 0
    assert ahead.wait(60)
    assert pipeline.encoder.images.stats().misses == 1


def test_follow_up_questions_see_earlier_turns(answering: Handlers) -> None:
    session = gr.Request(session_hash="test-session")
    value = editor_value(IMAGE, BOXES)
    boxes_changed(answering, value)  # as the page does when an image comes
    answering.answerer.pipeline.encoder.clear()
    first = list(run(answering, value, text="cup", follow_up=True))
    assert "already encoded" not in first[-1][3]
    conversation, history, _ = answering.remember_turn(True, {}, "", session)
    assert len(conversation["turns"]) == 1 and "You:" in history

    turns = answering.answerer.pipeline.encoder.turns.stats().hits
    free = "And what is <region1>?"
    steps = list(
        run(answering, value, "free", free=free, follow_up=True, conversation=conversation)
    )
    assert "Done" in steps[-1][3]
    assert re.search(r"image, boxes and \d+ prompt tokens already encoded", steps[-1][3])
    conversation, history, _ = answering.remember_turn(True, conversation, "", session)
    assert [turn.question for turn in conversation["turns"]] == [
        "Please detect cup in this image. Answer the question with object indexes.",
        free,
    ]
    assert all(turn.answer == RIGGED_ANSWER for turn in conversation["turns"])
    # Listed as asked, not as the template the model read.
    assert "<b>You:</b> Detection: cup<br>" in history and "Please detect" not in history
    # The second turn is the answer on screen: the page lists it only once a new one is asked.
    assert history.count("<li") == 2
    assert '<li class="fo1-latest"><b>You:</b> Free prompt: And what' in history
    # The second question started from the first turn's cache: image, regions, question, answer.
    assert answering.answerer.pipeline.encoder.turns.stats().hits > turns
    # Its downloads carry the turn before it too.
    files = answering.downloads(REQUEST)
    document = json.loads(Path(files[1]).read_text(encoding="utf-8"))
    assert document["earlier_turns"] == [
        {
            "asked": "Detection: cup",
            "question": conversation["turns"][0].question,
            "answer": RIGGED_ANSWER,
        }
    ]
    assert (document["prompt"], document["image"], document["stop_reason"]) == (
        free,
        "coffee.jpg",
        "eos",
    )
    assert document["timings"]["first_token_s"] > 0
    report = Path(files[3]).read_text(encoding="utf-8")
    assert "Earlier in this conversation" in report and 'name="viewport"' in report


def test_moving_a_box_starts_a_new_conversation(answering: Handlers) -> None:
    session = gr.Request(session_hash="test-session")
    list(run(answering, editor_value(IMAGE, BOXES), follow_up=True))
    conversation, *_ = answering.remember_turn(True, {}, "", session)
    moved = [BOXES[0], BOXES[1], [300, 50, 420, 300]]
    steps = list(
        run(answering, editor_value(IMAGE, moved), follow_up=True, conversation=conversation)
    )
    assert "a new conversation starts" in steps[0][3]
    assert "a new conversation starts" in steps[-1][3]  # still said once the answer is out
    conversation, *_ = answering.remember_turn(True, conversation, "", session)
    assert len(conversation["turns"]) == 1


def test_a_conversation_about_other_boxes_says_the_next_question_starts_anew(
    answering: Handlers,
) -> None:
    asked = editor_value(IMAGE, BOXES)
    boxes_changed(answering, asked)
    list(run(answering, asked, follow_up=True))
    conversation, history, _ = answering.remember_turn(True, {}, "", REQUEST)
    assert CONVERSATION in history
    moved = editor_value(IMAGE, [BOXES[0], [v + 30 for v in BOXES[1]], BOXES[2]])
    history = boxes_changed(answering, moved, "", True, conversation)[4]
    assert ENDED_CONVERSATION in history and "You:" in history  # the turns stay readable
    assert answering.follow_up_toggled(True, conversation, REQUEST) == history
    assert CONVERSATION in boxes_changed(answering, asked, "", True, conversation)[4]
    assert boxes_changed(answering, moved, "", False, conversation)[4] == ""


def test_a_stopped_follow_up_answer_says_it_is_not_kept(endless: Handlers) -> None:
    session = gr.Request(session_hash="test-session")
    stream = run(endless, editor_value(IMAGE, BOXES), limit=100_000, follow_up=True)
    next(stream)
    next(stream)
    endless.stop(None, session)
    *_, last = stream
    assert "Stopped by you" in last[3] and "not kept in the conversation" in last[3]
    assert endless.remember_turn(True, {}, "", session)[:2] == (SKIP, "")  # nothing filed


def test_without_follow_up_each_question_stands_alone(answering: Handlers) -> None:
    session = gr.Request(session_hash="test-session")
    list(run(answering, editor_value(IMAGE, BOXES)))
    first, history, _ = answering.remember_turn(False, {}, "", session)
    list(run(answering, editor_value(IMAGE, BOXES), conversation=first))
    second, *_ = answering.remember_turn(False, first, "", session)
    assert len(second["turns"]) == 1 and history == ""


def test_the_reasoning_is_opened_once_as_it_starts(answering: Handlers, tmp_path: Path) -> None:
    from tests.rigged import make_rigged_checkpoint

    answer = "<think>Mug<region0> leftmost.</think><answer><region2></answer>"
    thinking = make_handlers(make_rigged_checkpoint(tmp_path, answer))
    steps = list(run(thinking, editor_value(IMAGE, BOXES), "free", free="Which is left?"))
    opened = [i for i, step in enumerate(steps) if step[6] != SKIP]
    shown = [i for i, step in enumerate(steps) if "Mug" in str(step[1])]
    # Once, with the first reasoning shown: a user who closes it again is left with it closed.
    assert opened == shown[:1] and steps[opened[0]][6] == gr.update(open=True)
    assert "leftmost" in steps[-1][1]
    # An answer without reasoning leaves the accordion as the user has it.
    assert all(step[6] == SKIP for step in run(answering, editor_value(IMAGE, BOXES)))


def test_bare_references_are_drawn_as_they_stream(tmp_path: Path) -> None:
    from tests.rigged import make_rigged_checkpoint

    # A reasoning-style answer: region references in prose, no grounded group.
    checkpoint = make_rigged_checkpoint(tmp_path, "A<region1> near<region0>.")
    answerer = Answerer(load(checkpoint, device="cpu"))
    question = Question(IMAGE, BOXES, "OD_template", "cup")
    steps = list(answerer.steps(question, answerer.prepare(question), 32))
    drawn = [
        [int(i) for i in s.detections.data["region_index"]] for s in steps if s.image is not None
    ]
    # The bare image first, then each new reference as it arrives, not only when the answer ends.
    assert drawn == [[], [1], [1, 0], [1, 0]]
    # Parsed at most once an interval: a long one leaves the last step only, parsed whole.
    *early, last = answerer.steps(question, answerer.prepare(question), 32, None, math.inf)
    assert early == [] and last.generation is not None
    assert [int(i) for i in last.detections.data["region_index"]] == [1, 0]
    # Drawn again at most once a draw interval (the page's, for long answers): here the first
    # step's drawing, then the last's.
    steps = list(answerer.steps(question, answerer.prepare(question), 32, draw_interval_s=60))
    drawn = [
        [int(i) for i in s.detections.data["region_index"]] for s in steps if s.image is not None
    ]
    assert len(steps) > 3 and drawn == [[], [1, 0]]
    # Drawn for the last step only where no one sees the others (the API).
    *early, last = answerer.steps(
        question, answerer.prepare(question), 32, draw_interval_s=math.inf
    )
    assert len(early) > 1 and all(step.image is None for step in early)
    assert last.image is not None


def test_closing_the_page_stops_its_answer_and_keeps_nothing_of_it(endless: Handlers) -> None:
    closing = gr.Request(session_hash="closing")
    steps = endless.run(
        editor_value(IMAGE, BOXES),
        "OD_template",
        "cup",
        [],
        "",
        100_000,
        {},
        None,
        False,
        None,
        None,
        None,
        closing,
    )
    next(steps)
    next(steps)  # streaming
    endless.forget_session(closing)
    *_, (_, _, _, status, _, _, _) = steps
    assert "Stopped by you" in status
    endless.remember_turn(False, None, status, closing)  # the answer's `.then`, after the close
    endless.boxes_changed(editor_value(IMAGE, []), None, False, None, None, closing)  # queued
    assert "closing" not in endless._sessions


def test_a_page_heard_from_long_after_it_closed_is_open_after_all(
    endless: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradio takes a page whose heartbeat was cut (a phone's tab asleep, another network) for
    closed: the page, still open, kept nothing for good, its Stop finding no answer to stop."""
    page = gr.Request(session_hash="asleep")
    endless.forget_session(page)
    monkeypatch.setattr(ui.sessions, "LATE_EVENTS_S", 0.0)
    steps = run(endless, editor_value(IMAGE, BOXES), limit=100_000, request=page)
    next(steps)
    next(steps)  # streaming
    assert endless._session(page).running is not None  # what Stop stops
    endless.stop(2.0, page)
    *_, (_, _, _, status, _, _, _) = steps
    assert "Stopped by you" in status


def test_an_api_answer_its_client_cancelled_frees_the_model(endless: Handlers) -> None:
    """Gradio closes a cancelled call's generator: the answer stops there, not at its last token
    with every caller behind it waiting."""
    api = Api(endless.answerer, endless.proposing, max_new_tokens=100_000)
    outputs = api.answer(IMAGE, BOXES, "OD_template", "cup")
    assert next(outputs) == (SKIP, SKIP, SKIP)  # the answer is streaming
    outputs.close()
    after = endless.answerer.pipeline.ask(IMAGE, BOXES, "OD_template", "cup", max_new_tokens=2)
    assert after.timings["queued_s"] < 2


def test_a_new_image_ends_the_answer_about_the_old_one(endless: Handlers) -> None:
    request = gr.Request(session_hash="test-session")
    steps = run(endless, editor_value(IMAGE, BOXES), limit=4000, clicked_at=1.0)
    next(steps)  # streaming
    # It waits until that answer has ended, which needs the stream to be read on.
    superseding = threading.Thread(target=endless.supersede, args=(2.0, request))
    superseding.start()
    while endless._session(request).superseded_at is None:
        time.sleep(0.001)
    assert list(steps) == []  # nothing more lands next to the new image
    superseding.join(timeout=5)
    assert not superseding.is_alive()
    # A question asked about the old image that was still queued shows nothing either.
    assert list(run(endless, editor_value(IMAGE, BOXES), clicked_at=1.5)) == []
    # One asked about the new image runs.
    assert "Answering" in next(run(endless, editor_value(IMAGE, BOXES), clicked_at=3.0))[3]


def test_the_boxes_the_answer_names_are_kept_and_the_others_removed(answering: Handlers) -> None:
    """Of the boxes asked about, those the answer on screen names (its table's regions), to ask
    about next; Undo brings the others back. Without such an answer, or with another image in
    the editor, the boxes stay and the status says why."""
    request = gr.Request(session_hash="keep-found")
    value = editor_value(IMAGE, BOXES)
    shown, status, picked, prompt = answering.keep_found(value, None, [1], "", request)
    assert shown == SKIP and "No answer naming boxes is on screen" in status
    boxes_changed(answering, value, request=request)
    *_, (_, _, _, _, table, _, _) = run(answering, value, request=request)
    table = pd.DataFrame(table, columns=DETECTION_COLUMNS)  # as the page sends it back
    shown, status, picked, prompt = answering.keep_found(value, table, [2], "<region2>?", request)
    assert boxes_of(shown) == [BOXES[0], BOXES[2]]
    assert "2 boxes kept, now #0–#1: those the answer names (#0, #2); the other 1 box removed" in (
        status
    )
    assert picked == [1] and prompt == "<region1>?"  # box #2 is #1 now
    boxes_changed(answering, shown, request=request)
    assert boxes_of(undo(answering, shown, request)) == BOXES
    other = editor_value(str(EXAMPLES_DIR / "chelsea.jpg"), BOXES)
    shown, status, *_ = answering.keep_found(other, table, [], "", request)
    assert shown == SKIP and "about another image" in status
