"""The box editor's own events (Undo, boxes typed or loaded as numbers, the boxes an answer
names kept) and what follows every box edit (the region pickers, the box note). None of it needs
the model, so it reads apart from the question's way to an answer in `ui.handlers`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import gradio as gr

from fo1_core.box_archives import BoxesText, boxes_file_text
from fo1_core.errors import FO1Error
from fo1_core.inputs import image_size
from fo1_core.templates import MAX_REGIONS, box_count
from ui.boxes import (
    Box,
    boxes_from_text,
    boxes_of,
    editor_value,
    file_name_of,
    image_of,
    outside_the_image,
    region_label,
    regions_moved,
    renumbered,
)
from ui.conversation import ConversationKey, conversation_key
from ui.editor import FILE_NAME, NO_IMAGE_NOTE
from ui.files import file_identity, shown_size
from ui.page_left import PageLeft
from ui.status import BOX_EDIT, error_html, status_html

T = TypeVar("T")

UNDO_STEPS = 50
"""How many box edits back `Handlers.undo_boxes` goes."""
PICKS_KEPT = 2 * UNDO_STEPS
"""Of how many box lists `UndoSteps` keeps the regions picked: those of its steps, and a few it
has not recorded yet (the picker can report before the editor does)."""
BOXES_KEPT = UNDO_STEPS * MAX_REGIONS
"""How many boxes a page's steps and its picks' box lists hold at most, each: every step as
many boxes as the model reads. The editor takes any number, and a page sending lists of
20 000 held 210 MB of the server's memory, for each of the pages it keeps."""

NO_REGIONS = "No boxes yet: each box you draw or propose is a region to pick here."


def has_area(box: Sequence[float]) -> bool:
    x1, y1, x2, y2 = box
    return x2 > x1 and y2 > y1


@dataclass(frozen=True)
class Edit:
    """One state of the editor that Undo can go back to."""

    key: ConversationKey  # the image as the user sees it, and its boxes
    image: str  # the editor's file, before its rotate buttons turn it
    orientation: int  # how many quarter turns clockwise they have turned it
    file_name: str | None  # the uploaded file's own name (`ui.editor.FILE_NAME`)

    @classmethod
    def of(cls, key: ConversationKey, value: dict) -> Edit:
        """The step of the editor's `value` (holding an image), which holds `key`."""
        return cls(key, value["image"], int(value.get("orientation") or 0), value.get(FILE_NAME))

    def same_image(self, other: Edit) -> bool:
        """Whether `other` shows this image: the same file turned (by its buttons), or the same
        picture from another file (the turned copy Propose or typed boxes send back)."""
        return other.key[0] == self.key[0] or file_identity(other.image) == file_identity(
            self.image
        )

    def value(self) -> dict:
        shown = editor_value(self.image, [list(box) for box in self.key[1]], self.file_name)
        return shown | {"orientation": self.orientation}


