"""The status line under Run: its HTML, and the messages it shows about an answer."""

from __future__ import annotations

import html
from typing import Literal


def status_html(message: str, kind: str = "info", mark: str = "") -> str:
    """The status block; `mark` is one more class, to tell this status apart later."""
    classes = f"fo1-status fo1-{kind} {mark}".rstrip()
    return f'<div class="{classes}">{html.escape(message)}</div>'


def error_html(message: str) -> str:
    return status_html(message, "error")


PROPOSER_ERROR = "fo1-proposer-error"


def proposer_error_html(message: str) -> str:
    """An error about the picked proposer: picking another one takes it away."""
    return status_html(message, "error", PROPOSER_ERROR)


REFUSED = "fo1-refused"
"""Marks a question the model was not asked (`Handlers.run`): a change of the boxes it was
refused for takes the message away (`Handlers.boxes_changed`)."""

BOX_EDIT = "fo1-box-edit"
"""Marks what a box edit did (proposals added, boxes typed): Undo, which takes the edit back,
takes the message away too (`Handlers.undo_boxes`)."""

ANSWERED = "fo1-answered"
"""Marks the status of a finished answer: screen readers hear the answer after it
(`ui.page_scripts.ANNOUNCED`)."""

ANSWERING = "Answering…"


def is_streaming(status: str) -> bool:
    """Whether `status` is that of an answer still streaming."""
    return status.startswith(status_html(ANSWERING).removesuffix("</div>"))


Change = Literal["image", "boxes"]
"""What differs in the editor from what the answer shown was asked about: the image (turned by
the editor's rotate buttons, which turn the boxes with it), or only the boxes."""

STALE_NOTES: dict[Change, str] = {
    "boxes": status_html(
        "The boxes changed after this answer: its region numbers are the boxes drawn on the "
        "result image. Run again to ask about the boxes as they are now.",
        "warning",
    ),
    "image": status_html(
        "The image was turned after this answer: its region numbers are the boxes drawn on the "
        "result image, as it was asked about. Run again to ask about the image as it is now.",
        "warning",
    ),
}


def with_stale_note(status: str | None, change: Change | None) -> str:
    """The status with the note on `change` after it (`STALE_NOTES`), while the answer shown is
    about another image or other boxes than the editor's."""
    status = status or ""
    for note in STALE_NOTES.values():
        status = status.replace(note, "")
    return status + STALE_NOTES[change] if change else status


NOT_KEPT = "A stopped answer is not kept in the conversation."
STOPPED_EARLY = status_html("Stopped by you before the answer started.")
EARLIER_ANSWER = "The answer shown is the one to the question before."
CUT_SHORT = "The answer may be cut short: raise “Max new tokens” to let it finish."

TOKEN_LIMIT = 4096
"""The most new tokens the page lets a user ask for, unless the app is started with another."""


def cut_short(max_new_tokens: int, token_limit: int) -> str:
    """What a user can do about an answer stopped at `max_new_tokens`, `token_limit` being the
    most the page allows."""
    if max_new_tokens < token_limit:
        return CUT_SHORT
    return (
        f"The answer may be cut short at {token_limit} new tokens, the most this app writes: "
        "ask about fewer things at once."
    )
