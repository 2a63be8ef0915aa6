"""Prompt text and token ids exactly as the official FO1 pipeline builds them (SPEC §6).

The prompt is ChatML written by hand: system line, the image placeholder, one `<regionI>` +
placeholder pair per box, then the user's text. It is tokenised piecewise — each fragment between
placeholders on its own — and the placeholders become the ids -200 (image) and -300 (region).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fo1_core.errors import FO1Error
from fo1_core.templates import (
    ANSWER_TAGS,
    FREE_PROMPT,
    IM_END,
    IM_START,
    IMAGE_PLACEHOLDER,
    IMAGE_PLACEHOLDER_ID,
    MAX_TEXT_CHARS,
    REGION_PLACEHOLDER,
    REGION_PLACEHOLDER_ID,
    REGION_REFERENCE,
    SYSTEM_PROMPT,
    TASKS,
    VISION_END,
    VISION_START,
    FillKind,
    region_token,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Removal:
    text: str
    removed: list[str]  # the strings taken out, in the order met


def sanitize_user_text(text: str, tokenizer: PreTrainedTokenizerBase) -> Removal:
    """Removes strings that would hijack the prompt: placeholders and the tokenizer's added
    tokens (chat control, vision markers, tool calls). FO1's tags and `<regionN>` are kept."""
    # Lone surrogates (possible in text from a browser or JSON) cannot be tokenised.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return without(text, _control_strings(tokenizer))


def without(text: str, strings: Collection[str]) -> Removal:
    """`text` with each of `strings` taken out, also one that taking out another forms
    ("<ima<image>ge>"). Each pass shortens the text, so this ends."""
    strings = frozenset(s for s in strings if s)
    if not strings:  # an empty pattern would match everywhere, for ever
        return Removal(text, [])
    pattern = _any_of(strings)
    removed: list[str] = []
    while found := pattern.findall(text):
        removed += [s for s in dict.fromkeys(found) if s not in removed]
        text = pattern.sub("", text)
    return Removal(text, removed)


@functools.lru_cache(maxsize=8)
def _any_of(strings: frozenset[str]) -> re.Pattern[str]:
    """One pattern for all of `strings`: a pass over the text is one scan, not one per string
    (nested placeholders take a pass per level). The longest is tried first at each place."""
    return re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True)))


@functools.lru_cache(maxsize=8)
def _control_strings(tokenizer: PreTrainedTokenizerBase) -> frozenset[str]:
    """What `sanitize_user_text` removes, found once per tokenizer: every question and every
    earlier answer of a conversation is sanitised."""
    controls = {IMAGE_PLACEHOLDER, REGION_PLACEHOLDER, *tokenizer.all_special_tokens}
    # Added tokens not marked special are control tokens too (Qwen's `<tool_call>`, `<|fim_…|>`):
    # typed, they would reach the model as the single token it was trained on, not as text.
    controls |= {token.content for token in tokenizer.added_tokens_decoder.values()}
    # FO1's own strings stay, even from a tokenizer that marks them special: region tasks and
    # earlier answers are written in them.
    return frozenset(
        c for c in controls if c not in ANSWER_TAGS and not REGION_REFERENCE.fullmatch(c)
    )


def region_references(text: str) -> list[int]:
    return [int(match) for match in REGION_REFERENCE.findall(text)]


_NEAR_REFERENCE = re.compile(r"<\s*region\s*_?\s*(\d{1,7})\s*>", re.IGNORECASE)
"""Digits past `REGION_INDEX`'s six (with a leading zero) are a number no box has, not a slip."""


def misspelt_references_note(text: str) -> str | None:
    """What to tell of region references spelt otherwise (`<Region1>`, `<region 1>`,
    `<region01>`), which reach the model as words, not as a region's features; None if none."""
    misspelt = {
        match.group(): region_token(int(match.group(1)))
        for match in _NEAR_REFERENCE.finditer(text)
        if not REGION_REFERENCE.fullmatch(match.group())
    }
    if not misspelt:
        return None
    one = len(misspelt) == 1
    return (
        f"{', '.join(misspelt)} {'is' if one else 'are'} sent as words, not as "
        f"{'a region' if one else 'regions'}: write {', '.join(dict.fromkeys(misspelt.values()))}."
    )


