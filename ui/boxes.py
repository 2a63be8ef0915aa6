"""Boxes between the box editor, the model and the API: plain `[x1, y1, x2, y2]` lists in pixels.

The box editor (`gradio_image_annotation`) holds `{"image", "boxes": [{"xmin", …, "label",
"color"}]}`. Boxes become regions in the order they were drawn, and each is labelled `#i` in the
colour `fo1_core.render` uses for region `i`: in the page, as soon as the list changes
(`RELABEL_IN_BROWSER`), and read back in the same order on the server (`in_drawing_order`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect_tools.box_rules import is_number
from fo1_core.box_files import BoxesRead, NotABox, unwrap_boxes, xml_boxes
from fo1_core.box_lines import line_corners, numbered_lines, text_kind
from fo1_core.cli import parse_json
from fo1_core.errors import FO1Error
from fo1_core.inputs import box_problem, clip_box
from fo1_core.render import PALETTE, color_for_region, text_color_for_region
from fo1_core.templates import MAX_REGIONS, REGION_INDEX, region_token
from ui.editor import CORNERS, FILE_NAME, turned
from ui.status import BOX_EDIT

Box = list[float]
_NUMBER = re.compile(r"#(\d+)")


def region_label(index: int) -> str:
    return f"#{index}"


UNREAD_RGB = (150, 150, 150)
"""The colour of boxes past the first `MAX_REGIONS` in the editor: the model does not read them."""


def region_rgb(index: int) -> tuple[int, int, int]:
    """The colour of box `index` in the editor: its region's, grey past the model's regions."""
    return color_for_region(index).as_rgb() if index < MAX_REGIONS else UNREAD_RGB


def region_color(index: int) -> str:
    """`region_rgb` as the editor's page holds a box's colour, "rgb(r, g, b)". The server sends it
    so too: a colour sent as an (r, g, b) list stays one in the page until the page renames the
    boxes, and the editor refuses such a list when an event reads its value meanwhile."""
    return "rgb({}, {}, {})".format(*region_rgb(index))


def region_hex(index: int) -> str:
    return color_for_region(index).as_hex()


def region_text_hex(index: int) -> str:
    """The colour of text on region `index`'s colour, as in the drawn labels."""
    return text_color_for_region(index).as_hex()


REGIONS_LABEL = "Regions to ask about"
"""The region picker's label, which messages name it by."""

PROMPT_REFERENCE = re.compile(rf"<region(?P<gone>\?)?(?P<index>{REGION_INDEX})?>")
"""A region reference in the free prompt (`REGION_REFERENCE`), or one whose box is gone
(`gone_region`)."""


def gone_region(index: int | None = None) -> str:
    """What a reference in the free prompt becomes when its box `index` is deleted or replaced:
    left as it was, it would name whichever box takes that number next. Undo, bringing the box
    back, makes it a reference again; one with no number is gone for good. Run refuses a prompt
    holding either (`ui.answering.fill_text`)."""
    return f"<region?{'' if index is None else index}>"


def regions_moved(before: list[Box], after: list[Box], pair_at_most: int = 0) -> list[int]:
    """For each box of `before`, the index of the same box (same corners) in `after`, or -1 where
    it is gone; of boxes alike, the first of `before` finds the first of `after`. Where as many
    boxes of each, `pair_at_most` or fewer, are found nowhere in the other, they are the same
    boxes, in order: moved or resized, or turned with the image."""
    places: dict[tuple[float, ...], list[int]] = {}
    for i, box in enumerate(after):
        places.setdefault(tuple(box), []).append(i)
    moved = [places[key].pop(0) if places.get(key := tuple(box)) else -1 for box in before]
    lost = [i for i, at in enumerate(moved) if at < 0]
    new = sorted(i for left in places.values() for i in left)
    if len(lost) == len(new) <= pair_at_most:
        for i, at in zip(lost, new, strict=True):
            moved[i] = at
    return moved


def renumbered(
    prompt: str, moved: list[int], back: Collection[int] = (), undone: bool = False
) -> str:
    """`prompt` with each `<regionN>` of a box that `moved` (`regions_moved`) renumbered to its
    new place, and `gone_region(N)` where the box is gone; a reference to no box (N past
    `moved`) stays: Run says it names no box. A `gone_region(N)` already there loses its number
    as box N goes (the number would name that box), and becomes a reference again as an Undo
    brings box N `back`. An Undo itself (`undone`) takes boxes away for good."""

    def moved_reference(reference: re.Match) -> str:
        if reference["index"] is None:
            return reference[0]
        index = int(reference["index"])
        if reference["gone"]:
            if index in back:
                return region_token(index)
            goes_now = not undone and index < len(moved) and moved[index] < 0
            return gone_region() if goes_now else reference[0]
        if index >= len(moved):
            return reference[0]
        if moved[index] >= 0:
            return region_token(moved[index])
        return gone_region(None if undone else index)

    return PROMPT_REFERENCE.sub(moved_reference, prompt)


def gone_references(prompt: str) -> list[str]:
    """The references marked gone in `prompt` (`gone_region`), each once, in order."""
    found = (match[0] for match in PROMPT_REFERENCE.finditer(prompt) if match["gone"])
    return list(dict.fromkeys(found))


def boxes_named(prompt: str) -> int:
    """How many boxes the region references in `prompt` reach: its highest number, plus one."""
    indices = [int(found["index"] or 0) for found in PROMPT_REFERENCE.finditer(prompt)]
    return max(indices, default=-1) + 1


def editor_boxes(boxes: list[Box]) -> list[dict[str, Any]]:
    """Editor entries for `boxes`, each named and coloured by its index, smallest first: the
    editor selects the first box of its list under a click, so a box inside another can be
    picked (the names keep the region order, `in_drawing_order`)."""
    entries = [
        {
            **{key: round(float(v)) for key, v in zip(CORNERS, box, strict=True)},
            "label": region_label(i),
            "color": region_color(i),
        }
        for i, box in enumerate(boxes)
    ]
    return sorted(entries, key=_area)


def _area(entry: dict[str, Any]) -> float:
    return (entry["xmax"] - entry["xmin"]) * (entry["ymax"] - entry["ymin"])


def editor_value(
    image: str | None, boxes: list[Box], file_name: str | None = None
) -> dict[str, Any] | None:
    """The editor showing `image` with `boxes`; `file_name`: what the user calls the image, if
    not the file's own name (an upload the editor saved again, see `ui.editor.FILE_NAME`)."""
    if image is None:
        return None
    value = {"image": image, "boxes": editor_boxes(boxes)}
    return value | {FILE_NAME: file_name} if file_name else value


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


def file_name_of(value: dict[str, Any] | None) -> str:
    """The name the user knows the editor's image by: the uploaded file's own name (marked as
    turned when the rotate buttons turned it), else that of the file the app holds."""
    value = value or {}
    image = value.get("image")
    if image is None:
        return "image.png"
    name = value.get(FILE_NAME) or Path(image).name
    turns = int(value.get("orientation") or 0) % 4
    return f"{Path(name).stem}-turned-{90 * turns}.png" if turns else name


def image_of(value: dict[str, Any] | None) -> str | None:
    """The editor's image file as the user sees it, turned by the editor's rotate buttons."""
    value = value or {}
    image = value.get("image")
    return None if image is None else turned(image, int(value.get("orientation") or 0))


CLEAR_IN_BROWSER = f"""(value, status) => {{
    document.querySelector("#fo1-editor button[aria-label='Create box']")?.click();
    return [
        value ? {{...value, boxes: []}} : undefined,
        status?.includes("{BOX_EDIT}") ? "" : undefined,
    ];
}}"""
"""Clears the boxes in the page, so a box drawn right after is not cleared by a late reply, and
picks the box tool: with no box left the hand tool has nothing to do (an example opens with it).
A status saying what a box edit did goes with the boxes ("30 proposals; 30 added" above an empty
image reads as a fault), as with Undo."""


