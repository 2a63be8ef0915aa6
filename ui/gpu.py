"""ZeroGPU: the functions that run a model ask `spaces.GPU` for a slot sized to the request.

Off Spaces `spaces.GPU` returns the function unchanged, so the same code runs on any machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import spaces
from spaces.config import Config

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


def duration_for(max_new_tokens: int) -> int:
    """Seconds of GPU to ask for: enough for `max_new_tokens`, never the whole quota."""
    return min(MAX_SECONDS, BASE_SECONDS + int(max_new_tokens) // TOKENS_PER_SECOND)


def on_gpu(function: F, max_new_tokens: Callable[..., int] | None = None) -> F:
    """`function` wrapped by `spaces.GPU`; the duration reads `max_new_tokens(*args)` if given."""
    if max_new_tokens is None:
        return spaces.GPU(duration=BASE_SECONDS)(function)

    def duration(*args, **kwargs) -> int:
        return duration_for(max_new_tokens(*args, **kwargs))

    return spaces.GPU(duration=duration)(function)
