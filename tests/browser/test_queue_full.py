"""The page's Stop with the app's waiting line full (`--queue-size`): it still stops the answer.

Gradio refuses every queued event once the line is full, Stop included ("This application is
currently busy"): an answer then ran on to its token limit, holding the model for everyone
waiting. Stop goes past the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status

from tests.browser.app_server import REPO, running_app
from tests.browser.test_app_browser import open_example, opened_page, run_detection, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUEUE_SIZE = 2


@pytest.fixture(scope="module")
def app_url(endless_checkpoint: Path) -> Iterator[str]:
    options = ["--queue-size", str(QUEUE_SIZE), "--token-limit", "8192", "--proposer", "offline"]
    with running_app(endless_checkpoint, *options) as url:
        yield url


def test_stop_stops_the_answer_while_the_waiting_line_is_full(app_url: str) -> None:
    with opened_page(app_url) as page:
        open_example(page, "Coffee: detect cup and spoon")
        run_detection(page, "red circle", max_tokens=8192)
        page.locator("#fo1-answer", has_text="many regions").wait_for()
        client = Client(app_url, verbose=False)
        image = handle_file(str(REPO / "examples" / "coffee.jpg"))
        waiting = []
        for _ in range(QUEUE_SIZE + 1):  # the last is refused: the line is full
            job = client.submit(image, [[10, 10, 90, 90]], "OD_template", "cup", api_name="/answer")
            deadline = time.monotonic() + 20
            while job.status().code not in (Status.IN_QUEUE, Status.FINISHED):
                assert time.monotonic() < deadline, job.status()
                time.sleep(0.1)
            waiting.append(job)
        assert waiting[-1].status().success is False, waiting[-1].status()
        assert all(job.status().code == Status.IN_QUEUE for job in waiting[:-1])
        page.locator("#fo1-stop").click()
        page.locator("#fo1-status", has_text="Stopped by you").wait_for(timeout=15_000)
        shot(page, "queue-full-stopped")
        for job in waiting:
            job.cancel()
