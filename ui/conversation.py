"""Follow-up conversations: what one is about (an image and its boxes), the turns the model sees
again, and how the page shows them."""

from __future__ import annotations

from ui.answer_view import conversation_html
from ui.boxes import Box
from ui.files import file_identity

NEW_CONVERSATION = "The image or boxes changed, so a new conversation starts."
CONVERSATION = "Conversation so far"
ENDED_CONVERSATION = (
    "Earlier conversation, about other boxes: the next question starts a new one "
    "(put the boxes back to continue this one)"
)

ConversationKey = tuple[str, tuple[tuple[float, ...], ...]]


def conversation_key(image: str | None, boxes: list[Box]) -> ConversationKey:
    """What a conversation (and an answer) is about: one image (by content, `file_identity`) and
    one box list."""
    return file_identity(image), tuple(tuple(box) for box in boxes)


def turns_about(conversation: dict | None, key: ConversationKey) -> list[tuple[str, str]]:
    """The (question, answer) turns the model sees again, of a conversation about `key`."""
    conversation = conversation or {}
    if conversation.get("key") != key:
        return []
    return [(turn.question, turn.answer) for turn in conversation.get("turns", [])]


def history_view(
    follow_up: bool,
    conversation: dict | None,
    editing: ConversationKey | None = None,
    latest_shown: bool = False,
) -> str:
    """The conversation so far, in follow-up mode; titled as one the next question will not
    continue when the editor's boxes (`editing`) are no longer the ones it is about.
    `latest_shown`: its latest turn is the answer on screen (`conversation_html`)."""
    turns = (conversation or {}).get("turns", [])
    if not follow_up or not turns:
        return ""
    key = conversation.get("key")
    if editing is not None and key is not None and key[0] != editing[0]:
        return ""  # about another image: nothing to continue (`new_image` has cleared it)
    moved_on = editing is not None and not turns_about(conversation, editing)
    title = ENDED_CONVERSATION if moved_on else CONVERSATION
    return conversation_html(turns, len(key[1]) if key else 0, title, latest_shown)
