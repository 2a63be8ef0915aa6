"""Generated bad inputs to `/answer` and `/propose` of a live `python app.py` (rigged checkpoint).

Every request must end in a correct result or a Gradio error whose message is specific: not
empty, not a bare "Error", no traceback, no server path, not the catch-all for an unexpected
exception. Every request is given a deadline (a hang fails the test), and after each batch the
server must still answer a good question.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fo1_core.templates import FREE_PROMPT, TASKS
from tests.browser.app_server import REPO, call_raw, running_app
from tests.conftest import RIGGED_ANSWER
from tests.images import animated_gif, encoded

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT_S = 60
GOOD_BOXES = [[1, 1, 30, 30], [2, 2, 40, 40], [3, 3, 50, 50]]
API_FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GENERIC_MESSAGES = {"", "error", "an error occurred."}


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (40, 30), 1)
    return encoded(image, "PNG", transparency=1)


GOOD_PNG = encoded(Image.new("RGB", (64, 48), "white"), "PNG")
IMAGE_FILES: dict[str, bytes] = {
    "good.png": GOOD_PNG,
    "corrupt.png": b"\x89PNG\r\n\x1a\n this is not really a PNG",
    "truncated.png": GOOD_PNG[: len(GOOD_PNG) // 2],
    "truncated.jpg": encoded(Image.new("RGB", (300, 200), "red"), "JPEG")[:400],
    "zero.png": b"",
    "text.png": b"hello, I am text",
    "one_by_n.png": encoded(Image.new("RGB", (1, 500)), "PNG"),
    "tiny.png": encoded(Image.new("RGB", (7, 7)), "PNG"),
    "strip.png": encoded(Image.new("1", (20_000, 10)), "PNG"),  # 20 000 px wide
    "square20k.png": encoded(Image.new("1", (20_000, 20_000)), "PNG"),  # 400 megapixels
    "grey16.png": encoded(Image.new("I;16", (50, 40), 60_000), "PNG"),
    "palette.png": encoded(Image.new("P", (40, 30), 3), "PNG"),
    "palette_alpha.png": _palette_with_transparency(),
    "rgba.png": encoded(Image.new("RGBA", (40, 30), (0, 0, 0, 0)), "PNG"),
    "cmyk.jpg": encoded(Image.new("CMYK", (40, 30), (0, 50, 100, 0)), "JPEG"),
    "animated.gif": animated_gif(),
    "float.tif": encoded(Image.new("F", (40, 30), 0.5), "TIFF"),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("fuzz-images")
    for name, data in IMAGE_FILES.items():
        (folder / name).write_bytes(data)
    return {name: str(folder / name) for name in IMAGE_FILES}


@pytest.fixture(scope="module")
def url(answering_checkpoint: Path) -> Iterator[str]:
    with running_app(answering_checkpoint) as app_url:
        yield app_url


@pytest.fixture(scope="module")
def client(url: str) -> Client:
    return Client(url, verbose=False)


def assert_specific(error: BaseException) -> None:
    """A message a user can act on: no traceback, no server path, not the catch-all."""
    message = str(error)
    assert message.strip().lower() not in GENERIC_MESSAGES, repr(error)
    assert "Traceback" not in message, message
    assert "/tmp/" not in message and str(REPO) not in message, message
    assert "Generation failed" not in message, message  # `ui.api`'s net for unexpected errors


def ask(client: Client, endpoint: str, *args: object) -> tuple | dict | None:
    """The result, or None after checking the error; a request past its deadline fails."""
    job = client.submit(*args, api_name=endpoint)
    try:
        return job.result(timeout=REQUEST_TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"{endpoint} did not answer in {REQUEST_TIMEOUT_S} s: {args!r}"[:500])
    except Exception as error:  # every client error is checked the same way
        assert_specific(error)
        return None


def assert_still_serving(client: Client, images: dict[str, str]) -> None:
    _, raw, _ = client.predict(
        handle_file(images["good.png"]), GOOD_BOXES, "OD_template", "cup", api_name="/answer"
    )
    assert raw.startswith(RIGGED_ANSWER)


COORDINATES = st.one_of(
    st.floats(-1e7, 1e7, allow_nan=False),
    st.integers(-100, 400),
    st.sampled_from([0, 1e30, -1e30, 64, 48]),
)
BOX = st.lists(COORDINATES, min_size=4, max_size=4)
NOT_FINITE_TEXT = st.lists(
    st.lists(st.sampled_from(["NaN", "Infinity", "-Infinity", "1", "10", "-5"]), min_size=4,
             max_size=4).map(", ".join).map("[{}]".format),
    min_size=1, max_size=5,
).map(", ".join).map("[{}]".format)  # fmt: skip
BOXES = st.one_of(
    st.none(),
    st.lists(BOX, max_size=130),  # negative, inverted, huge, outside, > 100
    st.lists(BOX, min_size=1, max_size=3).map(lambda boxes: boxes * 40),  # duplicates
    st.lists(st.lists(COORDINATES, max_size=6), max_size=4),  # wrong arity
    NOT_FINITE_TEXT,  # NaN and infinities, as JSON text (JSON proper has no NaN)
    st.text(max_size=20),  # not JSON
    st.sampled_from([{}, {"boxes": [[1, 2, 3, 4]]}, {"boxes": "x"}, 7, [[[1, 2, 3, 4]]],
                     [[True, 1, 2, 3]], [["1", "2", "3", "4"]], [None]]),
)  # fmt: skip
CONTROL = ["<image>", "<regionfeat>", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
           "<|vision_start|>", "<|image_pad|>", "system", "<region0>", "<region2>",
           "<region99>", "<region-1>", "<ground>", "</objects>", "{}", "{text}", "%s", "\x00",
           "\u202e", "cat"]  # fmt: skip
TEXTS = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.lists(st.sampled_from(CONTROL), max_size=20).map("".join),
    st.sampled_from(["x" * 100_000, "猫 " * 30_000, "<image>" * 15_000, "\ud800", "a\udcffb"]),
)
TASK_NAMES = st.sampled_from([*TASKS, FREE_PROMPT, "", "OD_template ", "od_template", "../x"])
IMAGE_NAMES = st.sampled_from([*IMAGE_FILES, None])


@API_FUZZ
@given(image=IMAGE_NAMES, boxes=BOXES, task=TASK_NAMES, text=TEXTS)
def test_answer_never_fails_without_a_message(client, images, image, boxes, task, text) -> None:
    file = None if image is None else handle_file(images[image])
    result = ask(client, "/answer", file, boxes, task, text)
    if result is not None:
        _, raw, detections = result
        assert raw.startswith(RIGGED_ANSWER[:10])
        assert all(d["region_index"] in (0, 2) for d in detections["detections"])


THRESHOLDS = st.one_of(st.none(), st.floats(-10, 10, allow_nan=False), st.sampled_from([0, 1]))
COUNTS = st.one_of(
    st.none(), st.integers(-5, 500), st.floats(-1e9, 1e9, allow_nan=False), st.just(1e300)
)
PROPOSERS = st.sampled_from(["offline", "offline", "", "yolo", "../offline", "OFFLINE", "sam3"])


@settings(API_FUZZ, max_examples=150)
@given(image=IMAGE_NAMES, proposer=PROPOSERS, text=TEXTS, threshold=THRESHOLDS, count=COUNTS)
def test_propose_never_fails_without_a_message(
    client, images, image, proposer, text, threshold, count
) -> None:
    file = None if image is None else handle_file(images[image])
    result = ask(client, "/propose", file, proposer, text, threshold, count)
    if result is not None:
        assert result["count"] == len(result["boxes"]) <= 100
        assert all(all(math.isfinite(v) for v in box) for box in result["boxes"])


def test_still_serving_after_the_fuzzing(client: Client, images: dict[str, str]) -> None:
    assert_still_serving(client, images)


def test_a_box_under_a_whole_pixel_is_refused_naming_it(client: Client, images) -> None:
    # As the page refuses it typed, and drops it among proposals: not pooled from a sliver.
    boxes = [GOOD_BOXES[0], [10, 10, 10.2, 40]]
    with pytest.raises(Exception, match=r"Box #1 \[10.0, 10.0, 10.2, 40.0\] is 0.2×30 px inside"):
        client.predict(
            handle_file(images["good.png"]), boxes, "OD_template", "cup", api_name="/answer"
        )


@pytest.mark.parametrize(
    ("endpoint", "arguments", "message"),
    [
        # a count that is not a number
        ("propose", '[{image}, "offline", "", null, NaN]', "must be a whole number, got nan"),
        # an infinite count
        ("propose", '[{image}, "offline", "", null, Infinity]', "must be a whole number, got inf"),
        # a threshold that is not a number
        ("propose", '[{image}, "offline", "", NaN, 5]', "between 0 and 1"),
        ("propose", '[{image}, "offline", "", "abc", 5]', "number between 0 and 1, got 'abc'"),
        # boxes with NaN as JSON values, not text
        ("answer", '[{image}, [[NaN, 1, 20, 20]], "OD_template", "cup"]', "finite"),
        # a box with an infinite corner
        ("answer", '[{image}, [[1, 1, Infinity, 20]], "OD_template", "cup"]', "finite"),
        # example boxes the same
        ("propose_like", '[{image}, "owlv2-like", [[NaN, 1, 20, 20]], null, 5]', "finite"),
        ("propose_like", '[{image}, "owlv2-like", "[[1, 2", null, 5]', "not valid JSON"),
        ("propose_like", '[{image}, "owlv2-like", {{"a": 1}}, null, 5]', "must be a JSON list"),
    ],
)
def test_not_finite_numbers_sent_raw(url, client, images, endpoint, arguments, message) -> None:
    image = {"path": _uploaded(url, images["good.png"]), "meta": {"_type": "gradio.FileData"}}
    body = '{"data": ' + arguments.format(image=json.dumps(image)) + "}"
    events = call_raw(url, endpoint, body)
    assert "event: error" in events or events.startswith("HTTP 4"), events
    assert message in events, events
    assert "Traceback" not in events
    assert_still_serving(client, images)


def _uploaded(url: str, path: str) -> str:
    with open(path, "rb") as file:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": file})
    return response.json()[0]


@pytest.fixture(scope="module")
def cut_client(answering_checkpoint: Path) -> Iterator[Client]:
    """The same rigged model, stopped after 6 tokens: the answer ends mid-tag."""
    with running_app(answering_checkpoint, "--max-new-tokens", "6") as app_url:
        yield Client(app_url, verbose=False)


@pytest.mark.parametrize(
    ("boxes", "drawn"),
    [
        (GOOD_BOXES, []),  # the objects group never closes: nothing is drawn yet
        (GOOD_BOXES[:1], []),  # and a missing region is not named before it is written
    ],
)
def test_answer_stopped_mid_tag_is_a_partial_result(cut_client, images, boxes, drawn) -> None:
    result = ask(cut_client, "/answer", handle_file(images["good.png"]), boxes, "OD_template", "x")
    assert result is not None
    _, raw, detections = result
    assert RIGGED_ANSWER.startswith(raw) and raw != RIGGED_ANSWER
    assert detections["stop_reason"] == "max_new_tokens"
    assert "cut short at 6 new tokens" in detections["warnings"][-1]
    assert [d["region_index"] for d in detections["detections"]] == drawn


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("rgba.png", 255),  # fully transparent: white, as a viewer shows it
        ("grey16.png", round(60_000 / 65_535 * 255)),  # 16-bit grey scaled, not clipped to 255
    ],
)
def test_api_images_look_as_in_a_viewer(client, images, image, expected) -> None:
    # A free prompt: the only task that runs without boxes, so nothing is drawn over the pixel.
    drawn, _, _ = client.predict(
        handle_file(images[image]), [], "free", "What is this?", api_name="/answer"
    )
    assert abs(int(np.asarray(Image.open(drawn).convert("L"))[0, 0]) - expected) <= 2