def user_text_for_task(task: str, text: str, num_regions: int) -> str:
    """Fills the task template; `free` sends the text as it is. Region indexes are checked."""
    if task == FREE_PROMPT:
        user_text = text.strip()
        if not user_text:
            raise FO1Error("The prompt is empty: type a question or pick a task.")
    elif isinstance(task, str) and task in TASKS:
        template = TASKS[task]
        if template.fill is not FillKind.NONE and not text.strip():
            what = (
                f"pick at least one region (as text: {region_token(0)}, {region_token(1)}, …)"
                if template.fill is FillKind.REGIONS
                else f"type {template.asks_for}"
            )
            raise FO1Error(f"The task '{template.label}' needs input: {what}.")
        if template.fill is FillKind.REGIONS and not region_references(text):
            raise FO1Error(
                f"The task '{template.label}' asks about regions: name them as "
                f"{region_token(0)}, {region_token(1)}, … (got {text.strip()!r:.60})."
            )
        user_text = template.render(text.strip())
    else:
        raise FO1Error(f"Unknown task {task!r}; choose one of {', '.join([*TASKS, FREE_PROMPT])}.")
    if len(user_text) > MAX_TEXT_CHARS:
        raise FO1Error(
            f"The prompt is {len(user_text):,} characters long; the limit is {MAX_TEXT_CHARS:,}."
        )
    missing = sorted({i for i in region_references(user_text) if i >= num_regions})
    if missing:
        names = ", ".join(region_token(i) for i in missing)
        last = num_regions - 1
        have = (
            f"boxes #0–#{last} only ({region_token(0)}–{region_token(last)})"
            if num_regions > 1
            else f"box #0 only ({region_token(0)})"
            if num_regions
            else "no boxes"
        )
        raise FO1Error(f"The prompt refers to {names}, but the image has {have}.")
    return user_text


def unused_text_note(task: str, text: str) -> str | None:
    """What to tell of text given to a task that takes none (the template drops it), if any."""
    template = TASKS.get(task) if isinstance(task, str) else None
    if template is None or template.fill is not FillKind.NONE or not text.strip():
        return None
    return f"The text is not used: the task '{template.label}' takes none."


def region_list_text(indexes: list[int]) -> str:
    """How a region-task template refers to several regions: `<region0>, <region2>`."""
    return ", ".join(region_token(i) for i in indexes)


def build_prompt(user_text: str, num_regions: int, history: Sequence[tuple[str, str]] = ()) -> str:
    """The ChatML prompt; `history` holds earlier (question, answer) turns about the same image.

    The image and the region line belong to the first question, so every turn of a conversation
    shares the same prefix.
    """
    questions = [question for question, _ in history] + [user_text]
    regions = "".join(region_token(i) + REGION_PLACEHOLDER for i in range(num_regions))
    first = f"{VISION_START}{IMAGE_PLACEHOLDER}{VISION_END}\n"
    first += f"{regions}\n{questions[0]}" if num_regions else questions[0]
    # Upstream drops the system line whenever "system" occurs in the user turn; kept for parity.
    chat = "" if "system" in first else f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n"
    for turn, question in enumerate([first, *questions[1:]]):
        chat += f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n"
        if turn < len(history):
            chat += f"{history[turn][1]}{IM_END}\n"
    return chat


def tokenize_prompt(prompt: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Piecewise tokenisation: fragments between placeholders are tokenised independently."""
    ids: list[int] = []
    for image_index, piece in enumerate(prompt.split(IMAGE_PLACEHOLDER)):
        if image_index:
            ids.append(IMAGE_PLACEHOLDER_ID)
        for region_index, fragment in enumerate(piece.split(REGION_PLACEHOLDER)):
            if region_index:
                ids.append(REGION_PLACEHOLDER_ID)
            ids += tokenizer(fragment, add_special_tokens=False)["input_ids"]
    return ids


def prefix_length(ids: list[int]) -> int:
    """Length of the part of the ids shared by every question about one image and its boxes:
    everything up to and including the last image/region placeholder."""
    slots = [
        i for i, token in enumerate(ids) if token in (IMAGE_PLACEHOLDER_ID, REGION_PLACEHOLDER_ID)
    ]
    return slots[-1] + 1


def image_prefix_length(ids: list[int]) -> int:
    """Length of the part of the ids shared by every question about one image, whatever its
    boxes: everything up to and including the image placeholder."""
    return ids.index(IMAGE_PLACEHOLDER_ID) + 1
