"""Command line: FO1 benchmark numbers, single-process or data-parallel under a launcher.

    python -m fo1_core.evaluate coco --images DIR --annotations instances.json \
        --proposer NAME [--limit N] --out preds.json
    python -m fo1_core.evaluate count --dataset items.jsonl [--proposer NAME] --out counts.json
    torchrun --nproc_per_node=8 -m fo1_core.evaluate coco …   (same options)

A stopped run continues where it stopped when started again with the same --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from detect_tools import registry
from detect_tools.base import (
    MAX_PROPOSALS,
    ProposalOptions,
    ProposerError,
    option_type,
)
from detect_tools.outputs import (
    exit_with,
    output_file,
    refuse_overwriting,
    same_file,
    write_atomically,
)
from fo1_core.cli import add_checkpoint_option, device_name, local_path, positive
from fo1_core.errors import FO1Error
from fo1_core.evaluate import coco, count
from fo1_core.evaluate.datafiles import BOX_FIELDS, file_digest
from fo1_core.evaluate.distributed import Shard, shard_from_env, start, stop
from fo1_core.evaluate.records import records_folder, refuse_other_settings
from fo1_core.evaluate.runner import BoxSource, run
from fo1_core.evaluate.timing import format_table, summarize
from fo1_core.session import FO1Pipeline, load

logger = logging.getLogger("fo1_core.evaluate")

EVAL_MAX_NEW_TOKENS = 4096
"""The official evaluation scripts allow 4096 new tokens: an answer naming many boxes is long."""


def _folder(text: str) -> Path:
    """An argparse type for a folder to read: refused before anything loads when it is none,
    rather than every image failing one by one after the model loaded."""
    path = local_path(text)
    if not path.is_dir():
        problem = "it is not a folder" if path.exists() else "it does not exist"
        raise argparse.ArgumentTypeError(f"could not read the folder {text!r}: {problem}")
    return path


def _common(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_option(parser)
    parser.add_argument(
        "--device", type=device_name, help="cuda, cpu, … (default: cuda:LOCAL_RANK when available)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive,
        default=EVAL_MAX_NEW_TOKENS,
        help="where each answer is cut (default: %(default)s)",
    )
    parser.add_argument(
        "--proposer",
        choices=sorted(registry.on_their_own()),
        help="box proposer (see detect_tools)",
    )
    parser.add_argument("--proposer-checkpoint", help="the proposer's hub id or local folder")
    parser.add_argument(
        "--threshold", type=option_type("threshold", float), help="proposal score threshold"
    )
    parser.add_argument(
        "--max-boxes",
        type=option_type("max_count", int),
        default=MAX_PROPOSALS,
        help="proposals kept (default: %(default)s)",
    )
    parser.add_argument("--limit", type=positive, help="evaluate only the first N images/items")
    parser.add_argument("--out", type=output_file, required=True, help="results file (JSON)")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fo1_core.evaluate", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    detection = commands.add_parser("coco", help="COCO detection mAP (pycocotools)")
    detection.add_argument("--images", type=_folder, required=True, help="folder of the images")
    detection.add_argument("--annotations", type=local_path, required=True, help="instances_*.json")
    detection.add_argument(
        "--proposals",
        type=local_path,
        help="precomputed boxes instead of a proposer: JSON/JSONL items with image_id (or id), "
        "boxes (or bbox_list) and optional scores (or score_list)",
    )
    detection.add_argument(
        "--categories-per-prompt",
        type=positive,
        help="category names per detection prompt (default: all of them in one prompt)",
    )
    _common(detection)
    counting = commands.add_parser("count", help="counting accuracy (CountBench, PixMo-Count)")
    counting.add_argument("--dataset", type=local_path, required=True, help="JSON/JSONL items")
    counting.add_argument("--images", type=_folder, help="image folder (default: the dataset's)")
    _common(counting)
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace, **extra: object) -> dict:
    """What makes two runs' records comparable (not --limit, --device or --out)."""
    return {
        "command": args.command,
        "checkpoint": str(args.checkpoint),
        "proposer": args.proposer,
        "proposer_checkpoint": args.proposer_checkpoint,
        "threshold": args.threshold,
        "max_boxes": args.max_boxes,
        "max_new_tokens": args.max_new_tokens,
        **{key: str(value) if isinstance(value, Path) else value for key, value in extra.items()},
    }


def _checked_options(args: argparse.Namespace, settings: dict) -> ProposalOptions:
    """Checked before anything loads: an --out holding another run's records should not wait
    for the model (the argument parser has checked --threshold and --max-boxes)."""
    options = ProposalOptions(threshold=args.threshold, max_count=args.max_boxes)
    refuse_other_settings(records_folder(args.out), settings)
    return options


def _load(
    args: argparse.Namespace, shard: Shard, options: ProposalOptions
) -> tuple[FO1Pipeline, BoxSource]:
    device = shard.device(args.device)
    proposer = None
    if args.proposer:
        # First: a wrong --proposer-checkpoint ends the run before FO1's minutes of loading,
        # not as a failure of every item.
        proposer = registry.get(args.proposer, args.proposer_checkpoint, device)
        proposer.load()
    pipeline = load(args.checkpoint, device=device)
    return pipeline, BoxSource(proposer, options)


