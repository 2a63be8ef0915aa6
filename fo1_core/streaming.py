"""The bridge between `generate()` in a worker thread and a caller reading text as it comes."""

from __future__ import annotations

import queue
import threading
import time
from functools import partial

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

DONE = object()
"""Put on the queue after the last piece of text."""


class TokenQueue(BaseStreamer):
    """Receives generated ids from `generate()` and queues the new text after each token.

    Each token's text is the difference between decoding the last few ids with and without it, so
    a token costs the same at the end of a long answer as at its start; the earlier id kept as
    context lets tokenizers that drop a leading space at the start of a decode spell it right.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.events: queue.Queue = queue.Queue()
        self.ids: list[int] = []
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._context = 0  # ids[_context:_sent_up_to] decode to text already sent: the context
        self._sent_up_to = 0
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first pushes the prompt itself
            self._prompt_seen = True
            return
        self.ids += value.flatten().tolist()  # waits for the token: times it, on a GPU too
        self.last_token_at = time.perf_counter()
        self.first_token_at = self.first_token_at or self.last_token_at
        self._send(final=False)

    def restart(self) -> None:
        """Readies the queue for generate() to run the question again after a run that failed
        before its first token: the next ids it is given are the prompt again."""
        self._prompt_seen = False

    def end(self) -> None:
        self._send(final=True)

    def _send(self, final: bool) -> None:
        decode = partial(self.tokenizer.decode, skip_special_tokens=False)
        sent = decode(self.ids[self._context : self._sent_up_to])
        text = decode(self.ids[self._context :])
        # Hold back a split multi-byte character until its remaining bytes arrive.
        if len(text) > len(sent) and (final or not text.endswith("\ufffd")):
            self.events.put(text[len(sent) :])
            self._context, self._sent_up_to = self._sent_up_to, len(self.ids)


class Cancelled(StoppingCriteria):
    """Stops generation after the current token once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), device=input_ids.device)
