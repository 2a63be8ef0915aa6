"""Event handlers of the Blocks UI. Each turns errors into a visible message and leaves the
user's image and boxes untouched (`gr.skip()`), so no input ever ends in a dead UI."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import gradio as gr

from detect_tools import ProposerError
from fo1_core.answers import Answer
from fo1_core.errors import FO1Error
from fo1_core.processing import image_size
from fo1_core.render import draw_proposals
from fo1_core.session import Generation, Request, StopReason
from fo1_core.templates import FREE_PROMPT, MAX_REGIONS, TASKS, FillKind, box_count, region_token
from ui.ahead import EncodeAhead
from ui.answer_view import (
    Turn,
    answer_html,
    asked_html,
    detection_rows,
    reasoning_html,
)
from ui.answering import (
    Answerer,
    Question,
    status_line,
    task_label,
)
from ui.boxes import (
    Box,
    boxes_as_text,
    boxes_from_text,
    boxes_of,
    editor_value,
    file_name_of,
    image_of,
    outside_the_image,
    region_label,
)
from ui.conversation import (
    NEW_CONVERSATION,
    ConversationKey,
    conversation_key,
    history_view,
    turns_about,
)
from ui.editor import FILE_NAME, UNREADABLE, UNREADABLE_NOTE
from ui.examples import Example
from ui.files import file_identity, shown_size
from ui.proposing import (
    MaskStore,
    PackedMask,
    Proposed,
    Proposing,
    box_key,
    masks_for,
    new_to,
)
from ui.report import AnswerFolders, Result, write_downloads
from ui.status import (
    ANSWERING,
    CUT_SHORT,
    EARLIER_ANSWER,
    NOT_KEPT,
    PROPOSER_ERROR,
    STOPPED_EARLY,
    error_html,
    is_streaming,
    proposer_error_html,
    status_html,
    with_stale_note,
)

logger = logging.getLogger(__name__)

UNDO_STEPS = 50
"""How many box edits back `Handlers.undo_boxes` goes."""

CLOSED_PAGES = 10_000
"""How many closed pages are remembered as closed, so that their late events keep nothing."""


def _has_area(box: Sequence[float]) -> bool:
    x1, y1, x2, y2 = box
    return x2 > x1 and y2 > y1


@dataclass(frozen=True)
class _Edit:
    """One state of the editor that Undo can go back to."""

    key: ConversationKey  # the image as the user sees it, and its boxes
    image: str  # the editor's file, before its rotate buttons turn it
    orientation: int  # how many quarter turns clockwise they have turned it
    file_name: str | None  # the uploaded file's own name (`ui.editor.FILE_NAME`)

    def same_image(self, other: _Edit) -> bool:
        """Whether `other` shows this image: the same file turned (by its buttons), or the same
        picture from another file (the turned copy Propose or typed boxes send back)."""
        return other.key[0] == self.key[0] or file_identity(other.image) == file_identity(
            self.image
        )

    def value(self) -> dict:
        shown = editor_value(self.image, [list(box) for box in self.key[1]], self.file_name)
        return shown | {"orientation": self.orientation}


SUPERSEDE_WAIT_S = 10.0
"""How long a new image waits for the old answer to end (a token, or a prefill on a slow CPU)
before the answer area is cleared anyway."""

STREAM_INTERVAL_S = 0.05
"""At most ~20 UI updates a second: each is a websocket message and a browser re-render."""


def _text_kind(task: str | None) -> str:
    """Whether a task's one-line text is a question or names things (categories, an expression)."""
    template = TASKS.get(task or "")
    return "question" if template is not None and template.is_question else "names"


_CLOSING_PUNCTUATION = set(",.;:!?)]}")


def _selection_in(prompt: str, selection: object) -> tuple[int, int]:
    """The page's [start, end] selection in the prompt (code points), clamped into it; the
    prompt's end when the page sent none (an API caller, or a prompt never focused)."""
    if not isinstance(selection, list | tuple) or len(selection) != 2:
        return len(prompt), len(prompt)
    if not all(isinstance(at, int | float) and math.isfinite(at) for at in selection):
        return len(prompt), len(prompt)
    start, end = sorted(min(max(int(at), 0), len(prompt)) for at in selection)
    return start, end


