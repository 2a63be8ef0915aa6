"""The answer as safe HTML: region references become chips in their box colour.

Model output is untrusted text, so everything except the chips and group labels is escaped.
"""

from __future__ import annotations

import html
import re
from typing import NamedTuple

import supervision as sv

from fo1_core.answers import (
    CLASS_NAME_KEY,
    REGION_INDEX_KEY,
    Answer,
    parse_answer,
    shown_label,
)
from fo1_core.templates import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    GROUND_CLOSE,
    GROUND_OPEN,
    OBJECTS_CLOSE,
    OBJECTS_OPEN,
    REGION_REFERENCE,
    THINK_CLOSE,
    THINK_OPEN,
)
from ui.boxes import region_hex, region_label, region_text_hex

_GROUP_TAGS = (GROUND_OPEN, GROUND_CLOSE, OBJECTS_OPEN, OBJECTS_CLOSE)
_PIECES = re.compile(f"{REGION_REFERENCE.pattern}|(?P<tag>{'|'.join(map(re.escape, _GROUP_TAGS))})")
_SECTIONS = re.compile(
    f"{re.escape(THINK_OPEN)}.*?(?:{re.escape(THINK_CLOSE)}|$)"
    f"|{'|'.join(map(re.escape, (ANSWER_OPEN, ANSWER_CLOSE, THINK_CLOSE)))}",
    re.DOTALL,
)
DETECTION_COLUMNS = ["region", "label", "x1", "y1", "x2", "y2", "score"]
CONFIDENCE_DECIMALS = 2


def chip(index: int, known: bool = True) -> str:
    """One region chip; a reference to a box that does not exist is greyed and struck through."""
    if not known:
        return f'<span class="fo1-chip fo1-missing" title="no such box">#{index}</span>'
    colours = f"--chip:{region_hex(index)};--chip-text:{region_text_hex(index)}"
    return (
        f'<span class="fo1-chip" data-region="{index}" style="{colours}">'
        f"{region_label(index)}</span>"
    )


def rich_text(text: str, num_regions: int) -> str:
    """`text` escaped, with `<regionN>` as chips, grounded labels in bold, structure tags hidden."""
    out, pos, bold = [], 0, False
    for match in _PIECES.finditer(text):
        out.append(html.escape(text[pos : match.start()]))
        pos = match.end()
        if match.group("index") is not None:
            index = int(match.group("index"))
            out.append(chip(index, index < num_regions))
        elif match.group("tag") == GROUND_OPEN and not bold:
            out.append("<b>")
            bold = True
        elif match.group("tag") == GROUND_CLOSE and bold:
            out.append("</b> ")
            bold = False
        elif match.group("tag") == OBJECTS_CLOSE:
            out.append(" ")
    out.append(html.escape(text[pos:]))
    # An answer cut off inside a label leaves no bold running on into the rest of the page.
    out.append("</b>" if bold else "")
    return "".join(out).strip().replace("\n", "<br>")


SCROLLER = 'tabindex="0"'
"""For a panel that scrolls within itself (the page's answer, a conversation): a tab stop, for
the keyboard to scroll a long one (Chromium makes any scroller one; Safari does not)."""


def answer_html(answer: Answer | None, num_regions: int, scroller: bool = False) -> str:
    """The answer without its reasoning (shown separately), as HTML; None: none yet.
    `scroller`: shown alone in the answer panel, which scrolls (`SCROLLER`)."""
    if answer is None:
        body = ""
    elif answer.final is not None:
        body = answer.final
    else:
        body = _SECTIONS.sub("", answer.display)
    rendered = rich_text(body, num_regions)
    attributes = f" {SCROLLER}" if scroller else ""
    return f'<div class="fo1-answer"{attributes}>{rendered or "<i>…</i>"}</div>'


