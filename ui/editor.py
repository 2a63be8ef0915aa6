"""The box editor: `gradio_image_annotation` with bad uploads turned into a readable message,
its image as the user sees it after the editor's rotate buttons (`turned`), and a small image
handed to it enlarged, its boxes still measured in the image's own pixels (`enlarged`).

The stock component raises from its preprocessing (a file that is not an image, a box colour in
the wrong form from a client), which Gradio shows as a long error naming server paths. The
component's `preprocess` is wrapped once, on its class, because the two cleaner routes fail:
a subclass makes Gradio write a `.pyi` stub into this package on every import, and a wrapper on
the instance is lost when Gradio copies components into each session's state.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from gradio_image_annotation import image_annotator
from PIL import Image, ImageOps, UnidentifiedImageError

from detect_tools.images import UNREADABLE_IMAGE, open_image_file
from fo1_core.errors import FO1Error
from fo1_core.inputs import check_size, open_image
from ui.errors import user_error
from ui.files import (
    AppFolder,
    FileVersion,
    drawn_by_browsers,
    file_identity,
    file_version,
    shown_size,
)
from ui.scrolling import SCROLLING

FILE_NAME = "file_name"
"""Key of the editor value holding the uploaded file's name as the user's computer had it (the
component saves every upload again, under a name of its own)."""
UNREADABLE = "unreadable"
"""Key of the editor value a file that cannot be opened comes back as (see `readable_errors`)."""
UNREADABLE_NOTE = "That file could not be used."
"""The box note for such a file: on it, `EMPTY_IF_UNREADABLE` empties the editor in the page."""
NO_IMAGE_NOTE = "No image yet."
"""The box note while the editor holds no image."""
EMPTY_IF_UNREADABLE = f"""(note) => {{
    if (!window.fo1WatchesRemoval) {{
        window.fo1WatchesRemoval = true;
        addEventListener("click", (event) => {{
            const remove = "#fo1-editor button[aria-label='Remove Image']";
            if (event.target.closest?.(remove)) window.fo1ImageShown = false;
        }}, true);
    }}
    if (note !== {json.dumps(UNREADABLE_NOTE)}) {{
        if (note !== {json.dumps(NO_IMAGE_NOTE)}) window.fo1ImageShown = true;
        return undefined;
    }}
    if (window.fo1ImageShown) {{
        window.fo1ImageShown = false;
        const undo = () => {{
            if (window.fo1Clearing > 0) return;
            removeEventListener("fo1-cleared", undo);
            document.querySelector("#fo1-undo")?.click();
        }};
        addEventListener("fo1-cleared", undo);
        setTimeout(undo);
    }}
    return null;
}}"""
"""Run in the page, not by a server reply: a reply writing the editor, even to leave it as it is,
loses boxes drawn while it was on its way.

A file dropped over an image (not after its ×) is shown by the editor before the server can
refuse it, in place of that image, its boxes and its answer: Undo is pressed then, as the user
would, to bring them back, once the server has cleared the answer area for the file
(`ui.page_scripts.ANSWER_AREA_CLEARED`): it would clear them again. The editor's own clearing
as a new file comes reads as no image too, so the image shown is told by the notes of images,
and forgotten at the ×."""
CORNERS = ("xmin", "ymin", "xmax", "ymax")
"""A box's corners in the editor's value."""
BAD_BOXES = (
    'Boxes must be {"xmin", "ymin", "xmax", "ymax"} numbers with an optional "label" and a '
    '"color" like "rgb(255, 0, 0)".'
)


def readable_errors(
    preprocess: Callable,
    payload_errors: tuple[type[Exception], ...],
    payload_message: str,
    keep_unreadable: bool = False,
) -> Callable:
    """`preprocess` raising `gr.Error` with a user's message instead of a server-side trace.

    `payload_errors` are what a malformed payload (rather than a bad image file) raises. With
    `keep_unreadable`, a file that cannot be opened comes back as `{UNREADABLE: message}`
    instead, which every handler reads as "no image": the editor's value is read by every later
    event, which would all fail while it kept showing the broken file (`Handlers.boxes_changed`
    says why and has the page empty the editor).
    """

    def unreadable(message: str, error: Exception) -> dict[str, str]:
        if keep_unreadable:
            return {UNREADABLE: message}
        raise user_error(message) from error

    @functools.wraps(preprocess)
    def checked(self, payload):
        try:
            return preprocess(self, payload)
        except Image.DecompressionBombError as error:
            return unreadable(f"The image is too large to open safely ({error}).", error)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            return unreadable(UNREADABLE_IMAGE, error)
        except FO1Error as error:
            return unreadable(str(error), error)
        except payload_errors as error:
            raise user_error(payload_message) from error

    checked.readable = True
    return checked


def named_for_the_page(postprocess: Callable) -> Callable:
    """`postprocess` handing the page a value's `FILE_NAME` as its image's name, so that an
    image the server writes back (with proposed boxes, say) keeps the name it was uploaded by."""

    @functools.wraps(postprocess)
    def named(self, value):
        name = value.get(FILE_NAME) if isinstance(value, dict) else None
        if name:
            value = {key: item for key, item in value.items() if key != FILE_NAME}
        data = postprocess(self, value)
        if name and data is not None and data.image is not None:
            data.image = data.image.model_copy(update={"orig_name": name})
        return data

    return named


def with_file_name(preprocess: Callable) -> Callable:
    """`preprocess` adding the upload's own file name to its value (`FILE_NAME`)."""

    @functools.wraps(preprocess)
    def named(self, payload):
        value = preprocess(self, payload)
        upload = getattr(payload, "image", None)
        if (
            isinstance(value, dict)
            and value.get("image") is not None
            and getattr(upload, "orig_name", None)
        ):
            value[FILE_NAME] = Path(upload.orig_name).name
        return value

    return named


