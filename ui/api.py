"""The named API endpoints `/propose` and `/answer`, for `gradio_client` and scripts.

Errors raise `gr.Error` with the same user-facing message the UI shows; the client receives it
as the exception text.

Before `/answer` or `/propose` runs, `gr.Image` downloads an image given as a URL (a public
demo should not fetch for strangers) and opens the file (one it cannot read comes back as a long
error naming server paths). Both steps are wrapped once, on the class, for the reasons given in
`ui.editor`; so is the step before them that refuses an image no one uploaded (`Blocks`').
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from gradio.exceptions import InvalidPathError
from gradio_client.utils import is_file_obj_with_meta, is_http_url_like
from pydantic import ValidationError

from detect_tools import MAX_PROPOSALS, ProposerError
from detect_tools.images import UNREADABLE_IMAGE
from fo1_core.box_archives import BoxesText, boxes_in_text
from fo1_core.box_files import BoxesRead
from fo1_core.box_lines import numbered_lines, text_kind
from fo1_core.cli import MAX_BOXES_FILE_BYTES, refuse_too_large
from fo1_core.errors import FO1Error
from fo1_core.export import to_json
from fo1_core.inputs import image_size
from fo1_core.session import StopReason
from fo1_core.templates import DEFAULT_MAX_NEW_TOKENS, TASKS
from ui.answering import Answerer, Question
from ui.boxes import parse_boxes, refuse_too_many_boxes
from ui.editor import readable_errors
from ui.errors import user_error
from ui.proposing import Proposing
from ui.status import cut_short

logger = logging.getLogger(__name__)

CANCEL_CHECK_S = 0.5
"""How often `/answer` lets Gradio close a call its client cancelled or left (the client's event
stream closed: Gradio marks the call's session gone and closes the call at its next yield)."""


def refuse_urls(move: Callable) -> Callable:
    @functools.wraps(move)
    async def checked(self, url_or_file_path):
        if url_or_file_path is not None and is_http_url_like(str(url_or_file_path)):
            raise user_error(
                "This app does not fetch images from URLs: download the image and upload the file."
            )
        return await move(self, url_or_file_path)

    checked.refuses_urls = True
    return checked


NOT_UPLOADED = (
    "The image must be a file uploaded to this app: send it with gradio_client's "
    "handle_file(path), which uploads it."
)


NAME_MAX, PATH_MAX = 255, 4096
"""Linux's limits, in bytes, on a file name and on a whole path."""


def _unreachable_file(value: object) -> bool:
    """Whether `value` is a file whose path no system can look up (a NUL byte in it, a name or
    a path past the limits): Gradio's own checks fail on one with a traceback in the log, and
    with an error that gives the whole path back."""
    if not is_file_obj_with_meta(value):
        return False
    path = str(value.get("path", "")).encode(errors="replace")
    too_long = len(path) > PATH_MAX or any(len(name) > NAME_MAX for name in path.split(b"/"))
    return b"\0" in path or too_long


def refuse_files_not_uploaded(preprocess_data: Callable) -> Callable:
    """`Blocks.preprocess_data` refusing, with one line for the caller and none in the log, an
    image Gradio cannot take before any handler runs: a path given where a file is expected
    (a schema error), or a file on the server no one uploaded (whose error names the server's
    folders)."""

    @functools.wraps(preprocess_data)
    async def checked(self: gr.Blocks, block_fn, inputs: list, *args, **kwargs):
        if any(_unreachable_file(value) for value in inputs):
            logger.info("Refused an input: a file path no system can look up")
            raise user_error(NOT_UPLOADED)
        try:
            return await preprocess_data(self, block_fn, inputs, *args, **kwargs)
        except (InvalidPathError, ValidationError) as error:
            # One line, should one of the page's own payloads ever be refused here.
            logger.info("Refused an input: %s", str(error).splitlines()[0])
            raise user_error(NOT_UPLOADED) from error

    checked.refuses_files_not_uploaded = True
    return checked


if not getattr(gr.Blocks.preprocess_data, "refuses_files_not_uploaded", False):
    gr.Blocks.preprocess_data = refuse_files_not_uploaded(gr.Blocks.preprocess_data)
if not getattr(gr.Image.preprocess, "readable", False):
    gr.Image.preprocess = readable_errors(gr.Image.preprocess, (ValueError,), UNREADABLE_IMAGE)
if not getattr(gr.Image.async_move_resource_to_block_cache, "refuses_urls", False):
    gr.Image.async_move_resource_to_block_cache = refuse_urls(
        gr.Image.async_move_resource_to_block_cache
    )


PROPOSE_DESCRIPTION = (
    'Boxes a proposer finds in the image: {"boxes": [[x1, y1, x2, y2], …], "scores", '
    '"labels", …}, corners in pixels. threshold None: the proposer\'s own; max_boxes 1 to '
    f"{MAX_PROPOSALS} (None: {MAX_PROPOSALS})."
)
PROPOSE_LIKE_DESCRIPTION = (
    "/propose for a proposer that finds more objects like example boxes (owlv2-like, "
    "sam3-like): like is [[x1, y1, x2, y2], …] in pixels."
)
ANSWER_DESCRIPTION = (
    "FO1's answer about the boxes: (annotated image, raw answer text, detections as JSON). "
    "boxes: [[x1, y1, x2, y2], …] in pixels, box i being <regioni>, or a /propose result, "
    "or a COCO annotations file's JSON (the uploaded image's boxes, by its file name) or a "
    "LabelMe annotation's, scaled to the image where the file records another size, or a "
    "Label Studio export's; "
    f"task: one of {', '.join(TASKS)} or free; text: what the task asks about (categories, "
    "a phrase, or regions as <region0>, <region3>). Cancelling the call stops the answer."
)
"""What the API page says of each endpoint (the handlers' docstrings are for this code's
readers)."""

C = TypeVar("C", bound=gr.components.Component)

EXAMPLE_IMAGE = {"path": "photo.jpg", "url": "photo.jpg", "meta": {"_type": "gradio.FileData"}}
"""The image the API page's snippets upload: `handle_file('photo.jpg')` (the page writes a
file's `url` so). Gradio's own example is a URL, which this app refuses."""


def with_api_example(component: C, example: object) -> C:
    """`component`, with `example` as the value the API page's snippets give it (Gradio's own
    would be a URL for an image, {'foo': 'bar'} for boxes, 'Hello!!' for a task)."""
    component.example_payload = lambda: example
    return component


@dataclass
class Api:
    answerer: Answerer
    proposing: Proposing
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def propose(
        self,
        image: str | None,
        proposer: str,
        text: str | None,
        threshold: float | None,
        max_boxes: float | None,
        like: object = None,
    ) -> dict:
        """Boxes proposed for `image`: `{"boxes": [[x1, y1, x2, y2], …], "scores", "labels"}`;
        `like`: example boxes, as `/answer`'s, for a proposer that finds more like them."""
        try:
            count = MAX_PROPOSALS if max_boxes is None else max_boxes
            examples = parse_boxes(like).boxes or None
            found = self.proposing.propose(image, proposer, text, threshold, count, examples)
        except (ProposerError, FO1Error) as error:
            raise user_error(str(error)) from error
        return found.as_json(proposer)

    def propose_like(
        self,
        image: str | None,
        proposer: str,
        like: object,
        threshold: float | None,
        max_boxes: float | None,
    ) -> dict:
        """`propose` for a proposer that finds more objects like the example boxes `like`: an
        endpoint of its own, as `/propose` callers send its five values and no more."""
        return self.propose(image, proposer, "", threshold, max_boxes, like)

    def answer(
        self, image: str | None, boxes: object, task: str, text: str | None
    ) -> Iterator[tuple[Any, Any, Any]]:
        """(annotated image, raw answer text, detections as JSON) for one question, sent once it
        is answered. Until then it yields nothing new every `CANCEL_CHECK_S`: a call the client
        cancels, or leaves, is closed there by Gradio, which stops the answer (one that only
        returned would hold the model, and every caller behind it, until its last token)."""
        try:
            # An upload keeps its file's name, which picks the image's boxes out of a COCO file;
            # they are scaled to its size where the file records another.
            upload = image if isinstance(image, str) else None
            name, size = upload and Path(upload).name, upload and image_size(upload)
            read = _boxes_sent(boxes, name, size)
            question = Question(image=image, boxes=read.boxes, task=task, text=text or "")
            prepared = self.answerer.prepare(question)
            steps = self.answerer.steps(
                question, prepared, self.max_new_tokens, None, CANCEL_CHECK_S,
                draw_interval_s=math.inf,
            )  # fmt: skip
            for last in steps:
                if last.generation is None:
                    yield gr.skip(), gr.skip(), gr.skip()
        except FO1Error as error:
            raise user_error(str(error)) from error
        except gr.Error:  # ZeroGPU's refusal of a slot, written for the caller
            raise
        except Exception as error:
            logger.exception("The /answer endpoint failed")
            message = f"Generation failed ({type(error).__name__}: {error})."
            raise gr.Error(message, print_exception=False) from error  # logged just above
        document = to_json(last.answer, last.detections)
        document["stop_reason"] = last.generation.stop_reason
        document["timings"] = last.generation.timings
        document["reused"] = asdict(last.generation.reused)
        scaled = [f"The boxes were {read.scaled}."] if read.scaled else []
        document["warnings"] = [*scaled, *last.generation.notices, *last.answer.warnings]
        if last.generation.stop_reason == StopReason.TOKEN_LIMIT:
            document["warnings"].append(cut_short(self.max_new_tokens, self.max_new_tokens))
        yield last.image, last.answer.text, document


def _boxes_sent(boxes: object, image_name: str | None, size: tuple[int, int] | None) -> BoxesRead:
    """`/answer`'s boxes: a JSON list or document (`parse_boxes`), or a labels file's text as it
    is: lines of corners or YOLO labels, VOC or CVAT. Too many are refused before any is read:
    this runs in the model's turn, which those queued behind wait for."""
    if isinstance(boxes, str):
        refuse_too_large(len(boxes), MAX_BOXES_FILE_BYTES, "the boxes")  # as the command line
        kind = text_kind(boxes)
        if kind == "lines":
            refuse_too_many_boxes(len(numbered_lines(boxes)), "sent")
        if size and kind != "json":
            boxes = boxes_in_text(BoxesText(boxes, "the boxes"), image_name, size)
    return parse_boxes(boxes, image_name, size)
