"""``python -m detect_tools --proposer NAME --image IMG [--text ...] [--like X1,Y1,X2,Y2]
[--json OUT]``.

Prints (or writes) the proposals as JSON, best first: box in image pixels, score, the
proposer's label where it gives one, and mask area in pixels where it gives masks.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import supervision as sv
from PIL import Image, UnidentifiedImageError

from detect_tools import registry
from detect_tools.base import (
    CLASS_NAME,
    MAX_PROPOSALS,
    ProposalOptions,
    ProposerError,
    check_image,
    option_type,
    shortest_decimal,
)
from detect_tools.images import (
    UNREADABLE_IMAGE,
    open_image_file,
    refuse_special_file,
    refuse_url,
)
from detect_tools.outputs import exit_with, output_file, refuse_overwriting, write_output


def detections_to_json(detections: sv.Detections, proposer: str) -> dict:
    """A plain-JSON view of proposals: one record per box, best first."""
    labels = detections.data.get(CLASS_NAME)
    records = []
    for i in range(len(detections)):
        record = {
            "box": [shortest_decimal(v) for v in detections.xyxy[i]],
            "score": shortest_decimal(detections.confidence[i]),
        }
        if labels is not None:
            record["label"] = str(labels[i])
        if detections.mask is not None:
            record["mask_area"] = int(detections.mask[i].sum())
        records.append(record)
    return {"proposer": proposer, "count": len(records), "proposals": records}


def _iou_or_off(text: str) -> float | None:
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return float(text) or None  # 0 turns NMS off too
    except ValueError:
        message = f"expected a number in (0, 1], or 0 or none for no NMS; got {text!r}."
        raise argparse.ArgumentTypeError(message) from None


def _box(text: str) -> list[float]:
    """An argparse type: `X1,Y1,X2,Y2` in image pixels."""
    try:
        corners = [float(value) for value in text.split(",")]
    except ValueError:
        corners = []
    if len(corners) != 4:
        raise argparse.ArgumentTypeError(f"expected X1,Y1,X2,Y2 in image pixels; got {text!r}.")
    return corners


def main(argv: list[str] | None = None) -> int:
    names = registry.available()
    parser = argparse.ArgumentParser(
        prog="python -m detect_tools", description="Propose candidate boxes for an image."
    )
    parser.add_argument("--proposer", required=True, help=f"one of: {', '.join(names)}")
    parser.add_argument("--image", required=True, help="a local file")
    parser.add_argument("--text", help="what to find, for text-prompted proposers")
    parser.add_argument(
        "--like",
        type=_box,
        action="append",
        metavar="X1,Y1,X2,Y2",
        help="an example box (again for more), for proposers that find more like it",
    )
    parser.add_argument("--json", type=output_file, help="write here instead of standard output")
    parser.add_argument("--checkpoint", help="local model folder or hub id (default: the hub's)")
    parser.add_argument("--device", help="cuda, cpu, … (default: cuda when available)")
    parser.add_argument(
        "--threshold",
        type=option_type("threshold", float),
        help="minimum score (default: per proposer)",
    )
    parser.add_argument(
        "--nms-iou",
        type=option_type("nms_iou", _iou_or_off),
        default=0.7,
        help="in (0, 1]: overlap that merges boxes; 0 or none turns NMS off (default: %(default)s)",
    )
    parser.add_argument(
        "--max-count",
        type=option_type("max_count", int),
        default=MAX_PROPOSALS,
        help="the most boxes kept, best first (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        refuse_url(args.image, ProposerError)  # as typed: `Path` would fold its `//`
        refuse_special_file(args.image, ProposerError, f"the image {args.image}")
        if args.json:
            refuse_overwriting(args.json, "json", ProposerError, image=Path(args.image))
        try:
            with open_image_file(args.image) as file:
                # Its size checked from the header before it is decoded, and turned as shown.
                image = check_image(file)
        except FileNotFoundError as error:
            raise ProposerError(f"The image {args.image} is not there.") from error
        except UnidentifiedImageError as error:
            raise ProposerError(f"{args.image}: {UNREADABLE_IMAGE}") from error
        except (OSError, Image.DecompressionBombError) as error:
            raise ProposerError(f"Cannot read image {args.image}: {error}") from error
        options = ProposalOptions(args.threshold, args.nms_iou, args.max_count)
        proposer = registry.get(args.proposer, args.checkpoint, args.device)
        if args.text and not proposer.needs_text:
            logging.warning("--text is not used: %s finds boxes without one.", args.proposer)
        if args.like and not proposer.needs_examples:
            logging.warning("--like is not used: %s finds boxes without examples.", args.proposer)
        detections = proposer.propose(image, args.text, options, args.like)
    except ProposerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(detections_to_json(detections, args.proposer), indent=2)
    if not args.json:
        print(text)
        return 0
    return write_output(args.json, text + "\n")


if __name__ == "__main__":
    exit_with(main)
