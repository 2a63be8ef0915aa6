"""The downloaded HTML report in headless Chromium: pointing at a region's chip lights its box on
both of the report's images, and pointing at a box rings its chips, by style alone (the report
runs no script)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fo1_core.answers import parse_answer, to_detections
from tests.browser.test_app_browser import ARTIFACTS, accessibility_problems, chromium_page
from ui.report import Result, report_html

pytestmark = [pytest.mark.browser]

SIZE = (600, 400)
BOXES = [[30, 40, 200, 160], [300, 200, 560, 380]]
SHOWN_SCALE = 2
"""The drawings are twice the image's size, as a small image's are: the boxes are placed by
their share of the image, not its pixels."""


def lit_spots(page) -> list[dict]:
    """Where the spots shown stand (the others are there, but transparent, to be pointed at)."""
    return page.evaluate(
        "() => [...document.querySelectorAll('.fo1-spot')]"
        ".filter((spot) => getComputedStyle(spot).opacity === '1')"
        ".map((spot) => spot.getBoundingClientRect().toJSON())"
    )


def ringed(page) -> list[str]:
    """The chips ringed as their box is pointed at, where they stand: the answer, a table."""
    return page.evaluate(
        "() => [...document.querySelectorAll('.fo1-chip')]"
        ".filter((chip) => getComputedStyle(chip).outlineStyle === 'solid')"
        ".map((chip) => `${chip.closest('table') ? 'table' : 'answer'} ${chip.textContent}`)"
    )


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A report on two boxes whose answer names the second (#1)."""
    drawing = np.full((SIZE[1] * SHOWN_SCALE, SIZE[0] * SHOWN_SCALE, 3), 90, dtype=np.uint8)
    answer = parse_answer("<ground>cup</ground><objects><region1></objects>", len(BOXES))
    detections = to_detections(answer, np.array(BOXES, dtype=float))
    result = Result(drawing, "cups.jpg", drawing, BOXES, "Detection", "cup", answer, detections, "")
    result.image_size = SIZE
    report = tmp_path / "cups-fo1-report.html"
    report.write_text(report_html(result), encoding="utf-8")
    return report


def place_of(image, box: list[float]) -> list[float]:
    """Where `box` (pixels of the image) stands on the page, as x, y, width, height."""
    shown = image.bounding_box()
    scale = shown["width"] / SIZE[0]
    x1, y1, x2, y2 = box
    return [shown["x"] + x1 * scale, shown["y"] + y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale]


def test_a_region_pointed_at_in_the_report_is_lit_on_its_images(report: Path) -> None:
    with chromium_page(report.as_uri(), 1000, 900) as page:
        assert lit_spots(page) == []
        page.locator(".fo1-answer .fo1-chip[data-region='1']").hover()
        lit = lit_spots(page)
        assert len(lit) == 2  # on the answer's drawing and on the numbered boxes
        for spot, image in zip(lit, page.locator(".fo1-figure img").all(), strict=True):
            got = [spot["x"], spot["y"], spot["width"], spot["height"]]
            assert np.allclose(got, place_of(image, BOXES[1]), atol=1.5)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-a-region-pointed-at.png"), full_page=True)


def test_a_box_pointed_at_in_the_report_rings_its_chips(report: Path) -> None:
    """On the answer's drawing only the boxes it names answer the pointer; on the numbered
    boxes, every box."""
    with chromium_page(report.as_uri(), 1000, 900) as page:
        answer_image, numbered = page.locator(".fo1-figure img").all()
        for image, region, expected in [
            (answer_image, 1, ["answer #1", "table #1", "table #1"]),
            (answer_image, 0, []),
            (numbered, 0, ["table #0"]),
        ]:
            image.scroll_into_view_if_needed()
            x, y, width, height = place_of(image, BOXES[region])
            page.mouse.move(x + width / 2, y + height / 2)
            assert sorted(ringed(page)) == expected
            assert len(lit_spots(page)) == (1 if expected else 0)
        page.screenshot(path=str(ARTIFACTS / "report-a-box-pointed-at.png"), full_page=True)


def test_the_report_reads_whole(report: Path) -> None:
    """axe-core finds nothing to fix in the report: it had no main landmark, which screen readers
    jump to."""
    with chromium_page(report.as_uri(), 1200, 900) as page:
        assert accessibility_problems(page) == []


def test_a_report_of_a_photo_fits_a_phone(tmp_path: Path) -> None:
    """A phone photo's four-digit corners and a long label made the detections table 463 px wide
    and the whole report scroll sideways on a 360 px phone; the table scrolls on its own."""
    size, boxes = (4032, 3024), [[1030.5, 2040.25, 3200.75, 2999.5], [12, 40, 1200.5, 1600]]
    label = "the person in the red jacket by the window"
    answer = parse_answer(f"<ground>{label}</ground><objects><region0><region1></objects>", 2)
    detections = to_detections(answer, np.array(boxes, dtype=float))
    drawing = np.full((size[1] // 8, size[0] // 8, 3), 90, dtype=np.uint8)
    result = Result(
        drawing, "photo.jpg", drawing, boxes, "Detection", label, answer, detections, ""
    )
    result.image_size = size
    report = tmp_path / "photo-fo1-report.html"
    report.write_text(report_html(result), encoding="utf-8")
    with chromium_page(report.as_uri(), 360, 740) as page:
        page.screenshot(path=str(ARTIFACTS / "report-on-a-phone.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
