"""One question from the UI or the API: validate, stream on the GPU, parse and redraw as it goes.

The answer so far is parsed again at most once per interval (each parse reads the whole text:
after every token, a long answer would cost time growing with its square, and hold the GIL the
decode loop needs); the result image is redrawn only when the regions the answer names change.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv
from PIL import Image

from fo1_core.answers import (
    CLASS_NAME_KEY,
    REGION_INDEX_KEY,
    Answer,
    parse_answer,
    to_detections,
)
from fo1_core.confidence import box_scores
from fo1_core.encoding import Reused
from fo1_core.errors import FO1Error
from fo1_core.inputs import open_image, read_image
from fo1_core.prompting import region_list_text
from fo1_core.render import draw_answer, shown_reduction
from fo1_core.session import FO1Pipeline, Generation, Request, StopReason
from fo1_core.templates import (
    FREE_PROMPT,
    FREE_PROMPT_LABEL,
    MAX_REGIONS,
    TASKS,
    FillKind,
    box_count,
)
from ui.boxes import REGIONS_LABEL, Box, gone_references, gone_region
from ui.gpu import ON_ZERO_GPU, on_gpu

logger = logging.getLogger(__name__)


@dataclass
class Question:
    image: str | Image.Image | None  # a path as the box editor and the API hand it over
    boxes: list[Box]
    task: str
    text: str = ""  # categories / expression / question, or the free prompt
    regions: tuple[int, ...] = ()  # picked regions, for region tasks
    masks: np.ndarray | None = None  # (N, H, W) proposer masks aligned with `boxes`, for drawing
    file_name: str = "image.png"  # what the user calls the image, for the downloads
    shown_width: float | None = None  # the page's result panel, in CSS px (`render.scene_scale`)


@dataclass(frozen=True)
class Picture:
    """The image asked about as the page and the API show it."""

    pixels: np.ndarray  # RGB, reduced `reduced` times (`fo1_core.render.shown_reduction`)
    reduced: int
    size: tuple[int, int]  # the image's own (width, height), which boxes and masks are in


def shown_picture(image: Image.Image) -> Picture:
    """The image (opened, `open_image`), reduced once here to be shown: every drawing of the
    answer is then as cheap as a screen-sized image's."""
    reduced = shown_reduction(*image.size)
    shown = image.reduce(reduced) if reduced > 1 else image
    return Picture(np.asarray(shown), reduced, image.size)


@dataclass(frozen=True)
class Prepared:
    """A question ready for the model, with its image as the answer is drawn on."""

    request: Request
    picture: Picture


@dataclass
class Step:
    answer: Answer
    detections: sv.Detections  # with the proposer's masks on steps that draw
    image: np.ndarray | None  # a new drawing when the regions the answer names changed
    tokens: int
    picture: Picture  # the image asked about, as drawn on
    generation: Generation | None = None  # on the last step only


def task_label(task: str) -> str:
    if task == FREE_PROMPT:
        return FREE_PROMPT_LABEL
    return TASKS[task].label if task in TASKS else task


def fill_text(question: Question) -> str:
    """The template fill: picked regions for region tasks, else the typed text."""
    template = TASKS.get(question.task)
    if template is not None and not question.boxes:
        # Every task answers by naming boxes; only a free prompt can do without. A missing or
        # unreadable image is what the user hears about first.
        open_image(question.image)
        # Said together: told one at a time, a visitor who draws boxes meets a second refusal.
        untyped = template.fill is FillKind.TEXT and not question.text.strip()
        raise FO1Error(
            f"{template.without_boxes}: draw boxes on the image or propose some first (a free "
            "prompt needs none)." + (f" Type {template.asks_for} as well." if untyped else "")
        )
    if template is not None and template.fill is FillKind.REGIONS:
        if question.regions:
            return region_list_text(sorted(set(question.regions)))
        if not question.text.strip():  # the API's text may name them instead
            raise FO1Error(
                f"The task '{template.label}' asks about regions: tick at least one under "
                f"“{REGIONS_LABEL}”."
            )
    if question.task == FREE_PROMPT and (gone := gone_references(question.text)):
        one = len(gone) == 1
        undo = " (Undo brings a box back)" if any(name != gone_region() for name in gone) else ""
        raise FO1Error(
            f"The prompt names {', '.join(gone)}: {'a box' if one else 'boxes'} deleted or "
            f"replaced since. Put {'a box' if one else 'boxes'} in {'its' if one else 'their'} "
            f"place with “Insert a region reference”{undo}, or take {'it' if one else 'them'} "
            "out."
        )
    return question.text