def in_image_pixels(preprocess: Callable) -> Callable:
    """`preprocess` giving, for an image the editor was handed enlarged (`enlarged`), the image
    it was enlarged from, and the boxes drawn on the enlarged copy in that image's pixels."""

    @functools.wraps(preprocess)
    def measured(self, payload):
        value = preprocess(self, payload)
        if not isinstance(value, dict) or value.get("image") is None:
            return value
        image, factor = original(value["image"])
        if image == value["image"]:
            return value
        boxes = value.get("boxes") or []
        if factor > 1:
            boxes = [box | _in_pixels(box, factor) for box in boxes]
        return {**value, "image": image, "boxes": boxes}

    return measured


def _in_pixels(box: dict[str, Any], factor: int) -> dict[str, int]:
    """`box`'s corners on an image enlarged `factor` times, in the image's own whole pixels; a box
    drawn within one pixel (the editor takes one of 4 px on screen) keeps that pixel."""
    corners = {}
    for low, high in (("xmin", "xmax"), ("ymin", "ymax")):
        start, end = box[low] / factor, box[high] / factor
        if round(end) > round(start):
            corners |= {low: round(start), high: round(end)}
        else:
            corners |= {low: math.floor(start), high: math.floor(start) + 1}
    return corners


def enlarged_for_the_page(postprocess: Callable) -> Callable:
    """`postprocess` handing the page a small image enlarged (`enlarged`), its boxes with it, by
    the name the user knows the image by."""

    @functools.wraps(postprocess)
    def shown(self, value):
        image = value.get("image") if isinstance(value, dict) else None
        if isinstance(image, str | Path):
            copy, factor = enlarged(str(image))
            if copy != str(image):
                boxes = [
                    box | {key: box[key] * factor for key in CORNERS}
                    for box in value.get("boxes") or []
                ]
                name = value.get(FILE_NAME) or Path(image).name
                value = {**value, "image": copy, "boxes": boxes, FILE_NAME: name}
        return postprocess(self, value)

    return shown


def as_uploaded(self: image_annotator, image: FileData | None) -> str | None:
    """The editor's image file as it came, once checked to open as an image.

    The component's own step saved the image again at every event: a JPEG the server sent back
    (Undo, Propose, typed boxes) was compressed once more each time, losing detail, and as other
    bytes it read as another image. EXIF orientation, which that step applied, is applied by
    everything that opens the file here (`fo1_core.inputs.open_image`, `turned`)."""
    if image is None:
        return None
    path = str(image.path)
    if path.lower().endswith(".svg"):
        return path  # refused with a message when opened for the model
    _check_opens(file_version(path))
    return path


