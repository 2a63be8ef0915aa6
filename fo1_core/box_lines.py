"""Boxes typed or written as lines of numbers: corners in pixels, or a YOLO label line in
fractions of the image; and which kind of text a boxes file holds. Light (no torch)."""

from __future__ import annotations

import math
import re
from typing import Literal

from fo1_core.errors import FO1Error

FIELD = re.compile(r"[^\s,;\[\]()]+")
"""A value of a line: numbers apart by spaces, commas or semicolons, in brackets or not."""
_JSON = re.compile(r"\s*(\[\s*[\[{]|\{)")
_XML = re.compile(r"\s*<")


def text_kind(text: str) -> Literal["json", "xml", "lines"]:
    """What a boxes file's text holds: a JSON document (a list of boxes, or one holding them),
    an XML annotation, or lines of numbers (`[10, 20, 30, 40]` on one line is one box)."""
    if _XML.match(text):
        return "xml"
    return "json" if _JSON.match(text) else "lines"


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """The lines of `text` that hold values, each with its number (from 1, blank lines
    counted), as a message names it."""
    return [
        (number, line) for number, line in enumerate(text.splitlines(), 1) if FIELD.search(line)
    ]


def line_corners(line: str, number: int, width: int, height: int) -> list[float]:
    """The corners on line `number`: four numbers, or a YOLO label line (`yolo_corners`)."""
    shown = line.strip() if len(line.strip()) <= 40 else line.strip()[:39] + "…"
    fields = FIELD.findall(line)
    if len(fields) >= 5 and (corners := yolo_corners(fields, width, height)):
        return corners
    if len(fields) != 4:
        yolo = len(fields) >= 5
        outside = _outside_fraction(fields) if yolo else None
        raise FO1Error(
            f"Line {number} ({shown}) holds {_values(len(fields))}; a box is four numbers: "
            "x1, y1, x2, y2 (no label)"
            + (", or a YOLO label line: a class number, then the box's centre, width and "
               "height (or a polygon's points) as fractions of the image" if yolo else "")
            + (f", from 0 to 1, which {outside} is not" if outside else "")
            + "."
        )  # fmt: skip
    try:
        values = [float(field) for field in fields]
    except ValueError:
        raise FO1Error(f"Line {number} ({shown}) holds something that is not a number.") from None
    if not all(math.isfinite(v) for v in values):
        raise FO1Error(f"Line {number} ({shown}) holds a number that is not finite.")
    return values


def yolo_corners(fields: list[str], width: int, height: int) -> list[float] | None:
    """The corners in pixels of a YOLO label line, in fractions of the `width`×`height` image
    after a class number, or None where the fields are not one: `class cx cy w h`, a box's
    centre and size (a detection label; a confidence may follow, as in Ultralytics'
    predictions), or `class x1 y1 x2 y2 x3 y3 …`, a polygon's points (a segmentation label, or
    an oriented box's corners), whose extent is taken."""
    values = _yolo_values(fields)
    if values is None or not all(0 <= v <= 1 for v in values):
        return None
    if len(values) in (4, 5):
        cx, cy, w, h = values[:4]
        corners = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    else:
        xs, ys = values[0::2], values[1::2]
        corners = [min(xs), min(ys), max(xs), max(ys)]
    scale = (width, height) * 2
    # A thousandth of a pixel: the fractions' float error is not shown as 149.99999999999997.
    return [round(value * side, 3) for value, side in zip(corners, scale, strict=True)]


def _yolo_values(fields: list[str]) -> list[float] | None:
    """The values after the class number of a line shaped as a YOLO label line (a class
    number, then 4 or 5 values, or a polygon's points), whatever their range; else None."""
    try:
        label, *values = (float(field) for field in fields)
    except ValueError:
        return None
    if not label.is_integer() or label < 0:
        return None
    if len(values) in (4, 5) or (len(values) >= 6 and len(values) % 2 == 0):
        return values
    return None


def _outside_fraction(fields: list[str]) -> str | None:
    """The first value of a line shaped as a YOLO label line that is no fraction of the image
    (negative, over 1, not finite), as written; None for other lines."""
    values = _yolo_values(fields)
    if values is None:
        return None
    return next((f for f, v in zip(fields[1:], values, strict=True) if not 0 <= v <= 1), None)


def _values(count: int) -> str:
    return "1 value" if count == 1 else f"{count} values"