RELABEL_IN_BROWSER = (
    """(value, picked, prompt) => {
    const colors = REGION_COLORS;
    const colorOf = (i) => i < MAX_REGIONS ? colors[i % colors.length] : UNREAD_COLOR;
    if (!value || !value.boxes || document.body.classList.contains("fo1-stroke")) {
        return [undefined, undefined, undefined];
    }
    if (value.boxes.some(b => b.xmax <= b.xmin || b.ymax <= b.ymin)) {
        return [undefined, undefined, undefined];
    }
    const enlarged = window.fo1WithEnlargedCopy?.(value);
    value = enlarged ?? value;
    const boxes = JSON.parse(JSON.stringify(value.boxes));
    const numbered = [], fresh = [];
    boxes.forEach((box, position) => {
        const match = /^#(\\d+)$/.exec(String(box.label ?? ""));
        if (match) numbered.push([Number(match[1]), position, box]);
        else fresh.push(box);
    });
    numbered.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const ordered = numbered.map(([, , box]) => box).concat(fresh.reverse());
    const unchanged = ordered.every((box, i) =>
        box.label === `#${i}` && box.color === colorOf(i));
    const area = (box) => (box.xmax - box.xmin) * (box.ymax - box.ymin);
    const renamed = ordered.map((box, i) =>
        ({...box, label: `#${i}`, color: colorOf(i)}));
    // Box i at i, for the region picker's spotlight, with the turn they were measured at: the
    // editor's turning buttons turn its boxes without a change.
    window.fo1EditorBoxes = renamed;
    window.fo1EditorTurns = value.orientation ?? 0;
    // New boxes stay first, newest first, as the editor put them: it keeps the one just drawn
    // selected by its place. The others go smallest first.
    const kept = renamed.slice(0, numbered.length).map((box, i) => [box, i])
        .sort(([a, i], [b, j]) => area(a) - area(b) || i - j).map(([box]) => box);
    const named = [...renamed.slice(numbered.length).reverse(), ...kept];
    const numbers = numbered.map(([number]) => number);
    const count = Math.min(named.length, MAX_REGIONS);
    const moved = (picked ?? []).map(index => numbers.indexOf(index))
        .filter(index => index >= 0 && index < count);
    const same = moved.length === (picked ?? []).length && moved.every((i, k) => i === picked[k]);
    // Boxes numbered before this change: a deleted last box leaves no label to tell of it.
    const before = Math.max(window.fo1BoxesNumbered ?? 0, ...numbers.map(n => n + 1));
    window.fo1BoxesNumbered = named.length;
    const gone = (n) => n < before && !numbers.includes(n);
    // A mark not in the prompt this last saw came with these boxes from the server, which
    // marked it for this very change: its number still names the box it lost.
    const seen = window.fo1PromptSeen ?? "";
    const references = new RegExp(REFERENCE, "g");
    const renumbered = typeof prompt !== "string" ? prompt : prompt.replace(references,
        (reference, mark, n) => {
            if (n === undefined) return reference;
            n = Number(n);
            if (mark) return gone(n) && seen.includes(reference) ? "<region?>" : reference;
            return gone(n) ? `<region?${n}>` : `<region${n < before ? numbers.indexOf(n) : n}>`;
        });
    if (typeof renumbered === "string") window.fo1PromptSeen = renumbered;
    return [
        unchanged && !enlarged ? undefined : {...value, boxes: named},
        same ? undefined : moved,
        renumbered === prompt ? undefined : renumbered,
    ];
}""".replace(
        "REGION_COLORS",
        json.dumps([region_color(i) for i in range(len(PALETTE.colors))]),
    )
    .replace("MAX_REGIONS", str(MAX_REGIONS))
    .replace("UNREAD_COLOR", json.dumps(region_color(MAX_REGIONS)))
    .replace("REFERENCE", json.dumps(PROMPT_REFERENCE.pattern.replace("(?P<", "(?<")))
)
"""A browser-side `change` handler for the editor (and the region picker) that names each box
`#i` in colour `i` (grey past the model's regions), and moves the picked regions with their
boxes.

It runs in the page, on the editor's current value, so no reply from a busy server can replace
the boxes with an older list and take away a box drawn in the meantime. It leaves the editor
alone (`undefined`) while a box is still being drawn or moved (`ui.editor.MARK_STROKES`, or no
area yet): replacing the value then cuts the stroke short, and the box stays as it was when
this ran, a step into the drag (the editor reports the box as the stroke starts, and a busy page
runs this a moment later). It also leaves it alone when every box is already named right,
whatever its place in the list: a box resized, or moved, keeps its place and stays selected.
It puts the enlarged copy of a small upload in the editor when it landed during a stroke
(`ui.editor.ENLARGED_COPIES`). Boxes are numbered in `in_drawing_order`'s order, and listed
smallest first (`editor_boxes`) after those just drawn.

A picked region, and a `<regionN>` in the free prompt, keeps pointing at its box when boxes
before it are deleted; with its box deleted (or all cleared, or the image changed), a pick is
unticked and a reference marked gone, as `renumbered` does on the server. The picker could hold
no stale pick: Gradio refuses a whole Run while it holds a value that is no longer one of its
choices, and the user could not see that value to untick it. The outputs change together, from
the box labels before renumbering; a server handler could not do it, as Gradio would refuse the
picker's stale value as its input, and a late reply would undo what was typed in the prompt
meanwhile. Where the server sets the boxes itself (typed, Undo, Propose in place of them), it
moves both too, and the marks it makes keep their numbers here (`window.fo1PromptSeen`), so that
Undo can bring those references back.
"""