def _print_timings(records: dict[str, dict]) -> None:
    print(
        format_table(
            summarize(record["timings"] for record in records.values() if "timings" in record)
        )
    )


def _refuse_overwriting(out: Path, images: Iterable[Path], **inputs: Path | None) -> None:
    """Refuses an --out that is one of the run's input files (`inputs` by option name) or one of
    the `images` it reads, however it is spelled: through a link, say."""
    refuse_overwriting(out, "out", FO1Error, **inputs)
    if not out.exists():
        return  # a new file: none of the images
    for image in images:
        if same_file(out, image):
            raise FO1Error(
                f"--out {out} is the image {image}, which this run reads: the results would "
                "overwrite it. Pass another --out."
            )


def _write_results(out: Path, text: str) -> None:
    """Writes `out` whole or not at all (`write_atomically`), and a failure is one message
    rather than a traceback."""
    try:
        write_atomically(out, text)
    except OSError as error:
        raise FO1Error(f"could not write {out}: {error.strerror or error}") from error


def _coco(args: argparse.Namespace, shard: Shard) -> int:
    if args.proposer is None and args.proposals is None:
        # COCO images carry no boxes of their own: without either, every image would fail.
        raise FO1Error("COCO images need boxes: pass --proposer NAME or --proposals FILE.")
    annotations = coco.read_annotations(args.annotations)
    images = coco.load_images(annotations, args.images, args.proposals, args.limit)
    _refuse_overwriting(
        args.out,
        [image.path for image in images],
        annotations=args.annotations,
        proposals=args.proposals,
    )
    settings = _settings(
        args,
        images=args.images.resolve(),
        annotations=args.annotations.resolve(),
        annotations_sha256=file_digest(args.annotations),
        proposals=args.proposals and args.proposals.resolve(),
        proposals_sha256=file_digest(args.proposals),
        categories_per_prompt=args.categories_per_prompt,
        question=coco.DETECTION_QUESTION,  # records answered in other words are not mixed in
    )
    options = _checked_options(args, settings)

    def detector() -> coco.CocoDetector:
        return coco.CocoDetector(
            *_load(args, shard, options),
            annotations["categories"],
            args.categories_per_prompt,
            args.max_new_tokens,
        )

    records = run(images, lambda image: str(image.id), detector, args.out, settings, shard)
    if records is None:
        return 0
    results = coco.merge(records)
    _write_results(args.out, json.dumps(results))
    failed = sum("error" in record for record in records.values())
    answered = len(records) - failed
    logger.info("Wrote %d detections on %d images to %s", len(results), answered, args.out)
    result = coco.score(args.annotations, results, [image.id for image in images])
    print(f"mAP {_ap(result.map)}  AP50 {_ap(result.map_50)}  AP75 {_ap(result.map_75)}")
    if failed:
        print(
            f"{failed} of {len(records)} images failed (their errors are logged above) and "
            "count as having no detections; run again with the same --out to retry them."
        )
    for name, ap in result.per_category.items():
        print(f"  AP {name}: {ap:.4f}")
    _print_timings(records)
    return 0


def _ap(value: float | None) -> str:
    return "n/a (no ground truth)" if value is None else f"{value:.4f}"


def _count(args: argparse.Namespace, shard: Shard) -> int:
    items = count.load_items(args.dataset, args.images, args.limit)
    _refuse_overwriting(args.out, [item.image for item in items], dataset=args.dataset)
    bare = next((item for item in items if item.boxes is None), None)
    if args.proposer is None and bare is not None:
        # As for COCO: without a proposer such an item fails, after the model loaded.
        raise FO1Error(
            f"{args.dataset}: item {bare.key} has no boxes of its own (one of the fields "
            f"{', '.join(BOX_FIELDS)}): pass --proposer NAME, or give every item its boxes."
        )
    settings = _settings(
        args,
        dataset=args.dataset.resolve(),
        dataset_sha256=file_digest(args.dataset),
        images=args.images,
    )
    options = _checked_options(args, settings)

    def counter() -> count.Counter:
        return count.Counter(*_load(args, shard, options), args.max_new_tokens)

    records = run(items, lambda item: item.key, counter, args.out, settings, shard)
    if records is None:
        return 0
    result = count.score(items, records)
    document = {**vars(result), "items": [{"key": k, **r} for k, r in records.items()]}
    _write_results(args.out, json.dumps(document, indent=1))
    print(
        f"Accuracy {result.accuracy:.4f} ({result.correct}/{result.total}, {result.failed} failed)"
    )
    _print_timings(records)
    return 0


COMMANDS = {"coco": _coco, "count": _count}


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    shard = shard_from_env()
    prefix = f"[rank {shard.rank}] " if shard.world > 1 else ""
    logging.basicConfig(level=logging.INFO, format=prefix + "%(message)s")
    try:
        start(shard)
        return COMMANDS[args.command](args, shard)
    except (FO1Error, ProposerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # each finished item is already on disk
        print(
            f"\nStopped. The items done so far are kept: run again with --out {args.out} to go on.",
            file=sys.stderr,
        )
        return 130
    finally:
        stop(shard)


if __name__ == "__main__":
    exit_with(main)
