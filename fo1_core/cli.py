"""Argument types shared by the command lines: `python -m fo1_core` and its `evaluate`."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """A whole number of at least 1 (a count of tokens, images or categories)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return number
