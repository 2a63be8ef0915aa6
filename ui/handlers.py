"""The page's events, as `ui.layout` wires them, and the question's way from Run to the answer
area. Each turns errors into a visible message and leaves the user's image and boxes untouched
(`gr.skip()`), so no input ever ends in a dead UI. Editing the boxes (`ui.box_edits`), the task's
fields (`ui.task_fields`) and what Propose adds (`ui.adding_proposals`) have their own modules;
what one event leaves for the others is kept per page (`ui.sessions`), and what Undo brings back
with an image the page left (`ui.page_left`)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from typing import Any

import gradio as gr

from detect_tools import ProposerError
from fo1_core.errors import FO1Error
from fo1_core.session import StopReason
from ui import box_edits, task_fields
from ui.adding_proposals import proposals_added, status_only
from ui.ahead import EncodeAhead
from ui.answer_area import AnswerOutputs, Asked, answer_outputs, cleared_answer
from ui.answer_view import Turn
from ui.answering import Answerer, Question
from ui.box_edits import NO_REGIONS, box_note, region_choices
from ui.boxes import boxes_as_text, boxes_of, file_name_of, image_of
from ui.conversation import conversation_key, turns_about
from ui.editor import UNREADABLE, UNREADABLE_NOTE
from ui.examples import Example
from ui.files import file_identity
from ui.gpu import slot_refused
from ui.page_left import AnswerLeft, PageLeft
from ui.proposing import MaskStore, Proposed, Proposing, masks_for, proposer_input
from ui.report import AnswerFolders
from ui.sessions import Running, Session, Sessions
from ui.status import (
    BOX_EDIT,
    EARLIER_ANSWER,
    PROPOSER_ERROR,
    REFUSED,
    STOPPED_EARLY,
    TOKEN_LIMIT,
    error_html,
    is_streaming,
    proposer_error_html,
    status_html,
    with_stale_note,
)

logger = logging.getLogger(__name__)

SUPERSEDE_WAIT_S = 10.0
"""How long a new image waits for the old answer to end (a token, or a prefill on a slow CPU)
before the answer area is cleared anyway."""


def _later(moment: float | None, clicked_at: float | None) -> bool:
    """Whether `moment` (a Stop, a new image, a box edit) came after the click (Run, Propose)
    made at `clicked_at`, both by the page's clock."""
    return None not in (moment, clicked_at) and moment > clicked_at


def _keeping_the_status(
    run: Callable[..., Iterator[AnswerOutputs]],
) -> Callable[..., Iterator[tuple]]:
    """`Handlers.run`, its outputs sent as Gradio takes them, keeping in its session the status
    each sends to the page (`Session.sent_status`, which `boxes_changed` reads)."""

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


def _table_regions(table: Any) -> list[int]:
    """The regions in the detections table's first column, as the page sends the table back (a
    DataFrame; an empty table's one row is blank)."""
    rows = table.to_numpy().tolist() if hasattr(table, "to_numpy") else table or []
    regions = []
    for row in rows:
        with suppress(TypeError, ValueError, IndexError):
            if (region := float(row[0])).is_integer():
                regions.append(int(region))
    return regions


def _question(
    value: dict | None,
    task: str,
    text: str,
    regions: list[int] | None,
    free_text: str,
    masks: MaskStore,
    shown_width: float | None,
) -> Question:
    """The question the page's fields ask; `shown_width`: the result panel's, in CSS px."""
    boxes = boxes_of(value)
    return Question(
        image=image_of(value),
        boxes=boxes,
        task=task,
        text=task_fields.shown_text(task, text, free_text),
        regions=tuple(regions or ()),
        masks=masks_for(boxes, masks or {}),
        file_name=file_name_of(value),
        shown_width=shown_width,
    )


def _not_asked(error: FO1Error, session: Session) -> str:
    """The status for a question the model cannot take. The answer on screen stays; said so, it
    does not read as this question's, nor (if so) as about the boxes in the editor now."""
    shown = [EARLIER_ANSWER] if session.answered is not None else []
    refused = status_html(" ".join([str(error), *shown]), "error", REFUSED)
    return with_stale_note(refused, session.stale)