def _later(moment: float | None, clicked_at: float | None) -> bool:
    """Whether `moment` (a Stop, a new image) came after the Run click, both by the page's clock."""
    return None not in (moment, clicked_at) and moment > clicked_at


@dataclass
class _Running:
    """A session's answer in progress: `cancel` stops it after the current token, `ended` is set
    once its stream has returned."""

    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Asked:
    """A question on its way, with what its finished answer is told with."""

    question: Question
    prepared: Request
    earlier: list[Turn]  # the earlier turns it sees, in follow-up mode
    proposals_s: float | None  # how long the proposals took, for the status line
    closing_notes: Callable[[Generation], list[str]]  # about the conversation, for the status
    editor_differs: Callable[[], bool]  # whether the editor holds other boxes by now
    num_regions: int = field(init=False)  # the boxes the model reads
    heading: str = field(init=False)  # `asked_html`, made once: the answer is redrawn often
    shown: str = field(init=False)  # the question as the conversation lists it

    def __post_init__(self) -> None:
        self.num_regions = self.prepared.num_regions
        label = task_label(self.question.task)
        given = self.prepared.text.strip()  # as the model read it (the status names what not)
        self.heading = asked_html(label, given, self.num_regions, self.prepared.user_text)
        self.shown = f"{label}: {given}" if given else label

    def answer_html(self, answer: Answer | None) -> str:
        """The answer so far (None: none yet) under the question it answers."""
        if answer is None:
            return self.heading + answer_html_placeholder()
        return self.heading + answer_html(answer, self.num_regions)


@dataclass
class _Session:
    """What the server keeps of one open page. An answer holds on to its session's record, so
    one still running when the page closes writes into a record no longer kept."""

    running: _Running | None = None
    # When Stop was last pressed, and a new image last came, by the page's clock (see `stop`
    # and `supersede`).
    stopped_at: float | None = None
    superseded_at: float | None = None
    finished: tuple[ConversationKey, Turn] | None = None  # until `remember_turn` files it
    answered: ConversationKey | None = None  # the image and boxes of the answer shown
    # That answer as a turn of its conversation, once filed (`remember_turn`).
    answered_turn: tuple[ConversationKey, Turn] | None = None
    editing: ConversationKey | None = None  # those in the editor now
    edited_at: float | None = None  # when they last changed, by the page's clock
    sent_status: str = ""  # the status an answer last sent to the page
    edits: list[_Edit] = field(default_factory=list)  # this image's, for `undo_boxes`

    def edited(self, key: ConversationKey, value: dict | None) -> None:
        """The editor holds `key` now, shown from `value`: remembered as the newest step to undo
        back from. Turning the image is such a step; emptying the editor is not, and leaves the
        steps for Undo to bring the image back. Another image (uploaded, or an example clicked)
        keeps one step of the image before: Undo brings it back with its boxes."""
        self.editing = key
        if value is None or value.get("image") is None:
            return
        if not all(map(_has_area, key[1])):
            return  # a box still being drawn, no area yet: not a step of its own
        edit = _Edit(key, value["image"], int(value.get("orientation") or 0), value.get(FILE_NAME))
        if self.edits and not self.edits[-1].same_image(edit):
            self.edits = self.edits[-1:]  # the earlier image's box edits are not this one's
        if not self.edits or self.edits[-1].key != key:
            self.edits = [*self.edits, edit][-UNDO_STEPS:]

    def changed_since(self, asked: ConversationKey) -> bool:
        """Whether the editor holds other boxes (or another image) than `asked`."""
        return self.editing is not None and self.editing != asked

    @property
    def stale(self) -> bool:
        """Whether the answer shown is about other boxes than the editor's."""
        return self.answered is not None and self.changed_since(self.answered)

    def history(self, follow_up: bool, conversation: dict | None) -> str:
        """`history_view` of `conversation` as this page shows it: its latest turn marked when it
        is the answer on screen (the page may send an older conversation than the server's)."""
        conversation = conversation or {}
        turns = conversation.get("turns")
        latest = (conversation.get("key"), turns[-1]) if turns else None
        latest_shown = latest is not None and latest == self.answered_turn
        return history_view(follow_up, conversation, self.editing, latest_shown)


