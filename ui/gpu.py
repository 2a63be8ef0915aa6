"""ZeroGPU: the functions that run a model ask `spaces.GPU` for a slot sized to the request.

Off Spaces `spaces.GPU` returns the function unchanged, so the same code runs on any machine.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import TypeVar, cast

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
    """`function` wrapped by `spaces.GPU`; the duration reads `max_new_tokens(*args)` if given."""
    if ON_ZERO_GPU:
        function = told_from_the_worker(function)
    if max_new_tokens is None:
        return spaces.GPU(duration=BASE_SECONDS)(function)

    def duration(*args, **kwargs) -> int:
        return duration_for(max_new_tokens(*args, **kwargs))

    return spaces.GPU(duration=duration)(function)


def told_from_the_worker(function: F) -> F:
    """`function` (or generator function), its errors raised as `gr.Error`s that carry their
    messages: `spaces` hands an error from the worker it runs a slot in to the server as its
    class name alone ("ProposerError"), unless it is a `gr.Error`."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def streamed(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:  # noqa: BLE001 (all but gr.Error lose their words)
                raise _visitors_error(error) from error

        return cast(F, streamed)

    @functools.wraps(function)
    def returned(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 (all but gr.Error lose their words)
            raise _visitors_error(error) from error

    return cast(F, returned)


def _visitors_error(error: Exception) -> gr.Error:
    if isinstance(error, FO1Error | ProposerError):  # written for the visitor
        return gr.Error(str(error))
    return gr.Error(f"{type(error).__name__}: {error}")


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