@dataclass
class Handlers:
    """Every event of the page, on the one object `ui.layout` wires them to."""

    answerer: Answerer
    proposing: Proposing
    examples: list[Example]
    ahead: EncodeAhead | None = None  # encodes the boxes on screen before the question comes
    token_limit: int = TOKEN_LIMIT

    # The events that need neither the page's session nor the model.
    boxes_typed = staticmethod(box_edits.boxes_typed)
    boxes_loaded = staticmethod(box_edits.boxes_loaded)
    task_changed = staticmethod(task_fields.task_changed)
    insert_region = staticmethod(task_fields.insert_region)

    def __post_init__(self) -> None:
        self._sessions = Sessions()
        self._answer_folders = AnswerFolders()

    def _session(self, request: gr.Request) -> Session:
        return self._sessions.of(request)

    def forget_session(self, request: gr.Request) -> None:
        """The page was closed (`Sessions.forget`)."""
        self._sessions.forget(request)

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
        # A refusal was about the boxes at Run (none, too many, a reference to one gone) or a
        # field: with the boxes changed, the next Run may be asked, and is checked then.
        kept = "" if REFUSED in status else status
        marked = with_stale_note(session.sent_status if behind else kept, session.stale)
        stale = gr.skip() if streaming or marked == status else marked
        history = gr.skip() if streaming or behind else session.history(follow_up, conversation)
        choices = region_choices(len(boxes))
        return (
            gr.update(choices=choices, info="" if boxes else NO_REGIONS),
            gr.update(choices=choices, value=None),
            box_note(image, boxes),
            stale,
            history,
            boxes_as_text(boxes),
        )

    def keep_found(
        self,
        value: dict | None,
        table: Any,
        picked: list[int] | None,
        prompt: str | None,
        request: gr.Request,
    ) -> tuple:
        """`box_edits.boxes_kept`: the boxes of the answer on screen that its detections table
        names. Outputs: editor, status, picked regions, free prompt."""
        answered = self._session(request).answered
        return box_edits.boxes_kept(value, answered, _table_regions(table), picked, prompt)

    def undo_boxes(
        self,
        value: dict | None,
        picked: list[int] | None,
        prompt: str | None,
        status: str | None,
        request: gr.Request,
    ) -> tuple:
        """`box_edits.undo_boxes`, back through this page's steps. Outputs: editor, picked
        regions, then `PageLeft.outputs` (the status saying what a box edit did goes: "4
        proposals, in place of your boxes" with the user's boxes back reads as a fault)."""
        session = self._session(request)
        editor, regions, moved, page = box_edits.undo_boxes(session.undo, value, picked, prompt)
        if page.answer is not None:  # the answer on screen is that one again
            session.answered, session.answered_turn = (
                page.answer.answered,
                page.answer.answered_turn,
            )
        undone = editor != gr.skip() and BOX_EDIT in (status or "")  # not "Nothing to undo"
        return editor, regions, *page.outputs(free_prompt=moved, status="" if undone else None)

    def regions_picked(
        self, value: dict | None, picked: list[int] | None, request: gr.Request
    ) -> None:
        """The region picker changed (`UndoSteps.picked`)."""
        key = conversation_key(image_of(value), boxes_of(value))
        self._session(request).undo.picked(key, picked or [])

    def image_left(
        self,
        coming: dict | None,
        masks: MaskStore | None,
        proposed: Proposed | None,
        answer: str,
        reasoning: str,
        result: str | None,
        status: str | None,
        table: Any,
        downloads: list[str] | None,
        conversation: dict | None,
        history: str,
        request: gr.Request,
    ) -> None:
        """The editor gets the image `coming` holds (None: none, or an example's): its masks,
        proposal time and answer area, as the page shows them still, come back with the image it
        leaves on Undo (`UndoSteps.leave`). Sent with `supersede`, this is under way before
        `new_image` empties the page and forgets the answer shown."""
        session = self._session(request)
        shown = (answer, reasoning, result, status, table, downloads, conversation, history)
        left = AnswerLeft.kept(
            masks, proposed, shown, session.answered, session.answered_turn, session.unwritten
        )
        session.undo.leave(image_of(coming), PageLeft(answer=left))

    def new_image(self, request: gr.Request) -> tuple:
        """A new image (or none): the old one's masks, proposal time, answer and conversation
        no longer apply. Outputs: masks, proposal time, then `cleared_answer`'s."""
        session = self._session(request)
        session.answered = session.finished = None  # a turn not yet filed is the old image's
        session.answered_turn = session.unwritten = None
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
        task: str,
        task_text: str,
        regions: list[int] | None,
        threshold: float,
        max_count: float,
        mode: str,
        masks: MaskStore,
        prompt: str | None,
        clicked_at: float | None,
        request: gr.Request,
    ) -> tuple:
        """Adds the proposals to the boxes (or replaces them); masks are kept for drawing. A
        text-prompted proposer given no text looks for what the `task`'s text names; one that
        finds more like example boxes is given the `regions` picked for a region task, or else
        every box in the editor.

        Propose may wait behind other questions: the boxes it adds to are the editor's when it
        ends, and after a new image (both by the page's clock, `clicked_at` being the click's)
        it adds nothing. Outputs: editor, masks, status, proposal time, picked regions (none
        once the proposals replace the boxes picked from), free prompt."""
        image = image_of(value)
        try:
            held = self.ahead.held() if self.ahead is not None else nullcontext()
            asked = proposer_input(
                self.proposing.proposer(proposer), text, task, task_text, boxes_of(value), regions
            )
            with held:  # the user waits for these: no encoding ahead competes with them
                found = self.proposing.propose(
                    image, proposer, asked.text, threshold, max_count, asked.examples
                )
        except (ProposerError, FO1Error) as error:
            return status_only(proposer_error_html(str(error)))
        except Exception as error:
            logger.exception("Proposer %s failed", proposer)
            failed = proposer_error_html(f"The proposer failed: {error}")
            return status_only(failed)
        session = self._session(request)
        edited = _later(session.edited_at, clicked_at) and session.editing is not None
        if _later(session.superseded_at, clicked_at) or (
            edited and session.editing[0] != file_identity(image)  # turned by its buttons
        ):
            message = "The image changed while the proposer ran: its proposals are not added."
            return status_only(status_html(message, "warning"))
        drawn = [list(box) for box in session.editing[1]] if edited else None
        return proposals_added(found, value, drawn, mode, masks, prompt, asked.asked_for)

    def proposer_changed(self, name: str, status: str | None) -> tuple:
        """Outputs: threshold, the proposer's text, status (an error about the proposer picked
        before goes; whatever else it says, about the answer say, stays)."""
        try:
            proposer = self.proposing.proposer(name)
        except ProposerError as error:
            return gr.skip(), gr.skip(), proposer_error_html(str(error))
        text = gr.update(
            visible=proposer.needs_text,
            label="What to find (left blank: what the task names)",
            interactive=True,
        )
        status = "" if PROPOSER_ERROR in (status or "") else gr.skip()
        return gr.update(value=proposer.default_threshold), text, status

    # Tasks ---------------------------------------------------------------------------------

    def load_example(
        self,
        task: str,
        text: str,
        free_text: str,
        picked_task: str,
        texts: dict | None,
        event: gr.SelectData,
        request: gr.Request,
    ) -> tuple:
        """`task_fields.example_fields`; the task fields it replaces come back with the image it
        replaces on Undo (`UndoSteps.leave`)."""
        fields = (task, text, free_text, picked_task, texts)
        self._session(request).undo.leave(None, PageLeft(fields))
        return task_fields.example_fields(self.examples[event.index], free_text)

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
        shown_width: float | None,
        clicked_at: float | None,
        request: gr.Request,
    ) -> Iterator[AnswerOutputs]:
        """Streams the answer area (`AnswerOutputs`: answer, reasoning, result image, status,
        table, downloads).

        In follow-up mode the question sees the conversation's earlier turns, as long as the
        image and boxes are those the conversation is about. `shown_width`: the result panel's
        width (labels are drawn to be read there); `clicked_at`: when Run was clicked, by the
        page's clock.
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
        running = session.running = Running()
        try:
            question = _question(value, task, text, regions, free_text, masks, shown_width)
            key = conversation_key(question.image, question.boxes)
            history = turns_about(conversation, key) if follow_up else []
            try:
                prepared = self.answerer.prepare(question, history)
            except FO1Error as error:
                yield AnswerOutputs(status=_not_asked(error, session))
                return
            if running.cancel.is_set():
                if not superseded():
                    yield AnswerOutputs(status=STOPPED_EARLY)
                return
            turns = follow_up and conversation and conversation.get("turns")
            asked = Asked(
                question,
                prepared,
                conversation["turns"] if history else [],
                proposed.seconds_if_asked(question.boxes) if proposed else None,
                follow_up,
                restarted=bool(turns and not history),
                editor_changes=lambda: session.changed_since(key),
            )
            session.answered = None  # the placeholder empties the answer area
            session.answered_turn = session.unwritten = None
            yield asked.started()
            steps = answer_outputs(
                self.answerer,
                self._answer_folders,
                asked,
                int(max_new_tokens),
                running.cancel,
                self.token_limit,
            )
            for outputs, ended in steps:
                if superseded():
                    return
                session.answered = key  # an answer about these boxes is on screen
                if ended is not None:
                    session.unwritten = ended.downloads
                    generation = ended.generation
                    if generation.stop_reason != StopReason.CANCELLED:
                        turn = Turn(prepared.request.user_text, generation.answer, asked.shown)
                        session.finished = (key, turn)
                yield outputs
        except FO1Error as error:
            yield AnswerOutputs(status=error_html(str(error)))
        except gr.Error as error:  # ZeroGPU's refusal of a slot, written for the visitor
            yield AnswerOutputs(status=error_html(slot_refused(error.message, int(max_new_tokens))))
        except Exception as error:
            logger.exception("Generation failed")
            message = f"Generation failed ({type(error).__name__}: {error})."
            yield AnswerOutputs(status=error_html(message))
        finally:
            # A closed stream (Stop on ZeroGPU, a closed tab) must also end the worker thread.
            session.ended(running)

    def downloads(self, request: gr.Request) -> Any:
        """After `run`, outside the model's queue slot: the files of the answer it finished
        (`Unwritten`), unless another question or image has come since."""
        session = self._session(request)
        unwritten = session.unwritten
        if unwritten is None:
            return gr.skip()
        files = unwritten.write()
        if session.unwritten is not unwritten:
            return gr.skip()
        session.unwritten = None
        return files

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
