"""Encoding the image and boxes on screen while the user is still typing the question.

Most of a first question's wait is the image, its regions and the prompt up to the region line
(`FO1Pipeline.encode_ahead`); none of it depends on the question. Done between two box edits,
the question itself only prefills its own words.

An encoding starts only when the generation thread is idle and no proposer is running (`held`:
both want the same cores or GPU, and someone is waiting for the proposals); a question that
comes while one runs waits for it, which mostly costs nothing, as it needs that very work
(another user's image on a shared server is the exception). One slot serves the whole process:
the newest edit, whoever made it, replaces the one still waiting, and the same image and boxes
are not encoded twice in a row (the editor reports each edit twice: once drawn, once renumbered).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from fo1_core.errors import FO1Error
from fo1_core.session import FO1Pipeline
from ui.boxes import Box

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
"""How often a waiting encoding checks whether the model has finished the work before it."""


class EncodeAhead:
    """One pipeline's encoding ahead: `want` never waits, a worker thread does the rest."""

    def __init__(self, pipeline: FO1Pipeline) -> None:
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._wanted: tuple[str, list[Box]] | None = None
        self._last: tuple[str, list[Box]] | None = None  # the newest wanted, encoded or not
        self._worker: threading.Thread | None = None
        self._done = threading.Event()
        self._done.set()
        self._holds = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        """No encoding starts while in this block (one already started finishes)."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1

    def _free(self) -> bool:
        return self._holds == 0 and self.pipeline.idle()

    def want(self, image: str | None, boxes: Sequence[Box]) -> None:
        """Encodes `image` with `boxes` once the model is idle, unless newer ones come first."""
        if image is None:
            return
        wanted = (image, [list(box) for box in boxes])
        with self._lock:
            if wanted == self._last:
                return
            self._wanted = self._last = wanted
            self._done.clear()
            if self._worker is None:
                # A thread only while there is work: an idle one would keep the model alive.
                self._worker = threading.Thread(
                    target=self._serve, name="fo1-encode-ahead", daemon=True
                )
                self._worker.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether everything wanted so far has been encoded (or given up) within `timeout`."""
        return self._done.wait(timeout)

    def _serve(self) -> None:
        while True:
            while not self._free():  # questions and proposals go first
                time.sleep(IDLE_POLL_S)
            with self._lock:
                if self._wanted is None:
                    self._worker = None
                    self._done.set()
                    return
                image, boxes = self._wanted
                self._wanted = None
            try:
                encoded = self.pipeline.encode_ahead(image, boxes)
            except FO1Error:
                continue  # the question will say what is wrong with the image or boxes
            except Exception:
                logger.exception("Preparing an image to encode ahead failed")
                continue
            encoded.wait()