def outside_the_image(boxes: list[Box], width: int, height: int) -> str:
    """For the box note: which of the boxes the model reads reach out of a `width`×`height`
    image, or lie wholly outside it ("" if none). The editor lets a box be drawn into the margin
    around the image: the model reads it cut to the image (`fo1_core.inputs.check_boxes`),
    and Run refuses one with no area left."""
    cut = [clip_box(box, width, height) for box in boxes[:MAX_REGIONS]]
    empty = [i for i, (x1, y1, x2, y2) in enumerate(cut) if x2 <= x1 or y2 <= y1]
    out = [i for i, box in enumerate(cut) if box != list(boxes[i]) and i not in empty]
    notes = []
    if out:
        verb, them = ("reaches", "it") if len(out) == 1 else ("reach", "them")
        notes.append(f"{_listed(out)} {verb} out of the image: the model reads {them} cut to it.")
    if empty:
        verb, them = ("lies", "it") if len(empty) == 1 else ("lie", "them")
        notes.append(
            f"{_listed(empty)} {verb} outside the image: move {them} onto it or delete "
            f"{them} (Run refuses {them})."
        )
    return " ".join(notes)


def _listed(indices: list[int]) -> str:
    """`#0`, `#0 and #2`, `#0, #1 and #2`."""
    labels = [region_label(i) for i in indices]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + f" and {labels[-1]}"


def boxes_as_text(boxes: list[Box]) -> str:
    """One `x1, y1, x2, y2` line per box, region order, as `boxes_from_text` reads them back."""
    return "\n".join(", ".join(f"{v:g}" for v in box) for box in boxes)


NUMBERS_KEPT_WHILE_TYPED = """() => {
    const value = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value");
    addEventListener("focusin", (event) => {
        const field = event.target.closest?.("#fo1-box-numbers textarea");
        if (!field || field.fo1Kept) return;
        field.fo1Kept = true;
        let typed = false;  // since last written; the echo below comes only once it is true
        field.addEventListener("input", () => { typed = true; });
        Object.defineProperty(field, "value", {
            configurable: true,
            get() { return value.get.call(this); },
            set(text) {
                if (text === value.get.call(this)) return;
                if (typed && document.activeElement === this) {
                    // The component's own value follows the lines kept, as after a key.
                    queueMicrotask(() => this.dispatchEvent(new Event("input", {bubbles: true})));
                    return;
                }
                typed = false;
                value.set.call(this, text);
            },
        });
    }, true);
}"""
"""Installed once in the page: the boxes as numbers (`boxes_as_text`), written after every box
change, leave the lines someone is typing there as they are: a reply about a box change, landing
late, took them away. Only the page knows, as the reply lands, that the text box has the focus
and holds lines typed since it was last written; it follows the boxes again once left."""


BOXES_FILE_TYPES = (".json", ".txt", ".xml", ".zip")
"""The files "Load a boxes file" offers (`boxes_from_text` reads them whatever their name; of a
labelling tool's ZIP export, `boxes_file_text` finds the image's)."""


@dataclass(frozen=True)
class BoxesTyped:
    """Boxes typed, pasted or loaded from a file, as the editor takes them."""

    boxes: list[Box]
    cut: int
    """How many reached out of the image and were cut to it."""
    scaled: str | None = None
    """How they were scaled, where the file recorded its image at another size."""
    labels: tuple[str, ...] = ()
    """The name the file gives each box, where it names them (`BoxesRead.labels`)."""


