"""Memory on this host: how much a process can still take, and how much a checkpoint's weights
will take, read before loading them. A process that runs out of memory is killed without a
word, every user's page of the app with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

MEMORY_TO_SPARE = 2 << 30
"""Memory a model loaded on a CPU must leave free: to run it (its activations, its caches of
recent inputs) and the models beside it."""
MEMINFO = Path("/proc/meminfo")
CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def leaves_room(size: int, free: int) -> bool:
    """Whether taking `size` bytes of the `free` ones still leaves `MEMORY_TO_SPARE`."""
    return size + MEMORY_TO_SPARE <= free


def gigabytes(size: int) -> str:
    """`size` bytes as messages write it: "8.3 GB"."""
    return f"{size / 1e9:.1f} GB"


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
        kib = value.split()[:1]
        if name == "MemAvailable" and kib and kib[0].isdigit():
            return int(kib[0]) * 1024
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


HEADER_LIMIT = 100 << 20
"""The largest safetensors header read (a 3B model's is under 200 KB): a damaged file's first
bytes could name any size."""


def safetensors_numel(file: Path) -> int:
    """How many numbers a safetensors file holds, from its header alone (no torch, no reading of
    the weights). A `ValueError` for a file that is not safetensors; `OSError` as `open` gives."""
    with file.open("rb") as stream:
        size = int.from_bytes(stream.read(8), "little")
        if not 0 < size <= HEADER_LIMIT:
            raise ValueError(f"a header of {size} bytes")
        header = json.loads(stream.read(size))
    try:
        return sum(
            math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__"
        )
    except (AttributeError, KeyError, TypeError) as error:
        raise ValueError(f"an unreadable header ({error})") from error