DECODES_AT_ONCE = 2
"""Editor events decoding their image whole at once, at most: each may hold 300 MB (100
megapixels), and Gradio runs up to 40 events at once. Sixteen 10 000 × 10 000 PNGs, 21 MB
sent, raised the server's memory by 6 GB."""
_decoding = threading.BoundedSemaphore(DECODES_AT_ONCE)


@functools.lru_cache(maxsize=256)
def _check_opens(version: FileVersion) -> None:
    """Decodes the file once per version: a broken or truncated file raises here, as the
    component's own step would have, and so does an image the model cannot take (its size is
    checked first), before boxes are drawn on it in vain."""
    with _decoding, open_image_file(version[0]) as image:
        check_size(*image.size)
        image.load()


if not getattr(image_annotator.preprocess, "readable", False):
    image_annotator.preprocess_image = as_uploaded
    image_annotator.preprocess = readable_errors(
        with_file_name(in_image_pixels(image_annotator.preprocess)),
        (KeyError, TypeError, ValueError),
        BAD_BOXES,
        True,
    )
    image_annotator.postprocess = enlarged_for_the_page(
        named_for_the_page(image_annotator.postprocess)
    )


SCREEN_SHARE = 0.7
"""At most this share of the window's height goes to the image in the editor."""

FIT_TO_SCREEN = """() => {
    const editor = document.querySelector("#fo1-editor");
    if (!editor) return;
    const fit = () => {
        const canvas = editor.querySelector("canvas");
        const frame = canvas && canvas.parentElement;
        if (!frame || !canvas.width || !canvas.height) return;
        const widest = Math.floor(SHARE * innerHeight * canvas.width / canvas.height);
        // The canvas's sizes are rounded: two neighbouring widths can each ask for the other.
        if (Math.abs(parseFloat(frame.style.maxWidth) - widest) <= 2) return;
        frame.style.maxWidth = `${widest}px`;
        frame.style.margin = "0 auto";
    };
    new MutationObserver(fit).observe(editor, {
        subtree: true, childList: true, attributes: true, attributeFilter: ["width", "height"],
    });
    addEventListener("resize", fit);
}""".replace("SHARE", str(SCREEN_SHARE))
"""Installed once in the page: keeps a tall image within `SCREEN_SHARE` of the window's height.

The editor scales an image to its full width only, so a portrait photo ran far below the screen
and could not be boxed whole. Narrowing the canvas's frame to the width at which the image fits
makes the editor size its canvas (and the boxes on it) anew, undistorted: the canvas reports its
image's proportions through its own width and height, which this watches."""


TOOLS_SHOWN_S = 3
"""How long after a new image the editor's size is watched (`TOOLS_IN_VIEW`): long enough for a
phone to load and lay out the image, short enough not to move the page under a later scroll."""

TOOLS_IN_VIEW = (
    """() => {
    const editor = document.querySelector("#fo1-editor");
    const below = document.querySelector("#fo1-box-note")?.closest(".row");
    if (!editor || !below) return;
    let until = 0;
    const show = () => {
        if (Date.now() > until) return;
        const hidden = below.getBoundingClientRect().bottom + 8 - innerHeight;  // and a margin
        // Never past the image's top: the image matters more than its tools.
        const room = editor.getBoundingClientRect().top;
        if (hidden > 1) scrollBy({top: Math.min(hidden, room), behavior: SCROLLING});
    };
    new ResizeObserver(show).observe(editor);
    addEventListener(NEW_IMAGE, () => {
        until = Date.now() + 1000 * WATCHED;
        requestAnimationFrame(show);
    });
}""".replace("NEW_IMAGE", '"fo1-new-image"')
    .replace("WATCHED", str(TOOLS_SHOWN_S))
    .replace("SCROLLING", SCROLLING)
)
"""Installed once in the page: a new image (`NEW_IMAGE_SHOWN`) whose editor runs below the window
is scrolled up until the editor's tools, Undo and the box count are in view too.

On a laptop's screen (1280×720) and on a phone the examples and the introduction push the editor
down: a loaded example filled the window's lower part, its tools and Undo below it, to be found
by scrolling. The editor fits such a window (`SCREEN_SHARE` of it for the image); watched while
its image loads and is sized (`FIT_TO_SCREEN`), it is brought up by as much as it grows."""

NEW_IMAGE_SHOWN = '() => dispatchEvent(new Event("fo1-new-image"))'
"""The page-side step after an example or an upload reached the editor (`TOOLS_IN_VIEW`)."""

