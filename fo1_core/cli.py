"""What the command lines share (`python -m fo1_core`, its `evaluate`, `app.py`): argument types,
and reading the JSON files a user names. Light: no torch until a device is read, so that a
command line says what is wrong with its arguments and files at once."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from detect_tools.images import refuse_special_file, refuse_url
from fo1_core.errors import FO1Error
from fo1_core.inputs import read_image

PUBLISHED_CHECKPOINT = "omlab/VLM-FO1_Qwen2.5-VL-3B-v01"
"""The checkpoint the app and command lines load unless told otherwise."""


def add_checkpoint_option(parser: argparse.ArgumentParser) -> None:
    """`--checkpoint`: the published model unless another is named."""
    parser.add_argument(
        "--checkpoint",
        default=PUBLISHED_CHECKPOINT,
        help="hub id or local checkpoint folder (default: %(default)s)",
    )


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`, when given)."""
    wanted = f"at least {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {wanted}, got {text!r}")
        return number

    return parse


positive = whole_number(1)
"""A count of at least 1 (tokens, images, categories)."""


def device_name(text: str) -> str:
    """An argparse type: a device this machine has, found out before a model is built on it
    (or a run's records are started)."""
    from fo1_core.checkpoint import parse_device, require_present  # torch: only to read devices

    try:
        require_present(parse_device(text))
    except FO1Error as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def local_path(text: str) -> Path:
    """An argparse type for a file or folder to read: a URL is refused before anything loads."""
    refuse_url(text, argparse.ArgumentTypeError)
    return Path(text)


MAX_DATA_FILE_BYTES = 2_000_000_000
"""The most a data file (COCO annotations, count items, proposals) may hold: over four times
COCO's largest annotations file (instances_train2017.json, 448 MB). A bigger one is taken for a
mistake, not read until memory runs out (parsed JSON takes several times its size)."""
MAX_BOXES_FILE_BYTES = 10_000_000
"""The most a boxes file may hold: 500 times what `python -m detect_tools --json` writes for 100
proposals (under 20 kB); a list of 300 000 boxes from another tool still fits (the model reads the
first 100)."""


def open_named_image(path: Path, as_shown: bool = True) -> Image.Image:
    """The image at `path`, a file the user named, with each refusal naming it by the whole path
    tried: the file name alone, as the app names a missing upload, would not tell which folder
    was looked in, nor which of an evaluation's images is damaged. `as_shown`: as `read_image`."""
    return read_named_image(path, as_shown)[0]


def read_named_image(path: Path, as_shown: bool = True) -> tuple[Image.Image, list[str]]:
    """`open_named_image`, with `read_image`'s notices of what the model will not see."""
    if not path.exists():
        raise FO1Error(f"The image {path} is not there.")
    try:
        return read_image(path, as_shown)
    except FO1Error as error:
        if str(path) in str(error):
            raise
        raise FO1Error(f"{path}: {error}") from error


def read_text(path: Path, name: str | None = None, max_bytes: int = MAX_DATA_FILE_BYTES) -> str:
    """The UTF-8 text of a file the user named, of at most `max_bytes`; an FO1Error saying why
    not, naming the file as `name` (default: its path)."""
    name = name or str(path)
    refuse_special_file(path, FO1Error, name)
    try:
        refuse_too_large(path.stat().st_size, max_bytes, name)
        return utf8_text(path.read_bytes(), name)
    except OSError as error:
        raise FO1Error(f"Could not read {name}: {error.strerror or error}") from error


def refuse_too_large(size: int, max_bytes: int, name: str) -> None:
    """Raises `FO1Error` where a file (`name`) of `size` bytes is over `max_bytes`."""
    if size > max_bytes:
        raise FO1Error(
            f"Could not read {name}: it is {_megabytes(size)}; at most "
            f"{_megabytes(max_bytes)} is read from such a file."
        )


def utf8_text(data: bytes, name: str) -> str:
    """`data`, read from what `name` says, as UTF-8 text; an FO1Error naming it otherwise."""
    try:
        # "-sig": without the byte order mark some editors start a UTF-8 file with.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problem = f"it is not UTF-8 text (byte {error.start})"
        raise FO1Error(f"Could not read {name}: {problem}.") from error


def _megabytes(size: int) -> str:
    """`size` bytes in megabytes, rounded up: just over a limit must not read as the limit."""
    return f"{math.ceil(size / 1e5) / 10:,.1f}".removesuffix(".0") + " MB"


def parse_json(text: str, name: str) -> object:
    """The JSON document in `text`, read from what `name` says; an FO1Error naming it otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problem = f"it is not valid JSON ({error})"
    except RecursionError:
        problem = "its lists or objects nest too deeply"
    except ValueError:  # the only other one: Python reads integers of at most 4300 digits
        problem = "it holds a number with too many digits"
    raise FO1Error(f"Could not read {name}: {problem}.")


def read_json(path: Path, name: str | None = None, max_bytes: int = MAX_DATA_FILE_BYTES) -> object:
    """The JSON document in a file the user named (see `read_text`)."""
    return parse_json(read_text(path, name, max_bytes), name or str(path))
