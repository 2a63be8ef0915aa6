"""What both benchmarks share: boxes for an image, FO1 questions about it, the resumable loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import supervision as sv
from PIL import Image
from tqdm.auto import tqdm

from detect_tools.base import (
    MAX_PROMPT_CLASSES,
    ProposalOptions,
    Proposer,
    ProposerError,
    finalize,
)
from detect_tools.box_rules import covers_a_pixel, cut_to_image
from fo1_core.cli import open_named_image
from fo1_core.errors import FO1Error
from fo1_core.evaluate.datafiles import checked_boxes
from fo1_core.evaluate.distributed import Shard, wait_for_all
from fo1_core.evaluate.records import RecordLog, check_settings, read_records, records_folder
from fo1_core.session import FO1Pipeline, Generation, StopReason

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Boxes:
    """The candidate boxes FO1 sees for one image (original pixels) and their scores."""

    xyxy: np.ndarray  # (N, 4)
    scores: np.ndarray | None  # (N,), None when the boxes came without scores
    seconds: float | None  # time the proposer took; None for boxes given with the data


class BoxSource:
    """Boxes given with the data when an item has them, else the proposer's."""

    def __init__(self, proposer: Proposer | None, options: ProposalOptions) -> None:
        self.proposer = proposer
        self.options = options

    def boxes(
        self,
        image: Image.Image,
        names: Sequence[str] = (),
        given: object = None,
        given_scores: object = None,
    ) -> Boxes:
        """`names` are what to look for, for a text-prompted proposer (e.g. category names);
        `given`, `given_scores`: the item's own (`checked_boxes`)."""
        if given is not None:
            xyxy, scores = checked_boxes(given, given_scores)
            return self._kept(Boxes(xyxy, scores, None), image.size)
        if self.proposer is None:
            raise FO1Error("This item has no boxes of its own: pass --proposer NAME.")
        start = time.perf_counter()
        found = self._propose(image, names)
        return Boxes(found.xyxy, found.confidence, time.perf_counter() - start)

    def _kept(self, given: Boxes, image_size: tuple[int, int]) -> Boxes:
        """Given boxes as a proposer's would be kept: cut to the image, those under a whole pixel
        there left out (`covers_a_pixel`; COCO-style files hold such slivers, and one must not
        fail the whole image), scored under the threshold dropped, then the best `max_count`
        (the first, without scores)."""
        xyxy = cut_to_image(given.xyxy, image_size)
        readable = covers_a_pixel(xyxy)
        if not readable.all():
            logger.warning(
                "%d of %d given boxes cover less than a whole pixel of the %d×%d image and are "
                "left out, as a proposer's would be.",
                len(xyxy) - readable.sum(),
                len(xyxy),
                *image_size,
            )
        scores = None if given.scores is None else given.scores[readable]
        given = Boxes(xyxy[readable], scores, None)
        if given.scores is None:
            if len(given.xyxy) > self.options.max_count:
                logger.warning(
                    "%d boxes given without scores: the first %d are kept (--max-boxes).",
                    len(given.xyxy),
                    self.options.max_count,
                )
            return Boxes(given.xyxy[: self.options.max_count], None, None)
        keep = np.flatnonzero(given.scores >= (self.options.threshold or 0.0))
        best = keep[np.argsort(-given.scores[keep], kind="stable")][: self.options.max_count]
        return Boxes(given.xyxy[best], given.scores[best], None)

    def _propose(self, image: Image.Image, names: Sequence[str]) -> sv.Detections:
        if not self.proposer.needs_text:
            return self.proposer.propose(image, None, self.options)
        # Text-prompted proposers take at most MAX_PROMPT_CLASSES names a pass (COCO has 80):
        # one pass per batch, then the union is deduplicated and capped as one pass would be.
        passes = [
            self.proposer.propose(image, ", ".join(names[i : i + MAX_PROMPT_CLASSES]), self.options)
            for i in range(0, len(names), MAX_PROMPT_CLASSES)
        ]
        if len(passes) == 1:
            return passes[0]
        return finalize(sv.Detections.merge(passes), image.size, 0.0, self.options)


def open_item_image(path: Path) -> Image.Image:
    """An item's image with its pixels as stored, EXIF orientation left unapplied, as the
    official evaluation reads it (`Image.open(...).convert("RGB")`): the datasets' boxes, ground
    truth and proposals alike, are in those pixels (a turn to a new size is warned of where the
    annotations record the size)."""
    return open_named_image(path, as_shown=False)


@dataclass
class Asked:
    """FO1's answers about one image, the boxes it read and the seconds it took."""

    answers: list[Generation]
    boxes: np.ndarray  # (N, 4) original pixels, cut to the image; at most MAX_REGIONS
    seconds: float


def ask(
    pipeline: FO1Pipeline,
    image: Image.Image,
    boxes: np.ndarray,
    questions: Sequence[tuple[str, str]],
    max_new_tokens: int,
) -> Asked:
    """Answers (task, text) questions about one image in a row.

    The image is preprocessed once and the questions go one after another, so the pipeline's
    cache computes the vision features, region embeddings and prompt prefix only for the first.
    The answers' region indexes refer to the returned boxes, which are the ones to report.
    """
    start = time.perf_counter()
    vision = pipeline.preprocessor(image, boxes.tolist())
    for notice in vision.notices:
        logger.warning(notice)
    answers = []
    for task, text in questions:
        answer = pipeline.generate(pipeline.request(vision, task, text), max_new_tokens)
        if answer.stop_reason == StopReason.TOKEN_LIMIT:
            logger.warning("An answer hit --max-new-tokens %d and was cut off", max_new_tokens)
        elif answer.stop_reason == StopReason.MODEL_LENGTH:
            logger.warning(answer.notices[-1])
        answers.append(answer)
    return Asked(answers, vision.boxes, time.perf_counter() - start)


def timings(boxes: Boxes, fo1_s: float) -> dict[str, float]:
    found = {"fo1_s": fo1_s}
    if boxes.seconds is not None:
        found["proposals_s"] = boxes.seconds
    return found


def run(
    items: Sequence[T],
    key: Callable[[T], str],
    start: Callable[[], Callable[[T], dict]],
    out: Path,
    settings: dict,
    shard: Shard,
) -> dict[str, dict] | None:
    """Runs the work `start()` makes on this rank's unfinished items, recording each; rank 0
    returns all records. `start` (loading the models) is called only when there is work: a
    finished run asked again only prints its scores.

    A failure on one item (unreadable image, bad boxes, or anything unforeseen) is recorded as
    that item's `error` and the run goes on, as one broken file should not cost a night's run;
    a later run tries that item again. Other ranks return None once everyone is done.
    """
    folder = records_folder(out)
    check_settings(folder, settings)
    done = {name for name, record in read_records(folder).items() if "error" not in record}
    mine = shard.take(items)
    todo = [item for item in mine if key(item) not in done]
    logger.info(
        "Rank %d: %d of its %d items to do (%d already in %s)",
        shard.rank,
        len(todo),
        len(mine),
        len(mine) - len(todo),
        folder,
    )
    if todo:
        _record(todo, start(), key, RecordLog(folder, shard.rank), shard.rank)
    wait_for_all(shard)
    if not shard.is_main:
        return None
    records = read_records(folder)
    return {key(item): records[key(item)] for item in items if key(item) in records}


def _record(
    todo: Sequence[T], work: Callable[[T], dict], key: Callable[[T], str], log: RecordLog, rank: int
) -> None:
    """`work` on each item, its record (or its error) appended to `log`."""
    with log:
        for item in tqdm(todo, desc=f"rank {rank}", position=rank, disable=None):
            try:
                record = work(item)
            except (FO1Error, ProposerError) as error:
                logger.warning("Item %s failed: %s", key(item), error)
                record = {"error": str(error)}
            except Exception as error:
                # Input no check foresaw, or a bug: one item must not end the run, but the
                # traceback is logged in full so that the cause is not hidden.
                logger.exception("Item %s failed unexpectedly", key(item))
                record = {"error": f"{type(error).__name__}: {error}"}
            log.append({"key": key(item), **record})
