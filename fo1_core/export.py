"""Answers as data: a JSON document that reloads to the same detections, and COCO files.

Masks are written as compressed COCO RLE (``{"size": [h, w], "counts": str}``), the form
``pycocotools`` reads, encoded here with numpy so pycocotools is not needed at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np
import supervision as sv

from detect_tools.base import shortest_decimal
from fo1_core.answers import CLASS_NAME_KEY, REGION_INDEX_KEY, Answer, class_ids
from fo1_core.inputs import clip_box


def _written(value: float) -> float:
    """A coordinate or side as the shortest decimal its float32 reads back as: detections
    hold float32, whose 10.3 would otherwise be written 10.300000190734863, and any fixed number
    of decimals keeps that noise in coordinates past 4096 (16900.3 as 16900.3008)."""
    return shortest_decimal(value) + 0.0  # + 0.0: no -0.0 in the files


def _area(width: float, height: float) -> float:
    """Sides as written multiplied, less float64's last-bit noise (12.3 × 27.7 is
    340.71000000000004): areas of large boxes need more digits than float32 keeps."""
    return float(f"{width * height:.12g}")


def to_json(answer: Answer, detections: sv.Detections) -> dict:
    """A JSON-ready dict: the raw answer text and one entry per detection.

    Each entry has ``region_index``, ``box_xyxy`` (original image pixels), ``label``, ``score``
    (null without confidences) and, when the detections carry masks, ``mask`` as COCO RLE.
    """
    labels = detections.data.get(CLASS_NAME_KEY, [""] * len(detections))
    entries = []
    for i in range(len(detections)):
        entry = {
            "region_index": int(detections.data[REGION_INDEX_KEY][i]),
            "box_xyxy": [_written(v) for v in detections.xyxy[i]],
            "label": str(labels[i]),
            "score": None
            if detections.confidence is None
            else shortest_decimal(detections.confidence[i]),
        }
        if detections.mask is not None:
            entry["mask"] = encode_rle(detections.mask[i])
        entries.append(entry)
    return {"text": answer.text, "detections": entries}


def from_json(document: dict | str) -> sv.Detections:
    """Detections back from :func:`to_json` output (the dict or its serialised string)."""
    if isinstance(document, str):
        document = json.loads(document)
    entries = document["detections"]
    labels = [entry["label"] for entry in entries]
    scores = [entry["score"] for entry in entries]
    has_masks = bool(entries) and all("mask" in entry for entry in entries)
    return sv.Detections(
        xyxy=np.array([entry["box_xyxy"] for entry in entries], dtype=np.float32).reshape(-1, 4),
        mask=np.stack([decode_rle(entry["mask"]) for entry in entries]) if has_masks else None,
        confidence=None if None in scores or not entries else np.array(scores, dtype=np.float32),
        class_id=class_ids(labels),
        data={
            CLASS_NAME_KEY: np.array(labels, dtype=str),
            REGION_INDEX_KEY: np.array([entry["region_index"] for entry in entries], dtype=int),
        },
    )


def coco_categories(labels: Iterable[str]) -> list[dict]:
    """COCO categories (ids from 1) for the distinct non-empty labels, in first-seen order."""
    names = dict.fromkeys(label for label in labels if label)
    return [{"id": i, "name": name} for i, name in enumerate(names, start=1)]


def to_coco_dataset(detections: sv.Detections, file_name: str, width: int, height: int) -> dict:
    """A one-image COCO instances file of the labelled detections, as `COCO()` and annotation
    tools load it: ``images``, ``annotations`` (with each detection's ``score``) and
    ``categories`` numbered from 1 by the labels' first appearance."""
    categories = coco_categories(detections.data.get(CLASS_NAME_KEY, []))
    annotations = []
    for number, (i, result) in enumerate(_coco_entries(detections, 1, categories), start=1):
        # A box given partly outside the image is cut to it: annotation tools refuse the rest.
        x, y, box_width, box_height = result["bbox"]
        x1, y1, x2, y2 = clip_box([x, y, x + box_width, y + box_height], width, height)
        box_width, box_height = _written(x2 - x1), _written(y2 - y1)
        result["bbox"] = [x1, y1, box_width, box_height]
        area = (
            _area(box_width, box_height)
            if detections.mask is None
            else float(detections.mask[i].sum())
        )
        annotations.append({"id": number, **result, "area": area, "iscrowd": 0})
    image = {"id": 1, "file_name": file_name, "width": width, "height": height}
    return {"images": [image], "annotations": annotations, "categories": categories}


def to_coco_results(detections: sv.Detections, image_id: int, categories: list[dict]) -> list[dict]:
    """COCO results entries (``image_id``, ``category_id``, ``bbox`` xywh, ``score``).

    Labels are matched to ``categories`` by name; detections whose label is not a category
    (such as unlabelled bare references) are left out. Without confidences the score is 1.0;
    masks are added as ``segmentation`` RLE.
    """
    return [result for _, result in _coco_entries(detections, image_id, categories)]


def _coco_entries(
    detections: sv.Detections, image_id: int, categories: list[dict]
) -> Iterator[tuple[int, dict]]:
    """`to_coco_results`' entries, each with the index of the detection it comes from."""
    category_ids = {category["name"]: category["id"] for category in categories}
    labels = detections.data.get(CLASS_NAME_KEY, [""] * len(detections))
    for i, label in enumerate(labels):
        if label not in category_ids:
            continue
        x1, y1, x2, y2 = (_written(v) for v in detections.xyxy[i])
        result = {
            "image_id": image_id,
            "category_id": category_ids[label],
            "bbox": [x1, y1, _written(x2 - x1), _written(y2 - y1)],
            "score": 1.0
            if detections.confidence is None
            else shortest_decimal(detections.confidence[i]),
        }
        if detections.mask is not None:
            result["segmentation"] = encode_rle(detections.mask[i])
        yield i, result


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a boolean (H, W) mask."""
    height, width = mask.shape
    # COCO runs walk the mask column by column and start with a run of zeros.
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist() if flat.size else []
    if flat.size and flat[0]:
        runs.insert(0, 0)
    return {"size": [height, width], "counts": _compress(runs)}


def decode_rle(rle: dict) -> np.ndarray:
    """Boolean (H, W) mask from compressed COCO RLE."""
    height, width = rle["size"]
    runs = _decompress(rle["counts"])
    values = np.arange(len(runs)) % 2 == 1
    flat = np.repeat(values, runs)
    return flat.reshape((height, width), order="F")


def _compress(runs: list[int]) -> str:
    # COCO's text form: from the fourth run on (index 3, as pycocotools), each run is stored as
    # the difference to the run two places back, then written 5 bits per character (bit 0x20 =
    # more follows) plus 48.
    chars = []
    for i, run in enumerate(runs):
        value = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            chars.append(chr(chunk + 48 + (0x20 if more else 0)))
    return "".join(chars)


def _decompress(counts: str) -> list[int]:
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            chunk = ord(counts[position]) - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            position += 1
            shift += 5
            if not more and chunk & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs
