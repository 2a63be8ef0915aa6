"""Forgiving, streaming-safe parsing of FO1 answers, and their conversion to ``sv.Detections``.

Grammar (SPEC §10):

- grounded group: ``<ground>LABEL</ground><objects><region2><region5></objects>``; ``</ground>``
  must be followed directly by ``<objects>`` and the label may not span lines but may name
  regions (``<ground>the same as <region3></ground>…``, as the reference); text between the
  region tags is ignored, groups with the same label are merged;
- bare reference: ``<region3>`` anywhere;
- reasoning: ``<think>…</think><answer>…</answer>``;
- counting: the first integer left after removing all region tags (any digits), else 0.

Nothing here raises on model output: a group is reported only once its ``</objects>`` has arrived,
so parsing a prefix of an answer yields a subset of the final groups; indexes that name no box are
dropped and reported in ``Answer.warnings``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from fo1_core.templates import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    ANSWER_TAGS,
    CHAT_CONTROL_STRINGS,
    GROUND_CLOSE,
    GROUND_OPEN,
    MAX_REGIONS,
    OBJECTS_CLOSE,
    OBJECTS_OPEN,
    REGION_REFERENCE,
    THINK_CLOSE,
    THINK_OPEN,
    box_count,
    region_token,
)

REGION_INDEX_KEY = "region_index"
"""``sv.Detections.data`` key holding each detection's region index (position in the box list)."""

CLASS_NAME_KEY = sv.config.CLASS_NAME_DATA_FIELD


def shown_label(label: str) -> str:
    """A group's label as people read it: the regions it names (a visual prompt's
    `<ground><region0></ground>`) written as their tags, `#0`, as the boxes are numbered."""
    return REGION_REFERENCE.sub(lambda match: f"#{match['index']}", label)


# The text before a region token's number, to hold back a token still streaming in.
_REGION_HEAD = region_token(0).split("0")[0]
_TOKEN = re.compile(
    f"{REGION_REFERENCE.pattern}"
    f"|(?P<tag>{'|'.join(map(re.escape, ANSWER_TAGS))})"
    f"|(?P<control>{'|'.join(map(re.escape, CHAT_CONTROL_STRINGS))})"
)
_INTEGER = re.compile(r"\d+")
_ANY_REGION_SPELLING = re.compile(rf"{re.escape(_REGION_HEAD)}\d+>")
"""A region tag however its number is written (`<region02>`, other scripts' digits): not a
reference (`REGION_REFERENCE`), but not a count either; the official CountBench script drops all
of them."""
COUNT_DIGITS = 18
"""The longest count `count_rule` reads as written (see there)."""
_KNOWN_TAGS = (*ANSWER_TAGS, *CHAT_CONTROL_STRINGS)


@dataclass(frozen=True)
class GroundedGroup:
    """One label and the regions the model gave for it, in first-seen order without repeats."""

    label: str
    indexes: tuple[int, ...]


@dataclass
class Answer:
    """What an FO1 answer (complete or still streaming) says, as typed results.

    ``references`` lists every valid region tag in order of appearance, repeats and group members
    included; ``final_references`` those in the final answer (``final``). ``count`` follows the
    SPEC §10.2 benchmark rule, so numbers written as words give 0.
    """

    text: str
    groups: list[GroundedGroup] = field(default_factory=list)
    references: list[int] = field(default_factory=list)
    thinking: str | None = None
    final: str | None = None
    final_references: list[int] = field(default_factory=list)
    count: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        """The answer for reading: chat control tokens and a half-streamed trailing tag removed."""
        return _clean(self.text)

    def label_to_indexes(self) -> dict[str, tuple[int, ...]]:
        return {group.label: group.indexes for group in self.groups}