MARK_STROKES = """() => {
    const page = document.body.classList;
    addEventListener("pointerdown", (event) => {
        if (event.target.closest("#fo1-editor canvas")) page.add("fo1-stroke");
    }, true);
    for (const end of ["pointerup", "pointercancel"]) {
        addEventListener(end, () => page.remove("fo1-stroke"), true);
    }
}"""
"""Installed once in the page: `fo1-stroke` marks the page while a pointer is down on the editor
(a box drawn, moved or resized), for `ui.boxes.RELABEL_IN_BROWSER` to wait for its end. Both
listeners capture, so the mark is gone before the editor reports the stroke's end."""


SELECTION_AS_SHOWN = """() => {
    const editor = document.querySelector("#fo1-editor");
    if (!editor) return;
    // Whether the editor's last frame drew a box as selected: it writes that box's tag in bold.
    let shown = false, boldSeen = false, frameOpen = false;
    const watch = (canvas) => {
        const context = canvas.getContext("2d");
        if (!context || context.fo1Selection) return;
        context.fo1Selection = true;
        const {fillText} = context;
        context.fillText = function (text, ...rest) {
            if (/^#\\d+$/.test(text)) {
                boldSeen ||= this.font.startsWith("bold");
                if (!frameOpen) {
                    frameOpen = true;
                    queueMicrotask(() => [shown, boldSeen, frameOpen] = [boldSeen, false, false]);
                }
            }
            return fillText.call(this, text, ...rest);
        };
    };
    const pressFarAway = (canvas) => {
        // With the box tool a press draws a box; an image that comes with boxes opens with the
        // hand tool, and one without has no box to select.
        const hand = editor.querySelector("button[aria-label='Drag boxes']");
        if (!hand?.classList.contains("selected")) return;
        const far = {clientX: -1e6, clientY: -1e6, pointerId: 1, pointerType: "mouse",
            isPrimary: true, bubbles: true, composed: true};
        canvas.dispatchEvent(new PointerEvent("pointerdown", {...far, button: 0, buttons: 1}));
        canvas.dispatchEvent(new PointerEvent("pointerup", {...far, button: 0, buttons: 0}));
    };
    const met = new WeakSet();
    const arrived = () => editor.querySelectorAll("canvas").forEach((canvas) => {
        watch(canvas);
        if (met.has(canvas)) return;
        met.add(canvas);
        // After the editor's own start, which selects its first box.
        setTimeout(() => pressFarAway(canvas), 0);
    });
    new MutationObserver(arrived).observe(editor, {subtree: true, childList: true});
    arrived();
    const refuse = (event) => {
        event.preventDefault();
        event.stopPropagation();
    };
    addEventListener("click", (event) => {
        if (!shown && event.target.closest("#fo1-editor button[aria-label='Remove box']")) {
            refuse(event);
        }
    }, true);
    addEventListener("keydown", (event) => {
        if (!shown && event.key === "Delete" && event.target.closest("#fo1-editor")) refuse(event);
    }, true);
}"""
"""Installed once in the page: the bin and Delete remove the box shown selected, and no other.

The editor (gradio_image_annotation 0.5.6) keeps its selection as a place in its list of boxes,
whatever boxes come to that place, and its bin removes the box there:
- as its canvas starts it selects its first box, the smallest (`ui.boxes.RELABEL_IN_BROWSER`):
  the Coins example, asking about coin #0, showed coin #1 in bold with its handles, and the bin
  removed it unasked. The editor has no call to select nothing but a press beside every box, so
  the page makes one, with the hand tool, far outside the canvas's image;
- boxes set by the server (Set these boxes, Propose, Undo, Keep only these boxes) come
  unselected, but the place stays, and the bin removed the box now there. So the page watches
  which tag the editor draws in bold, and lets the bin and Delete act only while one is."""


TOUCH_HANDLE_SIZE = 24
"""The side of the square around each corner and side of a box in which a finger resizes it, in
CSS pixels (the editor sizes its canvas to its element and measures handles in canvas pixels,
whatever the zoom): WCAG 2.2's least target for a pointer (2.5.8), 12 px either side of a corner.
The editor's own 8 px, kept for a mouse, left a finger just off a corner moving the box, or the
box beside it, instead of resizing it."""

