"""The Blocks layout and its event wiring. Behaviour lives in `ui.handlers` (the page's events)
and `ui.api` (the endpoints); what runs in the page in `ui.page_scripts` and `ui.style`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import gradio as gr

import detect_tools
from detect_tools.registry import with_examples
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
from ui.answer_view import DETECTION_COLUMNS
from ui.answering import Answerer
from ui.api import (
    ANSWER_DESCRIPTION,
    EXAMPLE_IMAGE,
    PROPOSE_DESCRIPTION,
    PROPOSE_LIKE_DESCRIPTION,
    Api,
    with_api_example,
)
from ui.boxes import (
    BOXES_FILE_TYPES,
    CLEAR_IN_BROWSER,
    NUMBERS_KEPT_WHILE_TYPED,
    REGIONS_LABEL,
    RELABEL_IN_BROWSER,
)
from ui.editor import (
    EMPTY_IF_UNREADABLE,
    ENLARGED_COPIES,
    FINGER_SIZED_HANDLES,
    FIT_TO_SCREEN,
    MARK_STROKES,
    NEW_IMAGE_SHOWN,
    NO_IMAGE_NOTE,
    SELECTION_AS_SHOWN,
    TAGS_AND_HANDLES_DRAWN,
    TAKE_THE_ENLARGED_COPY,
    TOOLS_IN_VIEW,
    box_editor,
    shown_enlarged,
)
from ui.examples import load_examples
from ui.gpu import ON_ZERO_GPU, TOKENS_STEP
from ui.handlers import Handlers
from ui.page_scripts import (
    ANNOUNCED,
    ANSWER_AREA_CLEARED,
    ANSWER_AREA_CLEARING,
    ASK,
    FILES_DROPPED,
    FOLLOWING_THE_ANSWER,
    FORGET_THE_KEPT_QUESTION,
    IDLE,
    KEYS_AND_TURNS,
    PLACE_CARET,
    PROPOSED,
    PROPOSING,
    QUESTION_EDITED,
    REASONING_SHOWN,
    SHOW_THE_OUTCOME,
    STATUS_NOTES,
    STOP_AVAILABLE,
    STOPPING,
    STREAMED_PAST_AS_NONE,
    WATCH_THE_QUESTION,
    WITH_PAGE_TIME,
    WITH_SELECTION,
    page_step,
)
from ui.proposing import DEFAULT_PROPOSALS, Proposing
from ui.spotlight import SPOTLIGHT
from ui.status import TOKEN_LIMIT
from ui.waiting_line import MODEL

logger = logging.getLogger(__name__)

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
    token_limit: int = TOKEN_LIMIT
    concurrency: int = 1
    device: str | None = None  # for proposers; None picks CUDA when available
    default_proposer: str | None = None  # None: `Proposing.default`
    proposer_checkpoints: Mapping[str, str] = field(default_factory=dict)  # name → folder or id
    file_ttl: int = 3600  # seconds uploads and results are kept (all are deleted at shutdown)
    encode_ahead: bool = True  # encode the image and boxes while the question is being typed


def build_app(pipeline: FO1Pipeline, settings: Settings | None = None) -> gr.Blocks:
    settings = settings or Settings()
    answerer = Answerer(pipeline)
    proposing = Proposing(settings.device, settings.proposer_checkpoints, ON_ZERO_GPU)
    examples = load_examples()
    # On ZeroGPU there is no GPU outside a question's own slot.
    ahead = EncodeAhead(pipeline) if settings.encode_ahead and not ON_ZERO_GPU else None
    handlers = Handlers(answerer, proposing, examples, ahead, settings.token_limit)
    api = Api(answerer, proposing, settings.max_new_tokens)
    task_choices = [(t.label, name) for name, t in TASKS.items()]
    task_choices.append((FREE_PROMPT_LABEL, FREE_PROMPT))
    out_of_reach = set(detect_tools.available()) - set(proposing.within_reach)
    if missing := out_of_reach - {settings.default_proposer}:
        logger.info(
            "Not offered (no weights in the Hugging Face cache, the hub offline): %s; give a "
            "folder with --proposer-checkpoint NAME=FOLDER",
            ", ".join(sorted(missing)),
        )
    if proposing.loads_at_start:
        proposing.load_all()  # those that fail to load are logged as not offered
    default_proposer = proposing.default(settings.default_proposer)
    proposer_choices = proposing.choices(settings.default_proposer)

    ttl = settings.file_ttl
    with gr.Blocks(title="VLM-FO1 demo", delete_cache=(ttl, ttl)) as demo:
        gr.Markdown(INTRO)
        # Above the editor, not under it: first thing a visitor can try, and on a phone, where
        # the columns stack, it no longer stands between the boxes and the Run button.
        gallery = gr.Gallery(
            [(str(e.image), e.title) for e in examples],
            label="Examples (click to load)",
            height="auto",  # one row, as `app_css` lays it out: no scroll box of its own
            allow_preview=False,
            buttons=[],  # "Download All" would zip the example images, no use to a visitor
            elem_id="fo1-gallery",
        )
        masks = gr.State({})
        proposed = gr.State(None)
        conversation = gr.State({})
        texts = gr.State({})  # the one-line text of each kind of task (`Handlers.task_changed`)
        picked_task = gr.State(DEFAULT_TASK)
        page_time = gr.Number(visible=False)  # filled in the page by `WITH_PAGE_TIME`
        result_width = gr.Number(visible=False)  # Run's input before `page_time`, by `ASK`
        selection = gr.JSON(visible=False)  # the prompt's caret, filled by `WITH_SELECTION`
        # On a phone the two columns stack, and `app_css` orders their pieces anew there.
        with gr.Row(elem_id="fo1-workspace"):
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
                    box_note = gr.Markdown(NO_IMAGE_NOTE, elem_id="fo1-box-note", min_width=90)
                    undo = gr.Button(
                        "Undo",
                        size="sm",
                        scale=0,
                        min_width=70,
                        elem_id="fo1-undo",
                        elem_classes="fo1-small",
                    )
                    clear = gr.Button(
                        "Clear boxes", size="sm", scale=0, min_width=110, elem_classes="fo1-small"
                    )
                with gr.Accordion("Propose boxes", open=False, elem_classes="fo1-box-tools"):
                    proposer = gr.Dropdown(
                        proposer_choices,
                        value=default_proposer,
                        label="Proposer",
                        filterable=False,  # a list to pick from: no phone keyboard popping up
                    )
                    proposer_text = gr.Textbox(label="What to find", visible=False)
                    with gr.Row():
                        threshold = gr.Slider(0, 1, value=0.0, step=0.01, label="Score threshold")
                        max_count = gr.Slider(
                            1,
                            MAX_REGIONS,
                            value=DEFAULT_PROPOSALS,
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
                with gr.Accordion(
                    "Boxes as numbers",
                    open=False,
                    elem_id="fo1-boxes-as-numbers",
                    elem_classes="fo1-box-tools",
                ):
                    numbers = gr.Textbox(
                        label="x1, y1, x2, y2 in pixels, one box per line (box #0 first)",
                        info="Or load a labelling tool's file, or drop it on the page: COCO,"
                        " LabelMe or Label Studio JSON, YOLO labels (.txt), Pascal VOC or CVAT"
                        " (.xml), this app's JSON, or the tool's export as it downloads (.zip).",
                        lines=4,
                        max_lines=12,
                        elem_id="fo1-box-numbers",
                    )
                    with gr.Row():
                        set_boxes = gr.Button("Set these boxes", elem_id="fo1-set-boxes")
                        # A labelling tool's file (COCO, YOLO, LabelMe, VOC …): too long to paste.
                        load_boxes = gr.UploadButton(
                            "Load a boxes file",
                            file_types=list(BOXES_FILE_TYPES),
                            elem_id="fo1-load-boxes",
                        )
            with gr.Column(scale=2, elem_id="fo1-asking"):
                # The task and the regions it asks about: on a phone, right under the boxes.
                with gr.Column(elem_id="fo1-question"):
                    task = gr.Dropdown(
                        task_choices, value=DEFAULT_TASK, label="Task", filterable=False
                    )
                    text = gr.Textbox(
                        label="Categories",
                        placeholder="e.g. person, red cup, dog",
                        elem_id="fo1-text",
                    )
                    regions = gr.CheckboxGroup(
                        [],
                        label=REGIONS_LABEL,
                        visible=False,
                        elem_id="fo1-regions",
                        show_select_all=True,
                    )
                    with gr.Group(visible=False) as free_group:
                        free_text = gr.Textbox(
                            label="Prompt (Ctrl+Enter asks)", lines=3, elem_id="fo1-free"
                        )
                        insert = gr.Dropdown(
                            [],
                            label="Insert a region reference",
                            value=None,
                            filterable=False,
                            elem_id="fo1-insert",
                        )
                max_new_tokens = gr.Slider(
                    min(TOKENS_STEP, settings.max_new_tokens),  # Gradio refuses a start below it
                    settings.token_limit,
                    value=settings.max_new_tokens,
                    step=TOKENS_STEP,
                    label="Max new tokens",
                    elem_id="fo1-max-tokens",
                )
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="fo1-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="fo1-stop")
                with gr.Row(elem_id="fo1-conversation-tools"):
                    follow_up = gr.Checkbox(
                        label="Follow-up mode: each question sees the earlier ones",
                        value=False,
                        elem_id="fo1-follow-up",
                    )
                    new_chat = gr.Button(
                        "New conversation", size="sm", scale=0, elem_classes="fo1-small"
                    )
                history = gr.HTML(elem_id="fo1-history")
                status = gr.HTML(elem_id="fo1-status")
                answer = gr.HTML(label="Answer", elem_id="fo1-answer")
                with gr.Accordion(
                    "Reasoning", open=False, elem_id="fo1-reasoning-box"
                ) as reasoning_box:
                    reasoning = gr.HTML(elem_id="fo1-reasoning")
        with gr.Row():
            result = gr.Image(
                label="Result",
                show_label=False,  # as the editor: the tag would hide a top-left box's label
                # Read back as the file shown (`Handlers.image_left`), not decoded.
                type="filepath",
                image_mode=None,
                format="png",  # its download button saves this format (WebP by default)
                interactive=False,
                buttons=["download", "fullscreen"],  # sharing only works on Spaces
                elem_id="fo1-result",
            )
            with gr.Column():
                table = gr.Dataframe(
                    headers=DETECTION_COLUMNS,
                    label="Detections",
                    interactive=False,
                    wrap=True,  # a long label takes lines, not the numbers' room
                    # Sized for a narrow table (`NARROW_DETECTIONS_CSS`): a heading, or a 4-digit
                    # coordinate, on one line.
                    column_widths=["16%", "25%", "11.5%", "11.5%", "11.5%", "11.5%", "13%"],
                    elem_id="fo1-detections",
                )
                # Of a hundred proposals, the few the answer found: to ask about next.
                keep = gr.Button(
                    "Keep only these boxes",
                    size="sm",
                    elem_id="fo1-keep-found",
                    elem_classes="fo1-small",
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
            [editor, regions, free_text],
            [editor, regions, free_text],
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
        # What the page shows with the image it leaves is read as the new one comes, before either
        # step below changes it: Undo brings it back with that image (`Handlers.image_left`). An
        # example's image comes from the server later: the editor still holds the image left.
        no_image = gr.State(None)
        for new_image, coming in (
            (editor.upload, editor),
            (editor.clear, editor),
            (gallery.select, no_image),
        ):
            new_image(
                handlers.image_left,
                [coming, masks, proposed, *answer_area],
                None,
                js=STREAMED_PAST_AS_NONE,
                api_visibility="private",
                concurrency_limit=None,
                show_progress="hidden",
            )
            new_image(
                handlers.supersede,
                page_time,
                None,
                js=page_step(f"{FORGET_THE_KEPT_QUESTION}; {ANSWER_AREA_CLEARING}"),
                api_visibility="private",
                concurrency_limit=None,
            ).then(
                handlers.new_image,
                None,
                [masks, proposed, *answer_area],
                api_visibility="private",
                concurrency_limit=None,
            ).then(None, js=ANSWER_AREA_CLEARED, api_visibility="private")
        # A small image, shown at its own size until then, comes back enlarged. The page puts
        # it in the editor itself (`TAKE_THE_ENLARGED_COPY`), and shows no progress bar over the
        # editor meanwhile: that bar took the pointer from a box being drawn.
        enlarged_copy = box_editor(visible=False, image_type="filepath")
        enlarged_from = gr.JSON(visible=False)
        editor.upload(
            shown_enlarged,
            editor,
            [enlarged_copy, enlarged_from],
            api_visibility="private",
            concurrency_limit=None,
            show_progress="hidden",
            trigger_mode="multiple",
        ).then(
            None,
            [enlarged_copy, enlarged_from, editor],
            editor,
            js=TAKE_THE_ENLARGED_COPY,
            api_visibility="private",
        )
        editor.upload(None, js=NEW_IMAGE_SHOWN, api_visibility="private")
        undo.click(
            handlers.undo_boxes,
            [editor, regions, free_text, status],
            [
                editor,
                regions,
                task,
                text,
                free_text,
                picked_task,
                texts,
                masks,
                proposed,
                *answer_area,
            ],
            api_visibility="private",
            concurrency_limit=None,
        )
        # Read with the editor's boxes: the picks Undo gives back with them (`UndoSteps.picked`).
        regions.change(
            handlers.regions_picked,
            [editor, regions],
            None,
            api_visibility="private",
            concurrency_limit=None,
            show_progress="hidden",
        )
        clear.click(
            None, [editor, status], [editor, status], js=CLEAR_IN_BROWSER, api_visibility="private"
        )
        for event, handler, given in (
            (set_boxes.click, handlers.boxes_typed, numbers),
            (load_boxes.upload, handlers.boxes_loaded, load_boxes),
            (keep.click, handlers.keep_found, table),
        ):
            event(
                handler,
                [editor, given, regions, free_text],
                [editor, status, regions, free_text],
                api_visibility="private",
                concurrency_limit=None,
            ).then(None, js=SHOW_THE_OUTCOME, api_visibility="private")
        proposer.change(
            handlers.proposer_changed,
            [proposer, status],
            [threshold, proposer_text, status],
            api_visibility="private",
            concurrency_limit=None,
        )
        page_scripts = (
            FIT_TO_SCREEN,
            TOOLS_IN_VIEW,
            TAGS_AND_HANDLES_DRAWN,
            SELECTION_AS_SHOWN,
            MARK_STROKES,
            ENLARGED_COPIES,
            KEYS_AND_TURNS,
            NUMBERS_KEPT_WHILE_TYPED,
            ANNOUNCED,
            STATUS_NOTES,
            STOP_AVAILABLE,
            FOLLOWING_THE_ANSWER,
            WATCH_THE_QUESTION,
            SPOTLIGHT,
            FILES_DROPPED,
        )
        for page_script in page_scripts:
            demo.load(None, js=page_script, api_visibility="private")
        demo.load(None, None, editor, js=FINGER_SIZED_HANDLES, api_visibility="private")
        demo.load(
            handlers.proposer_changed,
            [proposer, status],
            [threshold, proposer_text, status],
            api_visibility="private",
        )
        proposals_asked = propose.click(
            handlers.propose,
            [
                editor,
                proposer,
                proposer_text,
                task,
                text,
                regions,
                threshold,
                max_count,
                mode,
                masks,
                free_text,
                page_time,
            ],
            [editor, masks, status, proposed, regions, free_text],
            js=PROPOSING,
            # Not over the editor: boxes can be drawn while proposals wait or run. Beside it too,
            # on the box count: on a phone the status is a screen below Propose.
            show_progress_on=[status, box_note],
            api_name="ui_propose",
            api_visibility="private",
            concurrency_id=MODEL,
            concurrency_limit=settings.concurrency,
        )
        for ended in (proposals_asked.then, proposals_asked.failure):
            ended(None, js=PROPOSED, api_visibility="private")
        task.change(
            handlers.task_changed,
            [task, text, texts, picked_task],
            [text, regions, free_group, texts, picked_task],
            api_visibility="private",
            concurrency_limit=None,
        )
        task.change(
            None,
            js=f"() => {{ {FORGET_THE_KEPT_QUESTION}; {QUESTION_EDITED}; }}",
            api_visibility="private",
        )
        # On its change, not its select: Gradio's dropdown sends no select for an option chosen
        # with Enter, so a reference could not be inserted from the keyboard.
        insert.change(
            handlers.insert_region,
            [free_text, insert, selection],
            [free_text, insert, selection],
            js=WITH_SELECTION,
            api_visibility="private",
            concurrency_limit=None,
        ).then(None, selection, None, js=PLACE_CARET, api_visibility="private")
        gallery.select(
            handlers.load_example,
            [task, text, free_text, picked_task, texts],
            [editor, task, text, regions, free_text, picked_task, texts],
            api_visibility="private",
            # At once: what it keeps for Undo is of the image it replaces (`UndoSteps.leave`).
            concurrency_limit=None,
        ).then(None, js=NEW_IMAGE_SHOWN, api_visibility="private")
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
                result_width,
                page_time,
            ],
            [answer, reasoning, result, status, table, downloads, reasoning_box],
            js=ASK,
            # Not over the answer area: while the question waits for the model the status says
            # so (`STATUS_NOTES`), and the answer before stays readable till replaced.
            show_progress_on=status,
            api_visibility="private",
            concurrency_id=MODEL,
            concurrency_limit=settings.concurrency,
        )
        reasoning.change(None, reasoning, js=REASONING_SHOWN, api_visibility="private")
        answering.then(
            handlers.downloads,
            None,
            downloads,
            api_visibility="private",
            # Not the model's; a huge image's full-size drawing is one at a time on its own
            # (`ui.report.FULL_SIZE_DRAWINGS`), so that the others' files need not wait for it.
            concurrency_limit=None,
        )
        remembered = answering.then(
            handlers.remember_turn,
            [follow_up, conversation, status],
            [conversation, history, status],
            show_progress="hidden",  # instant: a progress flash over the finished status
            api_visibility="private",
            concurrency_limit=None,
        )
        # Gradio runs `.then` steps after a success or a cancel, `.failure` ones after an error.
        # After the turn is filed: `IDLE` asks a question kept meanwhile, which, asked before,
        # could miss that turn in its conversation.
        for ended in (remembered.then, remembered.failure, answering.failure):
            ended(None, js=IDLE, api_visibility="private")
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
            # Past the queue, as Gradio's own cancels go: with the waiting line full, Gradio
            # refused the Stop as "busy" and the answer ran on to its token limit.
            queue=False,
            cancels=[answering] if ON_ZERO_GPU else None,
        )
        demo.unload(handlers.forget_session)
        _api_endpoints(api, [name for _, name in proposer_choices], settings)
    return demo


def _on_spaces() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def _api_endpoints(api: Api, proposer_names: list[str], settings: Settings) -> None:
    """Hidden components whose only purpose is to type the `/propose`, `/propose_like` and
    `/answer` endpoints."""
    # Those offered, if any: the list only types the endpoint, which names a missing one.
    like_names = [name for name in with_examples() if name in proposer_names] or with_examples()
    with gr.Group(visible=False):
        # No conversion here: fo1_core composites transparency and scales 16-bit images itself.
        image = with_api_example(
            gr.Image(type="filepath", label="image", image_mode=None), EXAMPLE_IMAGE
        )
        proposer = with_api_example(
            gr.Dropdown(
                proposer_names,
                value="offline",  # a client that names none is not made to wait for a download
                label="proposer",
                allow_custom_value=True,
            ),
            "offline",
        )
        text = with_api_example(gr.Textbox(label="text"), "cup, spoon")
        threshold = with_api_example(gr.Number(label="threshold", value=None), None)
        # Not rounded by Gradio, which fails on NaN with a traceback; `Proposing` checks it.
        max_boxes = with_api_example(
            gr.Number(label="max_boxes", value=DEFAULT_PROPOSALS), DEFAULT_PROPOSALS
        )
        like_proposer = with_api_example(
            gr.Dropdown(like_names, value=like_names[0], label="proposer", allow_custom_value=True),
            like_names[0],
        )
        like = with_api_example(gr.JSON(label="like"), [[12, 30, 240, 200]])
        proposals = gr.JSON(label="boxes")
        boxes = with_api_example(gr.JSON(label="boxes"), [[12, 30, 240, 200], [260, 40, 410, 300]])
        task = with_api_example(gr.Textbox(label="task"), "OD_template")
        annotated = gr.Image(type="numpy", label="annotated image")
        raw = gr.Textbox(label="answer text")
        detections = gr.JSON(label="detections")
    endpoints = (
        (
            api.propose,
            [image, proposer, text, threshold, max_boxes],
            proposals,
            PROPOSE_DESCRIPTION,
        ),
        (
            api.propose_like,
            [image, like_proposer, like, threshold, max_boxes],
            proposals,
            PROPOSE_LIKE_DESCRIPTION,
        ),
        (api.answer, [image, boxes, task, text], [annotated, raw, detections], ANSWER_DESCRIPTION),
    )
    for handler, inputs, outputs, description in endpoints:
        gr.Button(visible=False).click(
            handler,
            inputs,
            outputs,
            api_name=handler.__name__,
            api_description=description,
            concurrency_id=MODEL,
            concurrency_limit=settings.concurrency,
        )
