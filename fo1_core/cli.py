"""Argument types shared by the command lines: `python -m fo1_core`, its `evaluate`, `app.py`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from detect_tools.images import refuse_url


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`, when given)."""
    wanted = f"at least {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {wanted}, got {text!r}")
        return number

    return parse


positive = whole_number(1)
"""A count of at least 1 (tokens, images, categories)."""


def local_path(text: str) -> Path:
    """An argparse type for a file or folder to read: a URL is refused before anything loads."""
    refuse_url(text, argparse.ArgumentTypeError)
    return Path(text)
