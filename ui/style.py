"""The page's style sheet: colours shared with the drawn boxes, layout on a phone, and what the
page state (`ui.page_scripts`) shows."""

from __future__ import annotations

import gradio as gr

from fo1_core.templates import MAX_REGIONS
from ui.answer_view import CHIP_CSS
from ui.boxes import region_hex
from ui.spotlight import REGION_OPTIONS, SPOTLIGHT_CSS

PENDING = "[data-testid=status-tracker]:not(.hide)"
"""Gradio's progress on a component, while an event that updates it waits or runs."""


def app_theme() -> gr.themes.Base:
    """Gradio's default theme with its words readable against what they stand on (WCAG AA's
    4.5:1): white on its orange Run and red Stop was 2.8:1 and 3.8:1; its grey small print (the
    slider's ends, the footer) 1.9:1 on white; its blue links (the downloads) 4.0:1 on a dark
    panel; a text field's focus a border of 1.8:1 and a ring of 1.1:1."""
    darker = {"": "*primary_700", "_hover": "*primary_800"}
    darker_red = {"": gr.themes.colors.red.c700, "_hover": gr.themes.colors.red.c800}
    return gr.themes.Default().set(
        **{
            f"button_{variant}_{part}{state}{mode}": fill
            for variant, fills in (("primary", darker), ("cancel", darker_red))
            for state, fill in fills.items()
            for part in ("background_fill", "border_color")
            for mode in ("", "_dark")
        },
        body_text_color_subdued="*neutral_500",
        link_text_color_dark="*secondary_400",
        link_text_color_visited_dark="*secondary_400",
        link_text_color_hover_dark="*secondary_300",
        input_border_color_focus="*secondary_600",
        input_border_color_focus_dark="*secondary_400",
        input_shadow_focus="0 0 0 1px *secondary_600",
        input_shadow_focus_dark="0 0 0 1px *secondary_400",
    )


NARROW_DETECTIONS_CSS = """
#fo1-detections { container: fo1-detections / inline-size; }
@container fo1-detections (max-width: 420px) {
    #fo1-detections .cell-wrap { padding: 3px; font-size: 12px; }
}
"""
"""The detections' seven columns in a narrow table's width (a phone's, or half a tablet's;
`column_widths` in `ui.layout`), their labels wrapped: cut off at its right, the table hid the
boxes' bottom edges, and squeezed, "1000" read as "100" over "0"."""


def app_head() -> str:
    """For `launch(head=...)`: the style Gradio's `css` would drop (it keeps plain, `@media`,
    `@keyframes` and `@font-face` rules, not `@container` ones)."""
    return f"<style>{NARROW_DETECTIONS_CSS}</style>"