@dataclass
class UndoSteps:
    """One page's editor states that Undo can go back to, oldest first: this image's box
    edits, after one step of the image before."""

    edits: list[Edit] = field(default_factory=list)
    # The regions last picked with the editor holding each box list, oldest first.
    picks: dict[ConversationKey, tuple[int, ...]] = field(default_factory=dict)
    # What the page showed with the image it last left (`leave`), and that image's last step.
    left: tuple[Edit, PageLeft] | None = None

    def leave(self, coming: str | None, page: PageLeft) -> None:
        """The page leaves its image for `coming` (None: the editor emptied, or an example's
        image, which the server sends after this), showing `page` with it. What was kept first
        stands: after the editor's ×, the next image leaves an empty page, not the image."""
        coming_identity = None if coming is None else file_identity(coming)
        for edit in reversed(self.edits):
            if coming_identity not in (edit.key[0], file_identity(edit.image)):
                if self.left is not None and self.left[0] is edit:
                    page = self.left[1] | page
                self.left = (edit, page)
                return

    def brought_back(self, edit: Edit) -> PageLeft:
        """What Undo, going back to `edit`, brings back with it: once, what the page showed
        with it when leaving its image (`leave`)."""
        if self.left is None or self.left[0] is not edit:
            return PageLeft()
        page, self.left = self.left[1], None
        return page

    def picked(self, key: ConversationKey, picked: list[int]) -> None:
        """The region picker holds `picked` while the editor holds `key`: Undo back to `key`
        picks them again, a pick that a box edit dropped (its box deleted or retyped) too."""
        if not all(map(has_area, key[1])) or len(key[1]) > BOXES_KEPT:
            return  # a box still being drawn: its list is no step to go back to
        self.picks.pop(key, None)
        self.picks[key] = tuple(picked)
        kept = _newest_within_boxes(list(self.picks), lambda key: key, PICKS_KEPT)
        self.picks = {key: self.picks[key] for key in kept}

    def record(self, key: ConversationKey, value: dict | None) -> None:
        """The editor holds `key` now, shown from `value`: remembered as the newest step to undo
        back from. Turning the image is such a step; emptying the editor is not, and leaves the
        steps for Undo to bring the image back. Another image (uploaded, or an example clicked)
        keeps one step of the image before: Undo brings it back with its boxes."""
        if value is None or value.get("image") is None:
            return
        if not all(map(has_area, key[1])):
            return  # a box still being drawn, no area yet: not a step of its own
        if len(key[1]) > BOXES_KEPT:
            return  # Undo from it goes back to the step before
        edit = Edit.of(key, value)
        if self.edits and not self.edits[-1].same_image(edit):
            self.edits = self.edits[-1:]  # the earlier image's box edits are not this one's
        # The step left (`leave`) stays one of its own, though the page came back to the same
        # boxes (an example loaded twice): Undo from a later edit does not bring back the page
        # left with it, only Undo from here does.
        left_here = self.left is not None and self.edits and self.left[0] is self.edits[-1]
        if not self.edits or self.edits[-1].key != key or left_here:
            self.edits = _newest_within_boxes([*self.edits, edit], lambda e: e.key, UNDO_STEPS)
        if self.left is not None and all(edit is not self.left[0] for edit in self.edits):
            self.left = None  # its step is gone: nothing brings it back

    def target(self, value: dict | None) -> Edit | None:
        """The step Undo goes back to from the editor's `value` (None: nothing to undo)."""
        edits = self.edits
        if (value or {}).get("image") is None:
            if edits and Path(edits[-1].image).is_file():
                return edits[-1]
        elif edits and edits[-1].key[0] == file_identity(image_of(value)):
            shown = tuple(tuple(box) for box in boxes_of(value) if has_area(box))
            if shown != edits[-1].key[1]:
                return edits[-1]  # a change whose report has not landed yet: that one
            if len(edits) > 1:
                edits.pop()
                return edits[-1]
        return None


def _newest_within_boxes(
    items: list[T], key_of: Callable[[T], ConversationKey], most: int
) -> list[T]:
    """The newest of `items` (oldest first), at most `most` of them, whose box lists hold
    `BOXES_KEPT` boxes in all."""
    kept, boxes = [], 0
    for item in reversed(items[-most:]):
        boxes += len(key_of(item)[1])
        if boxes > BOXES_KEPT:
            break
        kept.append(item)
    return kept[::-1]