FINGER_SIZED_HANDLES = f"""() => matchMedia("(pointer: coarse)").matches
    ? {{__type__: "update", handle_size: {TOUCH_HANDLE_SIZE}}}
    : undefined"""
"""Run once as the page loads, its output the editor: on a touch screen (`pointer: coarse`, as in
`ui.style`) the boxes drawn or loaded from then on take `TOUCH_HANDLE_SIZE` handles. The size is
one of the component's settings, the same for every visitor, so it is set in each page instead:
24 px squares on every box's corners and sides would cover a mouse user's small boxes for a
precision a mouse does not need."""

SHOWN_HANDLE_SIZE = 12
"""The side of those handles as drawn (`TAGS_AND_HANDLES_DRAWN`): drawn whole, 24 px squares on
every corner and side covered the boxes' tags and much of a small box on a phone's image."""

MOUSE_HANDLE_SIZE = 8
"""The editor's own handle size (gradio_image_annotation 0.5.6), which a mouse keeps."""

HANDLES_ON_EVERY_BOX = 12
"""Up to this many boxes, each shows its eight resize handles; beyond, only the selected box's
(`TAGS_AND_HANDLES_DRAWN`). Twenty-four coins or a hundred proposals drew 200 to 800 squares,
which hid the photo under them; a box still resizes from its corners and sides, where the cursor
says so, and shows its handles once selected."""

LABEL_HEIGHT = 20
"""The height of the tag (`#i`) the editor draws above each box (gradio_image_annotation 0.5.6)."""

TAGS_AND_HANDLES_DRAWN = (
    """() => {
    const editor = document.querySelector("#fo1-editor");
    if (!editor) return;
    const patch = (canvas) => {
        const context = canvas.getContext("2d");
        if (!context || context.fo1Tags) return;
        context.fo1Tags = true;
        const {fillRect, strokeRect, fillText} = context;
        let shift = 0;
        // One frame's tags and the unselected boxes' handles, drawn once the frame is, when
        // it proves to hold few boxes: the editor draws a box's handles before the next box.
        let tags = 0, held = [];
        const frame = () => {
            if (tags || held.length) return;
            queueMicrotask(() => {
                if (tags <= MANY) {
                    context.save();
                    for (const [style, square] of held) {
                        context.fillStyle = style;
                        fillRect.call(context, ...square);
                    }
                    context.restore();
                }
                [tags, held] = [0, []];
            });
        };
        context.fillRect = function (x, y, width, height) {
            // The editor's handle sides are differences of floats: 7.999… as often as 8.
            const near = (size) => Math.abs(width - size) < 0.5 && Math.abs(height - size) < 0.5;
            if (near(HANDLE) || near(MOUSE)) {
                const side = near(HANDLE) ? SHOWN : width;
                const inset = (width - side) / 2;
                const square = [x + inset, y + inset, side, side];
                // The editor writes the selected box's tag in bold, just before its handles.
                if (this.font.startsWith("bold")) return fillRect.call(this, ...square);
                frame();
                held.push([this.fillStyle, square]);
                return;
            }
            if (height === TAG) {
                frame();
                tags += 1;
            }
            // Only a tag cut off by the top edge; one whose box is wholly above the canvas
            // (zoomed in) stays out of sight with it.
            shift = height === TAG && y < 0 && y >= -TAG ? -y : 0;
            return fillRect.call(this, x, y + shift, width, height);
        };
        context.strokeRect = function (x, y, width, height) {
            return strokeRect.call(this, x, y + (height === TAG ? shift : 0), width, height);
        };
        context.fillText = function (text, x, y, ...rest) {
            const by = shift;
            shift = 0;
            return fillText.call(this, text, x, y + by, ...rest);
        };
    };
    const patchAll = () => editor.querySelectorAll("canvas").forEach(patch);
    new MutationObserver(patchAll).observe(editor, {subtree: true, childList: true});
    patchAll();
}""".replace("TAG", str(LABEL_HEIGHT))
    .replace("HANDLE", str(TOUCH_HANDLE_SIZE))
    .replace("MOUSE", str(MOUSE_HANDLE_SIZE))
    .replace("SHOWN", str(SHOWN_HANDLE_SIZE))
    .replace("MANY", str(HANDLES_ON_EVERY_BOX))
)
"""Installed once in the page: a box's `#i` tag that would be drawn above the image (a box
touching its top edge) is drawn just inside the box instead; a finger's resize handles
(`TOUCH_HANDLE_SIZE`) are drawn smaller than the squares they take touches in; and past
`HANDLES_ON_EVERY_BOX` boxes, only the selected box's handles are drawn.

The editor draws each tag as a white rectangle of `LABEL_HEIGHT` px, its outline and its text,
above the box and outside the canvas for a box at the top, so the region numbers everything in
the app refers to were missing from such boxes: the whole image, a proposer's boxes along the
top, two of the Launch pad example's five. The editor offers no other place for them; this moves
the three drawing calls of such a tag down, on that canvas only."""


