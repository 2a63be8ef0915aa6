"""The bridge between `generate()` in a worker thread and a caller reading text as it comes."""

from __future__ import annotations

import queue
import threading
import time

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

DONE = object()
"""Put on the queue after the last piece of text."""


class TokenQueue(BaseStreamer):
    """Receives generated ids from `generate()` and queues the new text after each token."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.events: queue.Queue = queue.Queue()
        self.ids: list[int] = []
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._sent = 0
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first pushes the prompt itself
            self._prompt_seen = True
            return
        self.ids += value.flatten().tolist()  # waits for the token: times it, on a GPU too
        self.last_token_at = time.perf_counter()
        self.first_token_at = self.first_token_at or self.last_token_at
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        # Hold back a split multi-byte character until its remaining bytes arrive.
        if not text.endswith("\ufffd"):
            self._send(text)

    def end(self) -> None:
        self._send(self.tokenizer.decode(self.ids, skip_special_tokens=False))

    def _send(self, text: str) -> None:
        if len(text) > self._sent:
            self.events.put(text[self._sent :])
            self._sent = len(text)


class Cancelled(StoppingCriteria):
    """Stops generation after the current token once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), device=input_ids.device)
