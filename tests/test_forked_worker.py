"""ZeroGPU runs GPU functions in a worker forked from the server process (spaces 0.51): the
arguments and every yielded value cross a pipe, each call iterates on a fresh thread of the worker,
Stop closes that iteration, and the worker is reused while its GPU stays idle. These tests run the
pipeline the same way on the CPU."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from fo1_core.encoding import Reused
from fo1_core.session import FO1Pipeline, Generation, load

IMAGE = Image.new("RGB", (320, 240), (10, 200, 30))
BOXES = [[10, 10, 100, 100], [50, 60, 200, 180], [150, 20, 300, 230]]
TOKENS = 24
FORK = multiprocessing.get_context("fork")


def _iterate(pipeline: FO1Pipeline, request, stop_after: int | None, events) -> None:
    """One call: its events go back; after `stop_after` pieces the stream is closed (Stop)."""
    stream = pipeline.stream(request, TOKENS if stop_after is None else 100_000)
    for count, event in enumerate(stream):
        if count == stop_after:
            stream.close()
            break
        events.put(event)


def _serve(pipeline: FO1Pipeline, calls, events) -> None:
    """The worker: each call on a fresh thread, then `None` to end the call's events."""
    while (call := calls.get()) is not None:
        with ThreadPoolExecutor() as executor:
            executor.submit(_iterate, pipeline, *call, events).result()
        events.put(None)


class ForkedWorker:
    def __init__(self, pipeline: FO1Pipeline) -> None:
        self.calls, self.events = FORK.Queue(), FORK.Queue()
        self.process = FORK.Process(
            target=_serve, args=(pipeline, self.calls, self.events), daemon=True
        )

    def __enter__(self) -> ForkedWorker:
        self.process.start()
        return self

    def __exit__(self, *exc) -> None:
        self.calls.put(None)
        self.process.join(timeout=60)
        assert self.process.exitcode == 0

    def call(self, request, stop_after: int | None = None):
        """(text pieces, the `Generation` unless stopped)."""
        self.calls.put((request, stop_after))
        pieces, answer = [], None
        while (event := self.events.get(timeout=120)) is not None:
            if isinstance(event, Generation):
                answer = event
            else:
                pieces.append(event)
        return pieces, answer


def test_a_forked_worker_streams_the_same_answers_and_reuses_its_caches(
    pipeline: FO1Pipeline,
) -> None:
    first = pipeline.prepare(IMAGE, BOXES, "free", "What is in <region1>?")
    follow_up = pipeline.prepare(IMAGE, BOXES, "Brief_Region_Caption_template", "<region2>")
    expected = [pipeline.generate(r, TOKENS).token_ids for r in (first, follow_up)]
    pipeline.encoder.clear()  # the server process has used the model; the worker starts cold
    with ForkedWorker(pipeline) as worker:
        pieces, answer = worker.call(first)
        assert answer.token_ids == expected[0]
        assert "".join(pieces).strip() == answer.text
        assert answer.reused == Reused()
        _, answer = worker.call(follow_up)
        assert answer.token_ids == expected[1]
        assert answer.reused.prefix  # the follow-up prefilled only its own words


@pytest.mark.slow
def test_stop_in_a_forked_worker_frees_it_for_the_next_call(endless_checkpoint: Path) -> None:
    pipeline = load(endless_checkpoint, device="cpu")
    request = pipeline.prepare(IMAGE, BOXES, "OD_template", "red circle")
    with ForkedWorker(pipeline) as worker:
        pieces, answer = worker.call(request, stop_after=5)
        assert (len(pieces), answer) == (5, None)
        _, answer = worker.call(request)  # would wait for 100 000 tokens if Stop had not
        assert (len(answer.token_ids), answer.stop_reason) == (TOKENS, "max_new_tokens")
