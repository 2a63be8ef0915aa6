"""What every benchmark prints: a Markdown table (pasteable into docs/speed.md) and peak memory."""

from __future__ import annotations

import json
import re
import resource
from pathlib import Path

import torch

from detect_tools.outputs import write_atomically

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def _cell(value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    # Seconds and megabytes read best to the millisecond; a difference of features under that
    # would show as 0.000.
    return f"{value:.3f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.1e}"


def print_table(rows: list[dict[str, object]]) -> None:
    columns = list(rows[0])
    print(" | ".join(columns))
    print(" | ".join("---" for _ in columns))
    for row in rows:
        print(" | ".join(_cell(row[c]) for c in columns))


def report(rows: list[dict[str, object]], json_path: Path | None) -> None:
    """Prints the rows so far and rewrites `json_path`: a run cut short keeps its finished rows."""
    print_table(rows)
    print(flush=True)
    if json_path:
        write_atomically(json_path, json.dumps(rows, indent=2))


def reset_peak_memory(device: torch.device) -> None:
    """Starts a row's peak memory afresh, so that it is that row's own: CUDA's allocator peak,
    or on Linux the process's peak resident memory (writing 5 to clear_refs resets VmHWM).
    Elsewhere the CPU peak stays that of the whole run so far."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on a CUDA device, else this process's peak resident memory
    since `reset_peak_memory`."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        return int(re.search(r"VmHWM:\s+(\d+) kB", STATUS.read_text())[1]) / 1024
    except (OSError, TypeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