@dataclass
class AnswerOutputs:
    """One update of the answer area by `Handlers.run`; what is not given stays as it is."""

    answer: Any = field(default_factory=gr.skip)
    reasoning: Any = field(default_factory=gr.skip)
    image: Any = field(default_factory=gr.skip)
    status: Any = field(default_factory=gr.skip)
    table: Any = field(default_factory=gr.skip)
    downloads: Any = field(default_factory=gr.skip)

    def sent(self) -> tuple:
        """In the order of `Handlers.run`'s outputs in `ui.layout`."""
        return tuple(getattr(self, output.name) for output in fields(self))


def _keeping_the_status(
    run: Callable[..., Iterator[AnswerOutputs]],
) -> Callable[..., Iterator[tuple]]:
    """`Handlers.run`, its outputs sent as Gradio takes them, keeping in its session the status
    each sends to the page (`_Session.sent_status`, which `boxes_changed` reads)."""

    @functools.wraps(run)  # Gradio reads the parameters (and the `gr.Request` one) through it
    def keeping(self: Handlers, *args: Any, **kwargs: Any) -> Iterator[tuple]:
        request = inspect.signature(run).bind(self, *args, **kwargs).arguments["request"]
        session = self._session(request)
        outputs_stream = run(self, *args, **kwargs)
        try:
            for outputs in outputs_stream:
                if isinstance(outputs.status, str):
                    session.sent_status = outputs.status
                yield outputs.sent()
        finally:  # a closed stream closes the answer at once: its worker job ends with it
            outputs_stream.close()

    return keeping


