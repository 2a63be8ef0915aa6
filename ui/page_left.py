"""What the page showed with an image besides its boxes, kept as the page leaves that image for
another (uploaded, or an example clicked) or empties the editor (its ×): Undo, which brings the
image and its boxes back (`ui.box_edits.UndoSteps`), brings this back with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ui.answer_area import cleared_answer
from ui.answer_view import Turn
from ui.conversation import ConversationKey
from ui.proposing import MaskStore, Proposed, packed_bytes
from ui.report import Unwritten
from ui.status import is_streaming

MASKS_KEPT_BYTES = 32 * 2**20
"""The most of a proposer's masks (packed, `PackedMask`) kept of an image left, and of boxes a
Propose replaced (`ui.proposing.within`): more, and Undo brings those boxes back without them.
SAM3 masks of 100 large objects on a 12-megapixel photo take 150 MB; those of a few dozen
ordinary ones a few MB."""

MASKS_NOT_KEPT = "The proposer's masks were too large to keep: propose again to draw them."

# Where `cleared_answer` lists the result image, the status and the downloads.
_RESULT, _STATUS, _DOWNLOADS = 2, 3, 5


@dataclass(frozen=True)
class AnswerLeft:
    """The masks, proposal time and answer area shown with an image left, and what the session
    knew of that answer (`Session.answered`, `Session.answered_turn`)."""

    masks: MaskStore | None  # None: over `MASKS_KEPT_BYTES`, not kept
    proposed: Proposed | None
    answer_area: tuple  # as `cleared_answer` lists it
    answered: ConversationKey | None
    answered_turn: tuple[ConversationKey, Turn] | None
    # The answer's files, had they not reached the page yet (`Handlers.downloads` comes a step
    # after the answer): written when Undo brings the answer back.
    unwritten: Unwritten | None = None

    @classmethod
    def kept(
        cls,
        masks: MaskStore | None,
        proposed: Proposed | None,
        answer_area: tuple,
        answered: ConversationKey | None,
        answered_turn: tuple[ConversationKey, Turn] | None,
        unwritten: Unwritten | None = None,
    ) -> AnswerLeft:
        """What is kept of the page as it leaves its image. An answer still streaming then is
        stopped (`Handlers.supersede`) and never finishes: the answer area comes back empty."""
        masks = masks or {}
        if packed_bytes(masks) > MASKS_KEPT_BYTES:
            masks = None
        if is_streaming(answer_area[_STATUS] or ""):
            return cls(masks, proposed, cleared_answer(), None, None)
        if answer_area[_DOWNLOADS]:
            unwritten = None
        return cls(masks, proposed, tuple(answer_area), answered, answered_turn, unwritten)

    def outputs(self) -> tuple[Any, ...]:
        """Masks, proposal time, then the answer area as `cleared_answer` lists it. The result
        image and downloads are Gradio's copies, deleted after a while (`Settings.file_ttl`):
        those gone are left out; files not yet written then are written now."""
        if self.masks is None:
            gr.Warning(MASKS_NOT_KEPT)
        area = list(self.answer_area)
        if area[_RESULT] is not None and not Path(area[_RESULT]).is_file():
            area[_RESULT] = None
        if self.unwritten is not None:
            files = self.unwritten.write()
        else:
            files = [path for path in area[_DOWNLOADS] or [] if Path(path).is_file()]
        area[_DOWNLOADS] = files or None
        return self.masks or {}, self.proposed, *area


@dataclass(frozen=True)
class PageLeft:
    """What else the page showed with an image when it left it: each part kept by the event
    that changes it (`Handlers.image_left`, `Handlers.load_example`)."""

    # Task, text, free prompt, task picked and texts kept by kind, as the page held them before
    # an example replaced them (`task_fields.example_fields`).
    fields: tuple | None = None
    answer: AnswerLeft | None = None

    def __or__(self, later: PageLeft) -> PageLeft:
        """This, with what `later` kept and this did not."""
        return PageLeft(self.fields or later.fields, self.answer or later.answer)

    def outputs(self, free_prompt: Any = None, status: str | None = None) -> tuple[Any, ...]:
        """Task, text, free prompt, task picked, texts kept by kind, then `AnswerLeft.outputs`;
        what was not kept stays as it is, but for the free prompt and status given (None: as
        they are)."""
        skip = gr.skip()
        prompt = skip if free_prompt is None else free_prompt
        fields = self.fields or (skip, skip, prompt, skip, skip)
        if self.answer:
            return *fields, *self.answer.outputs()
        area = [skip] * len(cleared_answer())
        if status is not None:
            area[_STATUS] = status
        return *fields, skip, skip, *area