def boxes_from_text(
    text: str, width: int, height: int, image_name: str | None = None
) -> BoxesTyped:
    """Boxes typed, pasted or loaded from a file for a `width`×`height` image: one per line, four
    numbers `x1, y1, x2, y2` in pixels (commas, spaces or brackets between them) or a YOLO label
    line (`line_corners`), or JSON (a list, or a document holding one: `parse_boxes`;
    `image_name`, the image's file name, picks its boxes out of a COCO file), or a Pascal VOC
    annotation or a CVAT export (`xml_boxes`). Those of a file recording its image at another
    size are scaled to this one.

    Corners may come in either order. Raises `FO1Error` naming each line (or JSON entry) whose
    box is not four numbers or has no area inside the image, the first `SHOWN_PROBLEMS` in
    full: a long paste is corrected in one go. Also when there are more than `MAX_TYPED_BOXES`.
    """
    text = text.removeprefix("\ufeff")  # pasted with the byte order mark some editors write
    read = BoxesRead([])
    if (kind := text_kind(text)) != "lines":  # from the API, a labelling tool, or by hand
        size = (width, height)
        document = xml_boxes(text, image_name, size) if kind == "xml" else text
        read = parse_boxes(document, image_name, size)
        entries, where = list(enumerate(read.boxes)), "Box"
    else:
        entries, where = numbered_lines(text), "Line"
    refuse_too_many_boxes(len(entries), "typed")
    boxes, cut, problems = [], 0, []
    for number, entry in entries:
        try:
            x1, y1, x2, y2 = (
                entry if isinstance(entry, list) else line_corners(entry, number, width, height)
            )
        except FO1Error as error:
            problems.append(str(error))
            continue
        ordered = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        box = clip_box(ordered, width, height)
        if problem := box_problem(box, width, height):
            fractions = all(abs(value) <= 1 for value in (x1, y1, x2, y2))
            problems.append(
                f"{where} {number} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) {problem}."
                + (" Coordinates are pixels, not fractions of the image." if fractions else "")
            )
            continue
        boxes.append(box)
        cut += box != ordered
    if problems:
        more = len(problems) - SHOWN_PROBLEMS
        plural = "s" if more > 1 else ""
        others = f" {more} more {where.lower()}{plural} cannot be set either." if more > 0 else ""
        raise FO1Error(" ".join(problems[:SHOWN_PROBLEMS]) + others)
    return BoxesTyped(boxes, cut, read.scaled, read.labels)


SHOWN_PROBLEMS = 3
"""How many of the typed lines that are not boxes are named in full; the rest are counted."""

MAX_TYPED_BOXES = 10 * MAX_REGIONS
"""More than the model reads, as the editor allows (the box note says which are ignored); a
paste of thousands would stall the page's editor, and a million sent to the API would hold the
model's turn for seconds while they are checked."""


def refuse_too_many_boxes(count: int, how: str) -> None:
    """Raises `FO1Error` where `count` boxes (`how`: "typed", "sent") are over `MAX_TYPED_BOXES`."""
    if count > MAX_TYPED_BOXES:
        raise FO1Error(
            f"{count} boxes {how}; at most {MAX_TYPED_BOXES} can be set at once "
            f"(the model reads the first {MAX_REGIONS})."
        )


def parse_boxes(
    raw: object, image_name: str | None = None, image_size: tuple[int, int] | None = None
) -> BoxesRead:
    """Boxes sent to the API: a JSON list (or its text) of `[x1, y1, x2, y2]` numbers, or a
    document holding one (`unwrap_boxes`, which picks `image_name`'s out of a COCO file and
    scales them to `image_size`); or those already read from one.

    Only the shape is checked here; the model's preprocessing rejects inverted, outside or
    non-finite boxes with its own messages.
    """
    if raw is None or raw == "":
        return BoxesRead([])
    if isinstance(raw, str):
        raw = parse_json(raw, "the boxes")
    read = raw if isinstance(raw, BoxesRead) else unwrap_boxes(raw, image_name, image_size)
    raw = read.boxes
    if not isinstance(raw, list):
        raise FO1Error(f"Boxes must be a JSON list of [x1, y1, x2, y2], got {type(raw).__name__}.")
    refuse_too_many_boxes(len(raw), "sent")
    boxes = []
    for i, box in enumerate(raw):
        if isinstance(box, NotABox):
            raise FO1Error(f"Box #{i} {box.why}.")
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise FO1Error(f"Box #{i} must be four numbers [x1, y1, x2, y2], got {box!r:.200}.")
        if not all(is_number(value) for value in box):
            raise FO1Error(f"Box #{i} must hold numbers only, got {box!r:.200}.")
        if not all(_is_finite(v) for v in box):
            raise FO1Error(f"Box #{i} has a coordinate that is not a finite number: {box!r:.200}.")
        boxes.append([float(v) for v in box])
    return BoxesRead(boxes, read.scaled, read.labels)


def _is_finite(value: float) -> bool:
    """Also False for an integer too large for a float (JSON numbers have no size limit)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
