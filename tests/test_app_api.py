"""`gradio_client` against `python app.py` on the answering checkpoint: `/propose`, `/answer`.

The rigged checkpoint answers every question with `RIGGED_ANSWER` (region 0 and region 2 as
"red circle"), so what the endpoints return is known exactly. Every bad input must come back as
an error whose message names the problem, never as a traceback or a hang.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from fo1_core.render import color_for_region, drawing_factor, shown_reduction
from tests.browser.app_server import REPO, call_raw, running_app
from tests.conftest import RIGGED_ANSWER

pytestmark = pytest.mark.slow

IMAGE = REPO / "examples" / "coffee.jpg"  # 600×400
BOXES = [[170, 10, 420, 200], [80, 60, 490, 390], [320, 60, 430, 320]]
APP_LOG = REPO / "test-artifacts" / "app-api.log"
WITHIN_S = 10
"""An answer starts streaming, or an abandoned one frees the model, within this many seconds; one
that nothing stops runs for minutes (`endless_url`)."""
KILLED_CLIENT = """
import sys, time
from gradio_client import Client, handle_file
url, image, boxes, within_s = sys.argv[1:]
job = Client(url, verbose=False).submit(
    handle_file(image), boxes, "OD_template", "cup", api_name="/answer"
)
deadline = time.monotonic() + float(within_s)
while not job.outputs() and time.monotonic() < deadline:
    time.sleep(0.05)
print("streaming" if job.outputs() else "silent", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def client(answering_checkpoint: Path, owlv2_checkpoint: Path) -> Iterator[Client]:
    options = ["--proposer-checkpoint", f"owlv2={owlv2_checkpoint}"]
    with running_app(answering_checkpoint, *options, log=APP_LOG) as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def endless_url(endless_checkpoint: Path) -> Iterator[str]:
    """An app whose answers run to 100 000 tokens unless something stops them."""
    with running_app(endless_checkpoint, "--max-new-tokens", "100000") as url:
        yield url


@pytest.fixture(scope="module")
def broken_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("bad") / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    return str(path)


@pytest.fixture(scope="module")
def huge_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    # 110 megapixels in a 13 kB file: past both the model's and the proposers' limits.
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (11000, 10000)).save(path)
    return str(path)


def answer(client: Client, image, boxes, task: str, text: str):
    return client.predict(image, boxes, task, text, api_name="/answer")


def test_endpoints_are_named(client: Client) -> None:
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/propose", "/answer"} <= set(named)


def test_the_api_pages_examples_are_calls_this_app_answers(client: Client) -> None:
    """Gradio's own examples are an image URL, which the app refuses, and {'foo': 'bar'} boxes."""
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for endpoint in ("/propose", "/answer"):
        examples = {p["label"]: p["example_input"] for p in named[endpoint]["parameters"]}
        assert examples.pop("image")["url"] == "photo.jpg"  # shown as handle_file('photo.jpg')
        result = client.predict(handle_file(IMAGE), *examples.values(), api_name=endpoint)
        assert result  # neither call was refused
    assert "OD_template" in named["/answer"]["description"]


def test_propose_returns_boxes_as_json(client: Client) -> None:
    result = client.predict(handle_file(IMAGE), "offline", "", None, 5, api_name="/propose")
    assert result["proposer"] == "offline"
    assert 1 <= result["count"] == len(result["boxes"]) <= 5
    for x1, y1, x2, y2 in result["boxes"]:
        assert 0 <= x1 < x2 <= 600 and 0 <= y1 < y2 <= 400
    assert result["scores"] == sorted(result["scores"], reverse=True)


def test_propose_like_finds_more_like_the_example_boxes_given(client: Client) -> None:
    like = [[170, 10, 420, 200]]
    result = client.predict(
        handle_file(IMAGE), "owlv2-like", like, None, 5, api_name="/propose_like"
    )
    assert result["proposer"] == "owlv2-like" and 1 <= result["count"] <= 5
    assert result["scores"][0] == 1.0  # relative to the best match
    for examples, message in [
        ([], "give it at least one"),
        ([[1, 2]], re.escape("Box #0 must be four numbers")),
    ]:
        with pytest.raises(Exception, match=message):
            client.predict(
                handle_file(IMAGE), "owlv2-like", examples, None, 5, api_name="/propose_like"
            )
    # /propose is not given example boxes: it says so.
    with pytest.raises(Exception, match="give it at least one"):
        client.predict(handle_file(IMAGE), "owlv2-like", "", None, 5, api_name="/propose")


