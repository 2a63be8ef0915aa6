"""Images as every proposer and the model see them: 8-bit RGB, the way a viewer shows the file.

Shared so that the boxes a proposer finds and the picture the model reads agree on 16-bit scans,
float images and transparent cut-outs (plain ``convert("RGB")`` clips the first to white and turns
transparency black). Also shared: which paths are URLs, which neither package fetches, and which
file formats either opens.
"""

from __future__ import annotations

import math
import os
import re
import stat
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageOps, PngImagePlugin

URL = re.compile(r"[a-z][a-z0-9+.-]+:/|data:", re.IGNORECASE)
"""A scheme of two letters or more and a slash (`Path` folds `//` into one), or a data URL. One
letter and a colon is a Windows drive."""

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "BMP", "TIFF")
"""The formats `open_image_file` reads (JPEG includes phones' MPO). Pillow knows others, some
decoded by outside programs (EPS runs Ghostscript on the user's file): none of those is read."""
UNREADABLE_IMAGE = (
    "The file is not an image this app can read: use a JPEG, PNG, WebP, AVIF, GIF, BMP or TIFF."
)


MAX_INPUT_PIXELS = 100_000_000
"""Larger images are refused: decoding alone would take gigabytes, and neither the model nor a
proposer needs them."""
SMALLEST_ACCEPTED_SIDE = 8
MAX_ASPECT_RATIO = 150
"""Beyond this, FO1's 2048 cap leaves the short side under 14 px: a strip with nothing to see."""
TURNING_ORIENTATIONS = range(2, 9)
"""EXIF orientations that turn or mirror the picture."""


def size_problem(width: int, height: int) -> str | None:
    """Why an image of this size is refused, naming the limit, or None when it is read. Shared by
    FO1 and the proposers, so that an image one takes the other takes too; either way up, as
    EXIF orientation changes none of the limits."""
    if width * height > MAX_INPUT_PIXELS:
        # Up to the hundredth: just over the limit must not read as the limit itself.
        megapixels = f"{math.ceil(width * height / 1e4) / 100:.2f}".rstrip("0").rstrip(".")
        return (
            f"The image is {width}×{height} = {megapixels} megapixels; "
            f"the limit is {MAX_INPUT_PIXELS / 1e6:.0f}. Please downscale it first."
        )
    if min(width, height) < SMALLEST_ACCEPTED_SIDE:
        return (
            f"The image is {width}×{height} px; each side needs at least "
            f"{SMALLEST_ACCEPTED_SIDE} px."
        )
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        return (
            f"The image is {width}×{height} px, an aspect ratio above {MAX_ASPECT_RATIO}:1; "
            "crop it to a less extreme shape."
        )
    return None


warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
"""Pillow warns of "a decompression bomb DOS attack" from 89.5 megapixels, on stderr, a raw line
with its source: under the 100 allowed, an image is read as any other, and over, refused by its
size with the limit named (`size_problem`)."""

PngImagePlugin.MAX_TEXT_CHUNK = PngImagePlugin.MAX_TEXT_MEMORY
"""Pillow refuses a PNG whose compressed text chunk (metadata, such as an editor's history)
unpacks to over 1 MB; its 64 MB cap on all text chunks together still bounds the memory."""


def open_image_file(source: str | Path | IO[bytes]) -> Image.Image:
    """`Image.open` (lazily) for `IMAGE_FORMATS` only: other files raise
    `UnidentifiedImageError`."""
    return Image.open(source, formats=IMAGE_FORMATS)


def refuse_url(path: str | Path, error: type[Exception]) -> None:
    """Raises `error` with a message for the user when `path` is a URL: the project never fetches
    on a user's behalf, and opening a URL as a file would say that the file is missing. A data
    URL can be megabytes long, hence the cut."""
    if URL.match(str(path)):
        raise error(
            f"{str(path)!r:.100} is a URL; this tool reads local files only: download it first "
            "and give its path."
        )


_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def refuse_special_file(path: str | Path, error: type[Exception], name: str) -> None:
    """Raises `error` with a message for the user, naming the file as `name`, when `path` is no
    regular file: reading a named pipe waits for a writer that may never come, and a device such
    as /dev/zero never ends. No tool reads standard input, so `-` is not an exception. A path
    that is not there is left to the reading that follows, which says so in its own words."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
        raise error(f"Could not read {name}: it is {kind}; it must be a regular file.")


def turned_as_shown(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says, as a copy (the caller's image stays as it
    was), or `image` itself where there is nothing to turn: orientation 1, or a value outside
    2 to 8, which names no turn (0 is common in cameras' files) and which Pillow leaves as it
    is."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) not in TURNING_ORIENTATIONS:
        return image
    return ImageOps.exif_transpose(image)


def as_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB as a viewer shows it: 16-bit and float depths scaled, transparency over white.
    An RGB image is returned itself, decoded, not copied: a 100-megapixel copy takes longer than
    its decoding."""
    if image.mode.startswith(("I", "F")):
        image = _to_eight_bit_grey(image)
    if image.mode in ("La", "RGBa"):  # alpha premultiplied, of images made in memory
        image = image.convert(image.mode.upper())
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    if image.mode == "RGB":
        image.load()
        return image
    return image.convert("RGB")


def _to_eight_bit_grey(image: Image.Image) -> Image.Image:
    """An integer or float image as 8-bit grey ("L"), or grey + alpha ("LA") where the file names
    a transparent value (a PNG's tRNS chunk), which the scaling would otherwise lose."""
    values = np.asarray(image, dtype=np.float64)
    transparent = image.info.get("transparency")
    if image.mode.startswith("I;16"):
        scaled = values / 257  # the 16-bit range onto the 8-bit one, dark images staying dark
    elif image.mode == "F" and values.max(initial=0) <= 1:
        scaled = values * 255  # floats in [0, 1]
    else:  # 32-bit integers or floats: their own range, at least 16 bits' worth
        peak = values.max(initial=0)
        scaled = values * (255 / max(peak, 65535)) if peak > 255 else values
    grey = Image.fromarray(scaled.clip(0, 255).round().astype(np.uint8))
    if isinstance(transparent, (int, float)):
        grey.putalpha(Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8)))
    return grey