def box_editor(**options: Any) -> image_annotator:
    """The box editor, its images reaching the handlers as uploaded (`as_uploaded`): in their
    own mode (alpha, 16 bits), which `fo1_core.inputs.open_image` reads as the browser shows
    them, and in their own bytes."""
    return image_annotator(**options)


TURNED_KEPT_S = 3600
"""How long a turned copy is kept after its last use: as long as Gradio keeps uploads by default
(`app.py --file-ttl`), after which the image it was turned from is gone too."""
_TURNED = AppFolder("fo1-turned-", TURNED_KEPT_S)


def turned(image: str, turns: int) -> str:
    """`image` turned clockwise by `turns` quarter turns, as the editor's rotate buttons show it
    (and as the boxes drawn on it are measured): a file of the app's, one per image and turn."""
    turns %= 4
    if not turns:
        return image

    def write(path: Path) -> None:
        with open_image_file(image) as source:
            ImageOps.exif_transpose(source).rotate(-90 * turns, expand=True).save(path)

    return _copy_of(_TURNED, image, str(turns), write) or image


def _copy_of(folder: AppFolder, image: str, kind: str, write: Callable[[Path], None]) -> str | None:
    """The file `write` makes of `image` in `folder`, made once per image and `kind`; None if it
    cannot be made (opening the image for the model gives the message about what is wrong)."""
    # Named by content: the copies Gradio makes of the image share one.
    name = hashlib.sha256(f"{file_identity(image)}:{kind}".encode()).hexdigest()[:32]
    path = folder.root / f"{name}.png"
    if path.exists():
        path.touch()  # in use: kept for another while
        return str(path)
    folder.prune()
    # Written whole under another name, then renamed: the editor's events for one image come
    # together, and one must not read the file while another is still writing it.
    partial = path.with_name(f"{name}.{threading.get_ident()}.partial.png")
    try:
        write(partial)
        os.replace(partial, path)
    except (OSError, ValueError, FO1Error, Image.DecompressionBombError):
        partial.unlink(missing_ok=True)
        return None
    return str(path)


EDITOR_SIDE = 1280
"""A small image (`SMALL_SIDE`) reaches the editor enlarged whole times to a long side of at
least this: wider than the editor on any screen (1102 px at most). The editor shrinks a larger
image to its width, but showed a smaller one at its own size: a 40×30 icon as a stamp, hardly
to be boxed."""
SMALL_SIDE = 512
"""An image whose long side is under this is enlarged for the editor (`EDITOR_SIDE`)."""
_ENLARGED = AppFolder("fo1-enlarged-", TURNED_KEPT_S)
_ORIGINALS: OrderedDict[str, tuple[str, int]] = OrderedDict()
"""Each copy the editor is handed (`enlarged`), by its content (`file_identity`: the same for
each copy Gradio makes of it), to the image it was made from and how many times enlarged."""
ORIGINALS_KEPT = 4096
_ORIGINALS_LOCK = threading.Lock()


def enlargement(width: int, height: int) -> int:
    """How many times a `width`×`height` image is enlarged for the editor (1: not at all)."""
    side = max(width, height)
    return math.ceil(EDITOR_SIDE / side) if side < SMALL_SIDE else 1


