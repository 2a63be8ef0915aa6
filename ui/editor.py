"""The box editor: `gradio_image_annotation` with bad uploads turned into a readable message,
and its image as the user sees it after the editor's rotate buttons (`turned`).

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
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradio.data_classes import FileData
from gradio_image_annotation import image_annotator
from PIL import Image, ImageOps, UnidentifiedImageError

from detect_tools.images import UNREADABLE_IMAGE, open_image_file
from fo1_core.errors import FO1Error
from fo1_core.processing import check_size
from ui.errors import user_error
from ui.files import AppFolder, FileVersion, file_identity, file_version

FILE_NAME = "file_name"
"""Key of the editor value holding the uploaded file's name as the user's computer had it (the
component saves every upload again, under a name of its own)."""
UNREADABLE = "unreadable"
"""Key of the editor value a file that cannot be opened comes back as (see `readable_errors`)."""
UNREADABLE_NOTE = "That file could not be used."
"""The box note for such a file: on it, `EMPTY_IF_UNREADABLE` empties the editor in the page."""
EMPTY_IF_UNREADABLE = f"(note) => note === {json.dumps(UNREADABLE_NOTE)} ? null : undefined"
"""Run in the page, not by a server reply: a reply writing the editor, even to leave it as it is,
loses boxes drawn while it was on its way."""
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


def as_uploaded(self: image_annotator, image: FileData | None) -> str | None:
    """The editor's image file as it came, once checked to open as an image.

    The component's own step saved the image again at every event: a JPEG the server sent back
    (Undo, Propose, typed boxes) was compressed once more each time, losing detail, and as other
    bytes it read as another image. EXIF orientation, which that step applied, is applied by
    everything that opens the file here (`fo1_core.processing.open_image`, `turned`)."""
    if image is None:
        return None
    path = str(image.path)
    if path.lower().endswith(".svg"):
        return path  # refused with a message when opened for the model
    _check_opens(file_version(path))
    return path


@functools.lru_cache(maxsize=256)
def _check_opens(version: FileVersion) -> None:
    """Decodes the file once per version: a broken or truncated file raises here, as the
    component's own step would have, and so does an image the model cannot take (its size is
    checked first), before boxes are drawn on it in vain."""
    with open_image_file(version[0]) as image:
        check_size(*image.size)
        image.load()


if not getattr(image_annotator.preprocess, "readable", False):
    image_annotator.preprocess_image = as_uploaded
    image_annotator.preprocess = readable_errors(
        with_file_name(image_annotator.preprocess),
        (KeyError, TypeError, ValueError),
        BAD_BOXES,
        True,
    )
    image_annotator.postprocess = named_for_the_page(image_annotator.postprocess)


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


LABEL_HEIGHT = 20
"""The height of the tag (`#i`) the editor draws above each box (gradio_image_annotation 0.5.6)."""

TAGS_INSIDE_AT_THE_TOP = """() => {
    const editor = document.querySelector("#fo1-editor");
    if (!editor) return;
    const patch = (canvas) => {
        const context = canvas.getContext("2d");
        if (!context || context.fo1Tags) return;
        context.fo1Tags = true;
        const {fillRect, strokeRect, fillText} = context;
        let shift = 0;
        context.fillRect = function (x, y, width, height) {
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
"""Installed once in the page: a box's `#i` tag that would be drawn above the image (a box
touching its top edge) is drawn just inside the box instead.

The editor draws each tag as a white rectangle of `LABEL_HEIGHT` px, its outline and its text,
above the box and outside the canvas for a box at the top, so the region numbers everything in
the app refers to were missing from such boxes: the whole image, a proposer's boxes along the
top, two of the Launch pad example's five. The editor offers no other place for them; this moves
the three drawing calls of such a tag down, on that canvas only."""


def box_editor(**options: Any) -> image_annotator:
    """The box editor, its images reaching the handlers as uploaded (`as_uploaded`): in their
    own mode (alpha, 16 bits), which `fo1_core.processing.open_image` reads as the browser shows
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
    # Named by content: the copies Gradio makes of the image share one turned copy.
    name = hashlib.sha256(f"{file_identity(image)}:{turns}".encode()).hexdigest()[:32]
    path = _TURNED.root / f"{name}.png"
    if path.exists():
        path.touch()  # in use: kept for another while
    else:
        _TURNED.prune()
        # Written whole under another name, then renamed: the editor's events for one turn come
        # together, and one must not read the file while another is still writing it.
        partial = path.with_name(f"{name}.{threading.get_ident()}.partial.png")
        try:
            with open_image_file(image) as source:
                ImageOps.exif_transpose(source).rotate(-90 * turns, expand=True).save(partial)
            os.replace(partial, path)
        except (OSError, ValueError, Image.DecompressionBombError):
            partial.unlink(missing_ok=True)
            return image  # opening it for the model gives the message about what is wrong
    return str(path)
