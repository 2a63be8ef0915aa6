"""Boxes between the box editor, the model and the API: plain `[x1, y1, x2, y2]` lists in pixels.

The box editor (`gradio_image_annotation`) holds `{"image", "boxes": [{"xmin", …, "label",
"color"}]}`. Its list order is the region order, so every box is labelled `#i` in the colour
`fo1_core.render` uses for region `i`, and relabelled whenever the list changes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fo1_core.errors import FO1Error
from fo1_core.render import color_for_region

Box = list[float]
CORNERS = ("xmin", "ymin", "xmax", "ymax")
_NUMBER = re.compile(r"#(\d+)")


def region_label(index: int) -> str:
    return f"#{index}"


def region_rgb(index: int) -> tuple[int, int, int]:
    return color_for_region(index).as_rgb()


def region_hex(index: int) -> str:
    return color_for_region(index).as_hex()


def editor_boxes(boxes: list[Box]) -> list[dict[str, Any]]:
    """Editor entries for `boxes`, each named and coloured by its index."""
    return [
        {
            **{key: round(float(v)) for key, v in zip(CORNERS, box, strict=True)},
            "label": region_label(i),
            "color": region_rgb(i),
        }
        for i, box in enumerate(boxes)
    ]


def editor_value(image: str | None, boxes: list[Box]) -> dict[str, Any] | None:
    return None if image is None else {"image": image, "boxes": editor_boxes(boxes)}


def boxes_of(value: dict[str, Any] | None) -> list[Box]:
    """The editor's boxes as `[x1, y1, x2, y2]` lists, in region (drawing) order."""
    entries = in_drawing_order((value or {}).get("boxes") or [])
    return [[float(entry[key]) for key in CORNERS] for entry in entries]


def in_drawing_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Numbered boxes by their number, then new (unnamed) boxes oldest first.

    The editor puts each new box at the *front* of its list, so list position alone would
    renumber every box whenever one is drawn.
    """
    numbered, new = [], []
    for position, entry in enumerate(entries):
        match = _NUMBER.fullmatch(str(entry.get("label", "")))
        if match:
            numbered.append((int(match.group(1)), position, entry))
        else:
            new.append(entry)
    return [entry for *_, entry in sorted(numbered, key=lambda item: item[:2])] + new[::-1]


def is_being_drawn(value: dict[str, Any] | None) -> bool:
    """True while a box has no area: the editor reports a change as a box starts being drawn,
    and replacing its value then would cut the user's stroke short."""
    return any(
        entry["xmax"] <= entry["xmin"] or entry["ymax"] <= entry["ymin"]
        for entry in (value or {}).get("boxes") or []
    )


def image_of(value: dict[str, Any] | None) -> str | None:
    return (value or {}).get("image")


def needs_relabel(value: dict[str, Any] | None) -> bool:
    """True when a box is not named `#i` in colour `i` (new, deleted or reordered boxes)."""
    for i, entry in enumerate((value or {}).get("boxes") or []):
        if entry.get("label") != region_label(i) or tuple(entry.get("color") or ()) != region_rgb(
            i
        ):
            return True
    return False


def parse_boxes(raw: object) -> list[Box]:
    """Boxes sent to the API: a JSON list (or its text) of `[x1, y1, x2, y2]` numbers.

    Only the shape is checked here; the model's preprocessing rejects inverted, outside or
    non-finite boxes with its own messages.
    """
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise FO1Error(f"Boxes must be a JSON list of [x1, y1, x2, y2] ({error}).") from error
    if isinstance(raw, dict) and "boxes" in raw:  # the /propose answer, passed on as it is
        raw = [entry.get("box") if isinstance(entry, dict) else entry for entry in raw["boxes"]]
    if not isinstance(raw, list):
        raise FO1Error(f"Boxes must be a JSON list of [x1, y1, x2, y2], got {type(raw).__name__}.")
    boxes = []
    for i, box in enumerate(raw):
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise FO1Error(f"Box {i} must be four numbers [x1, y1, x2, y2], got {box!r}.")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
            raise FO1Error(f"Box {i} must hold numbers only, got {box!r}.")
        if not all(math.isfinite(v) for v in box):
            raise FO1Error(f"Box {i} has a coordinate that is not a finite number: {box!r}.")
        boxes.append([float(v) for v in box])
    return boxes