class Answerer:
    """Runs questions on one pipeline; `stream` is the only part that needs the GPU."""

    def __init__(self, pipeline: FO1Pipeline) -> None:
        self.pipeline = pipeline
        self._stream_on_gpu = on_gpu(self._stream, max_new_tokens=lambda _r, limit, _c: limit)

    def prepare(self, question: Question, history: Sequence[tuple[str, str]] = ()) -> Prepared:
        """Checks and preprocesses a question; raises `FO1Error` with a message for the user.

        `history`: earlier (question, answer) turns of a conversation about the same boxes.
        """
        text = fill_text(question)
        # Decoded once for the model and the drawing: a 100-megapixel PNG takes half a second.
        image, notices = read_image(question.image)
        request = self.pipeline.prepare(image, question.boxes, question.task, text, history)
        request.vision.notices[:0] = notices  # of the file, which the model gets decoded
        return Prepared(request, shown_picture(image))

    def _stream(
        self, request: Request, max_new_tokens: int, cancel: threading.Event | None
    ) -> Iterator[str | Generation]:
        yield from self.pipeline.stream(request, max_new_tokens, cancel)

    def steps(
        self,
        question: Question,
        prepared: Prepared,
        max_new_tokens: int,
        cancel: threading.Event | None = None,
        interval_s: float = 0.0,
        draw_interval_s: float = 0.0,
    ) -> Iterator[Step]:
        """Parsed answers as tokens arrive, at most one per `interval_s` (`math.inf`: the last
        only); the last step carries the `Generation`. The result image comes with a step that
        changes it, at most one per `draw_interval_s` (`math.inf`: with the last only, where no
        one sees the others), and with the last."""
        request, picture = prepared.request, prepared.picture
        boxes = request.boxes.astype(np.float32)
        masks = None if question.masks is None else question.masks[:MAX_REGIONS]
        text, tokens, drawn, parsed_at, drawn_at = "", 0, None, time.perf_counter(), -math.inf
        # On ZeroGPU, Stop cancels the job instead (see `ui.layout`).
        shared_cancel = None if ON_ZERO_GPU else cancel
        for event in self._stream_on_gpu(request, max_new_tokens, shared_cancel):
            final = event if isinstance(event, Generation) else None
            if final is not None:
                text, tokens = final.text, len(final.token_ids)
            else:
                text += event
                tokens += 1  # a piece is a token's text (or a few, that end a split character)
                if time.perf_counter() - parsed_at < interval_s:
                    continue
            parsed_at = time.perf_counter()
            answer = parse_answer(text, len(boxes))
            # Known once the answer is: how sure the model was of each region it named.
            scores = None if final is None else box_scores(final.region_confidence, len(boxes))
            # Masks are full-size: only copied out for a drawing, which only a change calls for.
            detections = to_detections(answer, boxes, scores=scores)
            data = detections.data
            shown = list(
                zip(data[REGION_INDEX_KEY].tolist(), data[CLASS_NAME_KEY].tolist(), strict=True)
            )
            image = None
            if final or (shown != drawn and parsed_at - drawn_at > draw_interval_s):
                drawn, drawn_at = shown, parsed_at
                if masks is not None:
                    detections = to_detections(answer, boxes, masks, scores)
                image = draw_answer(
                    picture.pixels, detections, picture.reduced, question.shown_width
                )
            yield Step(answer, detections, image, tokens, picture, final)


def status_line(generation: Generation, num_boxes: int, proposals_s: float | None) -> str:
    """`Stopped by you · 45 tokens · 12 boxes · proposals 1.2 s · first token 0.31 s · …`."""
    timings = generation.timings
    reason = {
        StopReason.EOS: "Done",
        StopReason.CANCELLED: "Stopped by you",
        StopReason.TOKEN_LIMIT: "Stopped at the token limit",
        StopReason.MODEL_LENGTH: "Stopped at the model's length",
    }.get(generation.stop_reason, generation.stop_reason)
    tokens = len(generation.token_ids)
    if tokens:
        parts = [reason, "1 token" if tokens == 1 else f"{tokens} tokens"]
    else:  # stopped while the image and prompt were encoded: no token times to tell
        parts = [f"{reason} before the first token"]
    parts.append(box_count(num_boxes))
    if proposals_s is not None:
        parts.append(f"proposals {proposals_s:.2f} s")
    if tokens:
        parts.append(f"first token {timings.get('first_token_s', 0.0):.2f} s")
    if note := reuse_note(generation.reused, num_boxes):
        parts.append(note)
    if tokens > 1:  # a rate needs two tokens' times
        parts.append(f"{timings.get('decode_tokens_per_s', 0.0):.0f} tokens/s")
    parts.append(f"total {timings.get('total_s', 0.0):.2f} s")
    return " · ".join(parts)


def reuse_note(reused: Reused, num_boxes: int) -> str | None:
    """Why a follow-up's first token came fast: what it found already encoded (None: nothing)."""
    if reused.prefix:
        encoded = "image, boxes" if num_boxes else "image"
        return f"{encoded} and {reused.tokens} prompt tokens already encoded"
    image = f"image and its {reused.tokens} prompt tokens" if reused.tokens else "image"
    if reused.image and reused.regions:
        return f"{image} and {reused.regions} of {box_count(num_boxes)} already encoded"
    if reused.image:
        return f"{image} already encoded"
    return None
