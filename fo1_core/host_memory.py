"""What a long-running process keeps of memory it no longer needs, on the host: the CPU
kernels compiled for every tensor shape it met, and heap pages freed between live buffers.
A server meets images of every size, so without these limits it grows with each new size."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

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


MEMINFO = Path("/proc/meminfo")
CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def available_memory() -> int | None:
    """Bytes of memory this process can still take, or None where that cannot be read (not
    Linux). The system's available memory, or less where the container's limit leaves less: a
    Space's container sees its host's memory in `/proc/meminfo`, its own limit only in its
    cgroup."""
    free = [
        _meminfo_available(),
        _room(CGROUP_V2 / "memory.max", CGROUP_V2 / "memory.current"),
        _room(CGROUP_V1 / "memory.limit_in_bytes", CGROUP_V1 / "memory.usage_in_bytes"),
    ]
    known = [value for value in free if value is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        lines = MEMINFO.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name == "MemAvailable" and value.split()[0].isdigit():
            return int(value.split()[0]) * 1024
    return None


def _room(limit_file: Path, usage_file: Path) -> int | None:
    """A cgroup's limit less its usage; None without a limit ("max", or v1's page-rounded
    `LONG_MAX` meaning none) or where the files cannot be read."""
    try:
        limit, usage = limit_file.read_text().strip(), usage_file.read_text().strip()
    except OSError:
        return None
    if not (limit.isdigit() and usage.isdigit()) or int(limit) >= 1 << 62:
        return None
    return max(0, int(limit) - int(usage))
