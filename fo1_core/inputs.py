"""The user's image and boxes as FO1 takes them: an image read as its viewer shows it (EXIF
orientation applied, RGB, its size within bounds) from whatever it comes as, and boxes checked
and cut to it. Light (numpy and PIL), so that a command line judges its input before torch loads;
`fo1_core.processing` prepares what the model's towers receive from them."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from detect_tools.box_rules import box_rows, covers_a_pixel, whole_pixel_sides
from detect_tools.images import (
    UNREADABLE_IMAGE,
    as_rgb,
    open_image_file,
    refuse_special_file,
    refuse_url,
    size_problem,
    turned_as_shown,
)
from fo1_core.box_files import NotABox
from fo1_core.errors import FO1Error
from fo1_core.templates import MAX_REGIONS, box_count

ImageSource = str | Path | bytes | Image.Image | np.ndarray
"""An image file's path or bytes, a PIL image, or a uint8 array of shape (H, W), (H, W, 3) RGB
or (H, W, 4) RGBA."""


def open_image(source: ImageSource | None) -> Image.Image:
    """Reads an image as the user sees it: EXIF orientation applied, RGB, size checked."""
    return read_image(source)[0]


def _closed(image: Image.Image) -> bool:
    """Whether `image` was closed: Pillow then answers any use of its pixels with an error, which
    would read as a damaged file."""
    try:
        _ = image.im
    except ValueError:
        return True
    except AssertionError:  # Pillow's way of saying a file's pixels are not read yet
        # They can be while the file is open: the end of a `with` block lets go of the file
        # without marking the image closed, and loading then fails on a bare assertion.
        return isinstance(image, ImageFile.ImageFile) and image.fp is None
    return False


def read_image(source: ImageSource | None, as_shown: bool = True) -> tuple[Image.Image, list[str]]:
    """`open_image`, with notices of what the model will not see (the later frames of an
    animation or of a multi-page file). Not `as_shown`: the pixels as stored, EXIF orientation
    left unapplied, as datasets' annotations and the official evaluation read them."""
    if isinstance(source, Image.Image):
        if _closed(source):
            raise FO1Error(
                "The image was closed before it was passed (Image.close(), or the end of a "
                "`with Image.open(...)` block): pass it while it is open, or pass its path."
            )
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    else:
        image = _open(source)
    check_size(*image.size)  # from the header: a refused image is never decoded
    frames = getattr(image, "n_frames", 1)
    notices = [] if frames == 1 else [f"The image has {frames} frames; FO1 reads the first only."]
    try:
        picture = as_rgb(_as_shown(image, source, notices)) if as_shown else _as_stored(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise FO1Error(f"The image file is damaged or truncated ({error}).") from error
    # An RGB first frame is still the whole file: copied, it is a single picture, which asked
    # about again (as the app does with what it read) tells of no frames the caller was told of.
    return (picture if getattr(picture, "n_frames", 1) == 1 else picture.copy()), notices


def _as_shown(image: Image.Image, source: ImageSource, notices: list[str]) -> Image.Image:
    """`image`, read from `source`, turned as its EXIF orientation says. The caller's own PIL
    image is turned on a copy, a notice added; one with nothing to turn is read itself (an opened
    image, `open_image`'s, is handed on without a copy)."""
    if image is not source:  # made here: turned in place, not copied
        ImageOps.exif_transpose(image, in_place=True)
        return image
    turned = turned_as_shown(image)
    if turned is not source:
        # Boxes found on the image as given (its own `.size`) would name other pixels.
        notices.append(
            f"The image was turned as its EXIF orientation says: boxes are read on it as shown, "
            f"{turned.width}×{turned.height}, not {source.width}×{source.height}."
        )
    return turned


def _as_stored(image: Image.Image) -> Image.Image:
    """`image` in 8-bit RGB as a copy that tells no orientation, so that nothing reading it
    later (the model's preprocessing reads a PIL image as shown) turns it after all."""
    copy = as_rgb(image).copy()
    for key in ("exif", "xmp", "XML:com.adobe.xmp"):  # Pillow reads an orientation from either
        copy.info.pop(key, None)
    return copy


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    ):
        raise FO1Error(
            "An image given as an array must be uint8 of shape (H, W), (H, W, 3) RGB or "
            f"(H, W, 4) RGBA; got {array.dtype} of shape {array.shape}."
        )
    return Image.fromarray(array)


def check_size(width: int, height: int) -> None:
    """Raises `FO1Error`, naming the limit, for an image size the model cannot take."""
    problem = size_problem(width, height)
    if problem:
        raise FO1Error(problem)


def image_size(source: str | Path) -> tuple[int, int]:
    """The width and height of the image file at `source` as the user sees it (EXIF orientation
    applied), from its header: nothing is decoded."""
    with _open(source) as image:
        width, height = image.size
        try:
            turned = image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
        except OSError as error:  # a file cut short before its EXIF block
            raise FO1Error(f"The image file is damaged or truncated ({error}).") from error
    return (height, width) if turned else (width, height)