@dataclass
class Handlers:
    answerer: Answerer
    proposing: Proposing
    examples: list[Example]
    ahead: EncodeAhead | None = None  # encodes the boxes on screen before the question comes

    def __post_init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()  # newest last, `CLOSED_PAGES` kept
        self._answer_folders = AnswerFolders()

    def _session(self, request: gr.Request) -> _Session:
        if request.session_hash in self._closed:
            # An event queued before the page closed runs after: nothing keeps what it leaves.
            return _Session()
        return self._sessions.setdefault(request.session_hash, _Session())

    def forget_session(self, request: gr.Request) -> None:
        """The page was closed: its answer stops and nothing of its session is kept."""
        self._closed[request.session_hash] = None
        while len(self._closed) > CLOSED_PAGES:
            self._closed.popitem(last=False)
        session = self._sessions.pop(request.session_hash, None)
        if session is not None and session.running is not None:
            session.running.cancel.set()

    # Boxes ---------------------------------------------------------------------------------

    def boxes_changed(
        self,
        value: dict | None,
        status: str | None,
        follow_up: bool,
        conversation: dict | None,
        page_time: float | None,
        request: gr.Request,
    ) -> tuple:
        """Refreshes every region picker, the box count (the page numbers the boxes) and the
        boxes as numbers, marks the shown answer as about other boxes, or no longer so
        (`with_stale_note`), and the conversation so far as one the next question does not
        continue (`history_view`).

        A file that cannot be opened gets its reason as a message and `UNREADABLE_NOTE`, on
        which the page empties the editor back to its drop zone (`EMPTY_IF_UNREADABLE`)."""
        if value and UNREADABLE in value:
            gr.Warning(value[UNREADABLE])
            empty = region_choices(0)
            return (
                gr.update(choices=empty),
                gr.update(choices=empty, value=None),
                UNREADABLE_NOTE,
                gr.skip(),
                gr.skip(),
                "",
            )
        image, boxes = image_of(value), boxes_of(value)
        if self.ahead is not None:
            self.ahead.want(image, boxes)
        session = self._session(request)
        session.edited(conversation_key(image, boxes), value)
        session.edited_at = page_time
        status = status or ""
        # An answer streaming rewrites the status itself and checks the boxes at its end. One
        # that ended before the page showed its end: its final status is the one to mark, and
        # `remember_turn`, which comes after it, shows the conversation.
        streaming = session.running is not None
        behind = is_streaming(status) and not is_streaming(session.sent_status)
        marked = with_stale_note(session.sent_status if behind else status, session.stale)
        stale = gr.skip() if streaming or marked == status else marked
        history = gr.skip() if streaming or behind else session.history(follow_up, conversation)
        if boxes:
            note = box_count(len(boxes))
        elif image is None:
            note = "No image yet."
        else:
            note = "No boxes yet: drag on the image to draw one."
        if len(boxes) > MAX_REGIONS:
            note += f" — the model takes {MAX_REGIONS}; boxes from #{MAX_REGIONS} on are ignored."
        # A file gone meanwhile: the next step that reads it says so.
        with suppress(FO1Error, OSError):
            if boxes and (outside := outside_the_image(boxes, *shown_size(image))):
                note += f" — {outside}"
        choices = region_choices(len(boxes))
        return (
            gr.update(choices=choices, info="" if boxes else NO_REGIONS),
            gr.update(choices=choices, value=None),
            note,
            stale,
            history,
            boxes_as_text(boxes),
        )

    def undo_boxes(
        self, value: dict | None, picked: list[int] | None, request: gr.Request
    ) -> tuple:
        """The editor as it was before its last change: its boxes before the last one drawn,
        moved, deleted, cleared, proposed or typed, the image before its rotate buttons turned
        it, or, emptied by its remove button or replaced by another image, the image and boxes
        it held. Outputs: editor, picked regions (each picked box stays picked where Undo puts
        it; the numbers alone would name other boxes once one comes back)."""
        target = self._undo_target(value, self._session(request).edits)
        if target is None:
            gr.Info("Nothing to undo.")
            return gr.skip(), gr.skip()
        restored = [list(box) for box in target.key[1]]
        picks = picked_again(boxes_of(value), picked or [], restored)
        return target.value(), gr.update(choices=region_choices(len(restored)), value=picks)

    @staticmethod
    def _undo_target(value: dict | None, edits: list[_Edit]) -> _Edit | None:
        if (value or {}).get("image") is None:
            if edits and Path(edits[-1].image).is_file():
                return edits[-1]
        elif edits and edits[-1].key[0] == file_identity(image_of(value)):
            shown = tuple(tuple(box) for box in boxes_of(value) if _has_area(box))
            if shown != edits[-1].key[1]:
                return edits[-1]  # a change whose report has not landed yet: that one
            if len(edits) > 1:
                edits.pop()
                return edits[-1]
        return None

    @staticmethod
    def boxes_typed(value: dict | None, typed: str | None, picked: list[int] | None) -> tuple:
        """Sets the editor's boxes to those typed as numbers (`boxes_from_text`); a mistake is
        named in the status and the typed text stays to be corrected. Outputs: editor, status,
        picked regions (those picked stay so on their boxes where the numbers keep them)."""
        image = image_of(value)
        try:
            if image is None:
                raise FO1Error("No image yet: upload one, then type its boxes.")
            width, height = image_size(image)
            boxes, cut = boxes_from_text(typed or "", width, height)
        except FO1Error as error:
            return gr.skip(), error_html(str(error)), gr.skip()
        shown = editor_value(image, boxes, file_name_of(value))
        message = f"{box_count(len(boxes))} set from the numbers typed."
        if not boxes and boxes_of(value):
            message = "No numbers typed, so every box was removed (Undo brings them back)."
        if cut:
            message += f" Cut to the {width}×{height} image: {box_count(cut)} reached out of it."
        picks = picked_again(boxes_of(value), picked or [], boxes_of(shown))
        return shown, status_html(message, "warning" if cut else "info"), picks

    def new_image(self, request: gr.Request) -> tuple:
        """A new image (or none): the old one's masks, proposal time, answer and conversation
        no longer apply. Outputs: masks, proposal time, then `cleared_answer`'s."""
        session = self._session(request)
        session.answered = session.finished = None  # a turn not yet filed is the old image's
        session.answered_turn = None
        return {}, None, *cleared_answer()

    def supersede(self, page_time: float | None, request: gr.Request) -> None:
        """A new image came at `page_time` (the page's clock): an answer about the old one, in
        progress or still queued, stops and shows nothing more (it would land by the new one)."""
        session = self._session(request)
        session.superseded_at = page_time or 0.0
        # Once the answer has ended, all it yielded has been sent: the clearing that follows
        # this event cannot be overtaken by a piece of it.
        if (running := session.running) is not None:
            running.cancel.set()
            running.ended.wait(SUPERSEDE_WAIT_S)

    def propose(
        self,
        value: dict | None,
        proposer: str,
        text: str,
        threshold: float,
        max_count: float,
        mode: str,
        masks: MaskStore,
        clicked_at: float | None,
        request: gr.Request,
    ) -> tuple:
        """Adds the proposals to the boxes (or replaces them); masks are kept for drawing.

        Propose may wait behind other questions: the boxes it adds to are the editor's when it
        ends, and after a new image (both by the page's clock, `clicked_at` being the click's)
        it adds nothing. Outputs: editor, masks, status, proposal time, picked regions (none
        once the proposals replace the boxes picked from)."""
        image = image_of(value)
        try:
            held = self.ahead.held() if self.ahead is not None else nullcontext()
            with held:  # the user waits for these: no encoding ahead competes with them
                found = self.proposing.propose(image, proposer, text, threshold, max_count)
        except (ProposerError, FO1Error) as error:
            return gr.skip(), gr.skip(), proposer_error_html(str(error)), gr.skip(), gr.skip()
        except Exception as error:
            logger.exception("Proposer %s failed", proposer)
            failed = proposer_error_html(f"The proposer failed: {error}")
            return gr.skip(), gr.skip(), failed, gr.skip(), gr.skip()
        session = self._session(request)
        edited = _later(session.edited_at, clicked_at) and session.editing is not None
        if _later(session.superseded_at, clicked_at) or (
            edited and session.editing[0] != file_identity(image)  # turned by its buttons
        ):
            message = "The image changed while the proposer ran: its proposals are not added."
            return gr.skip(), gr.skip(), status_html(message, "warning"), gr.skip(), gr.skip()
        seconds = f"{found.seconds:.2f} s"
        if not found.boxes:
            message = f"No proposals in {seconds}: your boxes are as they were."
            return gr.skip(), gr.skip(), status_html(message, "warning"), gr.skip(), gr.skip()
        if mode != "add":
            keep = []
        elif edited:
            keep = [list(box) for box in session.editing[1]]  # drawn while the proposer ran
        else:
            keep = boxes_of(value)
        masks = dict(masks) if mode == "add" else {}
        fresh = new_to(keep, found.boxes)
        if found.masks is not None:
            masks.update({box_key(found.boxes[i]): PackedMask.pack(found.masks[i]) for i in fresh})
        boxes = keep + [found.boxes[i] for i in fresh]
        known = len(found.boxes) - len(fresh)
        already = f", {'all' if not fresh else known} already among your boxes" if known else ""
        proposals = "1 proposal" if len(found.boxes) == 1 else f"{len(found.boxes)} proposals"
        # What Propose did, not how many boxes there are: that the box note keeps up to date,
        # and an Undo would leave a count here wrong.
        if mode != "add":
            done = ", in place of your boxes" if boxes_of(value) else ""
        else:
            done = f"; {len(fresh)} added" if fresh else ""
        message = f"{proposals} in {seconds}{already}{done}."
        unread = len(boxes) - max(len(keep), MAX_REGIONS)
        if unread > 0:
            message += (
                f" {unread} of them come after the first {MAX_REGIONS} boxes, all the model "
                "reads: delete boxes or lower “At most” to have them read."
            )
        # Nothing added: answers about an earlier Propose's boxes still cite that one.
        proposed = (
            Proposed(found.seconds, frozenset(box_key(found.boxes[i]) for i in fresh))
            if fresh
            else gr.skip()
        )
        shown = editor_value(image, boxes, file_name_of(value))
        picked = gr.skip() if mode == "add" else []
        kind = "warning" if unread > 0 else "info"
        return shown, masks, status_html(message, kind), proposed, picked

    def proposer_changed(self, name: str, status: str | None) -> tuple:
        """Outputs: threshold, the proposer's text, status (an error about the proposer picked
        before goes; whatever else it says, about the answer say, stays)."""
        try:
            proposer = self.proposing.proposer(name)
        except ProposerError as error:
            return gr.skip(), gr.skip(), proposer_error_html(str(error))
        text = gr.update(
            visible=proposer.needs_text, label="What to find (required)", interactive=True
        )
        status = "" if PROPOSER_ERROR in (status or "") else gr.skip()
        return gr.update(value=proposer.default_threshold), text, status

    # Tasks ---------------------------------------------------------------------------------

    @staticmethod
    def task_changed(task: str) -> tuple:
        template = TASKS.get(task)
        fill = template.fill if template is not None else None
        label, example = (template.field_label, template.example) if template else ("Text", "")
        return (
            gr.update(visible=fill is FillKind.TEXT, label=label, placeholder=example),
            gr.update(visible=fill is FillKind.REGIONS),
            gr.update(visible=task == FREE_PROMPT),
        )

    @staticmethod
    def task_picked(task: str, text: str | None, texts: dict | None, before: str | None) -> tuple:
        """The user picked `task` instead of `before`: the one-line text stays when it asks for
        the same kind of thing (categories, what to count, an expression), else each kind gets
        back its own (a question for region reasoning), so no categories are asked as a
        question. Outputs: text, the texts kept by kind, the task now picked."""
        texts = {**(texts or {}), _text_kind(before): text or ""}
        kind = _text_kind(task)
        return (gr.skip() if kind == _text_kind(before) else texts.get(kind, "")), texts, task

    @staticmethod
    def insert_region(prompt: str | None, index: int | None, selection: object) -> tuple:
        """Puts `<regionN>` where the prompt's caret (or selection, which it replaces) was, spaced
        from the words around it, and hands back the caret's new place just after it."""
        if index is None:
            return gr.skip(), gr.skip(), gr.skip()
        prompt = prompt or ""
        start, end = _selection_in(prompt, selection)
        before, after = prompt[:start], prompt[end:]
        lead = "" if not before or before[-1].isspace() else " "
        trail = "" if after[:1].isspace() or after[:1] in _CLOSING_PUNCTUATION else " "
        inserted = f"{before}{lead}{region_token(int(index))}{trail}"
        caret = len(inserted)
        return inserted + after, gr.update(value=None), [caret, caret]

    def load_example(self, event: gr.SelectData) -> tuple:
        example = self.examples[event.index]
        free = example.text if example.task == FREE_PROMPT else gr.skip()
        text = example.text if example.task != FREE_PROMPT else gr.skip()
        return (
            editor_value(str(example.image), example.boxes),
            example.task,
            text,
            # The choices come too: a Run before `boxes_changed` lands is checked against them.
            gr.update(choices=region_choices(len(example.boxes)), value=list(example.regions)),
            free,
            example.task,
            {_text_kind(example.task): example.text},  # the example's own texts only
        )

    # Answering -----------------------------------------------------------------------------

    def stop(self, page_time: float | None, request: gr.Request) -> None:
        """Stops the session's answer after the current token. An answer still waiting in the
        queue has no stop event yet: it sees, when it starts, that Stop came after its Run click
        (`page_time`, like the click's time, is read from the page's clock)."""
        session = self._session(request)
        session.stopped_at = page_time or 0.0
        if (running := session.running) is not None:
            running.cancel.set()

    @_keeping_the_status
    def run(
        self,
        value: dict | None,
        task: str,
        text: str,
        regions: list[int] | None,
        free_text: str,
        max_new_tokens: float,
        masks: MaskStore,
        proposed: Proposed | None,
        follow_up: bool,
        conversation: dict | None,
        clicked_at: float | None,
        request: gr.Request,
    ) -> Iterator[AnswerOutputs]:
        """Streams the answer area (`AnswerOutputs`: answer, reasoning, result image, status,
        table, downloads).

        In follow-up mode the question sees the conversation's earlier turns, as long as the
        image and boxes are those the conversation is about. `clicked_at`: when Run was clicked,
        by the page's clock.
        """
        session = self._session(request)

        def superseded() -> bool:
            return _later(session.superseded_at, clicked_at)

        if superseded():
            return
        stopped_at, session.stopped_at = session.stopped_at, None
        if _later(stopped_at, clicked_at):
            yield AnswerOutputs(status=STOPPED_EARLY)
            return
        # Running from here: a Stop or a new image that comes while the question is prepared
        # (a large photo takes a while) finds it, and is looked at once the question is ready.
        running = session.running = _Running()
        try:
            boxes = boxes_of(value)
            question = Question(
                image=image_of(value),
                boxes=boxes,
                task=task,
                text=shown_text(task, text, free_text),
                regions=tuple(regions or ()),
                masks=masks_for(boxes, masks or {}),
                file_name=file_name_of(value),
            )
            key = conversation_key(question.image, question.boxes)
            history = turns_about(conversation, key) if follow_up else []
            try:
                prepared = self.answerer.prepare(question, history)
            except FO1Error as error:
                # The answer on screen stays; said so, it does not read as this question's, nor
                # (if so) as about the boxes in the editor now.
                shown = [EARLIER_ANSWER] if session.answered is not None else []
                message = error_html(" ".join([str(error), *shown]))
                status = with_stale_note(message, session.stale)
                yield AnswerOutputs(status=status)
                return
            if running.cancel.is_set():
                if not superseded():
                    yield AnswerOutputs(status=STOPPED_EARLY)
                return
            turns = follow_up and conversation and conversation.get("turns")
            restart = [NEW_CONVERSATION] if turns and not history else []

            def conversation_notes(generation: Generation) -> list[str]:
                stopped = follow_up and generation.stop_reason == StopReason.CANCELLED
                return [*restart, *([NOT_KEPT] if stopped else [])]

            asked = _Asked(
                question,
                prepared,
                conversation["turns"] if history else [],
                proposed.seconds_if_asked(boxes) if proposed else None,
                conversation_notes,
                editor_differs=lambda: session.changed_since(key),
            )
            session.answered = None  # the placeholder empties the answer area
            session.answered_turn = None
            yield AnswerOutputs(
                asked.answer_html(None),
                reasoning_placeholder(),
                image=None,
                status=status_html(" ".join([ANSWERING, *prepared.notices, *restart])),
                table=[],
                downloads=None,
            )
            for outputs, generation in self._stream(asked, int(max_new_tokens), running.cancel):
                if superseded():
                    return
                session.answered = key  # an answer about these boxes is on screen
                if generation is not None and generation.stop_reason != StopReason.CANCELLED:
                    turn = Turn(prepared.user_text, generation.answer, asked.shown)
                    session.finished = (key, turn)
                yield outputs
        except FO1Error as error:
            yield AnswerOutputs(status=error_html(str(error)))
        except Exception as error:
            logger.exception("Generation failed")
            message = f"Generation failed ({type(error).__name__}: {error})."
            yield AnswerOutputs(status=error_html(message))
        finally:
            # A closed stream (Stop on ZeroGPU, a closed tab) must also end the worker thread.
            running.cancel.set()
            if session.running is running:
                session.running = None
            running.ended.set()

    def _stream(
        self, asked: _Asked, max_new_tokens: int, cancel: threading.Event
    ) -> Iterator[tuple[AnswerOutputs, Generation | None]]:
        """The outputs after each step (throttled), and the `Generation` with the last."""
        question, prepared = asked.question, asked.prepared
        num = asked.num_regions
        image = None
        steps = self.answerer.steps(question, prepared, max_new_tokens, cancel, STREAM_INTERVAL_S)
        for step in steps:
            image = step.image if step.image is not None else image
            if step.generation is None:
                outputs = AnswerOutputs(
                    asked.answer_html(step.answer),
                    reasoning_html(step.answer, num),
                    status=status_html(f"{ANSWERING} {step.tokens} tokens"),
                )
                if step.image is not None:
                    # With the drawing: the rows of the groups it shows, as they complete.
                    outputs.image, outputs.table = step.image, detection_rows(step.detections)
                yield outputs, None
                continue
            status = status_line(step.generation, asked.num_regions, asked.proposals_s)
            stop_reason = step.generation.stop_reason
            notes = [*step.generation.notices, *step.answer.warnings]
            if stop_reason == StopReason.TOKEN_LIMIT:
                notes.append(CUT_SHORT)
            notes += asked.closing_notes(step.generation)
            read_boxes = prepared.boxes.tolist()
            picture = step.picture
            result = Result(
                image=image,
                image_name=question.file_name,
                boxes_image=draw_proposals(picture, read_boxes),
                boxes=read_boxes,
                task_label=task_label(question.task),
                prompt=prepared.user_text,
                answer=step.answer,
                detections=step.detections,
                status=status,
                warnings=notes,
                stop_reason=stop_reason,
                timings=step.generation.timings,
                earlier_turns=asked.earlier,
                image_size=(picture.shape[1], picture.shape[0]),
            )
            files = write_downloads(result, self._answer_folders.new())
            # Stopped by the user: as asked, neither a success nor a problem.
            cancelled = stop_reason == StopReason.CANCELLED
            kind = "warning" if notes else "info" if cancelled else "done"
            outputs = AnswerOutputs(
                asked.answer_html(step.answer),
                reasoning_html(step.answer, num),
                files.image,  # as a file, its download button saves it by the image's name
                with_stale_note(
                    status_html(" ".join([f"{status}.", *notes]), kind), asked.editor_differs()
                ),
                detection_rows(step.detections),
                [files.image, files.json, files.coco, files.report],
            )
            yield outputs, step.generation

    def remember_turn(
        self, follow_up: bool, conversation: dict | None, status: str | None, request: gr.Request
    ) -> tuple:
        """After `run`: files the turn it finished (appended in follow-up mode, else a fresh
        start, so ticking follow-up after a question continues from that question), and marks
        its status if the boxes changed as it ended (`boxes_changed` leaves that to this).
        Outputs: conversation, history, status."""
        session = self._session(request)
        marked = with_stale_note(status, session.stale)
        stale = gr.skip() if marked == (status or "") else marked
        finished, session.finished = session.finished, None
        if finished is None:  # stopped, failed or refused: the boxes may have changed meanwhile
            return gr.skip(), session.history(follow_up, conversation), stale
        key, turn = finished
        continued = follow_up and (conversation or {}).get("key") == key
        turns = conversation["turns"] if continued else []
        updated = {"key": key, "turns": [*turns, turn]}
        session.answered_turn = finished
        return updated, session.history(follow_up, updated), stale

    @staticmethod
    def new_conversation() -> tuple:
        return {}, ""

    def follow_up_toggled(
        self, follow_up: bool, conversation: dict | None, request: gr.Request
    ) -> str:
        return self._session(request).history(follow_up, conversation)