def parse_answer(text: str, num_regions: int | None = None) -> Answer:
    """Parse FO1 output ``text``; ``num_regions`` is the number of boxes the model was given.

    Without ``num_regions`` only indexes past the model's region vocabulary are dropped.
    """
    if num_regions is None:
        parser = _GroupParser(MAX_REGIONS, f"FO1 has {MAX_REGIONS} region tokens")
    else:
        if num_regions >= MAX_REGIONS:  # more boxes may be on screen: they were not read
            given = f"the model reads the first {MAX_REGIONS} boxes only"
        else:
            given = f"only {box_count(num_regions)}" if num_regions else "no boxes were given"
        parser = _GroupParser(min(num_regions, MAX_REGIONS), given)
    complete = _drop_partial_tag(text)
    for kind, value in _tokens(complete):
        parser.feed(kind, value)
    parser.finish()
    cleaned = _clean(text)
    think_at, answer_at = cleaned.find(THINK_OPEN), cleaned.find(ANSWER_OPEN)
    if think_at < 0 or 0 <= answer_at < think_at:
        # No reasoning before the answer; an answer may still mention `<think>`.
        final = _section(cleaned, ANSWER_OPEN, ANSWER_CLOSE)
        after = cleaned.partition(ANSWER_CLOSE)[2] if final is not None else cleaned
        thinking = _section(after, THINK_OPEN, THINK_CLOSE)
    else:
        # The answer comes after the reasoning, which may itself mention `<answer>` (the
        # reasoning template asks for those tags); while the reasoning streams, none is out yet.
        thinking = _section(cleaned, THINK_OPEN, THINK_CLOSE)
        _, closed, after = cleaned[think_at:].partition(THINK_CLOSE)
        final = _section(after, ANSWER_OPEN, ANSWER_CLOSE) if closed else None
        if final is None and closed:
            # `<think>…</think>` followed by plain text: that text is the answer.
            final = after.strip() or None
    return Answer(
        text=text,
        groups=[GroundedGroup(label, tuple(idx)) for label, idx in parser.groups.items()],
        references=parser.references,
        thinking=thinking,
        final=final,
        final_references=[] if final is None else _valid_references(final, parser.references),
        count=count_rule(complete),
        warnings=parser.warnings,
    )


def _valid_references(text: str, valid: list[int]) -> list[int]:
    """The region tags of `text` that name one of the `valid` regions, in order."""
    named = set(valid)
    found = (int(match["index"]) for match in REGION_REFERENCE.finditer(text))
    return [index for index in found if index in named]


def count_rule(text: str) -> int:
    """SPEC §10.2 counting rule: drop every region tag, then the first integer left, else 0.

    A number of more than `COUNT_DIGITS` digits (a model stuck writing zeros, say) reads as
    `10 ** COUNT_DIGITS`: no image holds that many of anything, and Python refuses to read a
    number of more than 4 300 digits."""
    match = _INTEGER.search(_ANY_REGION_SPELLING.sub("", text))
    if match is None:
        return 0
    digits = "".join(str(unicodedata.digit(c)) for c in match.group()).lstrip("0") or "0"
    return int(digits) if len(digits) <= COUNT_DIGITS else 10**COUNT_DIGITS


def to_detections(
    answer: Answer,
    boxes_xyxy: np.ndarray,
    masks: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    include_references: bool = True,
) -> sv.Detections:
    """The boxes an answer names, one detection per (label, region), in answer order.

    ``boxes_xyxy`` (N, 4) are the boxes the model was given, in original image pixels; ``masks``
    (N, H, W) and ``scores`` (N,) are optional and follow the same order. Bare references that
    belong to no group are added with an empty label when ``include_references`` is true: those
    of the final answer where it has any (the regions only its reasoning went through are not the
    answer), else all of them. Indexes
    past ``N`` are skipped; parse with ``num_regions=N`` to have them reported as warnings.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    for name, values in (("masks", masks), ("scores", scores)):
        if values is not None and len(values) != len(boxes):
            raise ValueError(f"{len(values)} {name} for {len(boxes)} boxes: give one per box.")
    rows = [(g.label, i) for g in answer.groups for i in g.indexes]
    if include_references:
        grouped = {i for _, i in rows}
        bare = answer.final_references or answer.references
        rows += [("", i) for i in dict.fromkeys(bare) if i not in grouped]
    rows = [(label, i) for label, i in rows if i < len(boxes)]
    labels = [label for label, _ in rows]
    indexes = np.array([i for _, i in rows], dtype=int)
    return sv.Detections(
        xyxy=boxes[indexes],
        mask=None if masks is None else np.asarray(masks, dtype=bool)[indexes],
        confidence=None if scores is None else np.asarray(scores, dtype=np.float32)[indexes],
        class_id=class_ids(labels),
        data={CLASS_NAME_KEY: np.array(labels, dtype=str), REGION_INDEX_KEY: indexes},
    )


def class_ids(labels: list[str]) -> np.ndarray:
    """Class ids numbered by first appearance of each label, so export and reload agree."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(label, len(ids)) for label in labels], dtype=int)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Split ``text`` into ("text", s), ("region", digits), ("tag", tag), ("control", s)."""
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() > pos:
            yield "text", text[pos : match.start()]
        pos = match.end()
        if match.group("index") is not None:
            yield "region", match.group("index")
        elif match.group("tag") is not None:
            yield "tag", match.group("tag")
        else:
            yield "control", match.group()
    if pos < len(text):
        yield "text", text[pos:]