def asked_html(task: str, asked: str, num_regions: int, prompt: str, boxes: str = "") -> str:
    """What the answer below it answers: the task and what the user gave it (typed text, picked
    regions), the whole `prompt` the model read on hovering. It stays told apart from what the
    fields hold once the user picks another task or text. `boxes`: the attribute that places
    the regions on the result image (`ui.spotlight.boxes_attribute`)."""
    label = html.escape(task) + (":" if asked else "")
    given = rich_text(asked, num_regions)
    return (
        f'<div class="fo1-asked" title="{html.escape(prompt)}" {boxes}>'
        f'<span class="fo1-task">{label}</span> {given}</div>'
    )


class Turn(NamedTuple):
    """One question and answer of a follow-up conversation."""

    question: str  # as the model read it (a task's whole template), and reads it again
    answer: str
    shown: str  # as the user asked it: the task and what they gave it


def conversation_html(
    turns: list[Turn], num_regions: int, title: str, latest_shown: bool = False
) -> str:
    """Earlier turns of a follow-up conversation, oldest first, with region chips.

    `latest_shown`: the last turn is the answer on screen below; it is marked `fo1-latest`, with
    a note saying so, for the page to show one or the other (`ui.style.app_css`)."""
    if not turns:
        return ""
    items = [
        f"<b>You:</b> {rich_text(turn.shown, num_regions)}<br><b>FO1:</b> "
        f"{answer_html(parse_answer(turn.answer, num_regions), num_regions)}</li>"
        for turn in turns
    ]
    latest = '<li class="fo1-latest">' if latest_shown else "<li>"
    listed = "".join(["<li>" + item for item in items[:-1]] + [latest + items[-1]])
    note = f'<span class="fo1-latest-note"> — {LATEST_TURN_NOTE}</span>' if latest_shown else ""
    return f'<div class="fo1-history" {SCROLLER}><b>{title}</b>{note}<ol>{listed}</ol></div>'


LATEST_TURN_NOTE = "its latest turn is the answer below"


NO_REASONING = "fo1-no-reasoning"
"""Marks a reasoning pane with none to show: its accordion is hidden (`ui.style`), so a
question that does not reason shows no empty "Reasoning" to open."""


def reasoning_html(answer: Answer, num_regions: int) -> str:
    if not answer.thinking:
        return (
            f'<div class="fo1-reasoning {NO_REASONING}"><i>No reasoning in this answer.</i></div>'
        )
    return f'<div class="fo1-reasoning">{rich_text(answer.thinking, num_regions)}</div>'


def detection_rows(detections: sv.Detections) -> list[list[object]]:
    """One row per detection, as `DETECTION_COLUMNS`; the confidence is blank until the answer
    is complete."""
    labels = detections.data.get(CLASS_NAME_KEY, [""] * len(detections))
    confidences = (
        [""] * len(detections)
        if detections.confidence is None
        else [round(float(c), CONFIDENCE_DECIMALS) for c in detections.confidence]
    )
    return [
        [int(index), shown_label(str(label)), *(round(float(v), 1) for v in box), confidence]
        for index, label, box, confidence in zip(
            detections.data[REGION_INDEX_KEY], labels, detections.xyxy, confidences, strict=True
        )
    ]


CHIP_CSS = """
.fo1-chip { display: inline-block; padding: 0 0.45em; margin: 0 0.1em; border-radius: 0.6em;
  background: var(--chip); color: var(--chip-text); font-weight: 600; font-size: 0.9em; }
.fo1-chip.fo1-missing { background: #999; color: #fff; text-decoration: line-through; }
.fo1-answer { font-size: 1.05em; line-height: 1.7; min-height: 2em; }
.fo1-asked { opacity: 0.8; font-size: 0.9em; margin-bottom: 0.3em; overflow: hidden;
  display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.fo1-asked .fo1-task { font-weight: 600; }
.fo1-history { max-height: 22em; overflow-y: auto; border-left: 3px solid #ccc;
  padding-left: 0.6em; }
.fo1-history .fo1-answer { font-size: 1em; min-height: 0; }
"""
