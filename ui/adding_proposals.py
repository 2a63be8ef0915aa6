"""What Propose does to the editor once the proposer has run: its proposals added to the boxes
(or in their place), their masks kept for drawing, and a status saying what it did. Running
the proposer is `ui.proposing`'s, which the API shares."""

from __future__ import annotations

import gradio as gr

from fo1_core.templates import MAX_REGIONS
from ui.box_edits import prompt_again
from ui.boxes import Box, boxes_of, editor_value, file_name_of, image_of, regions_moved
from ui.page_left import MASKS_KEPT_BYTES
from ui.proposing import MaskStore, PackedMask, Proposals, Proposed, box_key, new_to, within
from ui.status import BOX_EDIT, status_html


def status_only(status: str) -> tuple:
    """Propose's outputs (`proposals_added`) leaving all as it is but the status."""
    skip = gr.skip()
    return skip, skip, status, skip, skip, skip


def proposals_added(
    found: Proposals,
    value: dict | None,
    drawn: list[Box] | None,
    mode: str,
    masks: MaskStore,
    prompt: str | None,
    asked_for: str | None = None,
) -> tuple:
    """`found` added to the editor's boxes (`value`, or `drawn`: those drawn while the proposer
    ran), or in their place when `mode` is not "add". Outputs: editor, masks, status, proposal
    time, picked regions (none once the proposals replace the boxes picked from), the free
    `prompt` (its references to boxes replaced gone, `ui.box_edits.prompt_again`); `asked_for`:
    what the proposer was given that the user did not type for it ("for “cup” (from the task)",
    "like your 2 boxes")."""
    seconds = f"in {found.seconds:.2f} s"
    if asked_for is not None:
        seconds = f"{asked_for} {seconds}"
    if not found.boxes:
        message = f"No proposals {seconds}: your boxes are as they were."
        return status_only(status_html(message, "warning"))
    if mode != "add":
        keep = []
    elif drawn is not None:
        keep = drawn
    else:
        keep = boxes_of(value)
    fresh = new_to(keep, found.boxes)
    boxes = keep + [found.boxes[i] for i in fresh]
    # The masks of boxes replaced stay, within a bound: Undo can bring those boxes back.
    masks = dict(masks)
    if found.masks is not None:
        for i in fresh:
            key = box_key(found.boxes[i])
            masks.pop(key, None)  # newest last, so the oldest go first past the bound
            masks[key] = PackedMask.pack(found.masks[i])
    masks = within(masks, boxes, MASKS_KEPT_BYTES)
    known = len(found.boxes) - len(fresh)
    already = f", {'all' if not fresh else known} already among your boxes" if known else ""
    proposals = "1 proposal" if len(found.boxes) == 1 else f"{len(found.boxes)} proposals"
    # What Propose did, not how many boxes there are: that the box note keeps up to date,
    # and an Undo would leave a count here wrong.
    if mode != "add":
        done = ", in place of your boxes" if boxes_of(value) else ""
    else:
        done = f"; {len(fresh)} added" if fresh else ""
    message = f"{proposals} {seconds}{already}{done}."
    unread = len(boxes) - max(len(keep), MAX_REGIONS)
    if unread > 0:
        message += (
            f" {unread} of them come after the first {MAX_REGIONS} boxes, all the model "
            "reads: delete boxes or lower “At most” to have them read."
        )
    # Nothing added: answers about an earlier Propose's boxes still cite that one.
    proposed = (
        Proposed(found.seconds, frozenset(box_key(found.boxes[i]) for i in fresh))
        if fresh
        else gr.skip()
    )
    shown = editor_value(image_of(value), boxes, file_name_of(value))
    # Added boxes come after those kept, which keep their numbers: the page moved the prompt's
    # references with any edit made while the proposer ran.
    if mode == "add":
        picked, moved = gr.skip(), gr.skip()
    else:
        picked, moved = [], prompt_again(prompt, regions_moved(boxes_of(value), boxes))
    kind = "warning" if unread > 0 else "info"
    return shown, masks, status_html(message, kind, BOX_EDIT), proposed, picked, moved