class _GroupParser:
    """State machine over tokens: label → ``</ground>`` → ``<objects>`` → regions → ``</objects>``.

    Any token out of that order abandons the group in progress, which is how the reference's
    regex behaves for text between the tags or a newline in a label or among the regions.
    """

    def __init__(self, limit: int, limit_reason: str) -> None:
        self.limit = limit
        self.limit_reason = limit_reason
        self.groups: dict[str, list[int]] = {}
        self.references: list[int] = []
        self.warnings: list[str] = []
        self.missing: dict[int, None] = {}  # indexes past the limit, first-seen order
        self.state = "outside"  # outside | label | after_label | objects
        self.label = ""
        self.indexes: list[int] = []

    def feed(self, kind: str, value: str) -> None:
        if kind == "control":
            return
        if kind == "region":
            if self.state == "label":  # the label keeps its region tag as written
                self.label += region_token(int(value))
            self._region(int(value))
        elif kind == "text":
            self._text(value)
        elif value == GROUND_OPEN:
            self._abandon()
            self.state, self.label = "label", ""
        elif value == GROUND_CLOSE and self.state == "label":
            self.state, self.label = "after_label", self.label.strip()
        elif value == OBJECTS_OPEN and self.state == "after_label":
            self.state, self.indexes = "objects", []
        elif value == OBJECTS_CLOSE and self.state == "objects":
            merged = self.groups.setdefault(self.label, [])
            merged += [i for i in dict.fromkeys(self.indexes) if i not in merged]
            self.state = "outside"
        else:
            self._abandon()

    def finish(self) -> None:
        if self.missing:
            # One line for all of them: a confused model can name dozens.
            *most, last = [str(index) for index in self.missing]
            named = f"Regions {', '.join(most)} and {last} do" if most else f"Region {last} does"
            self._warn(f"{named} not exist ({self.limit_reason}); ignored.")
        if self.state == "objects" and self.indexes:
            # Its regions are already bare references, drawn without a label.
            self._warn(
                f"The answer ends inside the group {self.label!r}: its regions are shown "
                "without that label."
            )
        elif self.state != "outside":
            self._warn(f"The answer ends inside the group {self.label.strip()!r}.")

    def _region(self, index: int) -> None:
        if index >= self.limit:
            self.missing[index] = None
            return
        self.references.append(index)
        if self.state == "objects":
            self.indexes.append(index)
        elif self.state != "label":
            self._abandon()

    def _text(self, value: str) -> None:
        if self.state == "label":
            self.label += value
        # Text between the regions is ignored, but neither part of a group spans lines.
        if self.state not in ("label", "objects") or "\n" in value:
            self._abandon()

    def _abandon(self) -> None:
        if self.state != "outside":
            self._warn(f"Ignored the malformed group {self.label.strip()!r}.")
        self.state = "outside"

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def _section(text: str, open_tag: str, close_tag: str) -> str | None:
    """The text after the first ``open_tag`` up to ``close_tag`` (or the end, while streaming)."""
    start = text.find(open_tag)
    if start < 0:
        return None
    body = text[start + len(open_tag) :]
    return body.split(close_tag, 1)[0].strip()


def _clean(text: str) -> str:
    text = _drop_partial_tag(text)
    for control in CHAT_CONTROL_STRINGS:
        text = text.replace(control, "")
    return text.strip()


def _drop_partial_tag(text: str) -> str:
    """``text`` without a trailing tag that the next streamed chunk may complete."""
    start = text.rfind("<")
    return text[:start] if start >= 0 and _is_partial_tag(text[start:]) else text


def _is_partial_tag(tail: str) -> bool:
    if ">" in tail:
        return False
    if _REGION_HEAD.startswith(tail):
        return True
    if tail.startswith(_REGION_HEAD) and tail[len(_REGION_HEAD) :].isdigit():
        return True
    return any(tag.startswith(tail) for tag in _KNOWN_TAGS)
