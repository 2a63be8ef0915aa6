"""What the server keeps of each open page, between its events: the answer running, what the
answer on screen and the editor are about, and the editor's Undo steps. Events of one page can
overtake each other, so each reads and leaves here what the others need to know."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import gradio as gr

from ui.answer_view import Turn
from ui.box_edits import UndoSteps
from ui.conversation import ConversationKey, history_view
from ui.report import Unwritten
from ui.status import Change

CLOSED_PAGES = 10_000
"""How many closed pages are remembered as closed, so that their late events keep nothing."""

LATE_EVENTS_S = 30.0
"""How long after a page's close its events are taken for late ones, the steps of an event that
ran as it closed, which keep nothing. Past that the page is open after all: Gradio takes a page
whose heartbeat was cut (a phone's tab put to sleep, a change of network, a laptop's lid) for
closed, and such a page kept nothing for good, with no Stop, downloads or conversation."""

OPEN_PAGES = 1_000
"""How many pages' sessions are kept at most, the least recently heard from dropped first. A page
that never loads (a script calling the events with made-up session hashes) never sends the unload
that would free its record; without a bound, such calls grow the server's memory without end.
One server answers a handful of pages at once, so a dropped page has been idle behind a thousand
others, and loses only its Undo steps and which answer it shows; a page with an answer running
is not dropped."""


@dataclass
class Running:
    """A session's answer in progress: `cancel` stops it after the current token, `ended` is set
    once its stream has returned."""

    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass
class Session:
    """What the server keeps of one open page. An answer holds on to its session's record, so
    one still running when the page closes writes into a record no longer kept."""

    running: Running | None = None
    # When Stop was last pressed, and a new image last came, by the page's clock (see
    # `Handlers.stop` and `Handlers.supersede`).
    stopped_at: float | None = None
    superseded_at: float | None = None
    finished: tuple[ConversationKey, Turn] | None = None  # until `remember_turn` files it
    answered: ConversationKey | None = None  # the image and boxes of the answer shown
    # That answer as a turn of its conversation, once filed (`remember_turn`).
    answered_turn: tuple[ConversationKey, Turn] | None = None
    editing: ConversationKey | None = None  # those in the editor now
    edited_at: float | None = None  # when they last changed, by the page's clock
    sent_status: str = ""  # the status an answer last sent to the page
    unwritten: Unwritten | None = None  # the answer shown's downloads, until `Handlers.downloads`
    undo: UndoSteps = field(default_factory=UndoSteps)  # this image's, for `undo_boxes`

    def edited(self, key: ConversationKey, value: dict | None) -> None:
        """The editor holds `key` now, shown from `value` (a step for Undo, `UndoSteps.record`)."""
        self.editing = key
        self.undo.record(key, value)

    def ended(self, running: Running) -> None:
        """`running`'s stream has returned: its worker is told to stop too, the session no
        longer has it running, and a new image waiting for it (`Handlers.supersede`) goes on."""
        running.cancel.set()
        if self.running is running:
            self.running = None
        running.ended.set()

    def changed_since(self, asked: ConversationKey) -> Change | None:
        """What of `asked` the editor holds otherwise now, if anything. A key's image is the
        file as the user sees it (`image_of`), so a turned image is another one."""
        if self.editing is None or self.editing == asked:
            return None
        return "image" if self.editing[0] != asked[0] else "boxes"

    @property
    def stale(self) -> Change | None:
        """What differs between the editor and what the answer shown is about."""
        return None if self.answered is None else self.changed_since(self.answered)

    def history(self, follow_up: bool, conversation: dict | None) -> str:
        """`history_view` of `conversation` as this page shows it: its latest turn marked when it
        is the answer on screen (the page may send an older conversation than the server's)."""
        conversation = conversation or {}
        turns = conversation.get("turns")
        latest = (conversation.get("key"), turns[-1]) if turns else None
        latest_shown = latest is not None and latest == self.answered_turn
        return history_view(follow_up, conversation, self.editing, latest_shown)


class Sessions:
    """The session of each open page, by Gradio's session hash."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, Session] = OrderedDict()  # last heard from last
        # When each closed page closed (`time.monotonic`), newest last, `CLOSED_PAGES` kept.
        self._closed: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()  # events of many pages run on threads of their own

    def __contains__(self, session_hash: str) -> bool:
        """Whether anything of that page's session is kept."""
        return session_hash in self._open

    def of(self, request: gr.Request) -> Session:
        with self._lock:
            closed_at = self._closed.get(request.session_hash)
            if closed_at is not None:
                if time.monotonic() - closed_at < LATE_EVENTS_S:
                    # An event that ran as the page closed goes on: nothing keeps what it leaves.
                    return Session()
                del self._closed[request.session_hash]  # open after all (`LATE_EVENTS_S`)
            session = self._open.setdefault(request.session_hash, Session())
            self._open.move_to_end(request.session_hash)
            if len(self._open) > OPEN_PAGES:
                self._drop_one()
        return session

    def _drop_one(self) -> None:
        """Drops the record of the page heard from least recently, of those with no answer
        running: a flood of made-up sessions would otherwise take the record of a page waiting
        for its answer, whose Stop, downloads and follow-up turn need it."""
        idle = next((key for key, page in self._open.items() if page.running is None), None)
        if idle is None:
            self._open.popitem(last=False)
        else:
            del self._open[idle]

    def forget(self, request: gr.Request) -> None:
        """The page was closed: its answer stops and nothing of its session is kept."""
        with self._lock:
            self._closed[request.session_hash] = time.monotonic()
            while len(self._closed) > CLOSED_PAGES:
                self._closed.popitem(last=False)
            session = self._open.pop(request.session_hash, None)
        if session is not None and session.running is not None:
            session.running.cancel.set()
