"""Reading benchmark files: a JSON list or JSON lines, with a few accepted spellings per field."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from fo1_core.cli import parse_json, read_text
from fo1_core.errors import FO1Error

BOX_FIELDS = ("boxes", "bboxes", "bbox_list")
"""Precomputed boxes [[x1, y1, x2, y2], …]: ours, and the official processed files' names."""
SCORE_FIELDS = ("scores", "score_list")


def file_digest(path: Path | None) -> str | None:
    """The SHA-256 of a file's bytes: a run's records hold for that very file only."""
    if path is None:
        return None
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise FO1Error(f"Could not read {path}: {error}") from error


def read_items(path: Path) -> list[dict]:
    """The items of a `.json` file holding a list, or of a JSON-lines file (one item a line)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        items = parse_json(text, str(path))
    else:
        try:
            items = [
                parse_json(line, f"{path} line {number}")
                for number, line in enumerate(text.splitlines(), start=1)
                if line.strip()
            ]
        except FO1Error:
            if _is_one_object(text):  # written over several lines: not JSON lines
                raise FO1Error(
                    f"{path} holds one JSON object: write a list of items, or one item a line."
                ) from None
            raise
    if not all(isinstance(item, dict) for item in items):
        raise FO1Error(f"{path}: every item must be a JSON object.")
    return items


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(parse_json(text, ""), dict)
    except FO1Error:
        return False


def as_whole_number(value: object) -> int | None:
    """`3`, `"3"` or `3.0` as an int; None for anything else (a fraction, text, true/false)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # as it is: float() of an int past 10**308 would overflow
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def pick(item: dict, names: Sequence[str], what: str | None = None) -> object:
    """The first of `names` present in `item`; None, or an error naming `what` if required."""
    for name in names:
        if item.get(name) is not None:
            return item[name]
    if what is not None:
        hint = " (this looks like a COCO annotations file: use `coco`)" if "images" in item else ""
        raise FO1Error(
            f"An item has no {what} (one of the fields {', '.join(names)}): {item!r:.80}{hint}"
        )
    return None
