"""The Reasoning accordion, answered by a checkpoint that reasons: it opens as an answer's
reasoning starts (left closed, a reasoning answer looked like one without). That it opens once
per answer, so a user who closes it meanwhile is left with it closed, is `Handlers.run`'s test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.app_server import running_app
from tests.browser.test_app_browser import open_example, opened_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REASONING = "<think>Mug<region0> leftmost.</think><answer><region2></answer>"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.rigged import make_rigged_checkpoint

    checkpoint = make_rigged_checkpoint(tmp_path_factory.mktemp("reasoning"), REASONING)
    with running_app(checkpoint, "--proposer", "offline") as url:
        yield url


def is_open(page) -> bool:
    return page.locator("#fo1-reasoning").is_visible()


def test_the_reasoning_opens_as_it_starts(app_url: str) -> None:
    with opened_page(app_url) as page:
        open_example(page, "Chelsea: reason about regions")
        assert not page.locator("#fo1-reasoning-box").is_visible()  # none yet to read
        page.locator("#fo1-run").click()
        page.locator("#fo1-status", has_text="Done").wait_for()
        assert is_open(page) and "leftmost" in page.locator("#fo1-reasoning").inner_text()
        # The answer is region 2: region 0, which the reasoning only went through, is not drawn.
        table = page.get_by_role("grid", name="Detections")
        table.get_by_test_id("cell-0-4").get_by_text("290").wait_for()  # box #2's right side
        assert table.get_by_test_id("cell-0-0").inner_text().strip() == "2"
        assert table.get_by_test_id("cell-1-0").count() == 0
        shot(page, "reasoning-opened")
        # Closed by the user, it opens again with the next answer's reasoning.
        page.locator("#fo1-reasoning-box button").first.click()
        page.wait_for_function("!document.querySelector('#fo1-reasoning')?.checkVisibility()")
        assert page.locator("#fo1-reasoning-box").is_visible()  # there to open again
        page.locator("#fo1-run").click()
        page.locator("#fo1-reasoning").wait_for(state="visible")
