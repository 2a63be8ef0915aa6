"""COCO-style detection: every category asked about every image, scored with pycocotools.

Protocol. Each image gets its candidate boxes (a proposer's, or precomputed ones from
`--proposals`), then the official evaluation's question, asked as written (no task template):
"Please detect person; bicycle; … in the image and return the object indexes.", the dataset's
category names in id order, joined by "; ". By default one question holds *all* categories, the
ones absent from the image included (the paper's protocol): the model has to pick the present
ones itself, so false positives on absent categories are scored, and each image costs one
answer. `--categories-per-prompt N`
splits the list into prompts of N names (the cache keeps the image and regions, so the extra
prompts only prefill their own words).
Every (label, region) the answer names becomes a detection with that box's proposal score (1.0
without scores); labels that are not category names are dropped, as in the official script.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fo1_core.answers import parse_answer, to_detections
from fo1_core.cli import read_json
from fo1_core.errors import FO1Error
from fo1_core.evaluate.datafiles import as_whole_number, given_boxes, pick, read_items
from fo1_core.evaluate.runner import BoxSource, ask, open_item_image, timings
from fo1_core.export import to_coco_results
from fo1_core.session import FO1Pipeline
from fo1_core.templates import FREE_PROMPT

logger = logging.getLogger(__name__)

DETECTION_QUESTION = "Please detect {} in the image and return the object indexes."
"""The question of the official evaluation's processed COCO file (not `OD_template`'s words)."""
CATEGORY_SEPARATOR = "; "


@dataclass(frozen=True)
class CocoImage:
    id: int
    path: Path
    boxes: np.ndarray | None = None  # precomputed boxes, when given (`given_boxes`)
    scores: np.ndarray | None = None
    size: tuple[int, int] | None = None  # (width, height) as the annotations give it


@dataclass
class CocoScore:
    """COCO box metrics over the evaluated images (AP values in [0, 1]; None where undefined,
    i.e. none of the images has a ground-truth box)."""

    map: float | None
    map_50: float | None
    map_75: float | None
    per_category: dict[str, float] = field(default_factory=dict)
    images: int = 0
    detections: int = 0


def load_images(
    annotations: dict, images_dir: Path, proposals: Path | None, limit: int | None
) -> list[CocoImage]:
    """The dataset's images in file order (the first `limit`), with precomputed boxes if given."""
    given: dict[int, dict] = {}
    if proposals is not None:
        for item in read_items(proposals):
            written = pick(item, ("image_id", "id"), "image id")
            image_id = as_whole_number(written)
            if image_id is None:
                raise FO1Error(f"{proposals}: the image id {written!r:.80} is not a whole number.")
            if image_id in given:
                # Two sets of boxes for one image: which one was meant cannot be told.
                raise FO1Error(
                    f"{proposals}: the image id {image_id} appears more than once; "
                    "each image needs one item of boxes."
                )
            given[image_id] = item
    images = []
    for entry in annotations["images"][:limit]:
        extra = given.get(entry["id"])
        if proposals is not None and extra is None:
            raise FO1Error(f"{proposals} has no boxes for image {entry['id']}.")
        boxes, scores = (
            (None, None)
            if extra is None
            else given_boxes(extra, f"{proposals}, image {entry['id']}", required=True)
        )
        images.append(
            CocoImage(
                id=entry["id"],
                path=images_dir / entry["file_name"],
                boxes=boxes,
                scores=scores,
                size=_annotated_size(entry),
            )
        )
    return images


def _annotated_size(entry: dict) -> tuple[int, int] | None:
    width, height = entry.get("width"), entry.get("height")
    return (width, height) if _number(width) and _number(height) else None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no number


def _number(value: object) -> bool:
    return _whole(value) or (isinstance(value, float) and math.isfinite(value))


def _text(value: object) -> bool:
    return isinstance(value, str)


def _name(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _box(value: object) -> bool:
    # A negative side would be scored as a box elsewhere than the one annotated, unsaid.
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(map(_number, value))
        and min(value[2:]) >= 0
    )