def _open(source: object) -> Image.Image:
    """`Image.open`, lazily, with a message for each way it fails."""
    if source is None:
        raise FO1Error("No image: upload an image first.")
    if isinstance(source, (str, Path)):
        refuse_url(source, FO1Error)
        refuse_special_file(source, FO1Error, f"the image {source}")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    else:
        raise FO1Error(
            "An image is given as a file's path or bytes, a PIL image or a uint8 array; got "
            f"{type(source).__name__}."
        )
    try:
        return open_image_file(source)
    except Image.DecompressionBombError as error:
        raise FO1Error(f"The image is too large to open safely ({error}).") from error
    except FileNotFoundError as error:  # a mistyped path, or an upload the server deleted
        raise FO1Error(
            f"The image file '{Path(source).name}' is not there: check the path, or upload "
            "the image again."
        ) from error
    except (UnidentifiedImageError, OSError) as error:
        raise FO1Error(UNREADABLE_IMAGE) from error


def clip_box(box: Sequence[float], width: float, height: float) -> list[float]:
    """`[x1, y1, x2, y2]` cut to a `width`×`height` image (no area left if wholly outside)."""
    x1, y1, x2, y2 = box
    return [
        min(max(x1, 0), width),
        min(max(y1, 0), height),
        min(max(x2, 0), width),
        min(max(y2, 0), height),
    ]


def box_problem(box: Sequence[float], width: int, height: int) -> str | None:
    """Why a box cut to a `width`×`height` image cannot be read, to follow the box's name in a
    message; None when it can. A box under a whole pixel (`covers_a_pixel`) is refused as the
    page refuses it when typed and drops it when proposed, rather than pooled from a sliver."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return f"has no area inside the {width}×{height} image"
    if not covers_a_pixel(box):
        wide, high = whole_pixel_sides(box)
        return (
            f"is {x2 - x1:.3g}×{y2 - y1:.3g} px inside the {width}×{height} image ({wide:g}×"
            f"{high:g} in whole pixels, as the editor draws it): a box needs at least one whole "
            "pixel each way"
        )
    return None


FRACTIONS_HINT = (
    " Every coordinate is 1 or less: boxes are in pixels, not fractions of the image (multiply"
    " x by its width and y by its height)."
)


def check_boxes(boxes: object, image_size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Validates user boxes `[[x1, y1, x2, y2], …]` in image pixels; returns them and notices.

    Boxes partly outside the image are cut to it, with a notice: the towers read them so (as
    upstream clips them), and the answer's detections and files then hold the boxes the model
    read. More than `MAX_REGIONS` boxes are cut to the first `MAX_REGIONS`, with a notice.
    `boxes` may also be as a detector hands them over (`box_rows`).
    """
    boxes = box_rows(boxes)
    for index, box in enumerate(boxes if isinstance(boxes, list) else []):
        if isinstance(box, NotABox):
            raise FO1Error(f"Box #{index} {box.why}.")
    try:
        written = np.asarray(boxes if boxes is not None else [], dtype=object)
        # numpy would read "10" and True as numbers; a user's boxes file should not pass with them.
        if any(isinstance(value, str | bytes | bool | np.bool_) for value in written.ravel()):
            raise ValueError("not a number")
        array = written.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as error:  # Overflow: a JSON integer too big
        given = (
            ""
            if isinstance(boxes, list | tuple | np.ndarray)
            else f", not a {type(boxes).__name__}"
        )
        raise FO1Error(f"Boxes must be a list of [x1, y1, x2, y2] numbers{given}.") from error
    if array.size == 0:
        return np.zeros((0, 4)), []
    if array.ndim != 2 or array.shape[1] != 4:
        raise FO1Error(f"Boxes must be a list of [x1, y1, x2, y2]; got shape {array.shape}.")
    notices = []
    if len(array) > MAX_REGIONS:
        notices.append(
            f"{len(array)} boxes given; FO1 takes at most {MAX_REGIONS}, so only the first "
            f"{MAX_REGIONS} (region 0–{MAX_REGIONS - 1}) are used."
        )
        array = array[:MAX_REGIONS]
    width, height = image_size
    clipped = []
    for index, (x1, y1, x2, y2) in enumerate(array.tolist()):
        if not np.all(np.isfinite([x1, y1, x2, y2])):
            raise FO1Error(f"Box #{index} has a coordinate that is not a number.")
        if x2 < x1 or y2 < y1:
            raise FO1Error(f"Box #{index} is inverted: x2 < x1 or y2 < y1 in {[x1, y1, x2, y2]}.")
        clipped.append(clip_box((x1, y1, x2, y2), width, height))
        if problem := box_problem(clipped[-1], width, height):
            hint = FRACTIONS_HINT if np.abs(array).max() <= 1 < max(width, height) else ""
            raise FO1Error(f"Box #{index} {[x1, y1, x2, y2]} {problem}.{hint}")
    inside = np.asarray(clipped, dtype=np.float64)
    if cut := [index for index, moved in enumerate((inside != array).any(axis=1)) if moved]:
        named = ", ".join(f"#{index}" for index in cut[:10]) + (", …" if len(cut) > 10 else "")
        notices.append(f"Cut to the image: {box_count(len(cut))} reaching out of it ({named}).")
    return inside, notices