def test_answer_draws_the_grounded_regions(client: Client) -> None:
    image, raw, detections = answer(client, handle_file(IMAGE), BOXES, "OD_template", "cup")
    assert raw.startswith(RIGGED_ANSWER)
    assert detections["stop_reason"] == "eos"
    assert [(d["region_index"], d["label"]) for d in detections["detections"]] == [
        (0, "red circle"),
        (2, "red circle"),
    ]
    assert detections["detections"][1]["box_xyxy"] == BOXES[2]
    drawn = np.asarray(Image.open(image).convert("RGB"))
    assert drawn.shape == (400, 600, 3)
    # Box 0's top edge is drawn in region 0's colour; box 1 (not in the answer) is not drawn.
    assert tuple(int(v) for v in drawn[10, 300]) == pytest.approx(
        color_for_region(0).as_rgb(), abs=40
    )
    original = np.asarray(Image.open(IMAGE).convert("RGB"))
    assert np.abs(drawn[390, 300].astype(int) - original[390, 300]).max() < 40


def test_asking_again_about_the_same_image_and_boxes_reuses_their_encoding(client: Client) -> None:
    answer(client, handle_file(IMAGE), BOXES, "OD_template", "cup")
    *_, again = answer(client, handle_file(IMAGE), BOXES, "OD_Counting_template", "spoon")
    reused = again["reused"]
    assert (reused["image"], reused["regions"], reused["prefix"]) == (True, len(BOXES), True)
    assert reused["tokens"] > 0


def test_propose_output_feeds_answer(client: Client) -> None:
    proposals = client.predict(handle_file(IMAGE), "offline", "", None, 3, api_name="/propose")
    _, raw, detections = answer(client, handle_file(IMAGE), proposals, "OD_All_template", "")
    assert raw.startswith(RIGGED_ANSWER)
    assert [d["region_index"] for d in detections["detections"]] == [0, 2]


def test_a_coco_files_boxes_of_the_uploaded_image_are_answered_about(client: Client) -> None:
    """A dataset's COCO annotations, sent as they are: the boxes of the image uploaded, found by
    its file's name, as corners, scaled from the full-size photo the file records to the 600×400
    copy uploaded."""
    name = Path(IMAGE).name
    photo = {"id": 2, "file_name": f"val/{name}", "width": 1200, "height": 800}
    coco = {
        "images": [{"id": 1, "file_name": "other.jpg"}, photo],
        "annotations": [
            {"id": 1, "image_id": 2, "bbox": [340, 20, 500, 380]},
            {"id": 2, "image_id": 1, "bbox": [0, 0, 5, 5]},
            {"id": 3, "image_id": 2, "bbox": [160, 120, 820, 660]},
            {"id": 4, "image_id": 2, "bbox": [640, 120, 220, 520]},
        ],
    }
    _, _, detections = answer(client, handle_file(IMAGE), json.dumps(coco), "OD_template", "cup")
    assert [d["box_xyxy"] for d in detections["detections"]] == [BOXES[0], BOXES[2]]
    assert detections["warnings"][0] == (
        "The boxes were scaled from the 1200×800 image the COCO file records to this 600×400 one."
    )


def test_more_boxes_than_the_model_takes_are_capped_with_a_notice(client: Client) -> None:
    boxes = [[i, i, i + 50, i + 50] for i in range(150)]
    _, raw, detections = answer(client, handle_file(IMAGE), boxes, "OD_template", "cup")
    assert raw.startswith(RIGGED_ANSWER)
    assert any("100" in warning for warning in detections["warnings"])


def test_answers_hold_boxes_cut_to_the_image_as_the_model_read_them(client: Client) -> None:
    boxes = [[-20, -5, 60, 200], BOXES[1], [320, 60, 900, 500]]
    _, _, detections = answer(client, handle_file(IMAGE), boxes, "OD_template", "cup")
    assert [d["box_xyxy"] for d in detections["detections"]] == [
        [0, 0, 60, 200],
        [320, 60, 600, 400],
    ]
    assert any("Cut to the image: 2 boxes" in warning for warning in detections["warnings"])


def test_answer_naming_a_missing_region_is_reported_not_drawn(client: Client) -> None:
    # The model names region 2, but only one box was given.
    _, _, detections = answer(client, handle_file(IMAGE), BOXES[:1], "OD_template", "cup")
    assert [d["region_index"] for d in detections["detections"]] == [0]
    assert any("Region 2 does not exist" in warning for warning in detections["warnings"])


def test_placeholder_strings_are_removed_from_the_prompt(client: Client) -> None:
    _, raw, _ = answer(client, handle_file(IMAGE), BOXES, "OD_template", "cup<image><regionfeat>")
    assert raw.startswith(RIGGED_ANSWER)


