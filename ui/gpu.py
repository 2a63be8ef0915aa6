"""ZeroGPU: the functions that run a model ask `spaces.GPU` for a slot sized to the request.

Off Spaces `spaces.GPU` returns the function unchanged, so the same code runs on any machine.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import re
from collections.abc import Callable
from typing import NoReturn, TypeVar, cast

import gradio as gr
import spaces
from spaces.config import Config

from detect_tools import ProposerError
from fo1_core.errors import FO1Error

F = TypeVar("F", bound=Callable)

ON_ZERO_GPU: bool = Config.zero_gpu
"""On ZeroGPU the wrapped function runs in a forked worker: its arguments must pickle, and a
`threading.Event` set in the server process never reaches it."""

BASE_SECONDS = 20
"""Image encoding, prefill and drawing, with room for a cold start."""

TOKENS_PER_SECOND = 10
"""The 3B model's uncompiled decoding (ZeroGPU's) as measured on an H100 with 100 boxes in the
prompt (`bench.space_request`): bound by the CPU launching kernels, not by the GPU. A slot sized
for a faster guess would be cut off in the middle of a long answer."""

MAX_SECONDS = 180

ZERO_GPU_MAX_NEW_TOKENS = 512
"""The answer length the page and the API start with on ZeroGPU: its slot (`duration_for`,
71 s, scaled by 1.5 where `spaces` runs on a slower card) fits the daily quota of a visitor who
is not logged in, 2 minutes. At 1024 tokens the slot asked for was 122 s, more than that whole
quota: every such visitor's first question was refused before it was asked."""

TOKENS_STEP = 16
"""The page's answer-length slider moves by this many tokens."""

_QUOTA_LEFT = re.compile(r"\((\d+)s requested vs\. (\d+)s left\)")
"""How `spaces` (0.51) words a visitor's quota too short for the slot asked for."""

_OVER_THE_MAXIMUM = "is larger than the maximum allowed"


def duration_for(max_new_tokens: int) -> int:
    """Seconds of GPU to ask for: enough for `max_new_tokens`, never the whole quota."""
    return min(MAX_SECONDS, BASE_SECONDS + int(max_new_tokens) // TOKENS_PER_SECOND)


def on_gpu(function: F, max_new_tokens: Callable[..., int] | None = None) -> F:
    """`function` wrapped by `spaces.GPU`; the duration reads `max_new_tokens(*args)` if given.
    On ZeroGPU an error it raises in the slot's worker reaches the caller as it was raised
    (`SlotFailure`)."""
    if ON_ZERO_GPU:
        function = _with_errors(function, SlotFailure.of)
    if max_new_tokens is None:
        wrapped = spaces.GPU(duration=BASE_SECONDS)(function)
    else:

        def duration(*args, **kwargs) -> int:
            return duration_for(max_new_tokens(*args, **kwargs))

        wrapped = spaces.GPU(duration=duration)(function)
    return _with_errors(wrapped, SlotFailure.raised) if ON_ZERO_GPU else wrapped


class SlotFailure(gr.Error):
    """An error raised in a ZeroGPU slot, on its way from the worker to the server: `spaces`
    hands over a `gr.Error` whole and any other error as its class name alone, so that a
    proposer's missing folder reached the visitor as "ProposerError"."""

    def __init__(self, kind: str, message: str, fault: bool) -> None:
        # `spaces` prints the worker's traceback of a fault, not of a visitor's mistake.
        super().__init__(message, print_exception=fault)
        self.kind = kind

    def __reduce__(self):  # pickled across the process boundary, rebuilt from all three
        return SlotFailure, (self.kind, self.message, self.print_exception)

    @classmethod
    def of(cls, error: Exception) -> Exception:
        """`error` as it leaves the worker: a `gr.Error` (ZeroGPU's own) as it is."""
        if isinstance(error, gr.Error):
            return error
        fault = not isinstance(error, FO1Error | ProposerError)
        return cls(type(error).__name__, str(error), fault)

    @staticmethod
    def raised(error: Exception) -> Exception:
        """`error` as the server raises it: a `SlotFailure` as the error it stands for, where
        that is one of the project's or Python's own (a `RuntimeError` naming it else)."""
        if not isinstance(error, SlotFailure):
            return error
        kinds = {"FO1Error": FO1Error, "ProposerError": ProposerError}
        kind = kinds.get(error.kind) or getattr(builtins, error.kind, None)
        if isinstance(kind, type) and issubclass(kind, Exception):
            return kind(error.message)
        return RuntimeError(f"{error.kind}: {error.message}")


def _with_errors(function: F, translate: Callable[[Exception], Exception]) -> F:
    """`function` (or generator function), an error it raises replaced by `translate(error)`."""

    def raise_translated(error: Exception) -> NoReturn:
        replacement = translate(error)
        if replacement is error:
            raise error
        raise replacement from error

    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def streamed(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 (`translate` tells which change)
                raise_translated(error)

        return cast(F, streamed)

    @functools.wraps(function)
    def returned(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (`translate` tells which change)
            raise_translated(error)

    return cast(F, returned)


def tokens_within(seconds: float) -> int:
    """The most new tokens, in the slider's steps, whose slot (`duration_for`) lasts `seconds`
    or less (0: none)."""
    tokens = (int(seconds) - BASE_SECONDS) * TOKENS_PER_SECOND
    return max(0, tokens // TOKENS_STEP * TOKENS_STEP)


def slot_refused(message: str, max_new_tokens: int) -> str:
    """ZeroGPU's refusal of a question's slot (`spaces` raises it as a `gr.Error` worded for the
    visitor), with the answer length that would be given one.

    The slot is sized for the longest answer allowed, so a visitor whose quota is short of it
    can still ask for a shorter one: "(122s requested vs. 95s left)" leaves room for 736 tokens
    where 1024 were asked. `spaces` scales the seconds asked for by its own factor, read off the
    two figures."""
    asked = duration_for(max_new_tokens)
    if quota := _QUOTA_LEFT.search(message):
        requested, left = (int(seconds) for seconds in quota.groups())
        fits = tokens_within(left * asked / requested) if requested else 0
        if TOKENS_STEP <= fits < max_new_tokens:
            return f"{message} With Max new tokens at {fits} or fewer, this question fits."
    elif _OVER_THE_MAXIMUM in message and max_new_tokens > TOKENS_STEP:
        return f"{message} Lower Max new tokens: a shorter answer asks for a shorter GPU slot."
    return message
