"""ZeroGPU runs GPU functions in a worker forked from the server process (spaces 0.51): the
arguments and every yielded value cross a pipe, and the worker is reused while its GPU stays
idle. These tests run the pipeline the same way on the CPU."""

from __future__ import annotations

import multiprocessing

from PIL import Image

from fo1_core.session import FO1Pipeline, Generation

IMAGE = Image.new("RGB", (320, 240), (10, 200, 30))
BOXES = [[10, 10, 100, 100], [50, 60, 200, 180], [150, 20, 300, 230]]
FORK = multiprocessing.get_context("fork")


def _serve(pipeline: FO1Pipeline, requests, events) -> None:
    """The worker: streams each request's events back, then its prefix-cache hits."""
    while (request := requests.get()) is not None:
        for event in pipeline.stream(request, 24):
            events.put(event)
        events.put(pipeline.encoder.prefixes.stats().hits)


def _answer(requests, events, request) -> tuple[list[str], Generation, int]:
    requests.put(request)
    pieces = []
    while isinstance(event := events.get(timeout=120), str):
        pieces.append(event)
    return pieces, event, events.get(timeout=120)


def test_a_forked_worker_streams_the_same_answers_and_reuses_its_caches(
    pipeline: FO1Pipeline,
) -> None:
    first = pipeline.prepare(IMAGE, BOXES, "free", "What is in <region1>?")
    follow_up = pipeline.prepare(IMAGE, BOXES, "Brief_Region_Caption_template", "<region2>")
    expected = [pipeline.generate(r, 24).token_ids for r in (first, follow_up)]
    pipeline.encoder.clear()  # the server process has used the model; the worker starts cold
    requests, events = FORK.Queue(), FORK.Queue()
    worker = FORK.Process(target=_serve, args=(pipeline, requests, events), daemon=True)
    worker.start()
    try:
        pieces, answer, hits = _answer(requests, events, first)
        assert answer.token_ids == expected[0]
        assert "".join(pieces).strip() == answer.text
        assert hits == 0
        _, answer, hits = _answer(requests, events, follow_up)
        assert answer.token_ids == expected[1]
        assert hits == 1  # the follow-up prefilled only its own words
    finally:
        requests.put(None)
        worker.join(timeout=60)
    assert worker.exitcode == 0
