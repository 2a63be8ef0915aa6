"""The app in headless Chromium: upload, draw/move/delete boxes, run tasks, stream, Stop.

Runs `python app.py` on the endless rigged checkpoint: its greedy answer is `RIGGED_ANSWER`
(region 0 and region 2 as "red circle") followed by " many regions" until the token limit or Stop,
so one server shows a complete grounded group, a long stream and a real stop.
Screenshots go to `test-artifacts/`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from axe_playwright_python.base import AXE_FILE_PATH
from PIL import Image

from fo1_core.templates import MAX_REGIONS
from tests.browser.app_server import REPO, running_app
from tests.test_app_units import DRAWING_ORDERS, box
from ui.boxes import (
    CORNERS,
    RELABEL_IN_BROWSER,
    UNREAD_RGB,
    in_drawing_order,
    region_label,
    region_rgb,
)
from ui.editor import SCREEN_SHARE, TAKE_THE_ENLARGED_COPY, enlargement
from ui.examples import load_examples
from ui.spotlight import REGION_OPTIONS
from ui.style import PENDING

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
IMAGE = REPO / "examples" / "coffee.jpg"
EVENT_DELAY_MS = 1500
BOX_TOLERANCE = 15  # pixels of the image: a box drawn with the mouse lands within this
SETTLE_MS = 3000
"""Long enough for every reply to an upload to land, even on a loaded machine."""


@pytest.fixture(scope="module")
def app_url(
    endless_checkpoint: Path, owlv2_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # Florence-2 is offered for its folder, which is missing: a proposer that fails at Propose;
    # OWLv2 for a tiny random one: a proposer that finds what it is told.
    missing = tmp_path_factory.mktemp("proposers") / "florence2"
    options = ["--max-new-tokens", "256", "--token-limit", "8192", "--proposer", "offline"]
    options += ["--proposer-checkpoint", f"florence2={missing}"]
    options += ["--proposer-checkpoint", f"owlv2={owlv2_checkpoint}"]
    with running_app(endless_checkpoint, *options) as url:
        yield url


@contextmanager
def chromium_page(url: str, width: int, height: int) -> Iterator:
    """`url` in a headless Chromium window of `width` × `height` (skips without Chromium)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(30_000)
        page.goto(url)
        yield page
        browser.close()


@contextmanager
def opened_page(app_url: str) -> Iterator:
    """The app's page in headless Chromium, its editor shown (skips without Chromium)."""
    with chromium_page(app_url, 1400, 1000) as page:
        page.wait_for_selector("#fo1-editor")
        yield page


@pytest.fixture(scope="module")
def page(app_url: str):
    with opened_page(app_url) as page:
        yield page


def shot(page, name: str, full_page: bool = True) -> None:
    """The page, whole or (not `full_page`) as much of it as the window shows."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=full_page)


def canvas_point(
    page, fx: float, fy: float, size: tuple[int, int] = (600, 400)
) -> tuple[float, float]:
    """A point at fractions (fx, fy) of the displayed image inside the editor's canvas."""
    box = page.locator("#fo1-editor canvas").bounding_box()
    # The image (`size`: the examples' 600×400) is letterboxed to the canvas height, centred
    # horizontally.
    height = box["height"]
    width = height * size[0] / size[1]
    left = box["x"] + (box["width"] - width) / 2
    return left + fx * width, box["y"] + fy * height


def settled_frame(page, selector: str = "#fo1-editor canvas") -> dict[str, float]:
    """The editor canvas's (or `selector`'s) place on the screen once it stays put: a tall image
    is fitted to the window in steps, and a box drawn mid-way lands where the canvas has moved
    to; the page scrolls smoothly to an answer, and a pointer moved meanwhile lands elsewhere."""
    canvas = page.locator(selector)
    frame, still = canvas.bounding_box(), 0
    # A second unmoved: on a busy machine the fitting's steps can come several frames apart.
    for _ in range(100):  # one that never settles fails the test's own checks
        if still == 5:
            break
        page.wait_for_timeout(200)
        now = canvas.bounding_box()
        still = still + 1 if now == frame else 0
        frame = now
    return frame


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=5)
    page.mouse.move(*end, steps=5)
    page.mouse.up()


def box_sent_for(
    page, start: tuple[float, float], end: tuple[float, float], expected: list[float]
) -> list[float]:
    """Draws the page's only box and returns its corners in image pixels as the editor last sent
    them: once they are `expected` (give or take `BOX_TOLERANCE`), or as they are 10 s later. It
    sends the box as the drag starts too, read a moment later (a step of the drag), and the box
    as drawn only once that one is back, which on a busy machine takes seconds."""
    sent: list[list[float]] = []

    def record(request) -> None:
        for one in sent_boxes(request):
            scale = one.get("scaleFactor", 1)
            sent.append([one[corner] / scale for corner in ("xmin", "ymin", "xmax", "ymax")])

    def arrived() -> bool:
        return bool(sent) and np.abs(np.subtract(sent[-1], expected)).max() <= BOX_TOLERANCE

    page.on("request", record)
    drag(page, start, end)
    wait_for_note(page, "1 box")
    deadline = time.monotonic() + 10
    while not arrived() and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    page.remove_listener("request", record)
    return sent[-1]


def box_count(page) -> str:
    return page.locator("#fo1-box-note").inner_text()


def wait_for_note(page, text: str) -> None:
    try:
        page.locator("#fo1-box-note", has_text=text).wait_for()
    except playwright.TimeoutError as error:  # what the page said instead
        shown = f"the note is {box_count(page)!r}, the status {status_text(page)!r}"
        raise AssertionError(f"No {text!r} under the image: {shown}") from error
    page.wait_for_timeout(300)  # the renumbered boxes are redrawn right after the note


NUMBERS_SHOWN = "(document.querySelector('#fo1-box-numbers textarea')?.value ?? '')"
""""Boxes as numbers" as shown: empty until, opened, it has drawn its text field."""


def wait_for_first_box(page, numbers: str) -> None:
    """Until "Boxes as numbers" starts with `numbers` (box #0's line)."""
    page.wait_for_function(f"n => {NUMBERS_SHOWN}.startsWith(n)", arg=numbers)


def wait_for_numbers(page, numbers: str) -> None:
    """Until "Boxes as numbers" holds `numbers`, every line."""
    page.wait_for_function(f"n => {NUMBERS_SHOWN} === n", arg=numbers)


def open_example(page, title: str, boxes: str = "3 boxes") -> None:
    """Loads the example whose title starts with `title`, once the page has numbered its boxes."""
    page.locator("#fo1-gallery").get_by_text(title).click()
    wait_for_note(page, boxes)


def delete_coffee_cup_box(page) -> None:
    """Selects the Coffee example's box #0 (where no other box is) and removes it."""
    page.get_by_label("Drag boxes").click()
    page.mouse.click(*canvas_point(page, 200 / 600, 30 / 400))
    page.get_by_label("Remove box").click()
    wait_for_note(page, "2 boxes")


def choose_task(page, label: str) -> None:
    page.get_by_label("Task").click()
    page.get_by_role("option", name=label, exact=True).click()


def status_text(page) -> str:
    return page.locator("#fo1-status").inner_text()


WATCH_THE_STATUS = """() => {
    const status = document.querySelector("#fo1-status");
    window.fo1StatusShown = [];
    new MutationObserver(() => window.fo1StatusShown.push(status.innerText))
        .observe(status, {subtree: true, childList: true, characterData: true});
}"""

STATUS_HAS_SHOWN = """texts => {
    let found = 0;
    for (const shown of window.fo1StatusShown) {
        if (found < texts.length && shown.includes(texts[found])) found++;
    }
    return found === texts.length;
}"""


def wait_for_statuses(page, *texts: str) -> None:
    """Until the status has shown each of `texts` in turn since `WATCH_THE_STATUS`, however
    briefly (a kept Run follows a stopped answer at once)."""
    page.wait_for_function(STATUS_HAS_SHOWN, arg=list(texts))


