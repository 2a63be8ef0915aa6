"""Takes `assets/screenshot.jpg`, the README's picture of the page answering the coins example.

No hub is reachable where this project is built, so the answer comes from a tiny checkpoint
rigged to write it (`tests/rigged.py`): the page, the parser and the drawing are the real ones,
the coins named are not the real model's choice. Needs the test suite's installs (Chromium,
Playwright). Run from the repository root:

    PYTHONPATH=. .venv/bin/python scripts/readme_screenshot.py
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from tests.browser.app_server import running_app
from tests.rigged import make_rigged_checkpoint

OUT = Path(__file__).resolve().parents[1] / "assets" / "screenshot.jpg"
ANSWER = "<ground>coin</ground><objects><region1><region5><region9><region14><region20></objects>"
EXAMPLE = "Coins: find the others like #0"
WINDOW = {"width": 1280, "height": 900}
FOOTER_PX = 70  # Gradio's "Use via API · Built with Gradio" line, cut off
BOXES_SET = "#fo1-box-note:has-text('24 boxes')"
ANSWERED = "#fo1-status:has-text('Done')"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_rigged_checkpoint(Path(folder) / "coins", ANSWER)
        with running_app(checkpoint, "--proposer", "offline") as url, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            page = browser.new_page(viewport=WINDOW)
            page.goto(url)
            page.locator("#fo1-gallery").get_by_text(EXAMPLE).click()
            page.wait_for_selector(BOXES_SET)
            page.locator("#fo1-run").click()
            page.wait_for_selector(ANSWERED, timeout=120_000)
            page.mouse.move(0, 0)  # no box lit by the pointer
            picture = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
            browser.close()
    picture.crop((0, 0, picture.width, picture.height - FOOTER_PX)).save(
        OUT, quality=80, optimize=True, progressive=True
    )


if __name__ == "__main__":
    main()
