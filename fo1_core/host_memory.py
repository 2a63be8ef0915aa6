"""What a long-running process keeps of memory it no longer needs, on the host: the CPU
kernels compiled for every tensor shape it met, and heap pages freed between live buffers.
A server meets images of every size, so without these limits it grows with each new size."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

KERNEL_CACHE_LIMITS = {
    # oneDNN compiles a kernel per tensor shape and keeps 1 024 of them; ideep keeps a
    # convolution per shape too. Every image size brings new shapes and a server meets sizes
    # without end: on a CPU these kernels were 500 MB of what one grew over 100 image sizes.
    # 128 still holds every decode step's kernels (a limit near 0 compiles them again for each
    # token, at half the decoding speed); a new image's prefill compiles its own at any limit.
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "128",
    "LRU_CACHE_CAPACITY": "16",
}


def limit_kernel_caches() -> None:
    """Sets `KERNEL_CACHE_LIMITS` where the environment does not say otherwise. They are read
    when the first kernel is made: call it before any model runs."""
    for name, limit in KERNEL_CACHE_LIMITS.items():
        os.environ.setdefault(name, limit)


def _heap_trimmer() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`; None with another C library (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return None


_malloc_trim = _heap_trimmer()


def trim_heap() -> None:
    """Hands freed heap pages back to the system (glibc only; nothing elsewhere). Images of many
    sizes leave freed buffers of many sizes between live ones, and glibc keeps those pages:
    about 1 MB more per new image size on a CPU. It takes a few milliseconds."""
    if _malloc_trim is not None:
        _malloc_trim(0)
