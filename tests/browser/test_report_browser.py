"""The downloaded HTML report in headless Chromium: pointing at a region's chip lights its box on
both of the report's images by style alone (the report runs no script)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fo1_core.answers import parse_answer, to_detections
from tests.browser.test_app_browser import ARTIFACTS, CHROMIUM
from ui.report import Result, report_html

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser]

SIZE = (600, 400)
BOXES = [[30, 40, 200, 160], [300, 200, 560, 380]]
SHOWN_SCALE = 2
"""The drawings are twice the image's size, as a small image's are: the boxes are placed by
their share of the image, not its pixels."""


def test_a_region_pointed_at_in_the_report_is_lit_on_its_images(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    drawing = np.full((SIZE[1] * SHOWN_SCALE, SIZE[0] * SHOWN_SCALE, 3), 90, dtype=np.uint8)
    answer = parse_answer("<ground>cup</ground><objects><region1></objects>", len(BOXES))
    detections = to_detections(answer, np.array(BOXES, dtype=float))
    result = Result(drawing, "cups.jpg", drawing, BOXES, "Detection", "cup", answer, detections, "")
    result.image_size = SIZE
    report = tmp_path / "cups-fo1-report.html"
    report.write_text(report_html(result), encoding="utf-8")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(report.as_uri())
        assert page.locator(".fo1-spot:visible").count() == 0
        page.locator(".fo1-answer .fo1-chip[data-region='1']").hover()
        lit = page.locator(".fo1-spot:visible")
        assert lit.count() == 2  # on the answer's drawing and on the numbered boxes
        for spot, image in zip(lit.all(), page.locator(".fo1-figure img").all(), strict=True):
            shown, place = image.bounding_box(), spot.bounding_box()
            scale = shown["width"] / SIZE[0]
            x1, y1, x2, y2 = BOXES[1]
            expected = [shown["x"] + x1 * scale, shown["y"] + y1 * scale]
            expected += [(x2 - x1) * scale, (y2 - y1) * scale]
            got = [place["x"], place["y"], place["width"], place["height"]]
            assert np.allclose(got, expected, atol=1.5)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-a-region-pointed-at.png"), full_page=True)
        browser.close()
