"""The waiting line for the model: bounded, without refusing the page's other events.

Gradio's `max_size` counts every queued event and, once reached, refuses each new one as busy:
with the line for the model full, a visitor could not load an example, draw a box or pick a task
while waiting for it to clear. Here the bound is put on the events that run a model (those of
the `MODEL` concurrency group) only; the others, which never wait for it, always go in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import gradio as gr
from gradio.queueing import Queue

MODEL = "gpu"
"""One concurrency group for everything that runs a model: they share one GPU."""

_LINE_SIZE = "fo1_model_line_size"


def queue_with_a_model_line(demo: gr.Blocks, concurrency: int, size: int | None) -> None:
    """`demo.queue`: `concurrency` events at once in each group unless set per event, and at
    most `size` events waiting for the model (None: no bound)."""
    if not getattr(Queue.push, "bounds_the_model_line", False):
        Queue.push = _refusing_only_model_events(Queue.push)
    demo.queue(default_concurrency_limit=concurrency, max_size=None)
    setattr(demo, _LINE_SIZE, size)


def _refusing_only_model_events(push: Callable) -> Callable:
    # Depends on Gradio 6.31's `Queue.push` (its arguments and its "queue_full" reply, which the
    # page shows as "This application is currently busy"), `Queue.event_queue_per_concurrency_id`
    # and `Blocks.fns`.
    @functools.wraps(push)
    async def bounded(self: Queue, body, request, username):
        size = getattr(self.blocks, _LINE_SIZE, None)
        fn = self.blocks.fns.get(body.fn_index) if body.fn_index is not None else None
        if size is not None and fn is not None and fn.concurrency_id == MODEL:
            line = self.event_queue_per_concurrency_id.get(MODEL)
            if line is not None and len(line.queue) >= size:
                return False, f"Queue is full. Max size is {size}.", "queue_full"
        return await push(self, body, request, username)

    bounded.bounds_the_model_line = True
    return bounded
