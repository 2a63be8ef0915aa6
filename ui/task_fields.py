"""The fields that follow the task picked: which of them shows, the text each kind of task
keeps, `<regionN>` put into the free prompt where its caret was, and an example's fields. These
events need neither the model nor the page's session: plain functions of what the page sends."""

from __future__ import annotations

import math

import gradio as gr

from fo1_core.templates import FREE_PROMPT, TASKS, FillKind, region_token
from ui.box_edits import prompt_again, region_choices
from ui.boxes import boxes_named, editor_value
from ui.examples import Example

_CLOSING_PUNCTUATION = set(",.;:!?)]}")


def _text_kind(task: str | None) -> str:
    """Whether a task's one-line text is a question or names things (categories, an expression)."""
    template = TASKS.get(task or "")
    return "question" if template is not None and template.is_question else "names"


def _selection_in(prompt: str, selection: object) -> tuple[int, int]:
    """The page's [start, end] selection in the prompt (code points), clamped into it; the
    prompt's end when the page sent none (an API caller, or a prompt never focused)."""
    if not isinstance(selection, list | tuple) or len(selection) != 2:
        return len(prompt), len(prompt)
    if not all(isinstance(at, int | float) and math.isfinite(at) for at in selection):
        return len(prompt), len(prompt)
    start, end = sorted(min(max(int(at), 0), len(prompt)) for at in selection)
    return start, end


def task_changed(task: str, text: str | None, texts: dict | None, before: str | None) -> tuple:
    """The fields that follow the task shown, in one answer so that a field is never seen
    relabelled with another kind's text. A task the user picked instead of `before` keeps the
    one-line text when it asks for the same kind of thing (categories, what to count, an
    expression), else each kind gets back its own (a question for region reasoning), so no
    categories are asked as a question. An example or Undo sets the task with its text and
    `before` alike: their text stays. Outputs: text, regions, free prompt, the texts kept by
    kind, the task now picked."""
    template = TASKS.get(task)
    fill = template.fill if template is not None else None
    label, example = (template.field_label, template.example) if template else ("Text", "")
    shown = {"visible": fill is FillKind.TEXT, "label": label, "placeholder": example}
    kind = _text_kind(task)
    if task == before:
        kept = gr.skip()
    else:
        kept = {**(texts or {}), _text_kind(before): text or ""}
        if kind != _text_kind(before):
            shown["value"] = kept.get(kind, "")
    return (
        gr.update(**shown),
        gr.update(visible=fill is FillKind.REGIONS),
        gr.update(visible=task == FREE_PROMPT),
        kept,
        task,
    )


def insert_region(prompt: str | None, index: int | None, selection: object) -> tuple:
    """Puts `<regionN>` where the prompt's caret (or selection, which it replaces) was, spaced
    from the words around it, and hands back the caret's new place just after it. No reference
    (the list cleared after an insertion) leaves the prompt alone and no caret to place."""
    if index is None:
        return gr.skip(), gr.skip(), None
    prompt = prompt or ""
    start, end = _selection_in(prompt, selection)
    before, after = prompt[:start], prompt[end:]
    lead = "" if not before or before[-1].isspace() else " "
    trail = "" if after[:1].isspace() or after[:1] in _CLOSING_PUNCTUATION else " "
    inserted = f"{before}{lead}{region_token(int(index))}{trail}"
    caret = len(inserted)
    return inserted + after, gr.update(value=None), [caret, caret]


def example_fields(example: Example, free_text: str | None) -> tuple:
    """Outputs: editor, task, text, picked regions, free prompt, the task now picked, the texts
    kept by kind. The free prompt is the example's, else `free_text` with its region references
    marked gone: they named the boxes of the image the example replaces."""
    if example.task == FREE_PROMPT:
        free = example.text
    else:
        free = prompt_again(free_text, [-1] * boxes_named(free_text or ""))
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


def shown_text(task: str, text: str, free_text: str) -> str:
    """What the task's visible text field holds: the free prompt, the task's text box, or nothing
    (region tasks read the region picker; a hidden text box keeps what another task was given)."""
    if task == FREE_PROMPT:
        return free_text
    template = TASKS.get(task)
    return text if template is None or template.fill is FillKind.TEXT else ""
