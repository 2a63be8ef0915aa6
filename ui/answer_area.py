"""What the answer area shows of one question: its heading over a placeholder, the answer as it
streams, and once it ends the answer with its status, result image, table and downloads.
`Handlers.run` decides when a question runs and what stops it; this, what each update shows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import gradio as gr
import numpy as np

from fo1_core.answers import Answer
from fo1_core.render import draw_proposals
from fo1_core.session import Generation, StopReason
from ui.answer_view import (
    NO_REASONING,
    Turn,
    answer_html,
    asked_html,
    detection_rows,
    reasoning_html,
)
from ui.answering import Answerer, Prepared, Question, Step, status_line, task_label
from ui.conversation import NEW_CONVERSATION
from ui.report import AnswerFolders, Result, Unwritten, write_shown
from ui.spotlight import boxes_attribute
from ui.status import ANSWERED, ANSWERING, NOT_KEPT, Change, cut_short, status_html, with_stale_note

STREAM_INTERVAL_S = 0.05
"""At most ~20 UI updates a second: each is a websocket message and a browser re-render."""
DRAW_INTERVAL_S = 0.4
"""The result image is drawn again at most this often while the answer streams: each drawing is
an image encoded, sent and decoded by the browser, which a long answer naming many boxes did up
to 20 times a second, making a phone's page sluggish and taking CPU from the decoding."""


@dataclass
class AnswerOutputs:
    """One update of the answer area by `Handlers.run`; what is not given stays as it is."""

    answer: Any = field(default_factory=gr.skip)
    reasoning: Any = field(default_factory=gr.skip)
    image: Any = field(default_factory=gr.skip)
    status: Any = field(default_factory=gr.skip)
    table: Any = field(default_factory=gr.skip)
    downloads: Any = field(default_factory=gr.skip)
    reasoning_box: Any = field(default_factory=gr.skip)  # the accordion around the reasoning

    def sent(self) -> tuple:
        """In the order of `Handlers.run`'s outputs in `ui.layout`."""
        return tuple(getattr(self, output.name) for output in fields(self))


@dataclass
class Asked:
    """A question on its way, with what its finished answer is told with."""

    question: Question
    prepared: Prepared
    earlier: list[Turn]  # the earlier turns it sees, in follow-up mode
    proposals_s: float | None  # how long the proposals took, for the status line
    follow_up: bool  # asked in follow-up mode
    restarted: bool  # a new conversation in place of the page's, about other boxes
    editor_changes: Callable[[], Change | None]  # what the editor holds otherwise by now
    num_regions: int = field(init=False)  # the boxes the model reads
    heading: str = field(init=False)  # `asked_html`, made once: the answer is redrawn often
    shown: str = field(init=False)  # the question as the conversation lists it

    def __post_init__(self) -> None:
        request = self.prepared.request
        self.num_regions = request.num_regions
        label = task_label(self.question.task)
        given = request.text.strip()  # as the model read it (the status names what not)
        places = boxes_attribute(request.boxes.tolist(), self.prepared.picture.size)
        self.heading = asked_html(label, given, self.num_regions, request.user_text, places)
        self.shown = f"{label}: {given}" if given else label

    def answer_html(self, answer: Answer | None) -> str:
        """The answer so far (None: none yet) under the question it answers."""
        return self.heading + answer_html(answer, self.num_regions, scroller=True)

    def started(self) -> AnswerOutputs:
        """The answer area as the answer starts: the question over placeholders, the rest
        emptied."""
        status = " ".join([ANSWERING, *self.prepared.request.notices, *self._restart_notes()])
        return AnswerOutputs(
            self.answer_html(None),
            reasoning_placeholder(),
            image=None,
            status=status_html(status),
            table=[],
            downloads=None,
        )

    def closing_notes(self, generation: Generation) -> list[str]:
        """About the conversation, for the final status."""
        stopped = self.follow_up and generation.stop_reason == StopReason.CANCELLED
        return [*self._restart_notes(), *([NOT_KEPT] if stopped else [])]

    def _restart_notes(self) -> list[str]:
        return [NEW_CONVERSATION] if self.restarted else []