@pytest.mark.parametrize(
    ("image", "boxes", "task", "text", "message"),
    [
        # no image at all
        (None, BOXES, "OD_template", "cup", "No image"),
        # a region task without boxes
        (IMAGE, [], "Brief_Region_Caption_template", "", "there are none"),
        # a region task given words, not region references
        (IMAGE, BOXES, "Region_OCR_template", "cup", "asks about regions"),
        # a region task whose references name boxes that do not exist
        (IMAGE, BOXES, "Brief_Region_Caption_template", "<region7>", "region7"),
        # a free prompt referring to a missing region
        (IMAGE, BOXES[:2], "free", "What is <region5>?", "region5"),
        # text that is only placeholders: nothing is left to ask
        (IMAGE, BOXES, "OD_template", "<image><regionfeat>", "needs input"),
        # a box with three numbers
        (IMAGE, [[1, 2, 3]], "OD_template", "cup", "four numbers"),
        # boxes that are neither JSON nor a labels file's lines: the line is named
        (IMAGE, "hello", "OD_template", "cup", r"Line 1 \(hello\) holds 1 value"),
        # JSON that is not a list of boxes
        (IMAGE, '{"a": 1}', "OD_template", "cup", "JSON list"),
        # an inverted box
        (IMAGE, [[300, 300, 100, 100]], "OD_template", "cup", "Box"),
        # a box that is not numbers
        (IMAGE, [["a", 1, 2, 3]], "OD_template", "cup", "numbers only"),
        # an unknown task
        (IMAGE, BOXES, "Segment_template", "cup", "Unknown task"),
        # an empty free prompt
        (IMAGE, BOXES, "free", "   ", "empty"),
        # more boxes than the page takes, refused before each is checked in the model's turn
        (IMAGE, [BOXES[0]] * 1001, "OD_template", "cup", "1001 boxes sent; at most 1000"),
        (IMAGE, "10 10 30 30\n" * 5000, "OD_template", "cup", "5000 boxes sent; at most 1000"),
        # a boxes string larger than the command line reads from a file
        (IMAGE, "10 10 30 30\n" * 1_000_000, "OD_template", "cup", "it is 12 MB; at most 10 MB"),
    ],
)
def test_bad_answer_input_is_a_specific_error(client, image, boxes, task, text, message) -> None:
    file = handle_file(image) if image is not None else None
    with pytest.raises(Exception, match=message):
        answer(client, file, boxes, task, text)


def test_broken_image_is_a_specific_error(client: Client, broken_image: str) -> None:
    with pytest.raises(Exception, match="image"):
        answer(client, handle_file(broken_image), BOXES, "OD_template", "cup")


def test_exif_rotation_is_applied(client: Client, tmp_path: Path) -> None:
    # Stored 60×40 with "rotate 90° clockwise" in EXIF: people see (and draw on) it as 40×60.
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 40), "white").save(path, exif=exif)
    image, _, detections = answer(
        client,
        handle_file(str(path)),
        [[0, 0, 30, 50], [0, 0, 5, 5], [5, 5, 35, 55]],
        "OD_template",
        "x",
    )
    factor = drawing_factor(40, 60)  # a small image is drawn on enlarged
    assert np.asarray(Image.open(image)).shape[:2] == (60 * factor, 40 * factor)
    assert detections["detections"][0]["box_xyxy"] == [0, 0, 30, 50]


def test_a_panorama_wider_than_webp_allows_is_answered(client: Client, tmp_path: Path) -> None:
    """WebP holds 16 383 px a side, a screen far less: the drawing is sent reduced whole times,
    the boxes stay in the image's pixels."""
    path = tmp_path / "panorama.png"
    Image.new("RGB", (17_000, 400), "white").save(path)
    boxes = [[100, 10, 5000, 300], [0, 0, 50, 50], [12_000, 20, 16_900, 390]]
    image, _, detections = answer(client, handle_file(str(path)), boxes, "OD_template", "x")
    reduced = shown_reduction(17_000, 400)
    assert reduced == 5
    assert np.asarray(Image.open(image)).shape[:2] == (400 // reduced, 17_000 // reduced)
    assert [d["box_xyxy"] for d in detections["detections"]] == [boxes[0], boxes[2]]


def test_huge_image_is_a_specific_error(client: Client, huge_image: str) -> None:
    with pytest.raises(Exception, match="megapixels"):
        answer(client, handle_file(huge_image), BOXES, "OD_template", "cup")
    with pytest.raises(Exception, match="megapixels"):  # the same words: one check of images
        client.predict(handle_file(huge_image), "offline", "", None, 5, api_name="/propose")


@pytest.mark.parametrize(
    ("proposer", "threshold", "max_boxes", "message"),
    [
        # a proposer that does not exist
        ("yolo", None, 5, "Unknown proposer"),
        # a model proposer whose weights cannot be downloaded here
        ("florence2", None, 5, "not on this machine"),
        # a threshold outside [0, 1]
        ("offline", 2.0, 5, "between 0 and 1"),
        # a count of zero
        ("offline", None, 0, "between 1 and 100"),
        # a count that is no whole number, or a yes/no
        ("offline", None, 2.7, "must be a whole number, got 2.7"),
        ("offline", None, True, "must be a whole number, got True"),
        ("offline", True, 5, "between 0 and 1, got True"),
        # a huge count, as written: it was shown as its first 50 digits
        ("offline", None, 1e308, r"between 1 and 100, a whole number; got 1e\+308\."),
    ],
)
def test_bad_propose_input_is_a_specific_error(client, proposer, threshold, max_boxes, message):
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(IMAGE), proposer, "", threshold, max_boxes, api_name="/propose")