WHOLE = (_whole, "a whole number")
NUMBER = (_number, "a number")
TEXT = (_text, "text")
NAME = (_name, "a name (text that is not blank)")
BOX = (_box, "[x, y, width, height] with no negative side")
REQUIRED_FIELDS = {
    "images": {"id": WHOLE, "file_name": TEXT},
    "categories": {"id": WHOLE, "name": NAME},
    # What pycocotools reads of a ground-truth box. It fills no gaps (its leniency is for results
    # files), and a guessed `area` would move the small/medium/large APs, so none are guessed.
    "annotations": {
        "id": WHOLE,
        "image_id": WHOLE,
        "category_id": WHOLE,
        "bbox": BOX,
        "area": NUMBER,
        "iscrowd": WHOLE,
    },
}
"""The fields each entry of a COCO annotations file needs here: a check and what it wants."""
UNIQUE_FIELDS = (
    ("images", "id"),
    ("categories", "id"),
    ("categories", "name"),
    ("annotations", "id"),
)


def read_annotations(path: Path) -> dict:
    """A COCO `instances_*.json`: its images, categories and annotations, checked up front so
    that a malformed file is one message before the model loads, not a traceback after a run."""
    annotations = read_json(path, f"the annotations {path}")
    if not isinstance(annotations, dict) or not all(
        isinstance(annotations.get(key), list) for key in REQUIRED_FIELDS
    ):
        raise FO1Error(
            f"{path} is not a COCO annotations file (lists {', '.join(REQUIRED_FIELDS)})."
        )
    for key, what in (("images", "to score"), ("categories", "to ask the model about")):
        if not annotations[key]:
            raise FO1Error(f"{path} lists no {key}: there is nothing {what}.")
    for key, fields in REQUIRED_FIELDS.items():
        for position, entry in enumerate(annotations[key]):
            _check_entry(entry, fields, f"{path}: {key}[{position}]")
    # The model's labels come back stripped: "red box " could never match one of them.
    for category in annotations["categories"]:
        category["name"] = category["name"].strip()
        if CATEGORY_SEPARATOR.strip() in category["name"]:
            logger.warning(
                "The category %r holds a semicolon, which separates the categories in the "
                "detection question: the model may read it as two names, and answers under "
                "either one are dropped as no category's.",
                category["name"],
            )
    # pycocotools keeps one entry per id and drops the others unsaid; the model is asked for
    # names, so two categories of one name would both get the boxes it finds for that name.
    for key, name in UNIQUE_FIELDS:
        if (repeated := _repeated(entry[name] for entry in annotations[key])) is not None:
            raise FO1Error(
                f"{path}: two {key} have the {name} {repeated!r:.80}; each needs its own."
            )
    # pycocotools drops such a box unsaid: the score would leave out part of the ground truth.
    for key, name in (("images", "image_id"), ("categories", "category_id")):
        known = {entry["id"] for entry in annotations[key]}
        for position, entry in enumerate(annotations["annotations"]):
            if entry[name] not in known:
                raise FO1Error(
                    f"{path}: annotations[{position}] has {name} {entry[name]}, which none of "
                    f"its {key} has as id; add it to the {key} or remove the annotation."
                )
    return annotations


def _check_entry(
    entry: object, fields: dict[str, tuple[Callable[[object], bool], str]], where: str
) -> None:
    if not isinstance(entry, dict):
        raise FO1Error(f"{where} is not a JSON object.")
    for name, (check, wanted) in fields.items():
        value = entry.get(name)
        if value is None:
            raise FO1Error(f"{where} has no {name}.")
        if not check(value):
            raise FO1Error(f"{where} has {name} {value!r:.80}, not {wanted}.")


def _repeated(values: Iterable[Hashable]) -> Hashable | None:
    """The first value seen twice, if any."""
    seen = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def category_prompts(categories: list[dict], per_prompt: int | None) -> list[str]:
    """The detection questions: `DETECTION_QUESTION` of `per_prompt` (all) categories each."""
    names = [category["name"] for category in sorted(categories, key=lambda c: c["id"])]
    size = per_prompt or len(names)
    return [
        DETECTION_QUESTION.format(CATEGORY_SEPARATOR.join(names[start : start + size]))
        for start in range(0, len(names), size)
    ]


