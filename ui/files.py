"""Folders for the files the app writes itself (answers' downloads, turned images): each removed
when the app exits, and emptied of old entries as new ones come, so that a Space running for
weeks does not fill its disk."""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from gradio.route_utils import delete_files_created_by_app

from detect_tools.images import open_image_file
from fo1_core.inputs import image_size


class AppFolder:
    """A temporary folder whose entries older than `keep_s` go at each `prune`."""

    def __init__(self, prefix: str, keep_s: float) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep_s = keep_s
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)

    def prune(self) -> None:
        cutoff = time.time() - self.keep_s
        for old in self.root.iterdir():
            try:
                expired = old.stat().st_mtime < cutoff
            except FileNotFoundError:  # another request pruning now removed it first
                continue
            if not expired:
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def track_session_copies(postprocess_data: Callable) -> Callable:
    """`Blocks.postprocess_data`, after which the files of a component's session copy are
    deleted as the component's own are (`delete_cache`, `delete_served_files`).

    Once a handler returns an update for a component (`gr.skip()` included: the answer area's
    steps skip the result and downloads), Gradio gives that session its own copy of it, made
    outside the Blocks. Gradio never lists the files served through such a copy for deletion:
    every answer's image, JSON, COCO file and report, the user's image in it, stayed on disk
    for the server's life and after it."""

    @functools.wraps(postprocess_data)
    async def tracked(self: gr.Blocks, block_fn, predictions, state, *args, **kwargs):
        outputs = await postprocess_data(self, block_fn, predictions, state, *args, **kwargs)
        for block in block_fn.outputs if state is not None else ():
            copy = state.blocks_config.blocks.get(block._id)
            own = block.temp_files
            if isinstance(copy, gr.components.Component) and copy.temp_files is not own:
                # Into the component's own set, which Gradio's deletion reads: one set per copy
                # would add to its list with every step an answer skips.
                own.update(copy.temp_files)
                copy.temp_files = own
        return outputs

    tracked.tracks_session_copies = True
    return tracked


if not getattr(gr.Blocks.postprocess_data, "tracks_session_copies", False):
    gr.Blocks.postprocess_data = track_session_copies(gr.Blocks.postprocess_data)


def serve_from_a_folder_of_its_own() -> Path:
    """Points Gradio's uploads and served copies (`GRADIO_TEMP_DIR`) at a new folder of this app's
    own, inside the one set, if any, and removed at exit; call it before the app is built.

    Gradio serves, and takes as an upload, any file in that folder, which is /tmp/gradio for
    every Gradio app on the machine: this one served another program's files, and answered
    about them, to anyone who knew their names."""
    chosen = os.environ.get("GRADIO_TEMP_DIR")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)  # as Gradio makes it when it is missing
    root = Path(tempfile.mkdtemp(prefix="fo1-gradio-", dir=chosen or None))
    os.environ["GRADIO_TEMP_DIR"] = str(root)
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def delete_served_files(demo: gr.Blocks) -> None:
    """Deletes the uploads and answer copies Gradio keeps for `demo`, once its server has stopped.
    Gradio does this itself only when its server shuts down within the 5 s it waits for it, and
    an open page's connection holds the shutdown longer than that."""
    delete_files_created_by_app(demo, age=None)


FileVersion = tuple[str, int, int]
"""A file's path, size and modification time: what work read from a file once is cached by, so
that a file rewritten in place is read again."""


def file_version(path: str) -> FileVersion:
    """`path`'s `FileVersion`; raises `OSError` if there is no such file."""
    stat = os.stat(path)
    return str(path), stat.st_size, stat.st_mtime_ns


def file_identity(path: str | None) -> str:
    """What the file at `path` holds, as a digest: the same image whatever copy of it the editor
    holds (Gradio copies it again each time the server sends the editor back, as Undo, Propose
    and typed boxes do). A file that cannot be read is named by its path."""
    if path is None:
        return "no image"
    try:
        return _digest(file_version(path))
    except OSError:
        return str(path)


def shown_size(path: str) -> tuple[int, int]:
    """`fo1_core.inputs.image_size` of the file at `path`, read once per file version: each
    box edit asks again, and a PNG's orientation is only known once the whole file is read.
    Raises `OSError` (no such file) or `FO1Error` (not an image)."""
    return _shown_size(file_version(path))


@functools.lru_cache(maxsize=256)
def _shown_size(version: FileVersion) -> tuple[int, int]:
    return image_size(version[0])


NOT_DRAWN_BY_BROWSERS = ("TIFF",)
"""Formats the app reads that a browser's page cannot show: Chrome and Firefox draw no TIFF."""


def drawn_by_browsers(path: str) -> bool:
    """Whether a browser draws the image file at `path` as it is, read once per file version.
    Raises `OSError` (no such file, or not an image)."""
    return _drawn_by_browsers(file_version(path))


@functools.lru_cache(maxsize=256)
def _drawn_by_browsers(version: FileVersion) -> bool:
    with open_image_file(version[0]) as image:
        return image.format not in NOT_DRAWN_BY_BROWSERS


@functools.lru_cache(maxsize=256)
def _digest(version: FileVersion) -> str:
    """Read once per file version: each box edit asks again."""
    with open(version[0], "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
