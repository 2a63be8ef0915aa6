"""Command line: ask FO1 one question about one image and print the answer as it comes.

    python -m fo1_core --checkpoint PATH_OR_ID --image IMG --boxes boxes.json \
        --task OD_template --text "red cup" --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from detect_tools.outputs import exit_with, output_file, refuse_overwriting, write_output
from fo1_core.box_archives import boxes_file_text, boxes_in_text
from fo1_core.cli import (
    add_checkpoint_option,
    local_path,
    positive,
    read_named_image,
)
from fo1_core.errors import FO1Error
from fo1_core.inputs import check_boxes
from fo1_core.prompting import unused_text_note, user_text_for_task, without
from fo1_core.templates import (
    CHAT_CONTROL_STRINGS,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_TASK,
    FREE_PROMPT,
    IMAGE_PLACEHOLDER,
    REGION_PLACEHOLDER,
    TASKS,
)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fo1_core", description=__doc__.split("\n")[0])
    add_checkpoint_option(parser)
    parser.add_argument("--image", required=True, type=local_path, help="a local image file")
    parser.add_argument(
        "--boxes",
        type=local_path,
        help="a boxes file: a JSON list of [x1, y1, x2, y2] in image pixels, what python -m "
        "detect_tools --json or the app's /propose wrote, lines of corners, YOLO labels, or a "
        "COCO, LabelMe, Label Studio, Pascal VOC or CVAT file (a ZIP of them too)",
    )
    tasks = ", ".join(f"{name} ({task.label})" for name, task in TASKS.items())
    parser.add_argument(
        "--task",
        default=DEFAULT_TASK,
        choices=[*TASKS, FREE_PROMPT],
        metavar="TASK",
        help=f"{tasks}, or {FREE_PROMPT}: --text as it is (default: %(default)s)",
    )
    parser.add_argument("--text", default="", help="the template's fill, or the free prompt")
    parser.add_argument(
        "--max-new-tokens",
        type=positive,
        default=DEFAULT_MAX_NEW_TOKENS,
        help="where the answer is cut (default: %(default)s)",
    )
    parser.add_argument("--device", help="cuda, cpu, … (default: cuda when available)")
    parser.add_argument(
        "--json", type=output_file, help="write raw text, token ids and timings here"
    )
    return parser.parse_args(argv)


def _read_boxes(path: Path | None, image: Path, size: tuple[int, int]) -> object:
    """The boxes in the file at `path`, for the image file `image` of `size` as shown."""
    if path is None:
        return []
    labels = boxes_file_text(path, f"boxes from {path}", image.name)
    read = boxes_in_text(labels, image.name, size)
    if read.scaled:
        logging.info("The boxes of %s were %s.", path, read.scaled)
    return read.boxes


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.json:
            refuse_overwriting(args.json, "json", FO1Error, image=args.image, boxes=args.boxes)
        # A mistake in the image, boxes or prompt is told before the model loads, not minutes
        # after.
        image, image_notices = read_named_image(args.image)
        for notice in image_notices:
            logging.warning(notice)
        boxes = _read_boxes(args.boxes, args.image, image.size)
        text = args.text
        if unused_text_note(args.task, text):
            logging.warning("--text is not used: %s takes none.", args.task)
            text = ""  # told here, before the model loads, not again by the request
        if args.task in TASKS and not boxes:
            # Still asked, as the official pipeline would: only its answer cannot mean anything.
            given = f"{args.boxes} holds none" if args.boxes else "give them with --boxes"
            logging.warning(
                "%s: %s; without, its answer can only name regions that do not exist.",
                TASKS[args.task].without_boxes,
                given,
            )
        # As the request cleans it: strings of the model's own that any FO1 tokenizer has.
        cleaned = without(text, (IMAGE_PLACEHOLDER, REGION_PLACEHOLDER, *CHAT_CONTROL_STRINGS))
        user_text_for_task(args.task, cleaned.text, len(check_boxes(boxes, image.size)[0]))
        # Only now: torch and transformers take seconds to import, and a mistake above is told
        # without them.
        from detect_tools.base import shortest_decimal
        from fo1_core.answers import parse_answer
        from fo1_core.session import StopReason, load

        pipeline = load(args.checkpoint, device=args.device)
        request = pipeline.prepare(image, boxes, args.task, text)
        for notice in request.notices:
            logging.warning(notice)
        for event in pipeline.stream(request, args.max_new_tokens):
            if isinstance(event, str):
                print(event, end="", flush=True)
            else:
                result = event
    except FO1Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the answer stops with the loop; nothing is written
        print("\nStopped.", file=sys.stderr)
        return 130
    print()
    # The answer is printed as written; what it names that is not there is told beside it.
    answer_warnings = parse_answer(result.text, request.num_regions).warnings
    for warning in answer_warnings:
        logging.warning(warning)
    if result.stop_reason == StopReason.TOKEN_LIMIT:
        logging.warning(
            "The answer was cut at --max-new-tokens %d: raise it to let it finish.",
            args.max_new_tokens,
        )
    elif result.stop_reason == StopReason.MODEL_LENGTH:
        logging.warning(result.notices[-1])  # where it was cut, and why
    if args.json:
        record = {
            "text": result.text,
            "token_ids": result.token_ids,
            "stop_reason": result.stop_reason,
            "timings": result.timings,
            "reused": dataclasses.asdict(result.reused),
            "prompt": request.prompt,
            "notices": [*image_notices, *result.notices, *answer_warnings],
            "region_confidence": {
                str(region): shortest_decimal(confidence)
                for region, confidence in result.region_confidence.items()
                if region < request.num_regions  # no box, no confidence in one
            },
        }
        return write_output(args.json, json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    exit_with(main)