class CocoDetector:
    """Turns one image into its COCO results record."""

    def __init__(
        self,
        pipeline: FO1Pipeline,
        box_source: BoxSource,
        categories: list[dict],
        per_prompt: int | None,
        max_new_tokens: int,
    ) -> None:
        self.pipeline = pipeline
        self.box_source = box_source
        self.categories = categories
        self.questions = category_prompts(categories, per_prompt)
        self.max_new_tokens = max_new_tokens

    def __call__(self, image: CocoImage) -> dict:
        picture = open_item_image(image.path)
        if image.size is not None and picture.size != image.size:
            # Another file than the one annotated, or one annotated turned as its EXIF
            # orientation says (read as stored here): the answers' boxes and the ground
            # truth's are in different pixels.
            logger.warning(
                "Image %s (%s) reads as %d×%d but the annotations say %d×%d: its boxes and the "
                "ground truth's may not line up.",
                image.id,
                image.path.name,
                *picture.size,
                *image.size,
            )
        # Text-prompted proposers look for every category, as FO1 is asked about every one.
        names = [category["name"] for category in self.categories]
        boxes = self.box_source.boxes(picture, names, image.boxes, image.scores)
        results, texts, fo1_s = [], [], 0.0
        if len(boxes.xyxy):
            questions = [(FREE_PROMPT, question) for question in self.questions]
            asked = ask(self.pipeline, picture, boxes.xyxy, questions, self.max_new_tokens)
            fo1_s = asked.seconds
            for answer in asked.answers:
                # Region indexes refer to the boxes the model read (cut to the image, the first
                # MAX_REGIONS); the scores follow the same order.
                parsed = parse_answer(answer.text, len(asked.boxes))
                found = to_detections(
                    parsed, asked.boxes, scores=boxes.scores, include_references=False
                )
                results += to_coco_results(found, image.id, self.categories)
                texts.append(answer.text)
        return {
            "image_id": image.id,
            "boxes": len(boxes.xyxy),
            "answers": texts,
            "results": _unique(results),
            "timings": timings(boxes, fo1_s),
        }


def _unique(results: list[dict]) -> list[dict]:
    """One result per category and box: answers to several prompts may name the same pair, and
    the copy would be scored as a false positive."""
    kept = {(result["category_id"], tuple(result["bbox"])): result for result in results}
    return list(kept.values())


def merge(records: dict[str, dict]) -> list[dict]:
    """The COCO results file: every image's results, in image order."""
    return [result for record in records.values() for result in record.get("results", [])]


def score(annotations_path: Path, results: list[dict], image_ids: list[int]) -> CocoScore:
    """COCO box AP of `results` on `image_ids` (only those: a `--limit` run is scored fairly)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools chats about loading
        truth = COCO(str(annotations_path))
    if not truth.getAnnIds(imgIds=image_ids):
        logger.warning("None of these images has a ground-truth box: AP is undefined")
        return CocoScore(None, None, None, images=len(image_ids), detections=len(results))
    if not results:
        logger.warning("No detections at all: every AP is 0")
        return CocoScore(0.0, 0.0, 0.0, images=len(image_ids))
    with contextlib.redirect_stdout(io.StringIO()):
        predicted = truth.loadRes(results)
    evaluation = COCOeval(truth, predicted, "bbox")
    evaluation.params.imgIds = image_ids
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.evaluate()
        evaluation.accumulate()
    evaluation.summarize()  # prints the standard COCO table
    # precision: (IoU thresholds, recall points, categories, area ranges, max detections);
    # area "all" and 100 detections are index 0 and -1; -1 marks "no ground truth".
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    per_category = {}
    for k, category_id in enumerate(evaluation.params.catIds):
        values = precision[:, :, k]
        if (values > -1).any():
            name = truth.cats[category_id]["name"].strip()  # as the run asked about it
            per_category[name] = float(np.mean(values[values > -1]))
    # pycocotools writes -1 for an AP with no ground truth to measure it against.
    defined = [float(stat) if stat >= 0 else None for stat in evaluation.stats[:3]]
    return CocoScore(
        *defined,
        per_category=per_category,
        images=len(image_ids),
        detections=len(results),
    )