def test_broken_upload_is_one_readable_message(page, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    page.locator("#fo1-editor input[type=file]").set_input_files(str(broken))
    page.get_by_text("The file is not an image this app can read").first.wait_for()
    page.wait_for_timeout(SETTLE_MS)  # time for a second check of the same file to answer too
    shot(page, "0-broken-upload")
    # Gradio stacks equal-kind toasts into one, each message an item of its own.
    assert page.get_by_test_id("toast-text").count() == 1
    # The editor is back to its drop zone, and Run says what is missing, in the status.
    page.locator("#fo1-editor", has_text="Drop Image Here").wait_for()
    page.locator("#fo1-run").click()
    page.locator("#fo1-status .fo1-error", has_text="No image").wait_for()
    assert page.locator(".error").count() == 0  # no output marked as failed


def test_a_refused_file_dropped_over_an_image_leaves_it_and_its_answer(
    page, tmp_path: Path
) -> None:
    """The editor shows a dropped file before the server can refuse it: the image, boxes and
    answer it replaced were emptied, with a toast for the only word of it."""
    open_example(page, "Coffee: detect cup and spoon")
    run_detection(page, "red circle", max_tokens=256)  # what the tests after this one ask with
    page.locator("#fo1-status", has_text="Stopped at the token limit").wait_for()
    too_small = tmp_path / "dot.png"
    Image.new("RGB", (5, 5), "white").save(too_small)
    page.locator("#fo1-editor input[type=file]").set_input_files(str(too_small))
    page.get_by_test_id("toast-text").filter(has_text="each side needs at least").wait_for()
    wait_for_note(page, "3 boxes")
    page.locator("#fo1-status", has_text="Stopped at the token limit").wait_for()
    page.locator("#fo1-answer", has_text="red circle").wait_for()
    shot(page, "0b-refused-file-over-an-image")
    assert page.locator("#fo1-editor", has_text="Drop Image Here").count() == 0
    # After the editor's ×, there is no image to keep: the refused file leaves it empty.
    page.get_by_label("Remove Image").click()
    wait_for_note(page, "No image yet.")
    page.locator("#fo1-editor input[type=file]").set_input_files(str(too_small))
    page.locator("#fo1-editor", has_text="Drop Image Here").wait_for()
    page.wait_for_timeout(SETTLE_MS)
    assert page.get_by_test_id("toast-text").filter(has_text="Nothing to undo").count() == 0
    assert page.locator("#fo1-box-note").inner_text() == "No image yet."


SLOW_EVENTS = """([kind, delay, busy]) => {
    const slow = window.gradio_config.dependencies
        .filter(d => d.targets.some(([, event]) => event === kind))
        .map(d => d.id);
    const until = Date.now() + busy;
    const send = window.fetch;
    window.fetch = async (url, init) => {
        if (Date.now() > until) {
            window.fetch = send;
        } else if (String(url).includes('/queue/join')
                   && slow.includes(JSON.parse(init.body).fn_index)) {
            await new Promise(resolve => setTimeout(resolve, delay));
        }
        return send(url, init);
    };
}"""


def slow_server(page, event: str, busy_ms: int = 1) -> None:
    """For the next `busy_ms`, the app's `event` handlers are sent to the server
    `EVENT_DELAY_MS` late, as a busy server would answer them."""
    page.evaluate(SLOW_EVENTS, [event, EVENT_DELAY_MS, busy_ms])


def upload(page, image: Path, busy_ms: int = EVENT_DELAY_MS) -> None:
    """Uploads `image` and returns as soon as it is shown, before the server has answered the
    upload (sent late for `busy_ms`: the file itself takes a while to reach the server), so
    what is drawn next is drawn before that answer lands."""
    slow_server(page, "upload", busy_ms=busy_ms)
    # The image shown before stays a moment: a drag on it then is lost with it.
    page.evaluate("document.querySelector('#fo1-editor canvas')?.classList.add('fo1-old')")
    page.locator("#fo1-editor input[type=file]").set_input_files(str(image))
    page.locator("#fo1-editor canvas:not(.fo1-old)").wait_for()
    # The canvas exists before the image is drawn on it, and a drag on no image draws nothing.
    page.wait_for_function(
        """() => {
            const canvas = document.querySelector('#fo1-editor canvas');
            const [x, y] = [canvas.width / 2, canvas.height / 2];
            return canvas.getContext('2d').getImageData(x, y, 1, 1).data[3] > 0;
        }"""
    )


def sent_boxes(request) -> list[dict]:
    """The editor boxes a request to the server carries (none for other requests)."""
    if "/queue/join" not in request.url:
        return []
    values = [value for value in request.post_data_json["data"] if isinstance(value, dict)]
    return [box for value in values for box in value.get("boxes") or []]


def test_exif_rotated_upload_is_drawn_on_as_shown(page, tmp_path: Path) -> None:
    # Stored 400×600 with "rotate 90° clockwise" in EXIF: people see (and draw on) it as 600×400,
    # the red band along its stored top on the right.
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    image = Image.new("RGB", (400, 600), "white")
    image.paste("red", (0, 0, 400, 100))
    image.save(rotated, exif=exif)
    upload(page, rotated)
    expected = [300, 200, 570, 380]
    start, end = canvas_point(page, 0.5, 0.5), canvas_point(page, 0.95, 0.95)
    drawn = box_sent_for(page, start, end, expected)
    shot(page, "0-exif-rotated")
    assert drawn == pytest.approx(expected, abs=BOX_TOLERANCE)


def test_a_tiff_is_shown_and_boxed_in_its_own_pixels(page, tmp_path: Path) -> None:
    """Chromium draws no TIFF: the editor stayed empty, with nothing to draw a box on."""
    tiff = tmp_path / "coffee.tiff"
    Image.open(IMAGE).save(tiff)
    upload(page, tiff)  # until the image is drawn on the canvas
    # The PNG copy takes the upload's place in the editor, which then settles (as a small
    # image's enlarged copy does): a box drawn as it lands is lost.
    settled_frame(page)
    expected = [300, 200, 570, 380]
    drawn = box_sent_for(
        page, canvas_point(page, 0.5, 0.5), canvas_point(page, 0.95, 0.95), expected
    )
    assert drawn == pytest.approx(expected, abs=BOX_TOLERANCE)
    page.get_by_text("Boxes as numbers", exact=True).click()
    try:
        page.locator("#fo1-box-numbers textarea").wait_for()
        page.wait_for_function(f"() => {NUMBERS_SHOWN}")
        numbers = [float(n) for n in page.evaluate(NUMBERS_SHOWN).split(", ")]
        assert numbers == pytest.approx(drawn, abs=1)  # as the server reads them on the TIFF
        shot(page, "0-tiff")
    finally:
        page.get_by_text("Boxes as numbers", exact=True).click()  # closed again, as it was
        page.evaluate("scrollTo(0, 0)")  # where opening the numbers scrolled from


def test_a_tall_image_fits_the_window_and_is_boxed_where_drawn(page, tmp_path: Path) -> None:
    tall = tmp_path / "tall.jpg"
    Image.open(REPO / "examples" / "rocket.jpg").resize((400, 1400)).save(tall)
    upload(page, tall)
    window = page.viewport_size["height"]
    page.wait_for_function(f"document.querySelector('#fo1-editor canvas').height <= {window}")
    frame = settled_frame(page)
    assert 0.6 * window <= frame["height"] <= SCREEN_SHARE * window + 1
    assert frame["width"] / frame["height"] == pytest.approx(400 / 1400, abs=0.01)
    expected = [100, 350, 300, 700]
    drawn = box_sent_for(
        page,
        (frame["x"] + 0.25 * frame["width"], frame["y"] + 0.25 * frame["height"]),
        (frame["x"] + 0.75 * frame["width"], frame["y"] + 0.5 * frame["height"]),
        expected,
    )
    shot(page, "0-tall-image")
    assert drawn == pytest.approx(expected, abs=BOX_TOLERANCE)


def test_a_fitted_image_settles_at_one_size(page, app_url: str, tmp_path: Path) -> None:
    # A 3:4 photo in a window this high once made the fitting flip between two widths forever.
    portrait = tmp_path / "portrait.jpg"
    Image.open(REPO / "examples" / "rocket.jpg").resize((768, 1024)).save(portrait)
    short = page.context.browser.new_page(viewport={"width": 1400, "height": 507})
    short.goto(app_url)
    short.locator("#fo1-editor input[type=file]").set_input_files(str(portrait))
    short.locator("#fo1-editor canvas").wait_for()
    short.wait_for_timeout(1500)
    width = "document.querySelector('#fo1-editor canvas').width"
    widths = set()
    for _ in range(10):
        widths.add(short.evaluate(width))
        short.wait_for_timeout(50)
    short.close()
    assert len(widths) == 1, widths


SHOWN_PIXEL = """([x, y, width, height]) => {
    const canvas = document.querySelector('#fo1-editor canvas');
    const [cx, cy] = [(x + 0.5) * canvas.width / width, (y + 0.5) * canvas.height / height];
    return Array.from(canvas.getContext('2d').getImageData(cx, cy, 1, 1).data.slice(0, 3));
}"""


@pytest.mark.parametrize(
    ("size", "first", "second"),
    [
        ((40, 30), [10, 5, 30, 20], [20, 22, 38, 28]),  # to the editor's width
        ((30, 120), [7, 20, 22, 80], [15, 85, 28, 95]),  # tall: to the window's height
    ],
)
def test_a_small_image_is_shown_enlarged_and_boxed_in_its_own_pixels(
    page, tmp_path: Path, size: tuple[int, int], first: list[int], second: list[int]
) -> None:
    """The editor showed an image narrower than itself at its own size: a 40×30 icon as a stamp
    on which no box could be drawn."""
    width, height = size
    small = tmp_path / f"small-{width}x{height}.png"
    pixels = np.random.default_rng(0).integers(130, 255, (height, width, 3), np.uint8)  # light
    Image.fromarray(pixels).save(small)
    page.locator("#fo1-editor input[type=file]").set_input_files(str(small))
    page.wait_for_function(
        """([width, height]) => {
            const canvas = document.querySelector('#fo1-editor canvas');
            return canvas?.height > 4 * height
                && Math.abs(canvas.width / canvas.height - width / height) < 0.02;
        }""",
        arg=[width, height],
    )
    page.wait_for_timeout(500)  # settled (`FIT_TO_SCREEN`), and drawn
    page.get_by_text("Boxes as numbers", exact=True).click()
    page.evaluate("scrollTo(0, 0)")  # the click brought the numbers into view
    frame = page.locator("#fo1-editor canvas").bounding_box()
    editor = page.locator("#fo1-editor .annotator-container").bounding_box()
    window = page.viewport_size["height"]
    # As large as a large image would be shown: the editor's width, or the share of the window.
    reached = max(frame["width"] / editor["width"], frame["height"] / (SCREEN_SHARE * window))
    assert reached == pytest.approx(1, abs=0.01)
    # Each pixel a block of one colour: the middle of a block is the pixel's colour exactly.
    for x, y in ((0, 0), (width // 2, height // 3), (width - 1, height - 1)):
        shown = page.evaluate(SHOWN_PIXEL, [x, y, width, height])
        assert shown == pytest.approx(pixels[y, x].tolist(), abs=6)

    def point(x: float, y: float) -> tuple[float, float]:
        # Measured again: the editor takes the focus after a box, which can scroll the page.
        frame = page.locator("#fo1-editor canvas").bounding_box()
        return frame["x"] + x * frame["width"] / width, frame["y"] + y * frame["height"] / height

    sent: list[list[dict]] = []

    def record(request) -> None:
        sent.append(sent_boxes(request))

    def both_named() -> list[dict]:
        labels = ["#0", "#1"]
        named = (boxes for boxes in reversed(sent) if sorted(b["label"] for b in boxes) == labels)
        return next(named, [])

    page.on("request", record)
    try:
        drag(page, point(*first[:2]), point(*first[2:]))
        wait_for_note(page, "1 box")
        # The server reads the box in the image's own pixels, not the enlarged copy's.
        wait_for_first_box(page, ", ".join(map(str, first)))
        drag(page, point(*second[:2]), point(*second[2:]))
        wait_for_note(page, "2 boxes")
        expected = "\n".join(", ".join(map(str, box)) for box in (first, second))
        wait_for_numbers(page, expected)
        deadline = time.monotonic() + 10
        while not both_named() and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        shot(page, f"0-small-image-{width}x{height}")
    finally:
        page.remove_listener("request", record)
        page.get_by_text("Boxes as numbers", exact=True).click()  # closed again, as it was
    # The editor lists the box just drawn first, yet names it #1, as the numbers (and the
    # model) count it: in the order drawn.
    factor = enlargement(width, height)
    last = both_named()
    assert [entry["label"] for entry in last] == ["#1", "#0"]
    for entry, drawn in zip(last, (second, first), strict=True):
        corners = [entry[key] / entry["scaleFactor"] / factor for key in CORNERS]
        assert corners == pytest.approx(drawn, abs=0.5)


def test_a_box_drawn_before_a_small_images_enlarged_copy_lands_stays(page, tmp_path: Path) -> None:
    """The enlarged copy came as a server reply writing the editor: a box drawn on the image as
    uploaded, while the reply was on its way, was gone when it landed."""
    width, height = 400, 300
    small = tmp_path / f"small-{width}x{height}.png"
    Image.open(IMAGE).resize((width, height)).save(small)
    page.wait_for_timeout(SETTLE_MS)  # the replies to the image before land first
    upload(page, small, busy_ms=10_000)  # and draw at once, before the enlarged copy lands
    factor = enlargement(width, height)
    # Shown as uploaded, at its own size, once the old image's room is given up: the page
    # settles in a few frames.
    page.wait_for_function(
        """h => {
            const frame = document.querySelector('#fo1-editor canvas').getBoundingClientRect();
            const same = frame.height === h && frame.top === window.fo1CanvasTop;
            window.fo1CanvasTop = frame.top;
            return same;
        }""",
        arg=height,
        polling=100,
    )
    expected = [100, 75, 300, 225]
    start = canvas_point(page, 0.25, 0.25, (width, height))
    end = canvas_point(page, 0.75, 0.75, (width, height))
    drawn = box_sent_for(page, start, end, [corner * factor for corner in expected])
    shot(page, "0-box-kept-on-the-enlarged-copy")
    assert page.locator("#fo1-editor canvas").bounding_box()["width"] > 1.5 * width
    assert drawn == pytest.approx([corner * factor for corner in expected], abs=BOX_TOLERANCE)
    assert box_count(page).startswith("1 box")


def test_boxes_are_drawn_moved_and_deleted(page) -> None:
    upload(page, IMAGE)  # and draw at once: the upload's reply must not take the box away
    drag(page, canvas_point(page, 0.3, 0.05), canvas_point(page, 0.7, 0.5))  # the cup → #0
    wait_for_note(page, "1 box")
    page.wait_for_timeout(SETTLE_MS)
    assert box_count(page).strip() == "1 box"
    drag(page, canvas_point(page, 0.05, 0.6), canvas_point(page, 0.2, 0.9))  # background → #1
    wait_for_note(page, "2 boxes")
    drag(page, canvas_point(page, 0.55, 0.5), canvas_point(page, 0.72, 0.8))  # spoon → #2
    wait_for_note(page, "3 boxes")
    drag(page, canvas_point(page, 0.8, 0.1), canvas_point(page, 0.95, 0.3))  # wood → #3
    try:
        wait_for_note(page, "4 boxes")
    finally:
        shot(page, "1-drawn")
    shot(page, "1-drawn")

    # Move box #2 (the spoon box) to the right by dragging its middle in drag mode.
    page.get_by_label("Drag boxes").click()
    drag(page, canvas_point(page, 0.635, 0.65), canvas_point(page, 0.735, 0.65))
    page.wait_for_timeout(800)
    # Delete box #1: select it, then the remove button; the boxes after it are renumbered.
    page.mouse.click(*canvas_point(page, 0.12, 0.75))
    page.get_by_label("Remove box").click()
    wait_for_note(page, "3 boxes")
    shot(page, "2-moved-deleted")


def test_boxes_drawn_in_quick_succession_all_stay(page) -> None:
    # Each box is numbered the moment it is finished; a reply about the one before must not
    # take the next one away, however long the server takes.
    sent = []

    def record(request) -> None:
        sent.append(sent_boxes(request))

    page.on("request", record)
    page.get_by_label("Create box", exact=True).click()
    slow_server(page, "change", busy_ms=4 * EVENT_DELAY_MS)
    drag(page, canvas_point(page, 0.02, 0.02), canvas_point(page, 0.12, 0.15))  # → #3
    drag(page, canvas_point(page, 0.15, 0.02), canvas_point(page, 0.25, 0.15))  # → #4
    drag(page, canvas_point(page, 0.02, 0.25), canvas_point(page, 0.12, 0.4))  # → #5
    page.wait_for_timeout(SETTLE_MS + 4 * EVENT_DELAY_MS)
    shot(page, "2-quick-succession")
    page.remove_listener("request", record)
    assert "6 boxes" in box_count(page)
    last = {box["label"]: box for box in [boxes for boxes in sent if boxes][-1]}
    assert sorted(last) == [f"#{i}" for i in range(6)]
    # Numbered where they were drawn: (0.02, 0.25)-(0.12, 0.4) of the 600×400 image.
    scale = last["#5"].get("scaleFactor", 1)
    corners = [last["#5"][key] / scale for key in ("xmin", "ymin", "xmax", "ymax")]
    assert corners == pytest.approx([12, 100, 72, 160], abs=8)


@pytest.mark.parametrize(("labels", "order"), DRAWING_ORDERS)
def test_the_page_numbers_boxes_as_the_server_reads_them(
    page, labels: list[str], order: list[int]
) -> None:
    value = {"boxes": [box(label, i) for i, label in enumerate(labels)]}
    named = sorted(relabel(page, value)[0]["boxes"], key=lambda entry: int(entry["label"][1:]))
    assert (
        [entry["xmin"] for entry in named]
        == order
        == [entry["xmin"] for entry in in_drawing_order(value["boxes"])]
    )
    assert [entry["label"] for entry in named] == [region_label(i) for i in range(len(order))]
    assert [entry["color"] for entry in named] == [
        "rgb({}, {}, {})".format(*region_rgb(i)) for i in range(len(order))
    ]
    # Named in place: the editor is left alone, as it is while a box has no area yet.
    assert relabel(page, {"boxes": named}) == [None, None, None]
    being_drawn = {"boxes": [*value["boxes"], {**box("", 9), "xmax": 9}]}
    assert relabel(page, being_drawn) == [None, None, None]


def test_boxes_past_the_models_regions_are_grey(page) -> None:
    """The model does not read them: they do not look like the boxes it reads."""
    named = relabel(page, {"boxes": [box("", i) for i in range(MAX_REGIONS + 2)]})[0]["boxes"]
    colors = {entry["label"]: entry["color"] for entry in named}
    grey = "rgb({}, {}, {})".format(*UNREAD_RGB)
    assert colors[region_label(MAX_REGIONS - 1)] == "rgb({}, {}, {})".format(
        *region_rgb(MAX_REGIONS - 1)
    )
    assert colors[region_label(MAX_REGIONS)] == colors[region_label(MAX_REGIONS + 1)] == grey
    assert region_rgb(MAX_REGIONS) == UNREAD_RGB  # as the server names them
    assert relabel(page, {"boxes": named}) == [None, None, None]


def relabel(
    page,
    value: dict,
    picked: list[int] | None = None,
    prompt: str = "",
    numbered: int = 0,
    seen: str | None = None,
) -> list:
    """The page's relabelling: [the editor's new value, the picker's new value, the free
    prompt's] (None: as is), `numbered` boxes having been numbered before and the prompt `seen`
    at the relabelling before (`prompt` itself where None, as when the boxes change in the
    editor); what the page itself counted and saw stays for the tests after."""
    call = f"""([value, picked, prompt, numbered, seen]) => {{
        const kept = [window.fo1BoxesNumbered, window.fo1PromptSeen];
        [window.fo1BoxesNumbered, window.fo1PromptSeen] = [numbered, seen];
        try {{
            return ({RELABEL_IN_BROWSER})(value, picked, prompt);
        }} finally {{
            [window.fo1BoxesNumbered, window.fo1PromptSeen] = kept;
        }}
    }}"""
    return page.evaluate(call, [value, picked, prompt, numbered, prompt if seen is None else seen])


@pytest.mark.parametrize(
    ("labels", "picked", "moved"),
    [
        (["#1", "#2", "#3"], [1, 3], [0, 2]),  # #0 deleted: the picks follow their boxes
        (["#1", "#2", "#3"], [0, 2], [1]),  # a picked box deleted: its pick goes with it
        (["", "#0", "#1"], [1], None),  # a new box comes last: nothing moves
        ([], [0, 1], []),  # all cleared
    ],
)
def test_picked_regions_follow_their_boxes(page, labels, picked, moved) -> None:
    value = {"boxes": [box(label, 10 * i) for i, label in enumerate(labels)]}
    assert relabel(page, value, picked)[1] == moved


@pytest.mark.parametrize(
    ("labels", "numbered", "prompt", "moved"),
    [
        # #0 deleted: the references follow their boxes, and the one to #0 is marked gone.
        (
            ["#1", "#2", "#3"],
            4,
            "<region3> by <region1>, not <region0>",
            "<region2> by <region0>, not <region?0>",
        ),
        # The last box deleted leaves no label behind: the count before tells of it.
        (["#0", "#1"], 3, "<region2> on <region1>", "<region?2> on <region1>"),
        # A new box comes last; a reference to no box stays, for Run to name.
        (["", "#0", "#1"], 2, "<region1> or <region7>?", None),
        ([], 2, "<region0><region1>", "<region?0><region?1>"),  # all cleared
        # A box marked gone before: its number goes with another box #1 deleted, not with #2.
        (
            ["#0", "#2"],
            3,
            "<region?1> <region?2> <region01> <region2>",
            "<region?> <region?2> <region01> <region1>",
        ),
    ],
)
def test_the_free_prompts_references_follow_their_boxes(
    page, labels, numbered, prompt, moved
) -> None:
    value = {"boxes": [box(label, 10 * i) for i, label in enumerate(labels)]}
    assert relabel(page, value, [], prompt, numbered)[2] == moved


def test_a_reference_the_server_marked_gone_keeps_its_number(page) -> None:
    """Boxes set by the server (typed, or a Propose in place of them) come with the prompt it
    marked: the last box, #2, gone. Its mark lost its number as if a box #2 had gone again, and
    Undo could not bring the reference back."""
    value = {"boxes": [box("#0", 0), box("#1", 10)]}
    marked, before = "Is <region?2> on <region1>?", "Is <region2> on <region1>?"
    assert relabel(page, value, [], marked, numbered=3, seen=before)[2] is None


TAKE = f"""([copy, made, shown, stroke]) => {{
    document.body.classList.toggle("fo1-stroke", stroke);
    try {{
        return ({TAKE_THE_ENLARGED_COPY})(copy, made, shown);
    }} finally {{
        document.body.classList.remove("fo1-stroke");
    }}
}}"""


def test_the_enlarged_copy_comes_with_the_boxes_drawn_on_the_upload(page) -> None:
    """The page's step taking a small upload's enlarged copy, checked on its own: the copy waits
    out a stroke (taking it cuts the stroke short) and is never put over another image."""
    drawn = box("#0", 10) | {"scaleFactor": 0.5}  # the editor's canvas shows it at half size
    uploaded = {"image": {"path": "/tmp/icon.png"}, "boxes": [drawn], "orientation": 0}
    copy = {"image": {"path": "/tmp/icon-x4.png"}, "boxes": [], "orientation": 0}
    made = {"source": "/tmp/icon.png", "factor": 4}
    taken = page.evaluate(TAKE, [copy, made, uploaded, False])
    assert taken["image"] == copy["image"]
    assert [taken["boxes"][0][corner] for corner in CORNERS] == [80, 0, 120, 40]
    assert taken["boxes"][0]["label"] == "#0"
    # Left for the page's relabelling when the stroke ends.
    assert page.evaluate(TAKE, [copy, made, uploaded, True]) is None
    assert relabel(page, uploaded)[0]["image"] == copy["image"]
    # Another image shown since, or this one turned: not taken, then or later.
    for shown in (
        {**uploaded, "image": {"path": "/tmp/other.png"}},
        {**uploaded, "orientation": 1},
    ):
        assert page.evaluate(TAKE, [copy, made, shown, False]) is None
        assert (relabel(page, uploaded)[0] or uploaded)["image"] == uploaded["image"]


def test_the_page_lists_the_smallest_box_first_and_leaves_a_resized_one_in_place(page) -> None:
    """The editor selects the first box of its list under a click; a list rewritten after a
    resize would leave its selection on another box."""
    new, big, small = box("", 20), box("#0", 0), box("#1", 10)
    big["xmax"] = big["ymax"] = 100
    named = relabel(page, {"boxes": [new, big, small]})[0]["boxes"]
    # The one just drawn stays first, where the editor keeps it selected.
    assert [entry["label"] for entry in named] == ["#2", "#1", "#0"]
    grown = [{**named[0], "xmax": 300, "ymax": 300}, *named[1:]]  # now the largest
    assert relabel(page, {"boxes": grown}) == [None, None, None]


def test_region_task_streams_an_answer_and_draws_it(page) -> None:
    choose_task(page, "Brief region caption")
    page.locator("#fo1-regions").get_by_text("#0", exact=True).click()
    page.locator("#fo1-run").click()
    page.locator("#fo1-status", has_text="Stopped at the token limit").wait_for()
    answer = page.locator("#fo1-answer")
    assert "red circle" in answer.inner_text()
    chips = answer.locator(".fo1-answer .fo1-chip")
    assert [chips.nth(i).inner_text() for i in range(chips.count())][:2] == ["#0", "#2"]
    # Above it, what it answers: the task and the question, with the picked region.
    asked = answer.locator(".fo1-asked").inner_text()
    assert asked.startswith("Brief region caption: ") and "#0" in asked, asked
    assert page.locator("#fo1-result img").count() == 1
    assert "256 tokens" in status_text(page)
    page.locator("#fo1-answer").scroll_into_view_if_needed()
    shot(page, "3-region-task")


def set_boxes_as_numbers(page, boxes: list[list[float]]) -> None:
    """Types `boxes` into "Boxes as numbers", opened, and sets them."""
    page.get_by_text("Boxes as numbers", exact=True).click()
    lines = "\n".join(", ".join(f"{v:g}" for v in box) for box in boxes)
    page.locator("#fo1-box-numbers textarea").fill(lines)
    page.locator("#fo1-set-boxes").click()


def set_number(page, elem_id: str, value: int) -> None:
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Tab")


def run_detection(page, categories: str, max_tokens: int) -> None:
    choose_task(page, "Detection")
    page.get_by_label("Categories").fill(categories)
    set_number(page, "fo1-max-tokens", max_tokens)
    page.locator("#fo1-run").click()


def test_detection_streams_and_stop_really_stops(page) -> None:
    # What a screen reader hears: each change of the status's live copy.
    page.evaluate(
        """() => {
            window.fo1Heard = [];
            const said = document.querySelector("#fo1-said");
            new MutationObserver(() => fo1Heard.push(said.textContent)).observe(
                said, {subtree: true, childList: true, characterData: true});
        }"""
    )
    run_detection(page, "red circle", max_tokens=8192)
    # Text streams in while the status still says it is answering.
    page.locator("#fo1-status", has_text="Answering").wait_for()
    page.locator("#fo1-answer", has_text="many regions").wait_for()
    assert "Answering" in status_text(page)
    # While it answers, Run is dimmed and Stop is not; the answer is in the window.
    assert page.evaluate("document.body.classList.contains('fo1-busy')")
    assert page.locator("#fo1-answer").bounding_box()["y"] < page.viewport_size["height"]
    shot(page, "4-streaming")
    # Enough text to overflow the panel, so that where it is scrolled to shows below.
    page.wait_for_function(
        "(p => p && p.scrollHeight > p.clientHeight + 40)"
        "(document.querySelector('#fo1-answer .fo1-answer'))"
    )
    # Scrolled back up to read, the panel stays there as the answer grows; scrolled down to
    # the end, it follows the end again.
    panel = "document.querySelector('#fo1-answer .fo1-answer')"
    page.evaluate(f"{panel}.scrollTop = 10")
    grown = page.evaluate(f"{panel}.textContent.length")
    page.wait_for_function(f"{panel}.textContent.length > {grown} + 40")
    page.wait_for_timeout(200)
    assert page.evaluate(f"{panel}.scrollTop") == 10
    # A redraw can replace the panel before the page hears the scroll: scroll until it does.
    page.wait_for_function(
        f"(() => {{ {panel}.scrollTop = {panel}.scrollHeight; "
        "return window.fo1ReadingAt === null; })()"
    )
    page.locator("#fo1-stop").click()
    page.locator("#fo1-status", has_text="Stopped by you").wait_for()
    page.wait_for_function("!document.body.classList.contains('fo1-busy')")
    # The result image's own download button saves it by the image's name.
    name = page.locator("#fo1-result a[download]").first.get_attribute("download")
    assert re.fullmatch(r".+-fo1-answer\.png", name), name
    # The panel shows the newest text, not the first lines, once the last redraw has landed
    # (polled by the clock, not by animation frames, which a busy page may hold back).
    where = f"(p => [p.scrollTop, p.clientHeight, p.scrollHeight, window.fo1ReadingAt])({panel})"
    with contextlib.suppress(playwright.TimeoutError):
        page.wait_for_function(
            f"(([top, height, end]) => top > 0 && top + height >= end - 2)({where})",
            polling=100,
            timeout=10_000,
        )
    top, height, end, reading_at = page.evaluate(where)
    assert top > 0 and top + height >= end - 2, (top, height, end, reading_at)
    tokens = int(re.search(r"(\d+) tokens", status_text(page)).group(1))
    assert tokens < 8192
    assert page.locator("#fo1-result img").count() == 1
    shot(page, "5-stopped")
    # Read out once as it starts and once as it stops, not at each token nor Gradio's timer.
    heard = page.evaluate("fo1Heard")
    assert len(heard) <= 4 and "Stopped by you" in heard[-1], heard
    # Then the answer's words, the first of them, not only that it ended.
    assert re.search(r"Answer: .*many regions.*…$", heard[-1]), heard[-1]
    assert not any(re.search("queue|processing", line) for line in heard), heard


def test_run_clicked_as_a_stopped_answer_ends_asks_again(page) -> None:
    """Gradio drops a click on Run while its last run is still ending: the page keeps it."""
    run_detection(page, "red circle", max_tokens=8192)
    page.locator("#fo1-answer", has_text="many regions").wait_for()
    page.evaluate(WATCH_THE_STATUS)
    page.locator("#fo1-stop").click()
    page.locator("#fo1-run").click()  # before the stopped answer has ended
    wait_for_statuses(page, "Stopped by you", "Answering")  # asked again
    page.locator("#fo1-stop").click()
    page.locator("#fo1-status", has_text="Stopped by you").wait_for()
    page.wait_for_function("!document.body.classList.contains('fo1-busy')")
    page.wait_for_timeout(1000)
    assert "Stopped by you" in status_text(page)  # and asked once only
    # Stop, Run, Stop: the second Stop takes back the Run.
    run_detection(page, "red circle", max_tokens=8192)
    page.locator("#fo1-answer", has_text="many regions").wait_for()
    page.locator("#fo1-stop").click()
    page.locator("#fo1-run").click()
    page.locator("#fo1-stop").click()
    page.locator("#fo1-status", has_text="Stopped by you").wait_for()
    page.wait_for_timeout(1500)
    assert "Stopped by you" in status_text(page)


NOTE_ABOVE_THE_STATUS = "document.querySelector('#fo1-page-note[role=status]').textContent"
"""The note over the status (`ui.page_scripts.STATUS_NOTES`): text in a live region, which screen
readers announce."""


def wait_for_page_note(page, text: str) -> None:
    """Until the note over the status holds `text` ("": until it is empty)."""
    said = f"({NOTE_ABOVE_THE_STATUS})"
    page.wait_for_function(f"{said}.includes({json.dumps(text)})" if text else f"{said} === ''")


def test_a_question_asked_while_an_answer_streams_is_kept_and_said_so(page) -> None:
    run_detection(page, "red circle", max_tokens=8192)
    page.locator("#fo1-status", has_text="Answering").wait_for()
    # Later than a second click of the same ask would come (those are not kept).
    page.wait_for_function("Date.now() - window.fo1AskedAt > 600")
    page.get_by_label("Categories").fill("saucer")
    page.get_by_label("Categories").press("Enter")
    wait_for_page_note(page, "asked once this answer ends")
    page.locator("#fo1-page-note").click()  # forgotten
    wait_for_page_note(page, "")
    page.get_by_label("Categories").press("Enter")
    wait_for_page_note(page, "asked once this answer ends")
    page.keyboard.type("s")  # edited after it was asked: forgotten until asked again
    wait_for_page_note(page, "")
    page.get_by_label("Categories").fill("saucer")
    page.get_by_label("Categories").press("Enter")
    wait_for_page_note(page, "asked once this answer ends")
    shot(page, "4b-question-kept-while-streaming")
    page.evaluate(WATCH_THE_STATUS)
    page.locator("#fo1-stop").click()  # ends the answer: the kept question is asked then
    wait_for_statuses(page, "Stopped by you", "Answering")
    page.locator(".fo1-asked", has_text="saucer").wait_for()
    wait_for_page_note(page, "")
    page.locator("#fo1-stop").click()
    page.locator("#fo1-status", has_text="Stopped by you").wait_for()
    page.wait_for_function("!document.body.classList.contains('fo1-busy')")
    # A double click asks once: its second click is no question kept for later.
    page.locator("#fo1-run").dblclick()
    page.locator("#fo1-status", has_text="Answering").wait_for()
    wait_for_page_note(page, "")
    # A question kept, then another image: it is not asked, about either image.
    page.wait_for_function("Date.now() - window.fo1AskedAt > 600")
    page.get_by_label("Categories").press("Enter")
    open_example(page, "Chelsea: reason about regions")
    page.wait_for_timeout(SETTLE_MS)
    assert "Answering" not in status_text(page) and page.locator(".fo1-asked").count() == 0
    open_example(page, "Coffee: detect cup and spoon")


WATCH_THE_EDITORS_PROGRESS = """() => {
    const tracker = document.querySelector("#fo1-editor [data-testid=status-tracker]");
    window.fo1EditorCovered = false;
    new MutationObserver(() => {
        if (!tracker.classList.contains("hide")) window.fo1EditorCovered = true;
    }).observe(tracker, {attributes: true});
}"""


def test_the_editors_download_saves_a_small_upload_as_uploaded(page, tmp_path: Path) -> None:
    """It saved the enlarged copy the editor shows: a PNG many times the size, under the
    upload's own name."""
    width, height = 200, 150
    small = tmp_path / "icon.jpg"
    Image.open(IMAGE).resize((width, height)).save(small)
    page.locator("#fo1-editor input[type=file]").set_input_files(str(small))
    page.wait_for_function(
        "h => document.querySelector('#fo1-editor canvas')?.height > 2 * h", arg=height
    )
    with page.expect_download() as downloading:
        page.locator("#fo1-editor").get_by_label("Download").click()
    saved = tmp_path / "saved"
    downloading.value.save_as(saved)
    assert downloading.value.suggested_filename == small.name
    assert saved.read_bytes() == small.read_bytes()


def test_example_proposals_and_free_prompt(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    assert page.get_by_label("Categories").input_value() == "cup, spoon"

    page.get_by_text("Propose boxes", exact=True).first.click()
    page.get_by_label("Add to my boxes").check()
    set_number(page, "fo1-max-count", 4)
    page.evaluate(WATCH_THE_EDITORS_PROGRESS)
    page.locator("#fo1-propose").click()
    wait_for_note(page, "7 boxes")
    assert "4 proposals" in status_text(page)
    # Its progress showed on the status, never over the image, where boxes can be drawn meanwhile.
    assert page.evaluate("window.fo1EditorCovered") is False
    shot(page, "6-proposals")

    # Offered: the proposers with a folder, or needing none; not those the offline hub lacks.
    page.get_by_label("Proposer").click()
    offered = page.get_by_role("option").all_inner_texts()
    assert [name.strip("✓\n ") for name in offered] == [
        "Florence-2 region proposals",
        "Florence-2 object detection",
        "OWLv2 (open vocabulary)",
        "OWLv2 objectness (class-agnostic)",
        "OWLv2: more like my boxes",
        "Offline (coarse, no model)",
    ]
    # A model proposer whose folder is missing: a visible message, and the boxes stay.
    page.get_by_role("option", name="Florence-2 region proposals").click()
    page.locator("#fo1-propose").click()
    page.locator("#fo1-status .fo1-error", has_text="does not exist").wait_for()
    assert "7 boxes" in box_count(page)
    page.wait_for_function("!document.body.classList.contains('fo1-proposing')")

    # A proposer told what to find, told nothing: it looks for the task's categories.
    page.get_by_label("Proposer").click()
    page.get_by_role("option", name="OWLv2 (open vocabulary)").click()
    what = page.get_by_label("What to find (left blank: what the task names)")
    what.wait_for()
    assert what.input_value() == ""
    page.locator("#fo1-propose").click()
    page.locator("#fo1-status", has_text="for “cup, spoon” (from the task)").wait_for()
    page.wait_for_function("!document.body.classList.contains('fo1-proposing')")
    shot(page, "6b-proposals-for-the-task")
    if "7 boxes" not in box_count(page):  # the random model's boxes may all be there already
        page.locator("#fo1-undo").click()
        wait_for_note(page, "7 boxes")
    # One that finds more like the boxes drawn: they are its examples, and no text is asked.
    page.get_by_label("Proposer").click()
    page.get_by_role("option", name="OWLv2: more like my boxes").click()
    what.wait_for(state="hidden")
    page.locator("#fo1-propose").click()
    page.locator("#fo1-status", has_text="like your 7 boxes").wait_for()
    page.wait_for_function("!document.body.classList.contains('fo1-proposing')")
    if "7 boxes" not in box_count(page):
        page.locator("#fo1-undo").click()
        wait_for_note(page, "7 boxes")
    page.get_by_label("Proposer").click()
    page.get_by_role("option", name="Offline (coarse, no model)").click()

    choose_task(page, "Free prompt")
    prompt = page.locator("#fo1-free textarea")
    prompt.fill("What is 🐱 red?")
    prompt.evaluate("box => box.setSelectionRange(11, 11)")  # after the cat: UTF-16 units
    page.get_by_label("Insert a region reference").click()
    page.get_by_role("option", name="#5", exact=True).click()
    page.wait_for_function(
        "document.querySelector('#fo1-free textarea').value.includes('<region5>')"
    )
    assert prompt.input_value() == "What is 🐱 <region5> red?"
    # The caret is back in the prompt just after the reference, so typing goes on there.
    page.wait_for_function("document.activeElement.closest('#fo1-free') !== null")
    page.keyboard.type("the ")
    assert prompt.input_value() == "What is 🐱 <region5> the red?"
    set_number(page, "fo1-max-tokens", 256)
    page.locator("#fo1-run").click()
    page.locator("#fo1-status", has_text="Stopped at the token limit").wait_for()
    assert page.locator("#fo1-answer .fo1-chip").count() >= 2
    shot(page, "7-free-prompt")


def test_follow_up_mode_keeps_the_conversation(page) -> None:
    # The free-prompt answer above is the conversation's first turn once follow-up is ticked.
    page.locator("#fo1-follow-up input").check()
    history = page.locator("#fo1-history li")
    latest_note = page.locator("#fo1-history .fo1-latest-note")
    latest_note.wait_for(state="attached")
    # That turn is the answer on screen: listed again only once the next question replaces it,
    # and with no other turn, the conversation's title over nothing is not shown either.
    assert history.count() == 1 and not history.first.is_visible()
    assert not page.locator("#fo1-history .fo1-history").is_visible()
    page.locator("#fo1-free textarea").fill("And <region0>?")
    page.locator("#fo1-run").click()
    history.first.wait_for(state="visible")
    assert not latest_note.is_visible()
    page.wait_for_function("document.querySelectorAll('#fo1-history li').length == 2")
    page.locator("#fo1-status", has_text="Stopped at the token limit").wait_for()
    assert "And" in history.nth(1).text_content() and not history.nth(1).is_visible()
    assert history.first.is_visible() and latest_note.is_visible()
    asked = page.locator("#fo1-answer .fo1-asked").inner_text()
    assert asked.startswith("Free prompt: And #0"), asked
    page.wait_for_timeout(300)
    # The newest turn is in view, however long the earlier ones.
    at_end = "(p => p.scrollTop + p.clientHeight >= p.scrollHeight - 2)"
    assert page.evaluate(f"{at_end}(document.querySelector('#fo1-history .fo1-history'))")
    page.locator("#fo1-history").scroll_into_view_if_needed()
    shot(page, "8-follow-up")
    # Another box: the next question will not continue this conversation, and it says so.
    page.locator("#fo1-editor canvas").hover()
    page.keyboard.press("c")
    drag(page, canvas_point(page, 0.05, 0.05), canvas_point(page, 0.2, 0.2))
    page.locator("#fo1-history", has_text="Earlier conversation, about other boxes").wait_for()
    assert history.count() == 2
    page.locator("#fo1-history").scroll_into_view_if_needed()
    shot(page, "8-follow-up-about-other-boxes")
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("document.querySelectorAll('#fo1-history li').length == 0")


def test_a_box_drawn_right_after_clearing_stays(page) -> None:
    slow_server(page, "click", busy_ms=EVENT_DELAY_MS)
    page.get_by_text("Clear boxes").click()
    drag(page, canvas_point(page, 0.3, 0.3), canvas_point(page, 0.5, 0.5))
    page.wait_for_timeout(SETTLE_MS + EVENT_DELAY_MS)
    shot(page, "9-cleared-then-drawn")
    assert "1 box" in box_count(page)


def test_clearing_the_boxes_takes_the_proposals_status_with_them(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    if not page.locator("#fo1-propose").is_visible():  # the page is the module's: maybe open
        page.get_by_text("Propose boxes", exact=True).first.click()
    set_number(page, "fo1-max-count", 4)
    page.locator("#fo1-propose").click()
    proposed = page.locator("#fo1-status", has_text="4 proposals")
    proposed.wait_for()
    page.get_by_text("Clear boxes").click()
    wait_for_note(page, "No boxes yet")
    proposed.wait_for(state="detached")
    shot(page, "9b-cleared-after-proposing")


def test_regions_ticked_for_boxes_since_cleared_do_not_block_a_run(page) -> None:
    open_example(page, "Astronaut: caption two regions", "4 boxes")
    assert page.locator(f"{REGION_OPTIONS} input:checked").count() == 2
    page.get_by_text("Clear boxes").click()
    wait_for_note(page, "No boxes yet")
    # The box tool is picked (an example opens with the hand tool): a drag draws at once.
    drag(page, canvas_point(page, 0.3, 0.1), canvas_point(page, 0.7, 0.6))
    wait_for_note(page, "1 box")
    run_detection(page, "astronaut", max_tokens=16)
    page.locator("#fo1-status", has_text="Stopped at the token limit · 16 tokens").wait_for()
    shot(page, "10-run-after-clearing-picked-regions")


def test_c_and_d_pick_the_tools_without_a_click_on_the_image_first(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")  # opens with the hand tool
    page.locator("#fo1-box-note").click()  # the focus is outside the editor
    selected = "name => document.querySelector(`#fo1-editor button[aria-label='${name}']`)"
    selected += ".classList.contains('selected')"
    page.keyboard.press("c")
    page.wait_for_function(selected, arg="Create box")
    drag(page, canvas_point(page, 0.05, 0.6), canvas_point(page, 0.2, 0.9))
    wait_for_note(page, "4 boxes")
    page.get_by_label("Categories").press_sequentially("cd")  # typed in a field: no tool change
    assert page.evaluate(selected, "Create box")
    page.locator("#fo1-box-note").click()
    page.keyboard.press("d")
    page.wait_for_function(selected, arg="Drag boxes")


def picked_regions(page) -> list[str]:
    script = f"[...document.querySelectorAll('{REGION_OPTIONS}')]"
    script += ".filter(l => l.querySelector('input').checked).map(l => l.innerText.trim())"
    return page.evaluate(script)


def test_picked_regions_stay_on_their_boxes_when_one_before_them_is_deleted(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    choose_task(page, "Brief region caption")
    for region in ("#1", "#2"):
        page.locator("#fo1-regions").get_by_text(region, exact=True).click()
    assert picked_regions(page) == ["#1", "#2"]
    delete_coffee_cup_box(page)
    page.wait_for_timeout(500)
    assert picked_regions(page) == ["#0", "#1"]  # the same two boxes, renumbered
    shot(page, "12-picks-follow-their-boxes")
    # Undo brings the cup back as #0: the picks follow the saucer and the spoon back too.
    page.locator("#fo1-undo").click()
    wait_for_note(page, "3 boxes")
    page.wait_for_function(
        f"[...document.querySelectorAll('{REGION_OPTIONS} input:checked')].length == 2"
        f" && document.querySelectorAll('{REGION_OPTIONS} input').length == 3"
    )
    page.wait_for_timeout(500)
    assert picked_regions(page) == ["#1", "#2"]


def test_undo_ticks_again_a_region_whose_box_was_deleted(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    choose_task(page, "Brief region caption")
    page.locator("#fo1-regions").get_by_text("#0", exact=True).click()
    page.wait_for_timeout(500)  # the pick reaches the server before the box goes
    delete_coffee_cup_box(page)
    page.wait_for_function(f"!document.querySelector('{REGION_OPTIONS} input:checked')")
    page.locator("#fo1-undo").click()
    wait_for_note(page, "3 boxes")
    page.wait_for_function(f"document.querySelectorAll('{REGION_OPTIONS} input:checked').length")
    assert picked_regions(page) == ["#0"]  # the cup, back and picked as it was


def test_a_refusal_goes_once_the_question_is_edited(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    categories = page.get_by_label("Categories")
    categories.fill("")
    page.locator("#fo1-run").click()
    refusal = page.locator("#fo1-status .fo1-refused", has_text="type the categories")
    refusal.wait_for()
    categories.press_sequentially("cu")
    refusal.wait_for(state="hidden")
    assert not page.locator("#fo1-status").is_visible()  # no empty status block either
    # Asked again as it was: the same refusal, in the same words, is shown again.
    categories.fill("")
    page.locator("#fo1-run").click()
    refusal.wait_for(state="visible")
    # Ticked regions answer a region task's refusal in the same way.
    choose_task(page, "Brief region caption")
    page.locator("#fo1-run").click()
    ticks = page.locator("#fo1-status .fo1-refused", has_text="tick at least one")
    ticks.wait_for()
    page.locator(REGION_OPTIONS).first.click()
    ticks.wait_for(state="hidden")


def test_the_free_prompts_references_stay_on_their_boxes(page) -> None:
    """Cup #0, saucer #1, spoon #2: the prompt's references follow their boxes through deletions
    and Undo, and one whose box is gone can no longer name another box."""
    open_example(page, "Coffee: detect cup and spoon")
    choose_task(page, "Free prompt")
    prompt = page.locator("#fo1-free textarea")
    prompt.fill("Is <region2> on <region1>, by <region0>?")
    prompt_is = "text => document.querySelector('#fo1-free textarea')?.value === text"
    delete_coffee_cup_box(page)
    page.wait_for_function(prompt_is, arg="Is <region1> on <region0>, by <region?0>?")
    page.locator("#fo1-run").click()
    page.locator("#fo1-status .fo1-error", has_text="names <region?0>: a box deleted").wait_for()
    page.locator("#fo1-free").scroll_into_view_if_needed()
    shot(page, "13-prompt-names-a-deleted-box")
    page.locator("#fo1-undo").click()  # the cup comes back, and its reference with it
    wait_for_note(page, "3 boxes")
    page.locator("#fo1-status .fo1-error").wait_for(state="detached")  # the refusal went too
    page.wait_for_function(prompt_is, arg="Is <region2> on <region1>, by <region0>?")
    page.wait_for_timeout(500)  # and nothing moves them again
    assert prompt.input_value() == "Is <region2> on <region1>, by <region0>?"
    # The last box deleted (the spoon) leaves no number behind to renumber, yet it is gone.
    page.mouse.click(*canvas_point(page, 375 / 600, 250 / 400))
    page.get_by_label("Remove box").click()
    page.wait_for_function(prompt_is, arg="Is <region?2> on <region1>, by <region0>?")
    page.get_by_text("Clear boxes").click()
    page.wait_for_function(prompt_is, arg="Is <region?2> on <region?1>, by <region?0>?")
    for undone in (
        "Is <region?2> on <region1>, by <region0>?",
        "Is <region2> on <region1>, by <region0>?",
    ):
        page.locator("#fo1-undo").click()
        page.wait_for_function(prompt_is, arg=undone)
    # Boxes set as numbers without the last one (the spoon): the same mark, and the same Undo.
    page.get_by_text("Boxes as numbers", exact=True).click()
    numbers = page.locator("#fo1-box-numbers textarea")
    numbers.fill("\n".join(numbers.input_value().splitlines()[:2]))
    page.locator("#fo1-set-boxes").click()
    wait_for_note(page, "2 boxes")
    page.wait_for_function(prompt_is, arg="Is <region?2> on <region1>, by <region0>?")
    page.wait_for_timeout(500)  # the page's relabelling, after the server's reply
    assert prompt.input_value() == "Is <region?2> on <region1>, by <region0>?"
    assert "2 boxes set from the numbers typed" in status_text(page)
    page.locator("#fo1-undo").click()
    page.wait_for_function(prompt_is, arg="Is <region2> on <region1>, by <region0>?")
    page.locator("#fo1-status", has_text="set from the numbers").wait_for(state="detached")
    page.get_by_text("Boxes as numbers", exact=True).click()


def test_a_click_inside_two_boxes_selects_the_smaller(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    page.get_by_label("Drag boxes").click()
    page.mouse.click(*canvas_point(page, 375 / 600, 250 / 400))  # the spoon, on the saucer
    page.get_by_label("Remove box").click()
    wait_for_note(page, "2 boxes")
    page.get_by_text("Boxes as numbers", exact=True).click()
    numbers = page.locator("#fo1-box-numbers textarea")
    assert numbers.input_value() == "170, 10, 420, 200\n80, 60, 490, 390"  # cup and saucer
    page.get_by_text("Boxes as numbers", exact=True).click()


DRAWINGS_COUNTED = """
    window.fo1Drawn = {squares: 0, tags: 0};
    const {fillRect} = CanvasRenderingContext2D.prototype;
    CanvasRenderingContext2D.prototype.fillRect = function (x, y, width, height) {
        if (Math.abs(width - height) < 0.5 && width > 7.5 && width < 12.5) fo1Drawn.squares += 1;
        if (Math.abs(height - 20) < 0.5) fo1Drawn.tags += 1;
        return fillRect.call(this, x, y, width, height);
    };
"""
"""Counts, in every canvas, the squares drawn as resize handles (8 px for a mouse, 12 px shown
for a finger) and the boxes' tags (`ui.editor.LABEL_HEIGHT`)."""


def handles_per_box(page, step: Callable[[], None]) -> float:
    """The resize handles the editor draws for each box, in the frames `step` brings."""
    page.evaluate("fo1Drawn = {squares: 0, tags: 0}")
    step()
    settled_frame(page)
    drawn = page.evaluate("fo1Drawn")
    assert drawn["tags"], drawn
    return drawn["squares"] / drawn["tags"]


def test_only_the_selected_box_of_many_shows_its_handles(page, app_url: str) -> None:
    """Eight resize handles on each of 24 coins (or 100 proposals) hid the photo: past
    `HANDLES_ON_EVERY_BOX` boxes, only the selected box's are drawn. A few boxes keep theirs."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.add_init_script(DRAWINGS_COUNTED)
    laptop.goto(app_url)
    coffee, coins = "Coffee: detect cup and spoon", "Coins: find the others like #0"
    assert handles_per_box(laptop, lambda: open_example(laptop, coffee)) == 8
    assert handles_per_box(laptop, lambda: open_example(laptop, coins, "24 boxes")) == 0
    shot(laptop, "37-many-boxes-without-handles", full_page=False)
    laptop.get_by_label("Drag boxes").click()
    coin = canvas_point(laptop, 44 / 384, 54 / 303, (384, 303))  # coin #0
    assert handles_per_box(laptop, lambda: laptop.mouse.click(*coin)) == 8 / 24
    # Resized from a corner all the same.
    corner = canvas_point(laptop, 20 / 384, 33 / 303, (384, 303))
    drag(laptop, corner, (corner[0] - 15, corner[1] - 15))
    laptop.get_by_text("Boxes as numbers", exact=True).click()
    first = laptop.locator("#fo1-box-numbers textarea").input_value().splitlines()[0]
    assert first != "20, 33, 69, 76" and first.endswith("69, 76"), first
    laptop.close()


def test_an_example_opens_with_no_box_selected(page, app_url: str) -> None:
    """The editor selected its first box, the smallest, as an example's image came: the Coins
    example, asking about coin #0, showed coin #1 in bold with its handles, and the bin removed
    it unasked. Now the bin removes only a box the user picked."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    open_example(laptop, "Coins: find the others like #0", "24 boxes")
    settled_frame(laptop)
    laptop.get_by_label("Remove box").click()
    laptop.wait_for_timeout(EVENT_DELAY_MS)
    assert box_count(laptop) == "24 boxes"
    shot(laptop, "39-example-without-a-selected-box", full_page=False)
    laptop.mouse.click(*canvas_point(laptop, 44 / 384, 54 / 303, (384, 303)))  # coin #0
    laptop.get_by_label("Remove box").click()
    wait_for_note(laptop, "23 boxes")
    laptop.get_by_text("Boxes as numbers", exact=True).click()
    first = laptop.locator("#fo1-box-numbers textarea").input_value().splitlines()[0]
    assert first == "79, 37, 122, 76", first  # coin #1, now #0
    laptop.close()


def test_boxes_set_by_the_server_are_not_removed_unselected(page, app_url: str) -> None:
    """The editor kept a selection as a place in its list: with box #0 selected, boxes set from
    numbers came unselected, yet the bin removed the box now at that place."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    open_example(laptop, "Coffee: detect cup and spoon")
    laptop.get_by_label("Drag boxes").click()
    laptop.mouse.click(*canvas_point(laptop, 200 / 600, 30 / 400))  # box #0, selected
    laptop.get_by_text("Boxes as numbers", exact=True).click()
    laptop.locator("#fo1-box-numbers textarea").fill("20, 30, 200, 250\n300, 40, 580, 380")
    laptop.locator("#fo1-set-boxes").click()
    wait_for_note(laptop, "2 boxes")
    settled_frame(laptop)
    laptop.get_by_label("Remove box").click()
    laptop.locator("#fo1-editor canvas").focus()
    laptop.keyboard.press("Delete")
    laptop.wait_for_timeout(EVENT_DELAY_MS)
    assert box_count(laptop) == "2 boxes"
    laptop.locator("#fo1-editor canvas").scroll_into_view_if_needed()
    settled_frame(laptop)
    laptop.mouse.click(*canvas_point(laptop, 450 / 600, 200 / 400))  # box #1
    laptop.get_by_label("Remove box").click()
    wait_for_note(laptop, "1 box")
    wait_for_numbers(laptop, "20, 30, 200, 250")
    laptop.close()


def test_stop_while_waiting_for_another_users_answer(page, app_url: str) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    run_detection(page, "red circle", max_tokens=8192)
    page.locator("#fo1-answer", has_text="many regions").wait_for()
    waiting = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    waiting.goto(app_url)
    open_example(waiting, "Coffee: detect cup and spoon")
    # Every reply to the example landed: a late one writes the example's boxes over those typed.
    waiting.wait_for_timeout(SETTLE_MS)
    waiting.get_by_text("Boxes as numbers", exact=True).click()
    waiting.locator("#fo1-box-numbers textarea").fill("20, 30, 200, 250\n300, 40, 580, 380")
    waiting.locator("#fo1-set-boxes").click()
    wait_for_note(waiting, "2 boxes")
    assert "2 boxes set from the numbers typed" in status_text(waiting)
    waiting.locator("#fo1-run").click()  # queued behind the first page's answer
    # Said so, in place of the status before and of Gradio's place in the queue and its time
    # estimate; the answer area is not covered by them either.
    wait_for_page_note(waiting, "Waiting for the model")
    assert "yours is next" in waiting.evaluate(NOTE_ABOVE_THE_STATUS)
    assert waiting.get_by_role("status").filter(has_text="yours is next").is_visible()
    assert not waiting.locator("#fo1-status", has_text="2 boxes set from the numbers").is_visible()
    assert not waiting.get_by_text(re.compile("queue:")).first.is_visible()
    assert waiting.locator(f"#fo1-result {PENDING}, #fo1-answer {PENDING}").count() == 0
    shot(waiting, "11-waiting-for-another-users-answer", full_page=False)
    waiting.locator("#fo1-stop").click()
    wait_for_page_note(waiting, "Stopped by you")
    waiting.wait_for_timeout(500)  # the Stop has reached the server
    page.locator("#fo1-stop").click()
    page.locator("#fo1-status", has_text="Stopped by you").wait_for()
    waiting.locator("#fo1-status", has_text="Stopped by you before the answer started").wait_for()
    assert "many regions" not in waiting.locator("#fo1-answer").inner_text()
    shot(waiting, "11-stopped-while-waiting")
    waiting.close()


def test_a_new_image_clears_the_old_answer(page) -> None:
    assert page.locator("#fo1-result img").count() == 1  # the answer of the test before
    open_example(page, "Chelsea: reason about regions")
    page.wait_for_function("!document.querySelector('#fo1-result img')")
    assert page.locator("#fo1-answer").inner_text().strip() == ""
    # Until the new image's boxes are counted, Gradio shows its timer in the status.
    page.wait_for_function("document.querySelector('#fo1-status').innerText.trim() === ''")
    shot(page, "13-new-image-clears-the-answer")


def test_a_new_image_during_an_answer_ends_it(page) -> None:
    open_example(page, "Chelsea: reason about regions")
    run_detection(page, "red circle", max_tokens=8192)
    page.locator("#fo1-answer", has_text="many regions").wait_for()
    page.wait_for_timeout(1500)  # the result drawn, then streamed past (`STREAMED_PAST_AS_NONE`)
    open_example(page, "Coffee: detect cup and spoon")
    page.wait_for_timeout(SETTLE_MS)
    assert page.get_by_test_id("toast-text").all_inner_texts() == []  # "not an image this app …"
    # Nothing of the old answer comes back next to the new image.
    assert page.locator("#fo1-answer").inner_text().strip() == ""
    assert page.locator("#fo1-result img").count() == 0
    assert "Answering" not in status_text(page)
    # And the model is free: the next question (asked with Enter) is answered at once.
    set_number(page, "fo1-max-tokens", 32)
    page.get_by_label("Categories").fill("cup")
    page.get_by_label("Categories").press("Enter")
    page.locator("#fo1-status", has_text="token limit").wait_for()
    shot(page, "14-new-image-during-an-answer")


def test_a_deleted_box_comes_back_with_undo(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    delete_coffee_cup_box(page)
    page.locator("#fo1-box-note").click()  # outside text fields
    page.keyboard.press("Control+z")
    wait_for_note(page, "3 boxes")
    page.get_by_text("Clear boxes").click()
    wait_for_note(page, "No boxes yet")
    page.locator("#fo1-undo").click()
    wait_for_note(page, "3 boxes")
    shot(page, "20-undone")


def run_to_the_token_limit(page) -> None:
    """Detects "red circle" in 32 tokens, until this answer's status says it stopped there: the
    answer before may have said so too, and still be shown, its status redrawn, as the new one
    starts."""
    page.evaluate(WATCH_THE_STATUS)
    run_detection(page, "red circle", max_tokens=32)
    wait_for_statuses(page, "Answering", "token limit")


def test_an_answer_about_boxes_since_changed_says_so(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    run_to_the_token_limit(page)
    assert "Run again" not in status_text(page)
    delete_coffee_cup_box(page)
    page.locator("#fo1-status", has_text="The boxes changed after this answer").wait_for()
    assert "token limit" in status_text(page)  # the answer's own status stays
    shot(page, "15-answer-about-changed-boxes")


def test_an_answer_that_does_not_reason_shows_no_reasoning_to_open(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    run_to_the_token_limit(page)
    assert "red circle" in page.locator("#fo1-answer").inner_text()
    assert not page.locator("#fo1-reasoning-box").is_visible()


def test_undo_after_the_remove_button_brings_the_answer_back(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    run_to_the_token_limit(page)
    # The files come a step after the answer (`Handlers.downloads`): the page left holds them.
    page.locator("#fo1-downloads .filename").nth(3).wait_for()
    page.wait_for_function("!document.body.classList.contains('fo1-busy')")
    page.locator("#fo1-editor").get_by_label("Remove Image").click()
    wait_for_note(page, "No image yet")
    page.wait_for_function("!document.querySelector('#fo1-result img')")
    page.locator("#fo1-undo").click()
    wait_for_note(page, "3 boxes")
    page.wait_for_function("document.querySelector('#fo1-result img')")  # lazy: off screen
    page.locator("#fo1-downloads .filename").nth(3).wait_for()  # the four files
    assert "red circle" in page.locator("#fo1-answer").inner_text()
    page.wait_for_timeout(500)  # the box edit's reply, which would mark an answer not theirs
    assert "token limit" in status_text(page) and "boxes changed" not in status_text(page)
    shot(page, "15b-undo-brings-the-answer-back")


@pytest.mark.parametrize(
    "screen",
    [
        {"viewport": {"width": 1366, "height": 700}},
        {"viewport": {"width": 844, "height": 390}, "is_mobile": True, "has_touch": True},
    ],
    ids=["laptop", "phone-sideways"],
)
def test_run_brings_the_answer_into_view(page, app_url: str, screen: dict) -> None:
    """On a laptop Run goes to the window's top, the status and answer under it. A phone held
    sideways is too short for that: the answer started below its window."""
    window = page.context.browser.new_page(**screen)
    height = screen["viewport"]["height"]
    window.goto(app_url)
    open_example(window, "Coffee: detect cup and spoon")
    # The example's editor brought into view, tools and all (a smooth scroll): the answer then
    # comes at the window's foot.
    window.wait_for_function(
        f"document.querySelector('#fo1-follow-up').getBoundingClientRect().bottom > 0.75 * {height}"
    )
    before = window.evaluate("scrollY")
    run_detection(window, "red circle", max_tokens=32)
    # 32 tokens can come and go between two frames: the status seen is the finished one.
    window.locator("#fo1-status", has_text="token limit").wait_for()
    window.wait_for_timeout(600)  # the smooth scroll, started as Run was clicked
    assert window.evaluate("scrollY") > before
    status = window.locator("#fo1-status").bounding_box()
    assert 0 <= status["y"] + status["height"] and status["y"] < height
    # The answer's first lines well inside the window, not at its foot.
    assert window.locator("#fo1-answer").bounding_box()["y"] < 0.6 * height
    # Answered: Run is itself again.
    window.wait_for_function("!document.body.classList.contains('fo1-busy')")
    shot(window, f"19-{'phone-sideways' if height < 400 else 'laptop'}-answer-in-view")
    window.close()


WATCH_THE_SCROLL = """() => {
    window.fo1Scrolled = [];
    addEventListener("scroll", () => fo1Scrolled.push(scrollY));
}"""


def test_with_less_motion_asked_for_run_brings_the_answer_at_once(page, app_url: str) -> None:
    """The page glided to the answer (and to the image, a problem) even for a visitor whose
    system asks for less motion: it now jumps there, for them alone."""
    laptop = page.context.browser.new_page(viewport={"width": 1366, "height": 700})
    laptop.goto(app_url)
    open_example(laptop, "Coffee: detect cup and spoon")
    laptop.evaluate("scrollTo(0, 0)")
    glided = {}
    for motion in ("no-preference", "reduce"):
        laptop.emulate_media(reduced_motion=motion)
        laptop.evaluate("scrollTo(0, 0)")
        laptop.evaluate(WATCH_THE_SCROLL)
        run_detection(laptop, "red circle", max_tokens=32)
        laptop.locator("#fo1-status", has_text="token limit").wait_for()
        laptop.wait_for_function("!document.body.classList.contains('fo1-busy')")
        laptop.wait_for_timeout(600)  # past a smooth scroll
        # (The scroll to the top reports itself too, once the watch has started.)
        scrolled = [y for y in laptop.evaluate("fo1Scrolled") if y > 0]
        assert scrolled, motion
        # Where the first scroll event found the page: a glide's first step is a few pixels.
        glided[motion] = scrolled[0] / max(scrolled)
    assert glided["no-preference"] < 0.5 and glided["reduce"] > 0.9, glided
    laptop.close()


def within(inner: dict, outer: dict) -> bool:
    """Whether bounding box `inner` lies within `outer` (Playwright's `bounding_box`)."""
    return (
        outer["x"] <= inner["x"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and outer["y"] <= inner["y"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def test_the_examples_are_one_row_all_in_view_on_a_laptop(page, app_url: str) -> None:
    laptop = page.context.browser.new_page(viewport={"width": 1280, "height": 720})
    laptop.goto(app_url)
    gallery = laptop.locator("#fo1-gallery")
    thumbnails = gallery.locator("button.thumbnail-item")
    thumbnails.first.wait_for()
    assert thumbnails.count() == len(load_examples())
    frame = gallery.bounding_box()
    boxes = [thumbnails.nth(i).bounding_box() for i in range(thumbnails.count())]
    assert all(within(box, frame) and box["width"] >= 120 for box in boxes)
    assert len({box["y"] for box in boxes}) == 1
    label = gallery.locator("label").first.bounding_box()
    assert label["y"] + label["height"] <= boxes[0]["y"]  # it floats: not over the pictures
    assert gallery.get_by_label("Download All").count() == 0
    laptop.close()


def test_on_a_phone_the_examples_scroll_sideways_above_the_image(page, app_url: str) -> None:
    """In rows, nine examples took the whole first screen: the image to box came below it."""
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.goto(app_url)
    gallery = phone.locator("#fo1-gallery")
    thumbnails = gallery.locator("button.thumbnail-item")
    thumbnails.first.wait_for()
    assert thumbnails.count() == len(load_examples())
    boxes = [thumbnails.nth(i).bounding_box() for i in range(thumbnails.count())]
    assert all(box["width"] >= 120 for box in boxes)  # big enough to tell the images apart
    assert len({box["y"] for box in boxes}) == 1
    upload = phone.locator("#fo1-editor").get_by_text("Click to Upload").bounding_box()
    assert upload["y"] + upload["height"] <= 844
    frame = gallery.bounding_box()
    assert not within(boxes[-1], frame)
    last = thumbnails.last
    last.scroll_into_view_if_needed()
    assert within(last.bounding_box(), frame)
    last.locator("img").evaluate("img => img.decode()")  # loaded as it scrolls in (lazy)
    shot(phone, "16-examples-on-a-phone", full_page=False)
    last.click()
    wait_for_note(phone, f"{len(load_examples()[-1].boxes)} boxes")
    phone.close()


def test_on_a_phone_a_failed_proposal_is_brought_into_view(page, app_url: str) -> None:
    """The status sits far below the Propose button there: a problem is scrolled to."""
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.goto(app_url)
    open_example(phone, "Coffee: detect cup and spoon")
    phone.get_by_text("Propose boxes", exact=True).first.click()
    phone.get_by_label("Proposer").click()
    phone.get_by_role("option", name="Florence-2 region proposals").click()
    phone.locator("#fo1-propose").scroll_into_view_if_needed()
    phone.locator("#fo1-propose").click()
    problem = phone.locator("#fo1-status .fo1-error", has_text="does not exist")
    problem.wait_for()
    phone.wait_for_timeout(800)  # the smooth scroll
    place = problem.bounding_box()
    assert 0 <= place["y"] and place["y"] + place["height"] <= 844, place
    shot(phone, "21-phone-proposal-problem")
    phone.close()


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
"""A phone's page: its window, and a touch screen (`pointer: coarse`)."""

TABLET = {"viewport": {"width": 820, "height": 1180}, "is_mobile": True, "has_touch": True}
"""A tablet held upright: two columns, each about as wide as a phone."""

TOUCH_SCREENS = {"phone": PHONE, "tablet": TABLET}


LEVELS = """() => [...document.querySelectorAll("#fo1-downloads tbody tr")].map((row) => {
    const text = (element) => {
        const range = document.createRange();
        range.selectNodeContents(element);
        return range.getBoundingClientRect();
    };
    const stem = text(row.querySelector(".stem")), ext = text(row.querySelector(".ext"));
    const size = text(row.querySelector("a.download-link"));
    const name = (Math.min(stem.top, ext.top) + Math.max(stem.bottom, ext.bottom)) / 2;
    return name - (size.top + size.bottom) / 2;
})"""
"""How far the middle of each download's name stands below that of its size, in pixels."""


@pytest.mark.parametrize("screen", ["phone", "tablet"])
def test_on_a_touch_screen_download_names_read_whole(page, app_url: str, screen: str) -> None:
    touch = page.context.browser.new_page(**TOUCH_SCREENS[screen])
    touch.goto(app_url)
    open_example(touch, "Coffee: detect cup and spoon")
    run_detection(touch, "cup", max_tokens=16)
    names = touch.locator("#fo1-downloads .filename")
    names.nth(3).wait_for()
    touch.wait_for_timeout(500)  # the list is laid out again as its sizes come in
    for i in range(4):
        stem = names.nth(i).locator(".stem").bounding_box()
        ext = names.nth(i).locator(".ext").bounding_box()
        # The extension follows the name's last line, not a column beside a wrapped name.
        assert ext["y"] + ext["height"] / 2 > stem["y"] + stem["height"] - 0.75 * ext["height"], i
    # No remove button: a stray tap would lose the answer's files.
    removers = touch.locator("#fo1-downloads button[aria-label='Remove this file']")
    assert removers.count() == 4 and not any(removers.nth(i).is_visible() for i in range(4))
    # Read out by their files' names, as Gradio reads them by their sizes.
    links = touch.locator("#fo1-downloads a.download-link")
    named = [links.nth(i).get_attribute("aria-label") for i in range(4)]
    assert named[0] == "Download coffee-fo1-answer.png", named
    assert all(name.startswith("Download coffee-fo1-") for name in named), named
    # Level with its size: on a tablet, a name sat 8 px above its finger-sized link.
    assert all(abs(level) <= 2 for level in touch.evaluate(LEVELS)), touch.evaluate(LEVELS)
    names.first.scroll_into_view_if_needed()
    shot(touch, f"22-{screen}-downloads")
    # The result's buttons are above it, not over a box and label at its top right.
    result = touch.locator("#fo1-result img")
    result.scroll_into_view_if_needed()
    touch.wait_for_function("document.querySelector('#fo1-result img')?.complete")
    buttons = touch.locator("#fo1-result .icon-button-wrapper").bounding_box()
    assert buttons["y"] + buttons["height"] <= result.bounding_box()["y"] + 1, buttons
    shot(touch, f"22-{screen}-result-buttons-above-it", full_page=False)
    touch.close()


def test_on_a_phone_the_answers_labels_are_drawn_for_its_panel(page, app_url: str) -> None:
    """The result panel shows the 600 px drawing about 330 px wide: Run says how wide, and the
    labels are drawn to be read there (`render.scene_scale`), where they were 6 px high."""
    phone = page.context.browser.new_page(**PHONE)
    phone.goto(app_url)
    open_example(phone, "Coffee: detect cup and spoon")
    sent: list[list] = []
    phone.on("request", lambda r: "/queue/join" in r.url and sent.append(r.post_data_json["data"]))
    run_detection(phone, "cup", max_tokens=16)
    result = phone.locator("#fo1-result img")
    result.wait_for()
    result.scroll_into_view_if_needed()
    phone.wait_for_function("document.querySelector('#fo1-result img')?.complete")
    shot(phone, "29-phone-result-labels", full_page=False)
    panel = phone.evaluate("document.querySelector('#fo1-result').clientWidth")
    phone.close()
    assert 300 < panel < 390 and any(panel in data for data in sent), (panel, sent)


def test_on_a_phone_proposals_bring_the_image_into_view(page, app_url: str) -> None:
    """Propose sits a screen below the image there: its boxes landed out of sight, and it seemed
    to do nothing. Every control is large enough for a finger."""
    phone = page.context.browser.new_page(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    phone.goto(app_url)
    open_example(phone, "Coffee: detect cup and spoon")
    for control in ("#fo1-editor .icon-buttons button", "button.fo1-small"):
        for place in [one.bounding_box() for one in phone.locator(control).all()]:
            assert place["width"] >= 36 and place["height"] >= 36, (control, place)
    phone.get_by_text("Propose boxes", exact=True).first.click()
    phone.locator("#fo1-propose").scroll_into_view_if_needed()
    phone.locator("#fo1-propose").click()
    phone.wait_for_function("() => !document.body.classList.contains('fo1-proposing')")
    phone.wait_for_timeout(800)  # the smooth scroll
    place = phone.locator("#fo1-editor").bounding_box()
    assert -5 <= place["y"] < 844 / 2, place
    shot(phone, "23-phone-proposals-in-view")
    # So do boxes typed as numbers, set with a button as far below the image.
    phone.get_by_text("Boxes as numbers", exact=True).click()
    phone.locator("#fo1-box-numbers textarea").fill("20, 30, 200, 250")
    phone.locator("#fo1-set-boxes").scroll_into_view_if_needed()
    assert phone.locator("#fo1-editor").bounding_box()["y"] < -200
    phone.locator("#fo1-set-boxes").click()
    wait_for_note(phone, "1 box")
    phone.wait_for_timeout(800)  # the smooth scroll
    assert -5 <= phone.locator("#fo1-editor").bounding_box()["y"] < 844 / 2
    phone.close()


def touch_drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A finger on the screen at `start`, moved to `end` and lifted (a touch, not a mouse)."""
    screen = page.context.new_cdp_session(page)

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        places = [{"x": x, "y": y} for x, y in points]
        screen.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": places})

    touch("touchStart", [start])
    for step in range(1, 9):
        touch("touchMove", [tuple(a + (b - a) * step / 8 for a, b in zip(start, end, strict=True))])
    touch("touchEnd", [])
    screen.detach()


def test_on_a_phone_a_finger_just_off_a_corner_resizes_the_box(page, app_url: str) -> None:
    """The editor's 8 px handles: a finger 9 px off box #0's corner, inside box #1, moved #1."""
    phone = page.context.browser.new_page(**PHONE)
    phone.goto(app_url)
    open_example(phone, "Coffee: detect cup and spoon")  # opens with the hand tool
    phone.wait_for_timeout(800)  # the smooth scroll bringing the editor's tools into view
    phone.get_by_text("Boxes as numbers", exact=True).click()
    wait_for_first_box(phone, "170, 10, 420, 200")
    phone.locator("#fo1-editor").scroll_into_view_if_needed()
    frame = phone.locator("#fo1-editor canvas").bounding_box()
    scale = frame["width"] / 600  # the 600×400 image fills the phone's width
    corner = (frame["x"] + 420 * scale, frame["y"] + 200 * scale)  # box #0's bottom right
    touched = (corner[0] + 9, corner[1] + 9)
    touch_drag(phone, touched, (touched[0] + 20, touched[1] + 30))
    grown = f"170, 10, {round(420 + 20 / scale)}, {round(200 + 30 / scale)}"
    phone.wait_for_function(
        f"() => {NUMBERS_SHOWN} !== '170, 10, 420, 200\\n80, 60, 490, 390\\n320, 60, 430, 320'"
    )
    shot(phone, "24-phone-corner-resized", full_page=False)
    lines = phone.locator("#fo1-box-numbers textarea").input_value().splitlines()
    phone.close()
    first = [int(n) for n in lines[0].split(", ")]
    expected = [int(n) for n in grown.split(", ")]
    assert first == pytest.approx(expected, abs=BOX_TOLERANCE), lines
    assert lines[1] == "80, 60, 490, 390"  # box #1, under the finger, stays where it was


@pytest.mark.parametrize("width", [390, 320])
def test_on_a_phone_small_buttons_hold_their_words(page, app_url: str, width: int) -> None:
    """Made at least 36 px wide for a finger, they were also let shrink to that: "New
    conversation" stuck out past its button and its row."""
    phone = page.context.browser.new_page(**{**PHONE, "viewport": {"width": width, "height": 844}})
    phone.goto(app_url)
    phone.wait_for_selector("#fo1-editor")
    buttons = phone.locator("button.fo1-small")
    assert buttons.count() == 4
    for button in buttons.all():
        fits = button.evaluate(
            """(button) => {
                const row = button.closest(".row").getBoundingClientRect();
                const place = button.getBoundingClientRect();
                return [button.textContent.trim(), button.scrollWidth <= button.clientWidth,
                        row.left <= place.left && place.right <= row.right];
            }"""
        )
        assert fits[1:] == [True, True], fits
    phone.get_by_role("button", name="New conversation").scroll_into_view_if_needed()
    shot(phone, f"28-phone-{width}-new-conversation", full_page=False)
    phone.close()


def test_on_a_phone_regions_are_picked_with_the_image_in_view(page, app_url: str) -> None:
    """The columns stacked, the region picker came after Propose and the numbers, a screen below
    the boxes it names; one who had proposed boxes scrolled between the two."""
    phone = page.context.browser.new_page(**PHONE)
    phone.goto(app_url)
    open_example(phone, "Coffee: detect cup and spoon")
    phone.get_by_text("Propose boxes", exact=True).first.click()
    for task, picker in (("Brief region caption", "#fo1-regions"), ("Free prompt", "#fo1-free")):
        choose_task(phone, task)
        image = phone.locator("#fo1-editor canvas").bounding_box()
        if picker == "#fo1-free":  # its region list is under the prompt
            place = phone.get_by_label("Insert a region reference").bounding_box()
        else:
            place = phone.locator(picker).bounding_box()
        # The image and the picker in one screen.
        assert place["y"] + place["height"] - image["y"] <= 844, (task, image, place)
        phone.evaluate("top => scrollBy(0, top)", image["y"] - 8)
        shot(phone, f"25-phone-{picker[5:]}-by-the-image", full_page=False)
    phone.close()


@pytest.mark.parametrize(
    ("width", "height", "example"),
    [
        (1280, 720, "Astronaut: caption"),  # square: the image at its tallest
        (1280, 720, "Coffee"),
        (1440, 900, "Astronaut: caption"),
        (390, 844, "Launch pad: count"),
    ],
)
def test_a_loaded_example_shows_the_editor_with_its_tools(
    page, app_url: str, width: int, height: int, example: str
) -> None:
    """Below the introduction and the examples, a loaded image filled the window's lower part on
    a laptop and on a phone; its tools, Undo and the box count were below the window."""
    screen = page.context.browser.new_page(viewport={"width": width, "height": height})
    screen.goto(app_url)
    count = {"Astronaut: caption": "4 boxes", "Coffee": "3 boxes", "Launch pad: count": "5 boxes"}[
        example
    ]
    open_example(screen, example, count)
    screen.wait_for_timeout(1000)  # the smooth scroll
    image = screen.locator("#fo1-editor canvas").bounding_box()
    tools = [screen.get_by_label("Create box"), screen.locator("#fo1-undo")]
    shot(screen, f"26-{width}x{height}-{example.split(':')[0]}-tools-in-view", full_page=False)
    places = [tool.bounding_box() for tool in tools]
    screen.close()
    assert image["y"] >= 0, image  # the image whole
    for place in places:
        assert place["y"] + place["height"] <= height, places


CUT_CELLS = """() => {
    const table = document.querySelector("[role=grid][aria-label=Detections] table").parentNode;
    const edge = table.getBoundingClientRect().right;
    return [...table.querySelectorAll(".cell-wrap")]
        .filter((cell) => !cell.closest(".sizing-body"))  // Gradio's hidden copy, to measure
        .filter((cell) => cell.getBoundingClientRect().right > edge + 1
            || cell.scrollWidth > cell.clientWidth + 1)
        .map((cell) => cell.innerText);
}"""
"""The texts of the Detections table's cells that are cut, or out of its sight to the right."""

BROKEN_CELLS = """() => {
    const lines = (cell) => {  // the tops of its text's lines, its menu button's "⋮" aside
        const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        const tops = new Set();
        while (texts.nextNode()) {
            if (texts.currentNode.parentElement.closest("button")) continue;
            const text = document.createRange();
            text.selectNodeContents(texts.currentNode);
            for (const rect of text.getClientRects()) tops.add(Math.round(rect.top));
        }
        return tops.size;
    };
    const grid = "[role=grid][aria-label=Detections]";
    return [...document.querySelectorAll(`${grid} [role=columnheader], ${grid} [role=gridcell]`)]
        .filter((cell) => cell.getAttribute("aria-colindex") !== "2")  // the label's
        .filter((cell) => lines(cell) > 1)
        .map((cell) => cell.innerText);
}"""
"""The texts of the Detections table's cells, the label's aside, that take more than a line."""


@pytest.mark.parametrize("screen", ["phone", "tablet"])
def test_on_a_touch_screen_the_detections_table_reads_whole(
    page, app_url: str, tmp_path: Path, screen: str
) -> None:
    """Six columns ran past a phone's width: the table showed its boxes up to y1 or x2, the rest
    to be scrolled to sideways with nothing to say so. A tablet held upright puts the table in
    half its width, as narrow as a phone's."""
    large = tmp_path / "large.jpg"
    Image.new("RGB", (4000, 3000), "gray").save(large)  # corners of four digits
    touch = page.context.browser.new_page(**TOUCH_SCREENS[screen])
    touch.goto(app_url)
    touch.locator("#fo1-editor input[type=file]").set_input_files(str(large))
    wait_for_note(touch, "No boxes yet")
    set_boxes_as_numbers(
        touch, [[1000, 1200, 3999, 2999], [10, 20, 1500, 2500], [2000, 1010, 3500, 2100]]
    )
    wait_for_note(touch, "3 boxes")
    run_detection(touch, "red circle", max_tokens=16)
    touch.locator("#fo1-status", has_text="token limit").wait_for()  # the scores come last
    table = touch.get_by_role("grid", name="Detections")
    table.get_by_text("2100").wait_for()  # box #2's bottom, in the last column
    table.scroll_into_view_if_needed()
    shot(touch, f"27-{screen}-detections", full_page=False)
    cut, broken = touch.evaluate(CUT_CELLS), touch.evaluate(BROKEN_CELLS)
    touch.close()
    assert cut == []
    # "1000" was shown as "100" over "0": a number or a heading broken over lines.
    assert broken == []


def test_lists_are_picked_from_not_typed_in_and_the_status_is_read_out(page) -> None:
    # A typing field popped up a phone's keyboard, and typed letters were added to the task's
    # name ("DetectionBrief"), matching nothing.
    assert page.get_by_label("Task").get_attribute("readonly") is not None
    assert page.locator("#fo1-said").get_attribute("role") == "status"
    assert page.locator("#fo1-box-note").get_attribute("role") == "status"


def test_the_editors_canvas_is_named_as_the_image_to_box(page) -> None:
    # A screen reader announced an unnamed canvas.
    open_example(page, "Coffee: detect cup and spoon")
    named = page.locator("#fo1-editor").get_by_role("img", name="The image and its boxes")
    assert named.count() == 1


def test_boxes_along_the_top_edge_show_their_number(page) -> None:
    open_example(page, "Launch pad: count", "5 boxes")
    page.wait_for_timeout(500)
    # Boxes #1 and #4 start at the image's top: their tags are drawn just inside them.
    tag_pixels = page.evaluate(
        """(corners) => {
            const canvas = document.querySelector('#fo1-editor canvas');
            const scale = canvas.height / 427;
            const left = (canvas.width - 640 * scale) / 2;
            const context = canvas.getContext('2d');
            return corners.map(x => Array.from(
                context.getImageData(Math.round(left + x * scale) + 3, 4, 1, 1).data));
        }""",
        [0, 540],
    )
    shot(page, "17-tags-along-the-top")
    assert all(min(pixel[:3]) >= 245 for pixel in tag_pixels), tag_pixels


def test_boxes_are_loaded_from_a_coco_file(page, app_url: str, tmp_path: Path) -> None:
    """An annotator's COCO file, too long to paste, sets the image's boxes in the file's order
    (COCO's x, y, width and height as corners); Undo brings the boxes before back."""
    screen = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    screen.goto(app_url)
    open_example(screen, "Coffee: detect cup and spoon")
    screen.get_by_text("Boxes as numbers", exact=True).click()
    images = [{"id": 1, "file_name": "cat.jpg"}, {"id": 2, "file_name": "coffee.jpg"}]
    bboxes = [(2, [10, 20, 100, 50]), (1, [0, 0, 5, 5]), (2, [300, 200, 100, 100])]
    annotations = [{"id": i, "image_id": image, "bbox": b} for i, (image, b) in enumerate(bboxes)]
    coco = tmp_path / "labels.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations}))
    with screen.expect_file_chooser() as chooser:
        screen.locator("#fo1-load-boxes").click()
    chooser.value.set_files(coco)
    wait_for_note(screen, "2 boxes")
    assert "2 boxes set from labels.json" in status_text(screen)
    numbers = screen.locator("#fo1-box-numbers textarea")
    assert numbers.input_value() == "10, 20, 110, 70\n300, 200, 400, 300"
    screen.locator("#fo1-undo").click()
    wait_for_note(screen, "3 boxes")
    screen.close()


def test_the_boxes_the_answer_names_are_kept_for_the_next_question(page, app_url: str) -> None:
    """Of the boxes asked about, "Keep only these boxes" by the detections keeps those the
    answer names, numbered from #0, for the next question; Undo brings the others back."""
    screen = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    screen.goto(app_url)
    open_example(screen, "Coffee: detect cup and spoon")
    run_detection(screen, "red circle", max_tokens=32)
    screen.locator("#fo1-status", has_text="token limit").wait_for()
    screen.locator("#fo1-detections", has_text="red circle").first.wait_for()
    screen.locator("#fo1-keep-found").click()
    wait_for_note(screen, "2 boxes")
    assert "2 boxes kept, now #0–#1: those the answer names (#0, #2)" in status_text(screen)
    screen.get_by_text("Boxes as numbers", exact=True).click()
    numbers = screen.locator("#fo1-box-numbers textarea")
    assert numbers.input_value() == "170, 10, 420, 200\n320, 60, 430, 320"
    shot(screen, "38-the-boxes-found-kept")
    screen.locator("#fo1-undo").click()
    wait_for_note(screen, "3 boxes")
    screen.close()


DROPPED_FILE = """([name, type, data]) => {
    const bytes = Uint8Array.from(atob(data), (char) => char.charCodeAt(0));
    const files = new DataTransfer();
    files.items.add(new File([bytes], name, {type}));
    return files;
}"""
"""A file as a drag from the desktop carries it (`dispatch_event`'s `dataTransfer`)."""


def drop_file(page, selector: str, name: str, data: bytes, kind: str = "application/json") -> bool:
    """Drops a file `name` holding `data` on the element at `selector`, as from the desktop;
    whether the page took the drag over it (else the browser would open the file in its place)."""
    files = page.evaluate_handle(DROPPED_FILE, [name, kind, base64.b64encode(data).decode()])
    target = page.locator(selector).first
    target.dispatch_event("dragenter", {"dataTransfer": files})
    taken = target.evaluate(
        """(element, files) => {
            const over = new DragEvent("dragover", {bubbles: true, cancelable: true,
                                                    dataTransfer: files});
            element.dispatchEvent(over);
            return over.defaultPrevented;
        }""",
        files,
    )
    target.dispatch_event("drop", {"dataTransfer": files})
    return taken


def test_a_file_dropped_anywhere_is_taken_in_not_opened_in_the_pages_place(
    page, app_url: str
) -> None:
    """An annotator drags the image's label file onto it: its boxes are set, as by "Load a
    boxes file" (the editor took it for an image, which the server refused), and the numbers
    read are shown. Dropped beside a drop zone, a file was opened by the browser in the page's
    place, the image, boxes and answer lost: now a boxes file is loaded from anywhere, and an
    image goes to the editor."""
    screen = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    screen.goto(app_url)
    open_example(screen, "Coffee: detect cup and spoon")
    shapes = [{"label": "cup", "points": [[170, 10], [420, 200]], "shape_type": "rectangle"}]
    labelme = json.dumps({"shapes": shapes, "imageWidth": 600, "imageHeight": 400}).encode()
    assert drop_file(screen, "#fo1-editor canvas", "coffee.json", labelme)
    wait_for_note(screen, "1 box")
    assert "1 box set from coffee.json" in status_text(screen)
    assert screen.locator("#fo1-box-numbers textarea").input_value() == "170, 10, 420, 200"
    assert screen.locator("#fo1-editor canvas").count() == 1  # the image stays
    screen.locator("#fo1-undo").click()
    wait_for_note(screen, "3 boxes")
    # Beside any drop zone: the heading, the answer.
    assert drop_file(screen, "#fo1-answer", "coffee.json", labelme)
    wait_for_note(screen, "1 box")
    export = io.BytesIO()  # a labelling tool's export as it downloads, the image's labels in it
    with zipfile.ZipFile(export, "w") as written:
        written.writestr("labels/coffee.txt", "0 0.5 0.25 0.5 0.5\n1 0.1 0.9 0.2 0.2\n")
        written.writestr("classes.txt", "cup\nspoon\n")
    assert drop_file(screen, "h1", "project-1.zip", export.getvalue(), "application/zip")
    wait_for_note(screen, "2 boxes")
    assert "2 boxes set from labels/coffee.txt in project-1.zip" in status_text(screen)
    assert screen.locator("#fo1-box-numbers textarea").input_value().startswith("150, 0, 450, 200")
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), "navy").save(photo, "PNG")
    assert drop_file(screen, "h1", "navy.png", photo.getvalue(), "image/png")
    wait_for_note(screen, "No boxes yet")
    assert screen.locator("#fo1-editor canvas").count() == 1
    screen.get_by_label("Remove Image").click()
    wait_for_note(screen, "No image yet")
    drop_file(screen, "#fo1-editor", "coffee.json", labelme)
    screen.locator("#fo1-status", has_text="No image yet: upload one").wait_for()
    screen.close()


def test_boxes_are_read_and_set_as_numbers(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    page.get_by_text("Boxes as numbers", exact=True).click()
    numbers = page.locator("#fo1-box-numbers textarea")
    assert numbers.input_value().splitlines()[0] == "170, 10, 420, 200"  # box #0, drawn first
    choose_task(page, "Brief region caption")
    page.locator("#fo1-regions").get_by_text("#1", exact=True).click()
    numbers.fill("20, 30, 200, 250\n300 40 580 380")  # typed with the keyboard only
    page.locator("#fo1-set-boxes").click()
    wait_for_note(page, "2 boxes")
    assert "2 boxes set from the numbers typed" in status_text(page)
    # #1 now names another box than the one picked: the pick goes with the boxes it was from.
    page.wait_for_function(f"!document.querySelector('{REGION_OPTIONS} input:checked')")
    numbers.fill("20, 30, 200")
    page.locator("#fo1-set-boxes").click()
    page.locator("#fo1-status", has_text="Line 1 (20, 30, 200) holds 3 values").wait_for()
    assert numbers.input_value() == "20, 30, 200"  # kept, to be corrected
    assert "2 boxes" in box_count(page)
    shot(page, "18-boxes-as-numbers")
    # Turned with the editor's button, the boxes are measured on the turned image (600×400 to
    # 400×600: x' = 400 - y, y' = x).
    page.get_by_label("Rotate clockwise").click()
    wait_for_first_box(page, "150, 20, 370, 200")
    page.get_by_label("Rotate counterclockwise").click()
    wait_for_first_box(page, "20, 30, 200, 250")
    # The arrows look like undo and redo, and the × empties the editor: Undo takes either back.
    page.get_by_label("Rotate clockwise").click()
    wait_for_first_box(page, "150, 20, 370, 200")
    page.locator("#fo1-undo").click()
    wait_for_first_box(page, "20, 30, 200, 250")
    canvas = page.locator("#fo1-editor canvas").bounding_box()
    assert canvas["width"] > canvas["height"]  # the 600×400 image, upright again
    page.locator("#fo1-editor").get_by_label("Remove Image").click()
    wait_for_note(page, "No image yet")
    page.locator("#fo1-undo").click()
    wait_for_note(page, "2 boxes")
    shot(page, "18-undo-brings-the-image-back")
    # So does an example of another image clicked over the user's image and boxes.
    open_example(page, "Chelsea: reason about regions")
    page.locator("#fo1-undo").click()
    wait_for_note(page, "2 boxes")
    wait_for_first_box(page, "20, 30, 200, 250")
    shot(page, "18b-undo-after-an-example")


def test_a_late_box_reply_leaves_the_numbers_being_typed(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    numbers = page.locator("#fo1-box-numbers textarea")
    if not numbers.is_visible():
        page.get_by_text("Boxes as numbers", exact=True).click()
    wait_for_first_box(page, "170, 10, 420, 200")
    page.wait_for_timeout(SETTLE_MS)  # the example's replies have landed
    page.get_by_label("Drag boxes").click()
    page.mouse.click(*canvas_point(page, 200 / 600, 30 / 400))  # box #0
    slow_server(page, "change", busy_ms=EVENT_DELAY_MS)
    page.get_by_label("Remove box").click()  # its reply comes late: after the typing has begun
    typed = "20, 30, 200, 250\n300 40 580 380"
    numbers.fill(typed)
    wait_for_note(page, "2 boxes")
    page.wait_for_timeout(SETTLE_MS)
    assert numbers.input_value() == typed
    # Set sets the lines shown, not the ones the late reply brought; and once the text box is
    # left, it follows the boxes again (here, written as the page writes boxes).
    page.locator("#fo1-set-boxes").click()
    page.locator("#fo1-status", has_text="2 boxes set from the numbers typed").wait_for()
    wait_for_numbers(page, "20, 30, 200, 250\n300, 40, 580, 380")


def test_undo_after_an_example_brings_back_the_task_and_text_typed(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    delete_coffee_cup_box(page)  # the user's own boxes
    choose_task(page, "Detection")
    page.get_by_label("Categories").fill("saucer")
    open_example(page, "Chelsea: reason about regions")
    assert page.get_by_label("Question", exact=True).input_value() == "Where is the cat looking?"
    page.locator("#fo1-undo").click()
    wait_for_note(page, "2 boxes")
    page.get_by_label("Categories").wait_for()
    assert page.get_by_label("Categories").input_value() == "saucer"
    assert page.get_by_label("Task").input_value() == "Detection"
    # Their texts by kind come back too: the question typed for the example's task is not.
    choose_task(page, "Region reasoning")
    assert page.get_by_label("Question", exact=True).input_value() == ""


def test_ctrl_enter_in_the_free_prompt_asks(page) -> None:
    open_example(page, "Coffee: detect cup and spoon")
    # The categories are not carried into a question, and come back with their task.
    choose_task(page, "Region reasoning")
    assert page.get_by_label("Question", exact=True).input_value() == ""
    choose_task(page, "Detection")
    assert page.get_by_label("Categories").input_value() == "cup, spoon"
    choose_task(page, "Free prompt")
    set_number(page, "fo1-max-tokens", 16)
    prompt = page.locator("#fo1-free textarea")
    prompt.fill("What is in <region0>?")
    prompt.press("Control+Enter")
    page.locator("#fo1-status", has_text="16 tokens").wait_for()
    assert prompt.input_value() == "What is in <region0>?"  # no new line added


def test_the_keyboard_closes_a_dropdown_it_leaves_and_shows_where_it_is(page, app_url) -> None:
    """Tab past the Task dropdown left its list open over the field then typed in, or, on a
    laptop's 800 px, where the list scrolls, gave the list the focus, which it lost to nothing as
    it closed; a text field, the follow-up box and the detections table showed no focus, or a
    faint one; the editor's Download took two tab stops, one of them unnamed."""
    screen = page.context.browser.new_page(viewport={"width": 1280, "height": 800})
    screen.goto(app_url)
    screen.wait_for_selector("#fo1-page-note", state="attached")  # the page's scripts are in
    task = screen.locator("input[role=combobox][aria-label=Task]")
    task.focus()
    options = screen.locator("ul[role=listbox]")
    options.wait_for()  # Gradio opens the list as the dropdown takes the focus
    screen.keyboard.press("Tab")
    screen.wait_for_timeout(500)
    assert screen.evaluate("document.activeElement.closest('#fo1-text') !== null")
    assert not options.is_visible()
    # The field shows its focus at 3:1 or more (Gradio's light blue border was 1.8:1).
    style = "e => [getComputedStyle(e).borderTopColor, getComputedStyle(e).backgroundColor]"
    assert contrast(*screen.locator("#fo1-text textarea").evaluate(style)) >= 3
    shot(screen, "29-tabbed-past-the-task", full_page=False)
    for control in ("#fo1-follow-up input", "#fo1-detections [role=grid]"):
        screen.locator(control).focus()
        outline = screen.locator(control).evaluate("e => getComputedStyle(e).outlineStyle")
        assert outline == "solid", control
    # The editor's Download: one tab stop, its named button, which downloads with Enter.
    open_example(screen, "Coffee: detect cup and spoon")
    link = screen.locator("#fo1-editor a:has(> button[aria-label=Download])")
    screen.wait_for_function("document.querySelector('#fo1-editor a:has(> button)')?.tabIndex < 0")
    with screen.expect_download() as download:
        link.locator("button").press("Enter")
    assert download.value.suggested_filename == "coffee.jpg"
    screen.close()


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two computed `rgb(r, g, b)` colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_run_and_stop_words_read_against_their_colour(page, app_url: str, theme: str) -> None:
    """White on Gradio's orange Run was 2.8:1, on its red Stop 3.8:1: under WCAG's 4.5:1."""
    screen = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    screen.goto(f"{app_url}?__theme={theme}")
    for button in ("#fo1-run", "#fo1-stop"):
        for hovered in (False, True):
            if hovered:
                screen.locator(button).hover()
                screen.wait_for_timeout(300)  # Gradio's colour transition
            colours = screen.locator(button).evaluate(
                "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
            )
            assert contrast(*colours) >= 4.5, (button, hovered, colours)
    screen.close()


def accessibility_problems(screen) -> list[str]:
    """What axe-core's rules find wrong in the page as it stands (words too faint to read,
    controls without names, parts the keyboard cannot reach): each rule broken and where. Two
    are Gradio's own, left out: its gallery repeats each example's title as its image's text
    (`image-redundant-alt`, minor: heard twice), and its empty panels' placeholder is a plain
    `div` with an `aria-label` (`.empty`), which screen readers pass over."""
    screen.add_script_tag(path=str(AXE_FILE_PATH))
    found = screen.evaluate(
        """async () => (await axe.run({exclude: [".empty"]}, {resultTypes: ["violations"],
            rules: {"image-redundant-alt": {enabled: false}}})).violations"""
    )
    return [
        f"{rule['id']}: {node['target']} {node['failureSummary']}"
        for rule in found
        for node in rule["nodes"]
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_page_reads_whole_while_answering_and_after(page, app_url: str, theme: str) -> None:
    """Run was dimmed to half its colour while an answer streamed, and Stop while there was
    none: their words read at 2.3:1 and 2.5:1 (WCAG asks 4.5:1 of any control that still acts;
    Run then keeps the question for later, and Stop did not say it was unavailable). Gradio's
    grey small print was 1.9:1 on white, its blue download links 4.0:1 on a dark panel."""
    screen = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    screen.goto(f"{app_url}?__theme={theme}")
    open_example(screen, "Coffee: detect cup and spoon")
    stop = screen.locator("#fo1-stop")
    assert stop.get_attribute("aria-disabled") == "true"
    run_detection(screen, "cup", 8192)
    screen.locator("#fo1-status", has_text="Answering").wait_for()
    assert stop.get_attribute("aria-disabled") == "false"
    assert accessibility_problems(screen) == []
    stop.click()
    screen.locator("#fo1-status", has_text="Stopped by you").wait_for()
    screen.locator("#fo1-downloads a[download]").first.wait_for()
    assert stop.get_attribute("aria-disabled") == "true"
    assert accessibility_problems(screen) == []
    screen.close()


def test_the_editors_keys_work_after_a_region_is_ticked(page, app_url) -> None:
    """A ticked region's box kept the focus, and C, D and Ctrl+Z, which work outside text fields,
    did nothing there."""
    screen = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    screen.goto(app_url)
    open_example(screen, "Coffee: detect cup and spoon")
    choose_task(screen, "Brief region caption")
    delete_coffee_cup_box(screen)
    screen.locator(f"{REGION_OPTIONS} input").first.check()
    screen.keyboard.press("Control+z")
    wait_for_note(screen, "3 boxes")
    screen.keyboard.press("c")
    screen.wait_for_function(
        "document.querySelector(`#fo1-editor button[aria-label='Create box']`)"
        ".classList.contains('selected')"
    )
    screen.close()


def test_more_like_the_reference_picked_for_a_visual_prompt(page, app_url) -> None:
    """The Coins example asks for the others like #0: "more like my boxes" takes #0, the pick,
    as its example, not all 24 coins."""
    screen = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    screen.goto(app_url)
    open_example(screen, "Coins: find the others like #0", "24 boxes")
    screen.get_by_text("Propose boxes", exact=True).first.click()
    screen.get_by_label("Proposer").click()
    screen.get_by_role("option", name="OWLv2: more like my boxes").click()
    screen.locator("#fo1-propose").click()
    screen.locator("#fo1-status", has_text="like #0 in").wait_for()
    shot(screen, "30-more-like-the-reference")
    screen.close()


def spots(page) -> list[dict]:
    """Where the lit boxes stand on the screen: none, or one on each image that shows it."""
    return page.evaluate(
        "() => [...document.querySelectorAll('.fo1-spot')]"
        ".map((spot) => spot.getBoundingClientRect().toJSON())"
    )


def on_the_result(page, box: list[float], size: tuple[int, int]) -> dict:
    """Where `box` (pixels of an image of `size`) is drawn on the page's result image, which
    is shown without margins around the drawing (Gradio sizes it to the drawing's shape)."""
    shown = page.locator("#fo1-result img").bounding_box()
    return within_the_frame(shown["x"], shown["y"], shown["width"] / size[0], box)


def in_the_editor(page, box: list[float], size: tuple[int, int]) -> dict:
    left, top = canvas_point(page, 0, 0, size)
    right, _ = canvas_point(page, 1, 0, size)
    return within_the_frame(left, top, (right - left) / size[0], box)


def on_both(page, box: list[float], size: tuple[int, int]) -> list[dict]:
    """Where `box` is drawn on the result image and in the editor."""
    return [on_the_result(page, box, size), in_the_editor(page, box, size)]


def within_the_frame(left: float, top: float, scale: float, box: list[float]) -> dict:
    x1, y1, x2, y2 = box
    return {
        "x": left + x1 * scale,
        "y": top + y1 * scale,
        "width": (x2 - x1) * scale,
        "height": (y2 - y1) * scale,
    }


def assert_lit(page, *expected: dict) -> None:
    """The boxes lit are those `expected`, to 2 px, in any order."""
    shown = spots(page)
    assert len(shown) == len(expected) and all(
        any(all(abs(spot[key] - place[key]) <= 2 for key in place) for spot in shown)
        for place in expected
    ), (shown, expected)


def coins_answered(page) -> tuple[list[list[float]], tuple[int, int]]:
    """The Coins example asked a detection, its answer naming #0 and #2: its boxes and size."""
    coins = next(e for e in load_examples() if e.title.startswith("Coins"))
    open_example(page, "Coins: find the others like #0", f"{len(coins.boxes)} boxes")
    page.evaluate(WATCH_THE_STATUS)
    run_detection(page, "red circle", max_tokens=16)
    wait_for_statuses(page, "token limit")
    with Image.open(coins.image) as image:
        return [list(b) for b in coins.boxes], image.size


def test_pointing_at_a_region_lights_its_box(page, app_url) -> None:
    """With 24 coins boxed, where is the answer's #2? Pointing at its chip, or at its row of the
    detections, lights its box on the result image and in the editor; a click keeps it lit and
    Escape puts it out."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    boxes, size = coins_answered(laptop)
    chip = laptop.locator("#fo1-answer .fo1-answer .fo1-chip[data-region='2']")
    chip.hover()
    assert_lit(laptop, *on_both(laptop, boxes[2], size))
    shot(laptop, "31-a-region-pointed-at", full_page=False)
    laptop.mouse.move(5, 5)
    assert spots(laptop) == []
    row = laptop.get_by_role("grid", name="Detections").get_by_role("row")
    row.filter(has=laptop.get_by_role("gridcell", name="0", exact=True)).first.hover()
    assert_lit(laptop, *on_both(laptop, boxes[0], size))
    # Kept by a click, as the pointer goes on; put out by Escape. (Hovering the row may have
    # scrolled the page: the places are measured where the boxes stand now.)
    chip.click()
    laptop.mouse.move(5, 5)
    assert_lit(laptop, *on_both(laptop, boxes[2], size))
    laptop.keyboard.press("Escape")
    assert spots(laptop) == []
    laptop.close()


def test_on_a_phone_a_tapped_region_is_lit_and_brought_into_view(page, app_url) -> None:
    """The result image sits a screen below the answer there, the editor a screen above."""
    phone = page.context.browser.new_page(**PHONE)
    phone.goto(app_url)
    boxes, size = coins_answered(phone)
    chip = phone.locator("#fo1-answer .fo1-answer .fo1-chip[data-region='2']")
    chip.scroll_into_view_if_needed()
    chip.tap()
    on_the_image = on_the_result(phone, boxes[2], size)
    assert_lit(phone, on_the_image, in_the_editor(phone, boxes[2], size))
    assert 0 <= on_the_image["y"] <= on_the_image["y"] + on_the_image["height"] <= 844
    shot(phone, "32-phone-a-region-tapped", full_page=False)
    phone.close()


def test_from_the_keyboard_the_detections_cells_light_their_boxes(page, app_url) -> None:
    """Tabbed into the detections table, its cell lights its row's box; the arrows move the
    light with them to the next row's box; Escape puts it out."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    boxes, size = coins_answered(laptop)
    grid = laptop.get_by_role("grid", name="Detections")
    tabs = 0
    while not grid.evaluate("(grid) => grid.contains(document.activeElement)"):
        laptop.keyboard.press("Tab")
        tabs += 1
        assert tabs < 80, "Tab never reached the detections"
    assert_lit(laptop, *on_both(laptop, boxes[0], size))
    laptop.keyboard.press("ArrowDown")
    assert_lit(laptop, *on_both(laptop, boxes[2], size))
    shot(laptop, "33-a-region-reached-by-the-keyboard", full_page=False)
    laptop.keyboard.press("Escape")
    assert spots(laptop) == []
    laptop.close()


def astronaut_opened(page) -> tuple[list[list[float]], tuple[int, int]]:
    """The example "Astronaut: caption two regions" opened, its region picker shown: its boxes
    and its image's size."""
    astronaut = next(e for e in load_examples() if e.title.startswith("Astronaut: caption"))
    open_example(page, astronaut.title, f"{len(astronaut.boxes)} boxes")
    with Image.open(astronaut.image) as image:
        return [list(b) for b in astronaut.boxes], image.size


def test_the_region_pickers_options_light_their_boxes_as_they_stand(page, app_url) -> None:
    """Which of 24 boxes is #17, before asking about it? Its option in the region picker,
    pointed at or reached by the keyboard, lights the box in the editor: where it is now,
    moved since the last answer or not."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    boxes, size = astronaut_opened(laptop)
    option = laptop.locator(REGION_OPTIONS, has_text="#1")
    option.hover()
    assert_lit(laptop, in_the_editor(laptop, boxes[1], size))
    shot(laptop, "35-a-picked-region-pointed-at", full_page=False)
    laptop.mouse.move(5, 5)
    assert spots(laptop) == []
    laptop.get_by_text("Boxes as numbers", exact=True).click()
    moved = [list(b) for b in boxes]
    moved[1] = [300, 300, 400, 400]
    numbers = "\n".join(", ".join(str(v) for v in b) for b in moved)
    laptop.locator("#fo1-box-numbers textarea").fill(numbers)
    laptop.locator("#fo1-set-boxes").click()
    laptop.wait_for_timeout(SETTLE_MS)
    option.hover()
    assert_lit(laptop, in_the_editor(laptop, moved[1], size))
    option.locator("input").focus()
    laptop.keyboard.press("Tab")
    assert_lit(laptop, in_the_editor(laptop, moved[2], size))
    laptop.keyboard.press("Escape")
    assert spots(laptop) == []
    # The free prompt's list of references does the same.
    choose_task(laptop, "Free prompt")
    laptop.get_by_label("Insert a region reference").click()
    reference = laptop.get_by_role("option", name="#3", exact=True)
    reference.hover()
    assert_lit(laptop, in_the_editor(laptop, moved[3], size))
    # Chosen, the reference's list closes under the pointer: its light goes with it.
    reference.click()
    laptop.wait_for_function(
        "document.querySelector('#fo1-free textarea').value.includes('<region3>')"
    )
    assert spots(laptop) == []
    laptop.close()


def test_every_region_is_picked_at_once_and_none_again(page, app_url) -> None:
    """Asking about all 24 coins took 23 more clicks: the picker's "select all" box picks every
    region the model reads (it is named for screen readers), and clears them again."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    open_example(laptop, "Coins: find the others like #0", "24 boxes")
    every = laptop.get_by_label("Pick every region (or none)")
    every.click()
    laptop.wait_for_function(
        f"document.querySelectorAll('{REGION_OPTIONS} input:checked').length == 24"
    )
    assert accessibility_problems(laptop) == []
    set_number(laptop, "fo1-max-tokens", 16)
    laptop.locator("#fo1-run").click()
    laptop.locator("#fo1-status", has_text="token limit").wait_for()
    asked = laptop.locator("#fo1-answer .fo1-asked").inner_text()
    assert asked.endswith(", ".join(f"#{i}" for i in range(24))), asked
    every.click()
    laptop.wait_for_function(f"!document.querySelector('{REGION_OPTIONS} input:checked')")
    laptop.close()


def test_with_a_hundred_boxes_the_pickers_last_option_lights_its_box_in_view(page, app_url) -> None:
    """A hundred boxes made the picker taller than the window: pointing at #99 scrolled the
    editor out of sight, the box lit where no one saw it. The picker scrolls within itself."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    open_example(laptop, "Coffee: detect cup and spoon")
    grid = [[(i % 10) * 58 + 5, (i // 10) * 38 + 5] for i in range(100)]
    boxes = [[x, y, x + 50, y + 30] for x, y in grid]
    set_boxes_as_numbers(laptop, boxes)
    wait_for_note(laptop, "100 boxes")
    choose_task(laptop, "Brief region caption")
    laptop.locator(REGION_OPTIONS, has_text="#99").hover()
    place = in_the_editor(laptop, boxes[99], (600, 400))
    assert_lit(laptop, place)
    assert 0 <= place["y"] and place["y"] + place["height"] <= 1000, place
    laptop.close()


def test_on_a_turned_image_the_pickers_options_light_their_boxes(page, app_url) -> None:
    """Turned by the editor's buttons, a quarter at a time, the boxes turn with the image: an
    option lights its box where it stands on the turned image (the picker lit nothing there)."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    open_example(laptop, "Coffee: detect cup and spoon")
    choose_task(laptop, "Brief region caption")
    laptop.get_by_text("Boxes as numbers", exact=True).click()
    # Box #0, 170, 10, 420, 200 on the 600×400 photo, turned clockwise: x' = h - y, y' = x.
    turned = [("200, 170, 390, 420", (400, 600)), ("180, 200, 430, 390", (600, 400))]
    for first, size in [*turned, ("10, 180, 200, 430", (400, 600))]:
        laptop.get_by_label("Rotate clockwise").click()
        wait_for_first_box(laptop, first)
        settled_frame(laptop)
        numbers = laptop.locator("#fo1-box-numbers textarea").input_value()
        boxes = [[float(v) for v in line.split(", ")] for line in numbers.splitlines()]
        laptop.locator(REGION_OPTIONS, has_text="#1").hover()
        assert_lit(laptop, in_the_editor(laptop, boxes[1], size))
        laptop.mouse.move(5, 5)
    laptop.close()


def test_a_region_reference_is_inserted_from_the_keyboard(page, app_url) -> None:
    """The references' list gone through with the arrows lights each box in turn, though the
    page moves under a resting pointer as the list opens; Enter inserts the reference (Gradio
    sends no select for it: nothing was inserted) and gives the prompt back its caret."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    boxes, size = astronaut_opened(laptop)
    choose_task(laptop, "Free prompt")
    prompt = laptop.locator("#fo1-free textarea")
    prompt.fill("Is held by?")
    prompt.evaluate("box => box.setSelectionRange(3, 3)")
    laptop.get_by_label("Insert a region reference").focus()
    for key, lit in (("ArrowDown", 0), ("ArrowDown", 1), ("ArrowUp", 0), ("ArrowDown", 1)):
        laptop.keyboard.press(key)
        laptop.wait_for_function(
            f"document.querySelector('#fo1-insert .active')?.textContent.includes('#{lit}')"
        )
        settled_frame(laptop)  # the page scrolls the highlight into view, smoothly
        assert_lit(laptop, in_the_editor(laptop, boxes[lit], size))
    laptop.keyboard.press("Enter")
    laptop.wait_for_function("document.activeElement.closest('#fo1-free') !== null")
    assert prompt.input_value() == "Is <region1> held by?"
    assert spots(laptop) == []
    laptop.keyboard.type("the cat ")
    assert prompt.input_value() == "Is <region1> the cat held by?"
    laptop.close()


def test_a_small_images_region_options_light_their_boxes(page, app_url) -> None:
    """The Coins photo (384×303) is shown as an enlarged copy, its boxes enlarged with it, which
    the editor holds unscaled until it first sends them back: an option lights its own box all
    the same, before a box is moved and after."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    coins = next(e for e in load_examples() if e.title.startswith("Coins"))
    open_example(laptop, coins.title, f"{len(coins.boxes)} boxes")
    with Image.open(coins.image) as image:
        boxes, size = [list(b) for b in coins.boxes], image.size
    option = laptop.locator(REGION_OPTIONS, has_text="#8")
    option.hover()
    assert_lit(laptop, in_the_editor(laptop, boxes[8], size))
    (x1, y1, x2, y2), frame = boxes[0], settled_frame(laptop)
    middle = canvas_point(laptop, (x1 + x2) / 2 / size[0], (y1 + y2) / 2 / size[1], size)
    drag(laptop, middle, (middle[0], middle[1] + frame["height"] * 10 / size[1]))
    laptop.get_by_text("Boxes as numbers", exact=True).click()
    wait_for_first_box(laptop, f"{x1:g}, {y1 + 10:g}, {x2:g}, {y2 + 10:g}")
    option.hover()
    assert_lit(laptop, in_the_editor(laptop, boxes[8], size))
    laptop.close()


def test_on_a_phone_a_tapped_region_option_lights_its_box(page, app_url) -> None:
    """No pointer rests on a phone's picker: the tap that ticks a region lights its box, until
    the next tap elsewhere."""
    phone = page.context.browser.new_page(**PHONE)
    phone.goto(app_url)
    boxes, size = astronaut_opened(phone)
    option = phone.locator(REGION_OPTIONS, has_text="#2")
    option.scroll_into_view_if_needed()
    option.tap()
    assert option.locator("input").is_checked()
    assert_lit(phone, in_the_editor(phone, boxes[2], size))
    shot(phone, "36-phone-a-region-option-tapped", full_page=False)
    phone.locator("#fo1-box-note").tap()
    assert spots(phone) == []
    phone.close()


def test_pointing_at_a_box_on_the_result_shows_where_the_answer_names_it(page, app_url) -> None:
    """The other way round: a box the answer names, pointed at on the result image, is lit
    there and in the editor, and so are its chips in the answer; a box the answer does not
    name lights nothing; a click keeps it lit."""
    laptop = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    laptop.goto(app_url)
    boxes, size = coins_answered(laptop)

    def point_at(region: int) -> None:
        settled_frame(laptop, "#fo1-result img")
        place = on_the_result(laptop, boxes[region], size)
        laptop.mouse.move(place["x"] + place["width"] / 2, place["y"] + place["height"] / 2)

    def chips_lit() -> list[str]:
        return laptop.locator("#fo1-answer .fo1-answer .fo1-chip.fo1-chip-lit").all_inner_texts()

    point_at(2)
    assert_lit(laptop, *on_both(laptop, boxes[2], size))
    assert chips_lit() == ["#2"]
    shot(laptop, "34-a-box-pointed-at-on-the-result", full_page=False)
    point_at(5)
    assert spots(laptop) == [] and chips_lit() == []
    point_at(0)
    laptop.mouse.down()
    laptop.mouse.up()
    laptop.mouse.move(5, 5)
    assert_lit(laptop, *on_both(laptop, boxes[0], size))
    assert chips_lit() == ["#0"]
    laptop.close()