NO_REGIONS = "No boxes yet: each box you draw or propose is a region to pick here."


def cleared_answer() -> tuple:
    """For a new image: the answer, reasoning, result image, status, detections, downloads,
    conversation and its history, emptied."""
    return "", "", None, "", [], None, {}, ""


def picked_again(before: list[Box], picked: list[int], after: list[Box]) -> list[int]:
    """The indexes in `after` of the boxes `picked` among `before`, each found by its corners
    once (of two boxes alike, one picked stays one picked)."""
    wanted = Counter(tuple(before[i]) for i in set(picked) if 0 <= i < len(before))
    found = []
    for i, box in enumerate(after[:MAX_REGIONS]):
        if wanted[tuple(box)] > 0:
            wanted[tuple(box)] -= 1
            found.append(i)
    return found


def region_choices(boxes: int) -> list[tuple[str, int]]:
    """The region pickers' choices for `boxes` boxes: those the model reads."""
    return [(region_label(i), i) for i in range(min(boxes, MAX_REGIONS))]


def shown_text(task: str, text: str, free_text: str) -> str:
    """What the task's visible text field holds: the free prompt, the task's text box, or nothing
    (region tasks read the region picker; a hidden text box keeps what another task was given)."""
    if task == FREE_PROMPT:
        return free_text
    template = TASKS.get(task)
    return text if template is None or template.fill is FillKind.TEXT else ""


def answer_html_placeholder() -> str:
    return '<div class="fo1-answer"><i>…</i></div>'


def reasoning_placeholder() -> str:
    return '<div class="fo1-reasoning"><i>…</i></div>'