def undo_boxes(
    steps: UndoSteps, value: dict | None, picked: list[int] | None, prompt: str | None
) -> tuple:
    """The editor as it was before its last change: its boxes before the last one drawn,
    moved, deleted, cleared, proposed or typed, the image before its rotate buttons turned
    it, or, emptied by its remove button or replaced by another image, the image and boxes
    it held, with what else the page showed with it then (`PageLeft`). Outputs: editor, picked
    regions: those picked with the boxes it goes back to, and each box picked since stays
    picked where Undo puts it (the numbers alone would name other boxes once one comes back);
    the free prompt, its references moved likewise; then the `PageLeft` to give back (which
    may hold the free prompt as it was with that image)."""
    target = steps.target(value)
    if target is None:
        gr.Info("Nothing to undo.")
        return gr.skip(), gr.skip(), gr.skip(), PageLeft()
    shown, restored = boxes_of(value), [list(box) for box in target.key[1]]
    # Boxes of one edit found nowhere on the other side: those of a move (one box) or of a turn
    # (every box, with the image), the same boxes. Of another image, other boxes.
    image = image_of(value)
    current = None if image is None else Edit.of(conversation_key(image, shown), value)
    same_image = current is not None and target.same_image(current)
    turned = same_image and current.key[0] != target.key[0]
    moved = regions_moved(shown, restored, len(shown) if turned else int(same_image))
    picks = sorted({*picked_again(moved, picked or []), *steps.picks.get(target.key, ())})
    regions = gr.update(choices=region_choices(len(restored)), value=picks)
    back = set(range(len(restored))) - set(moved)
    prompt = prompt_again(prompt, moved, back, undone=True)
    return target.value(), regions, prompt, steps.brought_back(target)


def boxes_typed(
    value: dict | None, typed: str | None, picked: list[int] | None, prompt: str | None
) -> tuple:
    """Sets the editor's boxes to those typed as numbers (`boxes_from_text`); a mistake is
    named in the status and the typed text stays to be corrected. Outputs: editor, status,
    picked regions (those picked stay so on their boxes where the numbers keep them), the free
    prompt (its references likewise)."""
    typed_text = BoxesText(typed or "", "the numbers typed")
    return _boxes_set(value, lambda: typed_text, picked, prompt, none_clears=True)


def boxes_loaded(
    value: dict | None, file: str | None, picked: list[int] | None, prompt: str | None
) -> tuple:
    """Sets the editor's boxes to those of a file (`file`: its upload): anything "Boxes as
    numbers" reads (COCO, YOLO, LabelMe, Label Studio, Pascal VOC and CVAT files included), also
    out of a labelling tool's ZIP export (`boxes_file_text`); the outputs of `boxes_typed`. It is
    read up to the command line's limit for a boxes file, and named as uploaded."""
    if file is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()

    def text() -> BoxesText:
        return boxes_file_text(Path(file), Path(file).name, file_name_of(value))

    return _boxes_set(value, text, picked, prompt, none_clears=False)


def _boxes_set(
    value: dict | None,
    text: Callable[[], BoxesText],
    picked: list[int] | None,
    prompt: str | None,
    none_clears: bool,
) -> tuple:
    """The editor set to the boxes in `text`, or a mistake named; none there clears the editor
    where `none_clears`, else is a mistake (a file of no boxes was more likely the wrong file
    than a wish to clear them)."""
    image = image_of(value)
    try:
        if image is None:
            raise FO1Error("No image yet: upload one, then give its boxes.")
        width, height = image_size(image)
        read = text()
        typed = boxes_from_text(read.text, width, height, file_name_of(value))
        boxes, cut = typed.boxes, typed.cut
        if not boxes and not none_clears:
            raise FO1Error(f"No boxes in {read.source}; your boxes are left as they were.")
    except FO1Error as error:
        return gr.skip(), error_html(str(error)), gr.skip(), gr.skip()
    scaled = f", {typed.scaled}" if typed.scaled else ""
    message = f"{box_count(len(boxes))} set from {read.source}{scaled}{_named(typed.labels)}."
    if not boxes and boxes_of(value):
        message = "No numbers typed, so every box was removed (Undo brings them back)."
    if cut:
        message += f" Cut to the {width}×{height} image: {box_count(cut)} reached out of it."
    return _boxes_shown(value, boxes, picked, prompt, message, "warning" if cut else "info")


SHOWN_LABELS = 12
"""How many of a file's box labels the status lists; the rest are counted."""


def _named(labels: tuple[str, ...]) -> str:
    """`: #0 cup, #1 spoon`, the labels a file gives its boxes (the annotator's classes, to
    compare the answers with), or "" for a file that names none."""
    named = [f"{region_label(index)} {label}" for index, label in enumerate(labels) if label]
    if not named:
        return ""
    more = len(named) - SHOWN_LABELS
    return ": " + ", ".join(named[:SHOWN_LABELS]) + (f" and {more} more" if more > 0 else "")


