"""The page with the app's waiting line full (`--queue-size`).

Gradio refuses every queued event once the line is full ("This application is currently busy").
Stop goes past the queue, or an answer would run on to its token limit, holding the model for
everyone waiting; so do the page's events that never wait for the model (an example, a box, a
task), or a visitor could not even get a question ready while the Space is busy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status

from tests.browser.app_server import REPO, running_app
from tests.browser.test_app_browser import (
    choose_task,
    delete_coffee_cup_box,
    open_example,
    opened_page,
    run_detection,
    shot,
    status_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUEUE_SIZE = 2


@pytest.fixture(scope="module")
def app_url(endless_checkpoint: Path) -> Iterator[str]:
    options = ["--queue-size", str(QUEUE_SIZE), "--token-limit", "8192", "--proposer", "offline"]
    with running_app(endless_checkpoint, *options) as url:
        yield url


@contextmanager
def full_waiting_line(app_url: str) -> Iterator[None]:
    """API questions waiting for the model until the line is full (one more is refused)."""
    client = Client(app_url, verbose=False)
    image = handle_file(str(REPO / "examples" / "coffee.jpg"))
    waiting = []
    for _ in range(QUEUE_SIZE + 1):
        job = client.submit(image, [[10, 10, 90, 90]], "OD_template", "cup", api_name="/answer")
        deadline = time.monotonic() + 20
        while job.status().code not in (Status.IN_QUEUE, Status.FINISHED):
            assert time.monotonic() < deadline, job.status()
            time.sleep(0.1)
        waiting.append(job)
    assert waiting[-1].status().success is False, waiting[-1].status()
    assert all(job.status().code == Status.IN_QUEUE for job in waiting[:-1])
    try:
        yield
    finally:
        for job in waiting:
            job.cancel()


@pytest.fixture(scope="module")
def answering_page(app_url: str) -> Iterator:
    """A page whose answer holds the model, with the waiting line behind it full."""
    with opened_page(app_url) as page:
        open_example(page, "Coffee: detect cup and spoon")
        run_detection(page, "red circle", max_tokens=8192)
        page.locator("#fo1-answer", has_text="many regions").wait_for()
        with full_waiting_line(app_url):
            yield page


def test_a_question_is_got_ready_while_the_waiting_line_is_full(
    app_url: str, answering_page
) -> None:
    # Another visitor: a second page of the same browser (Playwright runs one per thread).
    page = answering_page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.wait_for_selector("#fo1-editor")
    open_example(page, "Coffee: detect cup and spoon")
    choose_task(page, "Detection")
    page.get_by_label("Categories").fill("spoon")
    delete_coffee_cup_box(page)
    assert page.get_by_text("currently busy").count() == 0
    page.locator("#fo1-run").click()  # the question itself must wait: it is refused
    page.get_by_text("currently busy").first.wait_for()
    shot(page, "queue-full-ready")
    assert "2 boxes" in page.locator("#fo1-box-note").inner_text()
    assert "Waiting" not in status_text(page), status_text(page)
    # Run is itself again: a click now asks, not kept for an answer that never comes.
    page.wait_for_function("!document.body.classList.contains('fo1-busy')")
    page.close()


def test_stop_stops_the_answer_while_the_waiting_line_is_full(answering_page) -> None:
    answering_page.locator("#fo1-stop").click()
    answering_page.locator("#fo1-status", has_text="Stopped by you").wait_for(timeout=15_000)
    shot(answering_page, "queue-full-stopped")