@dataclass
class Ended:
    """What the last outputs of an answer come with."""

    generation: Generation
    downloads: Unwritten  # written once the answer leaves the model's slot


def answer_outputs(
    answerer: Answerer,
    folders: AnswerFolders,
    asked: Asked,
    max_new_tokens: int,
    cancel: threading.Event,
    token_limit: int,
) -> Iterator[tuple[AnswerOutputs, Ended | None]]:
    """The outputs after each step (throttled), and `Ended` with the last; the downloads are
    left to `Ended.downloads`. `token_limit`: the most new tokens the page lets a user ask
    for."""
    question, prepared = asked.question, asked.prepared
    image = None
    opened = False
    steps = answerer.steps(
        question, prepared, max_new_tokens, cancel, STREAM_INTERVAL_S, DRAW_INTERVAL_S
    )
    for step in steps:
        image = step.image if step.image is not None else image
        if step.generation is None:
            outputs, ended = _streaming(asked, step), None
        else:
            cut = cut_short(max_new_tokens, token_limit)
            outputs, downloads = _finished(asked, step, step.generation, image, folders, cut)
            ended = Ended(step.generation, downloads)
        # Opened once, as the reasoning starts: closed again by the user, it stays closed.
        if step.answer.thinking and not opened:
            outputs.reasoning_box, opened = gr.update(open=True), True
        yield outputs, ended


def _streaming(asked: Asked, step: Step) -> AnswerOutputs:
    outputs = AnswerOutputs(
        asked.answer_html(step.answer),
        reasoning_html(step.answer, asked.num_regions),
        status=status_html(f"{ANSWERING} {step.tokens} tokens"),
    )
    if step.image is not None:
        # With the drawing: the rows of the groups it shows, as they complete.
        outputs.image, outputs.table = step.image, detection_rows(step.detections)
    return outputs


def _finished(
    asked: Asked,
    step: Step,
    generation: Generation,
    image: np.ndarray | None,
    folders: AnswerFolders,
    cut: str,
) -> tuple[AnswerOutputs, Unwritten]:
    """The whole answer and its status, and its downloads to write; `image`: the last drawing
    of it; `cut`: the note for an answer stopped at the token limit."""
    question, request = asked.question, asked.prepared.request
    status = status_line(generation, asked.num_regions, asked.proposals_s)
    stop_reason = generation.stop_reason
    notes = [*generation.notices, *step.answer.warnings]
    if stop_reason == StopReason.TOKEN_LIMIT:
        notes.append(cut)
    notes += asked.closing_notes(generation)
    read_boxes = request.boxes.tolist()
    picture = step.picture
    result = Result(
        image=image,
        image_name=question.file_name,
        boxes_image=draw_proposals(picture.pixels, read_boxes, picture.reduced),
        boxes=read_boxes,
        task_label=task_label(question.task),
        prompt=request.user_text,
        answer=step.answer,
        detections=step.detections,
        status=status,
        warnings=notes,
        stop_reason=stop_reason,
        timings=generation.timings,
        earlier_turns=asked.earlier,
        image_size=picture.size,
        source=question.image,
        reduced=picture.reduced,
    )
    folder = folders.new()
    shown = write_shown(result, folder)
    # Stopped by the user: as asked, neither a success nor a problem.
    cancelled = stop_reason == StopReason.CANCELLED
    kind = "warning" if notes else "info" if cancelled else "done"
    outputs = AnswerOutputs(
        asked.answer_html(step.answer),
        reasoning_html(step.answer, asked.num_regions),
        shown,  # as a file, its download button saves it by the image's name
        with_stale_note(
            status_html(" ".join([f"{status}.", *notes]), kind, ANSWERED), asked.editor_changes()
        ),
        detection_rows(step.detections),
    )
    return outputs, Unwritten(result, folder, shown)


def cleared_answer() -> tuple:
    """For a new image: the answer, reasoning, result image, status, detections, downloads,
    conversation and its history, emptied."""
    return "", "", None, "", [], None, {}, ""


def reasoning_placeholder() -> str:
    return f'<div class="fo1-reasoning {NO_REASONING}"><i>…</i></div>'
