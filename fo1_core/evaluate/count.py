"""Counting accuracy on CountBench / PixMo-Count style data.

Dataset file: a JSON list or JSON lines, one object per item::

    {"image": "images/0.jpg", "noun": "headsets", "answer": 10, "boxes": [[x1, y1, x2, y2], …]}

- `image`: path relative to the dataset file's folder (or to `--images DIR`);
- what to count: `noun` (also `object`, `category`, or PixMo-Count's `label`) fills FO1's counting
  template; without one, `question` is sent as it is (the official processed files hold the
  filled template there);
- the true number: `answer` (also `count`, `number`);
- optional `boxes` (also `bboxes`, `bbox_list`): precomputed candidate boxes, so FO1 can be scored
  without a proposer; items without them need `--proposer`;
- optional `id`: the item's key for resuming (when missing or null: its position in the file).

The prediction is the official counting rule (`fo1_core.answers.count_rule`): region tags removed,
the first integer left, else 0. Accuracy is exact matches over all items; an item that failed
(say, an unreadable image) counts as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detect_tools.images import refuse_url
from fo1_core.answers import count_rule
from fo1_core.errors import FO1Error
from fo1_core.evaluate.datafiles import as_whole_number, given_boxes, pick, read_items
from fo1_core.evaluate.runner import BoxSource, ask, open_item_image, timings
from fo1_core.session import FO1Pipeline
from fo1_core.templates import FREE_PROMPT

COUNTING_TASK = "OD_Counting_template"
IMAGE_FIELDS = ("image", "image_path", "file_name")
NOUN_FIELDS = ("noun", "object", "category", "label")
QUESTION_FIELDS = ("question",)
TRUTH_FIELDS = ("answer", "count", "number")


@dataclass(frozen=True)
class CountItem:
    key: str
    image: Path
    truth: int
    noun: str | None = None
    question: str | None = None
    boxes: np.ndarray | None = None  # given with the item (`given_boxes`)
    scores: np.ndarray | None = None

    @property
    def what(self) -> str:
        """What to count, as text for a text-prompted proposer."""
        return self.noun or self.question or ""


@dataclass
class CountScore:
    accuracy: float
    correct: int
    total: int
    failed: int = 0


def load_items(path: Path, images_dir: Path | None, limit: int | None) -> list[CountItem]:
    """The dataset's items (the first `limit`), images resolved against `images_dir`."""
    root = images_dir if images_dir is not None else path.parent
    items = []
    for position, item in enumerate(read_items(path)[:limit]):
        noun = pick(item, NOUN_FIELDS)
        question = pick(item, QUESTION_FIELDS)
        if noun is None and question is None:
            pick(item, (*NOUN_FIELDS, *QUESTION_FIELDS), "noun or question")  # raises, naming them
        own_id = item.get("id")  # null is no id, as a missing one: numbered by position
        key = str(position if own_id is None else own_id)
        if question is None and not str(noun).strip():
            # Asked, it would fail as an empty prompt: item after item, on every rerun.
            raise FO1Error(f"{path}, item {key}: its noun is empty; name what to count.")
        boxes, scores = given_boxes(item, f"{path}, item {key}")
        image = str(pick(item, IMAGE_FIELDS, "image"))
        # Before the model loads: joined to a folder, a URL would only fail item by item.
        refuse_url(image, FO1Error)
        items.append(
            CountItem(
                key=key,
                image=root / image,
                truth=_whole_number(pick(item, TRUTH_FIELDS, "true number"), f"{path}, item {key}"),
                noun=None if noun is None else str(noun),
                question=None if question is None else str(question),
                boxes=boxes,
                scores=scores,
            )
        )
    if not items:
        raise FO1Error(f"{path} holds no items: there is nothing to score.")
    seen: set[str] = set()
    repeated: set[str] = set()
    for item in items:
        (repeated if item.key in seen else seen).add(item.key)
    if repeated:
        raise FO1Error(
            f"{path}: the item ids {', '.join(sorted(repeated)[:5])} appear more than once; "
            "each item needs its own id (or none, to be numbered by position) to be scored."
        )
    return items


def _whole_number(value: object, where: str) -> int:
    """A true count as written in the dataset (`3`, `"3"` or `3.0`), else an error naming
    `where` (the file and item)."""
    number = as_whole_number(value)
    if number is None:
        raise FO1Error(f"{where}: its true number is not a whole number: {value!r:.80}")
    if number < 0:
        raise FO1Error(f"{where}: its true number must be 0 or more, not {value!r:.80}")
    return number


class Counter:
    """Asks FO1 one counting question about one item and records its prediction."""

    def __init__(self, pipeline: FO1Pipeline, box_source: BoxSource, max_new_tokens: int) -> None:
        self.pipeline = pipeline
        self.box_source = box_source
        self.max_new_tokens = max_new_tokens

    def __call__(self, item: CountItem) -> dict:
        picture = open_item_image(item.image)
        boxes = self.box_source.boxes(picture, [item.what], item.boxes, item.scores)
        question = (COUNTING_TASK, item.noun) if item.noun else (FREE_PROMPT, item.question or "")
        asked = ask(self.pipeline, picture, boxes.xyxy, [question], self.max_new_tokens)
        (answer,) = asked.answers
        return {
            "truth": item.truth,
            "prediction": count_rule(answer.text),
            "answer": answer.text,
            "boxes": len(asked.boxes),  # those the model read
            "timings": timings(boxes, asked.seconds),
        }


def score(items: list[CountItem], records: dict[str, dict]) -> CountScore:
    """Exact-match accuracy over `items`; missing or failed records count as wrong."""
    correct = failed = 0
    for item in items:
        record = records.get(item.key, {})
        if "prediction" not in record:
            failed += 1
        elif record["prediction"] == item.truth:
            correct += 1
    total = len(items)
    return CountScore(correct / total if total else 0.0, correct, total, failed)
