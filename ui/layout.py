"""The Blocks layout and its event wiring; behaviour lives in `ui.handlers` and `ui.api`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import gradio as gr

import detect_tools
from fo1_core.session import FO1Pipeline
from fo1_core.templates import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_TASK,
    FREE_PROMPT,
    FREE_PROMPT_LABEL,
    MAX_REGIONS,
    TASKS,
)
from ui.ahead import EncodeAhead
from ui.answer_view import CHIP_CSS, DETECTION_COLUMNS
from ui.answering import Answerer
from ui.api import Api
from ui.boxes import CLEAR_IN_BROWSER, RELABEL_IN_BROWSER, region_hex
from ui.editor import (
    EMPTY_IF_UNREADABLE,
    FIT_TO_SCREEN,
    MARK_STROKES,
    TAGS_INSIDE_AT_THE_TOP,
    box_editor,
)
from ui.examples import load_examples
from ui.gpu import ON_ZERO_GPU
from ui.handlers import Handlers
from ui.proposing import Proposing

logger = logging.getLogger(__name__)

GPU = "gpu"
"""One concurrency group for everything that runs a model: they share one GPU."""

WITH_PAGE_TIME = "(...inputs) => [...inputs.slice(0, -1), Date.now()]"
"""The page-side step of Run, Stop, Propose, a box edit and a new image: their last input becomes
the page's clock, so the server can tell a Stop, a box edit or a new image that came after a
click still waiting in the queue (`Handlers.stop`, `Handlers.supersede`, `Handlers.propose`)."""

KEYS_AND_TURNS = """() => {
    const click = (id) => document.querySelector(id)?.click();
    const page = document.body.classList;
    // A question asked while one is on its way is kept; not the same ask again (a double
    // click, a held key, a click just after the one that asked). Once Stop was pressed, any.
    const keep = (again) => {
        const doubled = again || Date.now() - (window.fo1AskedAt ?? 0) < 500;
        if (page.contains("fo1-stopping") || (page.contains("fo1-busy") && !doubled)) {
            page.add("fo1-run-next");
        }
    };
    addEventListener("keydown", (event) => {
        // A held Enter asks once: Gradio's own field (and a focused Run button) would ask again
        // at each repeat.
        const held = event.repeat && ["Enter", " "].includes(event.key);
        if (held && event.target.closest("#fo1-text textarea, #fo1-run")) {
            event.preventDefault();
            event.stopPropagation();
        }
    }, true);
    addEventListener("input", (event) => {
        // The question kept is the one asked: edited, it must be asked again to be kept.
        if (event.target.closest("#fo1-text, #fo1-free")) page.remove("fo1-run-next");
    }, true);
    addEventListener("keydown", (event) => {
        const asking = event.key === "Enter" && event.target.closest("#fo1-text textarea");
        if (asking) keep(event.repeat || event.shiftKey);
        const field = event.target.closest("input, textarea, select, [contenteditable]");
        const tool = {c: "Create box", d: "Drag boxes"}[event.key?.toLowerCase()];
        const modified = event.ctrlKey || event.metaKey || event.altKey;
        if (tool && !modified && !field) {
            click(`#fo1-editor button[aria-label='${tool}']`);
            return;
        }
        if (!(event.ctrlKey || event.metaKey) || event.shiftKey) return;
        if (event.key === "Enter" && field?.closest("#fo1-free")) {
            event.preventDefault();
            if (!event.repeat) click("#fo1-run");
        } else if (event.key?.toLowerCase() === "z" && !field) {
            event.preventDefault();
            click("#fo1-undo");
        }
    });
    addEventListener("click", (event) => {
        if (event.target.closest("#fo1-editor button[aria-label^='Rotate']")) {
            setTimeout(() => click("#fo1-turned"), 50);  // once the editor has turned
        } else if (event.target.closest("#fo1-run")) {
            keep(event.detail > 1);
        } else if (event.target.id === "fo1-status") {
            page.remove("fo1-run-next");  // a click on its note (not on the status's text)
        }
    }, true);
}"""
"""Installed once in the page: Ctrl+Enter (⌘↩) in the free prompt asks, as Enter does in the
one-line fields; Ctrl+Z (⌘Z) outside text fields (where it undoes typing) undoes the last box
edit; C and D outside text fields pick the editor's box and hand tools, as they do in the editor
once it has the focus (which it keeps to itself then); turning the image with the editor's
buttons reports its turned boxes (`turned`); a question asked (Run, Enter in the task's text
field, Ctrl+Enter in the free prompt) while the page's answer is on its way or ending is kept
(`IDLE` asks it then; a click on its note, editing it, another task or image forget it)."""

SHOW_THE_ANSWER = """() => {
    // What stands just above the answer (the conversation, the status), in the page before it.
    const bottom = Math.max(...["#fo1-follow-up", "#fo1-history", "#fo1-status"].map(
        (id) => document.querySelector(id)?.getBoundingClientRect().bottom ?? 0));
    if (bottom > 0.6 * innerHeight) {
        document.querySelector("#fo1-run").scrollIntoView({block: "start", behavior: "smooth"});
    }
}"""
"""Where the answer would stream in below the window (a laptop's screen, a phone), scrolls to put
Run at the top, the status and answer under it."""

FORGET_THE_KEPT_QUESTION = 'document.body.classList.remove("fo1-run-next")'
"""Another image or task: a question kept for later (`KEYS_AND_TURNS`) is no longer the one to
ask."""


def page_step(statement: str) -> str:
    """A page-side step that runs `statement`, then adds the page's clock (`WITH_PAGE_TIME`)."""
    return f"(...inputs) => {{ {statement}; return ({WITH_PAGE_TIME})(...inputs); }}"


PROPOSING = page_step('document.body.classList.add("fo1-proposing")')
"""Propose's page-side step: its button says it is on its way (its progress shows on the status,
which an answer streaming there may fill) until `PROPOSED`."""

SHOW_A_PROBLEM = """() => requestAnimationFrame(() => {
    const problem = document.querySelector("#fo1-status .fo1-error");
    const place = problem?.getBoundingClientRect();
    if (place && (place.top > innerHeight || place.bottom < 0)) {
        problem.scrollIntoView({block: "center", behavior: "smooth"});
    }
})"""
"""After Propose or Set these boxes, brings a problem they report into view: on a phone the
status sits far below their buttons, and they seemed to do nothing."""

PROPOSED = f"""() => {{
    document.body.classList.remove("fo1-proposing");
    ({SHOW_A_PROBLEM})();
}}"""

ASK = page_step(
    f"""document.body.classList.remove("fo1-stopping", "fo1-run-next");
    document.body.classList.add("fo1-busy", "fo1-asking");
    window.fo1AskedAt = Date.now();
    ({SHOW_THE_ANSWER})()"""
)
"""Run's page-side step: marks the page as waiting for its answer (`app_css` dims Run, `IDLE`
ends it), shows where the answer comes, and adds the click's time (`WITH_PAGE_TIME`). In the
run's own step, not a listener of its own: Gradio starts a page-only listener of the same click
after the answer has ended."""

IDLE = """() => {
    const page = document.body.classList;
    page.remove("fo1-busy", "fo1-asking", "fo1-stopping");
    if (page.contains("fo1-run-next")) {
        page.remove("fo1-run-next");
        document.querySelector("#fo1-run")?.click();
    }
}"""
"""The page's question has ended: Run is itself again, and asks if it was clicked (or Enter
asked) while that answer was on its way (Gradio drops a click on a button whose last run has not
ended, and the page would not say so)."""

STOPPING = """() => {
    const page = document.body.classList;
    if (page.contains("fo1-busy")) page.add("fo1-stopping");
    else page.remove("fo1-run-next");
    page.remove("fo1-busy");
}"""
"""Stop: Run is itself again at once, and a question asked before the answer has ended (before
or after this Stop) is kept for `IDLE`; a second Stop forgets it. `fo1-asking` stays until then:
the stopped answer has taken the place of the one before it (see `app_css`)."""

SCROLL_TO_THE_END = """() => requestAnimationFrame(() => {
    const panel = document.querySelector("SELECTOR");
    if (panel) panel.scrollTop = panel.scrollHeight;
})"""
"""Keeps the newest part of a scrolling panel in view: each update redraws it, which would
otherwise show its first lines only (a streaming answer's, a conversation's first turns)."""
FOLLOW_THE_ANSWER = SCROLL_TO_THE_END.replace("SELECTOR", "#fo1-answer .fo1-answer")
SHOW_THE_LATEST_TURN = SCROLL_TO_THE_END.replace("SELECTOR", "#fo1-history .fo1-history")

WITH_SELECTION = """(prompt, index, selection) => {
    const box = document.querySelector("#fo1-free textarea");
    if (!box) return [prompt, index, null];
    const points = (end) => Array.from(box.value.slice(0, end)).length;
    return [prompt, index, [points(box.selectionStart), points(box.selectionEnd)]];
}"""
"""The free prompt's caret or selection, in code points as Python counts them (the textarea counts
UTF-16 units), so a region reference goes where the user was typing (`Handlers.insert_region`)."""

PLACE_CARET = """(selection) => requestAnimationFrame(() => {
    const box = document.querySelector("#fo1-free textarea");
    if (!box || !Array.isArray(selection)) return;
    const at = Array.from(box.value).slice(0, selection[0]).join("").length;
    box.focus();
    box.setSelectionRange(at, at);
})"""
"""Back in the prompt just after the inserted reference, ready to type on."""


INTRO = """# VLM-FO1: ask about regions
Draw boxes on the image (or propose them), pick a task, and the model answers by naming boxes.
Each box is a region `#i` in the order drawn. Under the image, the box tool (or <kbd>C</kbd>)
draws; the hand tool (or <kbd>D</kbd>) moves a box, resizes it by a corner, or selects it to remove
with <kbd>Delete</kbd> or the bin button; Undo (<kbd>Ctrl</kbd>+<kbd>Z</kbd>) takes a box edit back.
An image that comes with boxes opens with the hand tool. "Boxes as numbers" shows and sets them
as coordinates."""


@dataclass(frozen=True)
class Settings:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    token_limit: int = 4096
    concurrency: int = 1
    device: str | None = None  # for proposers; None picks CUDA when available
    default_proposer: str | None = None  # None: `Proposing.default`
    proposer_checkpoints: Mapping[str, str] = field(default_factory=dict)  # name → folder or id
    file_ttl: int = 3600  # seconds uploads and results are kept (all are deleted at shutdown)
    encode_ahead: bool = True  # encode the image and boxes while the question is being typed


PENDING = "[data-testid=status-tracker]:not(.hide)"
"""Gradio's progress on a component, while an event that updates it waits or runs."""


def app_css() -> str:
    """Style sheet for `launch(css=...)` (Gradio 6 takes it there, not in `Blocks`)."""
    # Region picker swatches in the same colours as the boxes and chips.
    swatches = "\n".join(
        f"#fo1-regions label:nth-of-type({i + 1}) {{ border-left: 0.7em solid {region_hex(i)}; }}"
        for i in range(MAX_REGIONS)
    )
    return f"""{CHIP_CSS}
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
/* While the page's question is queued or answered (`ASK`): Run is dimmed, Stop is not. */
body.fo1-busy #fo1-run, body:not(.fo1-busy) #fo1-stop {{ opacity: 0.5; }}
body.fo1-busy #fo1-run {{ cursor: progress; }}
/* A question asked while the answer before it is on its way is kept for `IDLE`: said so. */
body.fo1-run-next #fo1-status::before {{ display: block; padding: 0.3em 0.6em;
    cursor: pointer;
    content: "Your next question is asked once this answer ends "
        "(Stop ends it now; editing the question, or a click here, forgets it)."; }}
body.fo1-run-next.fo1-stopping #fo1-status::before {{
    content: "Your next question is asked once this answer has stopped "
        "(editing the question, or a click here, forgets it)."; }}
/* Room for Gradio's progress (a place in the queue), which would spill over what follows; not
   for its mark while the answer streams. */
#fo1-status:has({PENDING}:not(.generating)) {{ min-height: 4.5em; }}
/* A Propose waiting behind an answer, or running (`PROPOSING`). */
body.fo1-proposing #fo1-propose {{ opacity: 0.6; cursor: progress; }}
body.fo1-proposing #fo1-propose::after {{ content: " (on its way…)"; }}
#fo1-answer .fo1-answer {{ max-height: 20em; overflow-y: auto; }}
/* No gap for a conversation not shown, nor for a status or an answer not there yet, unless
   Gradio shows its progress there (a place in the queue, a Propose running). */
#fo1-history:not(:has(.fo1-history)),
body:not(.fo1-run-next) #fo1-status:not(:has(.fo1-status, {PENDING})),
#fo1-answer:not(:has(.fo1-answer, {PENDING})) {{ display: none; }}
/* The conversation's latest turn is left out while it is the answer shown below it, not once a
   new question is on its way (`ASK` to `IDLE`) to take that answer's place. */
body:not(.fo1-asking) #fo1-history li.fo1-latest,
body.fo1-asking #fo1-history .fo1-latest-note {{ display: none; }}
/* The examples in columns of 140 px or more, as many as fit: all four show on a phone too. */
#fo1-gallery .grid-wrap {{ min-height: 0; max-height: none; }}
/* Download names wrap on a phone: cut, the answer's JSON and the COCO file looked alike. The
   extension follows its name, not in a column of its own beside it. */
#fo1-downloads .filename {{ flex-wrap: wrap; }}
#fo1-downloads .filename .stem {{ white-space: normal; overflow-wrap: anywhere; min-width: 0; }}
#fo1-downloads .filename .ext {{ white-space: nowrap; }}
#fo1-gallery .caption-label {{ white-space: normal; max-width: calc(100% - 1em); }}
#fo1-gallery .grid-container {{
    grid-template-columns: repeat(auto-fill, minmax(min(140px, 100%), 1fr));
    grid-template-rows: none;
}}
"""


def build_app(pipeline: FO1Pipeline, settings: Settings | None = None) -> gr.Blocks:
    settings = settings or Settings()
    answerer = Answerer(pipeline)
    proposing = Proposing(settings.device, settings.proposer_checkpoints)
    examples = load_examples()
    # On ZeroGPU there is no GPU outside a question's own slot.
    ahead = EncodeAhead(pipeline) if settings.encode_ahead and not ON_ZERO_GPU else None
    handlers = Handlers(answerer, proposing, examples, ahead)
    api = Api(answerer, proposing, settings.max_new_tokens)
    task_choices = [(t.label, name) for name, t in TASKS.items()]
    task_choices.append((FREE_PROMPT_LABEL, FREE_PROMPT))
    default_proposer = proposing.default(settings.default_proposer)
    proposer_choices = proposing.choices(settings.default_proposer)
    if missing := set(detect_tools.available()) - {name for _, name in proposer_choices}:
        logger.info(
            "Not offered (no weights in the Hugging Face cache, the hub offline): %s; give a "
            "folder with --proposer-checkpoint NAME=FOLDER",
            ", ".join(sorted(missing)),
        )

    ttl = settings.file_ttl
    with gr.Blocks(title="VLM-FO1 demo", delete_cache=(ttl, ttl)) as demo:
        gr.Markdown(INTRO)
        # Above the editor, not under it: first thing a visitor can try, and on a phone, where
        # the columns stack, it no longer stands between the boxes and the Run button.
        gallery = gr.Gallery(
            [(str(e.image), e.title) for e in examples],
            label="Examples (click to load)",
            height="auto",  # every example in view: `app_css` fits the columns
            allow_preview=False,
            elem_id="fo1-gallery",
        )
        masks = gr.State({})
        proposed = gr.State(None)
        conversation = gr.State({})
        texts = gr.State({})  # the one-line text of each kind of task (`Handlers.task_picked`)
        picked_task = gr.State(DEFAULT_TASK)
        page_time = gr.Number(visible=False)  # filled in the page by `WITH_PAGE_TIME`
        selection = gr.JSON(visible=False)  # the prompt's caret, filled by `WITH_SELECTION`
        with gr.Row():
            with gr.Column(scale=3):
                editor = box_editor(
                    label="Image and boxes",
                    show_label=False,  # its tag would sit on the labels of boxes near the top
                    image_type="filepath",
                    disable_edit_boxes=True,
                    show_remove_button=True,
                    show_clear_button=True,
                    box_min_size=4,
                    boxes_alpha=0.2,
                    sources=["upload", "clipboard"],
                    elem_id="fo1-editor",
                )
                # Clicked by `KEYS_AND_TURNS` when the editor's image is turned: the editor itself
                # reports no change then, and its boxes are measured anew.
                turned = gr.Button("Turned", elem_id="fo1-turned", elem_classes="fo1-hidden")
                # Narrow enough for one line on a phone (Gradio wraps a row at 160 px a child).
                with gr.Row():
                    box_note = gr.Markdown("No image yet.", elem_id="fo1-box-note", min_width=90)
                    undo = gr.Button("Undo", size="sm", scale=0, min_width=70, elem_id="fo1-undo")
                    clear = gr.Button("Clear boxes", size="sm", scale=0, min_width=110)
                with gr.Accordion("Propose boxes", open=False):
                    proposer = gr.Dropdown(
                        proposer_choices, value=default_proposer, label="Proposer"
                    )
                    proposer_text = gr.Textbox(label="What to find", visible=False)
                    with gr.Row():
                        threshold = gr.Slider(0, 1, value=0.0, step=0.01, label="Score threshold")
                        max_count = gr.Slider(
                            1,
                            MAX_REGIONS,
                            value=30,
                            step=1,
                            label="At most",
                            elem_id="fo1-max-count",
                        )
                    mode = gr.Radio(
                        [("Add to my boxes", "add"), ("Replace my boxes", "replace")],
                        value="add",
                        label="Proposals",
                    )
                    propose = gr.Button("Propose", elem_id="fo1-propose")
                with gr.Accordion("Boxes as numbers", open=False):
                    numbers = gr.Textbox(
                        label="x1, y1, x2, y2 in pixels, one box per line (box #0 first)",
                        lines=4,
                        max_lines=12,
                        elem_id="fo1-box-numbers",
                    )
                    set_boxes = gr.Button("Set these boxes", elem_id="fo1-set-boxes")
            with gr.Column(scale=2):
                task = gr.Dropdown(task_choices, value=DEFAULT_TASK, label="Task")
                text = gr.Textbox(
                    label="Categories", placeholder="e.g. person, red cup, dog", elem_id="fo1-text"
                )
                regions = gr.CheckboxGroup(
                    [], label="Regions to ask about", visible=False, elem_id="fo1-regions"
                )
                with gr.Group(visible=False) as free_group:
                    free_text = gr.Textbox(
                        label="Prompt (Ctrl+Enter asks)", lines=3, elem_id="fo1-free"
                    )
                    insert = gr.Dropdown([], label="Insert a region reference", value=None)
                max_new_tokens = gr.Slider(
                    min(16, settings.max_new_tokens),  # Gradio refuses a start below its minimum
                    settings.token_limit,
                    value=settings.max_new_tokens,
                    step=16,
                    label="Max new tokens",
                    elem_id="fo1-max-tokens",
                )
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="fo1-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="fo1-stop")
                with gr.Row():
                    follow_up = gr.Checkbox(
                        label="Follow-up mode: each question sees the earlier ones",
                        value=False,
                        elem_id="fo1-follow-up",
                    )
                    new_chat = gr.Button("New conversation", size="sm", scale=0)
                history = gr.HTML(elem_id="fo1-history")
                status = gr.HTML(elem_id="fo1-status")
                answer = gr.HTML(label="Answer", elem_id="fo1-answer")
                with gr.Accordion("Reasoning", open=False):
                    reasoning = gr.HTML(elem_id="fo1-reasoning")
        with gr.Row():
            result = gr.Image(
                label="Result",
                show_label=False,  # as the editor: the tag would hide a top-left box's label
                type="numpy",
                format="png",  # its download button saves this format (WebP by default)
                interactive=False,
                buttons=["download", "fullscreen"],  # sharing only works on Spaces
                elem_id="fo1-result",
            )
            with gr.Column():
                table = gr.Dataframe(
                    headers=DETECTION_COLUMNS, label="Detections", interactive=False
                )
                downloads = gr.File(
                    label="Downloads (image, JSON, COCO, HTML report)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="fo1-downloads",
                )
                if ON_ZERO_GPU or _on_spaces():
                    gr.DeepLinkButton()

        editor.change(
            None,
            [editor, regions],
            [editor, regions],
            js=RELABEL_IN_BROWSER,
            api_visibility="private",
        )
        gr.on(
            [editor.change, turned.click],
            handlers.boxes_changed,
            [editor, status, follow_up, conversation, page_time],
            [regions, insert, box_note, status, history, numbers],
            js=WITH_PAGE_TIME,
            api_visibility="private",
            concurrency_limit=None,
        ).then(None, box_note, editor, js=EMPTY_IF_UNREADABLE, api_visibility="private")
        answer_area = [answer, reasoning, result, status, table, downloads, conversation, history]
        # A new image first ends the answer about the old one, queued or streaming, then clears
        # the answer area: in that order, no piece of the old stream lands after the clearing.
        # Neither step reads the editor (`change` already checks the new file: one message for a
        # bad one) nor writes it back (that would drop a box drawn before the reply lands).
        for new_image in (editor.upload, editor.clear, gallery.select):
            new_image(
                handlers.supersede,
                page_time,
                None,
                js=page_step(FORGET_THE_KEPT_QUESTION),
                api_visibility="private",
                concurrency_limit=None,
            ).then(
                handlers.new_image,
                None,
                [masks, proposed, *answer_area],
                api_visibility="private",
                concurrency_limit=None,
            )
        undo.click(
            handlers.undo_boxes,
            [editor, regions],
            [editor, regions],
            api_visibility="private",
            concurrency_limit=None,
        )
        clear.click(None, editor, editor, js=CLEAR_IN_BROWSER, api_visibility="private")
        set_boxes.click(
            handlers.boxes_typed,
            [editor, numbers],
            [editor, status, regions],
            api_visibility="private",
            concurrency_limit=None,
        ).then(None, js=SHOW_A_PROBLEM, api_visibility="private")
        proposer.change(
            handlers.proposer_changed,
            [proposer, status],
            [threshold, proposer_text, status],
            api_visibility="private",
            concurrency_limit=None,
        )
        for page_script in (FIT_TO_SCREEN, TAGS_INSIDE_AT_THE_TOP, MARK_STROKES, KEYS_AND_TURNS):
            demo.load(None, js=page_script, api_visibility="private")
        demo.load(
            handlers.proposer_changed,
            [proposer, status],
            [threshold, proposer_text, status],
            api_visibility="private",
        )
        proposals_asked = propose.click(
            handlers.propose,
            [editor, proposer, proposer_text, threshold, max_count, mode, masks, page_time],
            [editor, masks, status, proposed, regions],
            js=PROPOSING,
            # Not over the editor: boxes can be drawn while proposals wait or run.
            show_progress_on=[status],
            api_name="ui_propose",
            api_visibility="private",
            concurrency_id=GPU,
            concurrency_limit=settings.concurrency,
        )
        for ended in (proposals_asked.then, proposals_asked.failure):
            ended(None, js=PROPOSED, api_visibility="private")
        task.input(
            handlers.task_picked,
            [task, text, texts, picked_task],
            [text, texts, picked_task],
            api_visibility="private",
            concurrency_limit=None,
        )
        task.change(
            handlers.task_changed,
            task,
            [text, regions, free_group],
            api_visibility="private",
            concurrency_limit=None,
        )
        task.change(None, js=f"() => {{ {FORGET_THE_KEPT_QUESTION}; }}", api_visibility="private")
        insert.select(
            handlers.insert_region,
            [free_text, insert, selection],
            [free_text, insert, selection],
            js=WITH_SELECTION,
            api_visibility="private",
            concurrency_limit=None,
        ).then(None, selection, None, js=PLACE_CARET, api_visibility="private")
        gallery.select(
            handlers.load_example,
            None,
            [editor, task, text, regions, free_text, picked_task, texts],
            api_visibility="private",
        )
        ask_triggers = [run.click, text.submit]  # Enter in the one-line text field asks too
        answering = gr.on(
            ask_triggers,
            handlers.run,
            [
                editor,
                task,
                text,
                regions,
                free_text,
                max_new_tokens,
                masks,
                proposed,
                follow_up,
                conversation,
                page_time,
            ],
            [answer, reasoning, result, status, table, downloads],
            js=ASK,
            api_visibility="private",
            concurrency_id=GPU,
            concurrency_limit=settings.concurrency,
        )
        # Gradio runs `.then` steps after a success or a cancel, `.failure` ones after an error.
        for ended in (answering.then, answering.failure):
            ended(None, js=IDLE, api_visibility="private")
        answer.change(None, js=FOLLOW_THE_ANSWER, api_visibility="private")
        history.change(None, js=SHOW_THE_LATEST_TURN, api_visibility="private")
        answering.then(
            handlers.remember_turn,
            [follow_up, conversation, status],
            [conversation, history, status],
            show_progress="hidden",  # instant: a progress flash over the finished status
            api_visibility="private",
            concurrency_limit=None,
        )
        new_chat.click(
            handlers.new_conversation,
            None,
            [conversation, history],
            api_visibility="private",
            concurrency_limit=None,
        )
        follow_up.change(
            handlers.follow_up_toggled,
            [follow_up, conversation],
            history,
            api_visibility="private",
            concurrency_limit=None,
        )
        # Off ZeroGPU the stop event ends generation cleanly (the partial answer is kept and
        # drawn); on ZeroGPU the stream runs in another process, so the job is cancelled too.
        stop.click(None, js=STOPPING, api_visibility="private")
        stop.click(
            handlers.stop,
            page_time,
            None,
            js=WITH_PAGE_TIME,
            api_visibility="private",
            concurrency_limit=None,
            cancels=[answering] if ON_ZERO_GPU else None,
        )
        demo.unload(handlers.forget_session)
        _api_endpoints(api, [name for _, name in proposer_choices], settings)
    return demo


def _on_spaces() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def _api_endpoints(api: Api, proposer_names: list[str], settings: Settings) -> None:
    """Hidden components whose only purpose is to type the `/propose` and `/answer` endpoints."""
    with gr.Group(visible=False):
        # No conversion here: fo1_core composites transparency and scales 16-bit images itself.
        image = gr.Image(type="filepath", label="image", image_mode=None)
        proposer = gr.Dropdown(
            proposer_names,
            value="offline",  # a client that names none is not made to wait for a download
            label="proposer",
            allow_custom_value=True,
        )
        text = gr.Textbox(label="text")
        threshold = gr.Number(label="threshold", value=None)
        # Not rounded by Gradio, which fails on NaN with a traceback; `Proposing` checks it.
        max_boxes = gr.Number(label="max_boxes", value=30)
        proposals = gr.JSON(label="boxes")
        boxes = gr.JSON(label="boxes")
        task = gr.Textbox(label="task")
        annotated = gr.Image(type="numpy", label="annotated image")
        raw = gr.Textbox(label="answer text")
        detections = gr.JSON(label="detections")
        propose, answer = gr.Button(), gr.Button()
    propose.click(
        api.propose,
        [image, proposer, text, threshold, max_boxes],
        proposals,
        api_name="propose",
        concurrency_id=GPU,
        concurrency_limit=settings.concurrency,
    )
    answer.click(
        api.answer,
        [image, boxes, task, text],
        [annotated, raw, detections],
        api_name="answer",
        concurrency_id=GPU,
        concurrency_limit=settings.concurrency,
    )
