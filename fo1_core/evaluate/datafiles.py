"""Reading benchmark files: a JSON list or JSON lines, with a few accepted spellings per field."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fo1_core.cli import parse_json, read_text
from fo1_core.errors import FO1Error

BOX_FIELDS = ("boxes", "bboxes", "bbox_list", "proposals")
"""Precomputed boxes [[x1, y1, x2, y2], …]: ours, the official processed files' names, and
`python -m detect_tools --json`'s proposals ([{"box", "score"}, …], their scores with them)."""
SCORE_FIELDS = ("scores", "score_list")


def given_boxes(
    item: dict, where: str, required: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The boxes and scores `item` gives for its image (`BOX_FIELDS`, `SCORE_FIELDS`), checked
    as the data is read, before the model loads: a malformed list ends the run naming `where`
    (the file and the item), not each of its images after the model loaded. (None, None) for
    an item without boxes, unless `required`."""
    boxes = pick(item, BOX_FIELDS, "boxes" if required else None)
    if boxes is None:
        return None, None
    scores = pick(item, SCORE_FIELDS)
    if isinstance(boxes, list) and boxes and all(isinstance(entry, dict) for entry in boxes):
        entries, boxes = boxes, [entry.get("box") for entry in boxes]
        if scores is None and all("score" in entry for entry in entries):
            scores = [entry["score"] for entry in entries]
    try:
        return checked_boxes(boxes, scores)
    except FO1Error as error:
        raise FO1Error(f"{where}: {error}") from None


def checked_boxes(
    given: object, given_scores: object = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Boxes `[[x1, y1, x2, y2], …]` and their scores (or None) given with the data for one
    image, as arrays; `FO1Error` for a malformed list."""
    try:
        xyxy = np.asarray(given, dtype=np.float64)
        scores = None if given_scores is None else np.asarray(given_scores, np.float64)
    except (TypeError, ValueError) as error:
        raise FO1Error("The item's boxes and scores must be numbers.") from error
    if xyxy.size and (xyxy.ndim != 2 or xyxy.shape[1] != 4):
        raise FO1Error(f"The item's boxes must be [[x1, y1, x2, y2], …]; got {given!r:.80}")
    xyxy = xyxy.reshape(-1, 4)
    if scores is not None and scores.shape != (len(xyxy),):
        raise FO1Error(f"The item has {len(xyxy)} boxes but {scores.size} scores.")
    # Detections hold float32 scores: NaN, or past float32's range, would reach the
    # results file as NaN or Infinity, which JSON readers refuse.
    if scores is not None and not (np.abs(scores) <= np.finfo(np.float32).max).all():
        raise FO1Error(f"The item's scores must be finite numbers; got {given_scores!r:.80}")
    if not np.isfinite(xyxy).all():
        raise FO1Error(f"The item's boxes must be finite numbers; got {given!r:.80}")
    inverted = np.flatnonzero((xyxy[:, 2:] < xyxy[:, :2]).any(1))
    if inverted.size:
        # Not a span read either way round: most likely [x, y, w, h], which cut to the
        # image and kept would give FO1 other boxes than the data meant.
        raise FO1Error(
            f"The item's box #{inverted[0]} {xyxy[inverted[0]].tolist()} is inverted "
            "(x2 < x1 or y2 < y1): boxes must be [x1, y1, x2, y2]."
        )
    return xyxy, scores


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
