"""Every fixed string and limit of FO1's prompt interface, in one place.

The task templates are the model's prompt interface (SPEC §10.3): they are reproduced verbatim,
typos included, because the model was trained on exactly these strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

MAX_REGIONS = 100
"""FO1 has 100 region tokens (`<region0>`…`<region99>`); extra boxes are cut, with a notice."""

DEFAULT_MAX_NEW_TOKENS = 1024
MAX_TEXT_CHARS = 8000
"""Longest question accepted; far beyond any template fill, short of a pasted document."""
SYSTEM_PROMPT = "You are a helpful assistant."

IMAGE_PLACEHOLDER = "<image>"
REGION_PLACEHOLDER = "<regionfeat>"
IMAGE_PLACEHOLDER_ID = -200
REGION_PLACEHOLDER_ID = -300

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
END_OF_TEXT = "<|endoftext|>"
CHAT_CONTROL_STRINGS = (IM_START, IM_END, VISION_START, VISION_END, END_OF_TEXT)

GROUND_OPEN, GROUND_CLOSE = "<ground>", "</ground>"
OBJECTS_OPEN, OBJECTS_CLOSE = "<objects>", "</objects>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
ANSWER_TAGS = (
    GROUND_OPEN,
    GROUND_CLOSE,
    OBJECTS_OPEN,
    OBJECTS_CLOSE,
    THINK_OPEN,
    THINK_CLOSE,
    ANSWER_OPEN,
    ANSWER_CLOSE,
)
"""The tags of FO1's answer grammar."""


def region_token(index: int) -> str:
    """The text token that names box ``index`` (0-based position in the user's box list)."""
    return f"<region{index}>"


def box_count(count: int) -> str:
    """ "1 box", "3 boxes": how messages count boxes."""
    return f"{count} box" if count == 1 else f"{count} boxes"


REGION_INDEX = "0|[1-9][0-9]{0,5}"
REGION_REFERENCE = re.compile(f"<region(?P<index>{REGION_INDEX})>")
"""A `region_token` in a prompt or an answer, spelt as the tokenizer's token: ASCII digits, no
leading zero (`<region02>` and other digits are text to the model, so they are text here too). A
longer number stays text: no box list comes near it, and Python refuses to read a number of more
than 4 300 digits."""


class FillKind(Enum):
    """What a task template's ``{}`` is filled with, so the UI can offer the right input."""

    NONE = "none"
    TEXT = "text"
    REGIONS = "regions"


@dataclass(frozen=True)
class TaskTemplate:
    name: str
    label: str
    template: str
    fill: FillKind
    # A `FillKind.TEXT` task's text: what to type (for the message when it is empty), its field's
    # name and an example, and whether it is a question (the others name things).
    asks_for: str = ""
    field_label: str = ""
    example: str = ""
    is_question: bool = False

    def render(self, fill: str = "") -> str:
        return self.template.format(fill) if self.fill is not FillKind.NONE else self.template

    @property
    def without_boxes(self) -> str:
        """Why asking it about no boxes makes no sense (each caller says how to give some)."""
        return f"The task '{self.label}' answers by naming boxes, but there are none"


_OD = "Please detect {} in this image. Answer the question with object indexes."

TASKS: dict[str, TaskTemplate] = {
    task.name: task
    for task in (
        TaskTemplate(
            "OD_template",
            "Detection",
            _OD,
            FillKind.TEXT,
            "the categories to detect",
            "Categories",
            "e.g. person, red cup, dog",
        ),
        TaskTemplate(
            "OD_Counting_template",
            "Counting",
            "How many {} are there in this image? Count each instance of the target object. "
            "Locate them with object indexes and then answer the question with the number of "
            "objects.",
            FillKind.TEXT,
            "what to count",
            "What to count",
            "e.g. apples",
        ),
        TaskTemplate(
            "REC_template",
            "Referring expression",
            _OD,
            FillKind.TEXT,
            "the object to find",
            "Referring expression",
            "e.g. the man in the blue shirt",
        ),
        TaskTemplate(
            "Region_OCR_template",
            "Region OCR",
            "Please provide the ocr results of {} in the image.",
            FillKind.REGIONS,
        ),
        TaskTemplate(
            "Brief_Region_Caption_template",
            "Brief region caption",
            "Provide a brief description for {}.",
            FillKind.REGIONS,
        ),
        TaskTemplate(
            "Detailed_Region_Caption_template",
            "Detailed region caption",
            "Provide a detailed description for {}.",
            FillKind.REGIONS,
        ),
        TaskTemplate(
            "Grounding_template",
            "Grounded caption",
            "Briefly describe this image and detect all mentioned objects. "
            "Answer with grounded object indexes.",
            FillKind.NONE,
        ),
        TaskTemplate(
            "Visual_Prompt_OD_template",
            "Visual-prompt detection",
            "Using the provided object {} as a reference, identify all other objects of the "
            "same category in this image. Respond with object indexes.",
            FillKind.REGIONS,
        ),
        TaskTemplate(
            "Viusal_Region_Reasoning_template",
            "Region reasoning",
            "First thinks about the reasoning process in the mind and then provides the user "
            "with the answer. The reasoning process and answer are enclosed within <think> "
            "</think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
            "here </think><answer> answer here </answer>. Please give a detailed reasoning "
            "process process and provide image regions that can help you answer the question "
            "better. {}",
            FillKind.TEXT,
            "a question",
            "Question",
            "e.g. Which of these can I eat?",
            is_question=True,
        ),
        TaskTemplate(
            "OD_All_template",
            "Detect everything",
            "Please identify every object in the image and provide their labels along with "
            "their indexes.",
            FillKind.NONE,
        ),
    )
}
FREE_PROMPT = "free"
"""Task name for a user-written prompt sent as it is (after sanitising)."""
FREE_PROMPT_LABEL = "Free prompt"
DEFAULT_TASK = "OD_template"
"""The task the app and the command line ask when none is picked."""