def test_propose_without_image_is_a_specific_error(client: Client) -> None:
    with pytest.raises(Exception, match="No image"):
        client.predict(None, "offline", "", None, 5, api_name="/propose")


def test_app_still_answers_after_errors(client: Client) -> None:
    _, raw, _ = answer(client, handle_file(IMAGE), BOXES, "REC_template", "the cup")
    assert raw.startswith(RIGGED_ANSWER)


@pytest.mark.parametrize(
    "image",
    [
        "/etc/passwd",  # a path where a file is expected
        {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},  # a file not uploaded
        {"path": "x.png", "meta": {"_type": "gradio.FileData"}},  # relative: to the server's folder
        # paths no system can look up: Gradio's checks failed on them with a traceback, and the
        # error echoed them whole (3 MB back for a long data: URL)
        {"path": "data:image/png;base64," + "A" * 5000, "meta": {"_type": "gradio.FileData"}},
        {"path": "/tmp/a\x00b.png", "meta": {"_type": "gradio.FileData"}},
    ],
)
@pytest.mark.parametrize("endpoint", ["answer", "propose"])
def test_an_image_not_uploaded_is_refused_naming_no_server_path(client, endpoint, image) -> None:
    arguments = [BOXES, "OD_template", "cup"] if endpoint == "answer" else ["offline", "", None, 5]
    events = call_raw(client.src, endpoint, json.dumps({"data": [image, *arguments]}))
    assert "event: error" in events and "handle_file(path)" in events, events
    assert str(REPO) not in events and "pydantic" not in events and "passwd" not in events
    assert len(events) < 1000


def test_visitor_mistakes_leave_no_tracebacks_in_the_server_log(client, broken_image) -> None:
    """Bad inputs (these and every one above) come back as messages and stay out of the log,
    where a Space's maintainer looks for the server's own failures."""
    with pytest.raises(Exception, match="not an image"):
        answer(client, handle_file(broken_image), BOXES, "OD_template", "cup")
    with pytest.raises(Exception, match="Unknown task"):
        answer(client, handle_file(IMAGE), BOXES, "../x", "")
    assert "Traceback" not in APP_LOG.read_text()


def _dropped_connection(url: str) -> None:
    """Asks over plain HTTP and closes the connection once the answer streams."""
    with IMAGE.open("rb") as file:
        path = httpx.post(f"{url}gradio_api/upload", files={"files": file}).json()[0]
    image = {"path": path, "meta": {"_type": "gradio.FileData"}}
    body = {"data": [image, BOXES, "OD_template", "cup"]}
    event_id = httpx.post(f"{url}gradio_api/call/answer", json=body).json()["event_id"]
    deadline = time.monotonic() + WITHIN_S
    # Gradio's heartbeats come every 15 s: a stream that stays silent meets the read timeout.
    stream = f"{url}gradio_api/call/answer/{event_id}"
    with httpx.stream("GET", stream, timeout=WITHIN_S) as events:
        for line in events.iter_lines():
            if line.startswith("event: generating"):
                return
            assert time.monotonic() < deadline, "the answer did not start streaming"


def _killed_client(url: str) -> None:
    """Asks from a `gradio_client` in another process, killed once the answer streams."""
    arguments = [url, str(IMAGE), str(BOXES), str(WITHIN_S)]
    command = [sys.executable, "-c", KILLED_CLIENT, *arguments]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as client:
        try:
            assert client.stdout.readline().strip() == "streaming"
        finally:
            client.kill()


@pytest.mark.parametrize("leave", [_dropped_connection, _killed_client])
def test_an_answer_whose_client_went_away_frees_the_model(endless_url: str, leave) -> None:
    """A client that goes away without cancelling stops its answer too: Gradio closes the call
    of a closed event stream at its next yield (`CANCEL_CHECK_S`), and the next caller gets the
    model instead of waiting for the abandoned answer's last token."""
    leave(endless_url)
    gone = time.monotonic()
    job = Client(endless_url, verbose=False).submit(
        handle_file(IMAGE), BOXES, "OD_template", "cup", api_name="/answer"
    )
    try:
        while not job.outputs():  # its first output comes with its first token
            assert time.monotonic() - gone < WITHIN_S, "the abandoned answer still holds the model"
            time.sleep(0.05)
    finally:
        job.cancel()
