"""What every benchmark prints: a Markdown table (pasteable into the README) and peak memory."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import torch

from detect_tools.outputs import write_atomically


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


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


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on a CUDA device, else this process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