def _boxes_shown(
    value: dict,
    boxes: list[Box],
    picked: list[int] | None,
    prompt: str | None,
    message: str,
    level: str = "info",
) -> tuple:
    """The editor's image with `boxes` in place of its own, the status saying so (`message`),
    and the picked regions and free prompt's references where their boxes went."""
    shown = editor_value(image_of(value), boxes, file_name_of(value))
    moved = regions_moved(boxes_of(value), boxes_of(shown))
    picks, prompt = picked_again(moved, picked or []), prompt_again(prompt, moved)
    return shown, status_html(message, level, BOX_EDIT), picks, prompt


def boxes_kept(
    value: dict | None,
    answered: ConversationKey | None,
    regions: Collection[int],
    picked: list[int] | None,
    prompt: str | None,
) -> tuple:
    """Sets the editor's boxes to those of the answer on screen (`answered`: its image and
    boxes) that it names (`regions`: its detections'), in region order: of a hundred proposals,
    the three cups found, to ask about next. Outputs: those of `boxes_typed`."""
    image, asked = image_of(value), answered[1] if answered else ()
    named = sorted({region for region in regions if 0 <= region < len(asked)})
    try:
        if answered is None or not named:
            raise FO1Error(
                "No answer naming boxes is on screen: ask one that finds them (detection, "
                "grounding, counting …), then keep the boxes it names."
            )
        if image is None or file_identity(image) != answered[0]:
            raise FO1Error("The answer on screen is about another image: ask about this one.")
    except FO1Error as error:
        return gr.skip(), error_html(str(error)), gr.skip(), gr.skip()
    kept = [list(asked[region]) for region in named]
    listed = ", ".join(region_label(region) for region in named[:10])
    listed += ", …" if len(named) > 10 else ""
    others = len(asked) - len(kept)
    removed = f"; the other {box_count(others)} removed (Undo brings them back)" if others else ""
    now = "#0" if len(kept) == 1 else f"#0–#{len(kept) - 1}"
    message = f"{box_count(len(kept))} kept, now {now}: those the answer names ({listed}){removed}."
    return _boxes_shown(value, kept, picked, prompt, message)


def box_note(image: str | None, boxes: list[Box]) -> str:
    """The note under the editor: how many boxes (the page numbers them), how many the model
    reads, and those reaching out of the image."""
    if boxes:
        note = box_count(len(boxes))
    elif image is None:
        note = NO_IMAGE_NOTE
    else:
        note = "No boxes yet: drag on the image to draw one."
    if len(boxes) > MAX_REGIONS:
        note += f" — the model takes {MAX_REGIONS}; boxes from #{MAX_REGIONS} on are ignored."
    # A file gone meanwhile: the next step that reads it says so.
    with suppress(FO1Error, OSError):
        if boxes and image and (outside := outside_the_image(boxes, *shown_size(image))):
            note += f" — {outside}"
    return note


def picked_again(moved: list[int], picked: list[int]) -> list[int]:
    """Where the boxes `picked` are after an edit that `moved` them (`regions_moved`), those the
    model reads."""
    return sorted(
        moved[i] for i in set(picked) if 0 <= i < len(moved) and 0 <= moved[i] < MAX_REGIONS
    )


def prompt_again(
    prompt: str | None, moved: list[int], back: Collection[int] = (), undone: bool = False
) -> str | object:
    """The free prompt with its region references moved as an edit `moved` their boxes
    (`renumbered`); `gr.skip()` where none moves, so a prompt typed meanwhile stays."""
    again = renumbered(prompt or "", moved, back, undone)
    return gr.skip() if again == (prompt or "") else again


def region_choices(boxes: int) -> list[tuple[str, int]]:
    """The region pickers' choices for `boxes` boxes: those the model reads."""
    return [(region_label(i), i) for i in range(min(boxes, MAX_REGIONS))]