def app_css() -> str:
    """Style sheet for `launch(css=...)` (Gradio 6 takes it there, not in `Blocks`)."""
    # Region picker swatches in the same colours as the boxes and chips.
    swatches = "\n".join(
        f"{REGION_OPTIONS}:nth-of-type({i + 1}) {{ border-left: 0.7em solid {region_hex(i)}; }}"
        for i in range(MAX_REGIONS)
    )
    return f"""{CHIP_CSS}
{SPOTLIGHT_CSS}
{swatches}
.fo1-status {{ padding: 0.3em 0.6em; border-radius: 0.4em; overflow-wrap: anywhere; }}
.fo1-error {{ background: #fde2e1; color: #8a1c12; font-weight: 600; }}
.fo1-warning {{ background: #fff4d6; color: #6b4e00; }}
.fo1-done {{ background: #e3f6e5; color: #1d5a24; }}
.dark .fo1-error {{ background: #4c1d19; color: #ffd9d4; }}
.dark .fo1-warning {{ background: #45370f; color: #ffecb3; }}
.dark .fo1-done {{ background: #173d1d; color: #cdeccf; }}
.fo1-hidden {{ display: none !important; }}
kbd {{ padding: 0 0.35em; border: 1px solid var(--border-color-primary); border-radius: 0.3em;
    font: inherit; font-size: 0.9em; background: var(--background-fill-secondary); }}
/* While the page's question is queued or answered (`ASK`), Run steps back to a plain button's
   colours, not dimmed: it still asks (the question is kept for later), and its word stays
   readable. Stop is dimmed while there is nothing to stop (`STOP_AVAILABLE`). */
body.fo1-busy #fo1-run {{ cursor: progress; background: var(--button-secondary-background-fill);
    border-color: var(--button-secondary-border-color);
    color: var(--button-secondary-text-color); }}
body.fo1-busy #fo1-run:hover {{ background: var(--button-secondary-background-fill-hover); }}
#fo1-stop[aria-disabled=true] {{ opacity: 0.5; }}
/* Room for Gradio's progress (a place in the queue), which would spill over what follows; not
   for its mark while the answer streams. */
#fo1-status:has({PENDING}:not(.generating)) {{ min-height: 4.5em; }}
/* The notes over the status (`STATUS_NOTES`): a question kept for `IDLE`, and Run or Propose
   waiting behind what the model is busy with, said in place of Gradio's place in the queue and
   time estimate, and of the status before. */
#fo1-status[data-fo1-waiting] {{ display: none !important; }}
#fo1-page-note {{ margin: 0; padding: 0.3em 0.6em; white-space: pre-line; }}
#fo1-page-note:empty {{ display: none; }}
body.fo1-run-next #fo1-page-note {{ cursor: pointer; }}
/* A Propose waiting behind an answer, or running (`PROPOSING`). */
body.fo1-proposing #fo1-propose {{ opacity: 0.6; cursor: progress; }}
body.fo1-proposing #fo1-propose::after {{ content: " (on its way…)"; }}
#fo1-answer .fo1-answer {{ max-height: 20em; overflow-y: auto; }}
/* No gap for a conversation not shown, nor for a status or an answer not there yet, unless
   Gradio shows its progress there (a place in the queue, a Propose running). */
#fo1-history:not(:has(.fo1-history)),
#fo1-status:not(:has(.fo1-status, {PENDING})),
#fo1-answer:not(:has(.fo1-answer, {PENDING})) {{ display: none; }}
/* A question refused, then edited (`QUESTION_EDITED`): the refusal was about it as it was. */
body.fo1-question-edited #fo1-status .fo1-refused,
body.fo1-question-edited #fo1-status:not(:has(.fo1-status:not(.fo1-refused), {PENDING})) {{
    display: none;
}}
/* The conversation's latest turn is left out while it is the answer shown below it, not once a
   new question is on its way (`ASK` to `IDLE`) to take that answer's place. */
body:not(.fo1-asking) #fo1-history li.fo1-latest,
body.fo1-asking #fo1-history .fo1-latest-note {{ display: none; }}
/* Nor is its title, over no turn, while that answer is the only turn. */
body:not(.fo1-asking) #fo1-history .fo1-history:not(:has(li:not(.fo1-latest))) {{
    display: none;
}}
/* Shown once an answer reasons (`REASONING_SHOWN`): an empty "Reasoning" under every detection
   was only clutter. */
body:not(.fo1-reasoned) #fo1-reasoning-box {{ display: none; }}
/* Room for the gallery's label, which floats over its top left corner. */
#fo1-gallery .grid-wrap {{ min-height: 0; max-height: none; padding-top: 34px; }}
/* Download names wrap on a phone: cut, the answer's JSON and the COCO file looked alike. The
   extension follows its name, not in a column of its own beside it. */
#fo1-downloads .filename {{ flex-wrap: wrap; align-items: center; align-content: center; }}
#fo1-downloads .filename .stem {{ white-space: normal; overflow-wrap: anywhere; min-width: 0; }}
#fo1-downloads .filename .ext {{ white-space: nowrap; }}
/* Gradio gives a list of files a remove button even where it cannot be added back to: a file
   removed by a stray tap would be gone until the question is asked again. Its cell goes with
   it: that cell's padding was taken from the names, which wrapped where they would fit. */
#fo1-downloads .label-clear-button, #fo1-downloads td:has(> .label-clear-button) {{
    display: none; }}
/* The editor's and the result's buttons in a row of their own above the image: over it, they
   hid the tags of boxes at its top right (on a phone, a whole box of the answer) and sat where a
   finger takes a box's corner. */
#fo1-editor .icon-buttons, #fo1-result .icon-button-wrapper {{
    position: static; justify-content: flex-end; }}
/* Read out by screen readers, not shown: the status's words as they change (`ANNOUNCED`). */
#fo1-said {{ position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip-path: inset(50%); white-space: nowrap; }}
/* The size column as narrow as its text: the file's name has the rest. */
#fo1-downloads td.download {{ width: 1%; white-space: nowrap; }}
/* Focus shown where Gradio shows none (the sliders, the detections table, the answer and the
   conversation, which scroll) or a faint border (the region boxes, the follow-up box). */
#fo1-max-tokens input[type=range]:focus-visible, #fo1-max-count input[type=range]:focus-visible,
#fo1-regions input:focus-visible, #fo1-follow-up input:focus-visible,
#fo1-detections [role=grid]:focus-visible, #fo1-answer .fo1-answer:focus-visible,
#fo1-history .fo1-history:focus-visible {{
    outline: 2px solid var(--color-accent); outline-offset: 2px; }}
/* A hundred boxes made the region picker taller than a laptop's window: its last options were
   pointed at with the editor scrolled out of sight, their boxes lit where no one saw them. It
   scrolls within itself instead, beside the image (room kept for its options' focus rings). */
#fo1-regions [data-testid=checkbox-group] {{ max-height: 40vh; overflow-y: auto; padding: 4px; }}
/* A phone (Gradio stacks the columns under 768 px): the task and its region picker come right
   after the boxes and their Undo, the rest of each column after them, so that regions are
   picked with their boxes in view, not a screen below them past Propose and the numbers. */
@media (max-width: 767px) {{
    #fo1-workspace {{ flex-direction: column; align-items: stretch; }}
    #fo1-workspace > .column {{ display: contents; }}
    #fo1-workspace .fo1-box-tools {{ order: 1; }}
    #fo1-asking > :not(#fo1-question) {{ order: 2; }}
}}
/* Fingers: every control at least 36 px across (`pointer: coarse` is a touch screen). */
@media (pointer: coarse) {{
    #fo1-editor button.icon, #fo1-editor .icon-buttons button, #fo1-result button {{
        min-width: 36px; min-height: 36px; }}
    /* Not narrower than Gradio makes them: a word wider than the button stuck out past it. */
    button.fo1-small {{ min-height: 36px; }}
    #fo1-downloads a.download-link {{ display: inline-block; padding: 8px 0; }}
}}
#fo1-gallery .caption-label {{ white-space: normal; max-width: calc(100% - 1em); }}
/* The examples in one row, one per task: all in view on a desktop, scrolled sideways where they
   do not fit. In rows, on a phone, they pushed the image to box below the first screen. */
#fo1-gallery .grid-container {{
    grid-template-columns: none;
    grid-template-rows: none;
    grid-auto-flow: column;
    grid-auto-columns: minmax(120px, 1fr);
    overflow-x: auto;
    scroll-snap-type: x proximity;
}}
#fo1-gallery .thumbnail-item {{ scroll-snap-align: start; }}
"""