def enlarged(image: str) -> tuple[str, int]:
    """`image` as the editor is handed it, and how many times it is enlarged there.

    A small image (`enlargement`) as a copy of the app's, each pixel a block of whole pixels (a
    photo stays sharp, an icon's pixels show), as the model reads it (`open_image`: EXIF
    orientation applied, transparency over white); boxes drawn on it are measured back in its
    own pixels (`in_image_pixels`, which finds it through `original`). A TIFF, which Chrome and
    Firefox do not draw (the editor stayed empty), as such a copy too, a PNG, enlarged only if
    small. Any other image as it is.
    """
    try:
        factor = enlargement(*shown_size(image))
        if factor == 1 and drawn_by_browsers(image):
            return image, 1
    except (OSError, FO1Error, Image.DecompressionBombError):
        return image, 1  # opening it for the model gives the message about what is wrong

    def write(path: Path) -> None:
        source = open_image(image)
        size = (source.width * factor, source.height * factor)
        source.resize(size, Image.Resampling.NEAREST).save(path)

    copy = _copy_of(_ENLARGED, image, f"x{factor}", write)
    if copy is None:
        return image, 1
    key = file_identity(copy)
    with _ORIGINALS_LOCK:
        _ORIGINALS[key] = (image, factor)
        _ORIGINALS.move_to_end(key)
        while len(_ORIGINALS) > ORIGINALS_KEPT:
            _ORIGINALS.popitem(last=False)
    return copy, factor


def original(image: str) -> tuple[str, int]:
    """The image that `image`, a file the editor sent, was enlarged from (`enlarged`), and how
    many times; any other image is its own, once."""
    key = file_identity(image)
    with _ORIGINALS_LOCK:
        return _ORIGINALS.get(key, (image, 1))


def shown_enlarged(value: dict | None) -> tuple[Any, Any]:
    """An upload's step: when its image is small, the editor's value with no boxes, for a hidden
    editor to hand it enlarged (`enlarged_for_the_page`), and what the page needs to take it
    (`TAKE_THE_ENLARGED_COPY`): the upload's file and the enlargement. Any other image is left
    alone (`gr.skip`)."""
    image = (value or {}).get("image")
    copy, factor = (None, 1) if image is None else enlarged(image)
    if copy == image:
        return gr.skip(), gr.skip()
    return {**value, "boxes": []}, {"source": image, "factor": factor}


ENLARGED_COPIES = """() => {
    window.fo1EnlargedCopy = null;
    const uploads = new Map();  // the upload shown as each enlarged copy, by the copy's address
    window.fo1WithEnlargedCopy = (shown) => {
        const waiting = window.fo1EnlargedCopy;
        if (!waiting || !shown?.image || document.body.classList.contains("fo1-stroke")) {
            return undefined;
        }
        window.fo1EnlargedCopy = null;
        if (shown.image.path !== waiting.source || (shown.orientation ?? 0) !== 0) return undefined;
        uploads.set(waiting.copy.image.url, shown.image);
        const boxes = (shown.boxes ?? []).map(({scaleFactor = 1, ...box}) => ({
            ...box,
            ...Object.fromEntries(CORNERS.map(
                corner => [corner, box[corner] / scaleFactor * waiting.factor])),
        }));
        return {...waiting.copy, boxes};
    };
    addEventListener("click", (event) => {
        const link = event.target.closest?.("#fo1-editor a[download]");
        const upload = link && uploads.get(link.getAttribute("href"));
        if (!upload) return;
        event.preventDefault();
        event.stopPropagation();
        const saved = document.createElement("a");
        saved.href = upload.url;
        saved.download = upload.orig_name ?? "";
        saved.click();
    }, true);
}""".replace("CORNERS", json.dumps(CORNERS))
"""Installed once in the page: `fo1WithEnlargedCopy(shown)`, the editor's value `shown` with the
enlarged copy of its small upload (`shown_enlarged`) waiting in `fo1EnlargedCopy` in place of the
upload, the boxes drawn on the upload meanwhile enlarged with it; undefined while a box is being
drawn (taking it then cuts the stroke short: `ui.boxes.RELABEL_IN_BROWSER` takes it at the
stroke's end), or when there is none. A copy is dropped once the editor holds another image, or
this one turned. Run in the page, on the editor as it is: a server reply writing the editor would
take away the boxes drawn while it was on its way.

The editor's Download saves the image shown: for an enlarged copy, the upload it was made from,
under its own name (it used to save the copy: a PNG many times the size, named by the cache)."""

TAKE_THE_ENLARGED_COPY = """(copy, made, shown) => {
    window.fo1EnlargedCopy = copy && made ? {...made, copy} : null;
    return window.fo1WithEnlargedCopy(shown);
}"""
"""The enlarged copy of a small upload landed (`ENLARGED_COPIES`)."""
