from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fo1_core.answers import parse_answer, to_detections
from fo1_core.export import (
    coco_categories,
    decode_rle,
    encode_rle,
    from_json,
    to_coco_dataset,
    to_coco_results,
    to_json,
)
from fo1_core.templates import region_token

R = region_token
HEIGHT, WIDTH = 60, 80
BOXES = np.array(
    [[0, 0, 20, 20], [10.5, 5.25, 40, 30], [30, 20, 79, 59], [50, 0, 70, 15]], dtype=np.float32
)
TEXT = (
    f"<ground>cat</ground><objects>{R(0)}{R(2)}</objects> and "
    f"<ground>chat noir</ground><objects>{R(1)}</objects>, see {R(3)}.<|im_end|>"
)


def box_masks() -> np.ndarray:
    masks = np.zeros((len(BOXES), HEIGHT, WIDTH), dtype=bool)
    for mask, (x1, y1, x2, y2) in zip(masks, BOXES.astype(int), strict=True):
        mask[y1:y2, x1:x2] = True
    return masks


def random_mask(shape: tuple[int, int], fill: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < fill


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((5, 7), dtype=bool),  # empty mask
        np.ones((5, 7), dtype=bool),  # full mask: the first run of zeros is empty
        np.eye(6, dtype=bool),  # diagonal, first pixel set
        random_mask((64, 48), 0.5),  # many short runs, negative run differences
        random_mask((300, 200), 0.01),  # long runs, multi-character numbers
        np.zeros((1, 1), dtype=bool),  # single pixel
    ],
)
def test_rle_matches_pycocotools(mask: np.ndarray) -> None:
    ours = encode_rle(mask)
    theirs = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"] == theirs["counts"].decode()
    assert ours["size"] == list(theirs["size"])
    np.testing.assert_array_equal(decode_rle(ours), mask)
    np.testing.assert_array_equal(decode_rle(theirs | {"counts": theirs["counts"].decode()}), mask)


@pytest.mark.parametrize(
    ("masks", "scores"),
    [
        (None, None),  # boxes only
        (box_masks(), None),  # masks from a segmenter
        (None, np.array([0.9, 0.8, 0.7, 0.6])),  # detector scores
        (box_masks(), np.array([0.9, 0.8, 0.7, 0.6])),  # both
        # the model's confidences, products of token probabilities: rounded to 4 decimals they
        # did not reload, the first two tied, and the last was written as 0
        (None, np.array([0.123456789, 0.12345, 0.5, 3e-7])),
    ],
)
def test_json_round_trip(masks: np.ndarray | None, scores: np.ndarray | None) -> None:
    answer = parse_answer(TEXT, num_regions=len(BOXES))
    detections = to_detections(answer, BOXES, masks=masks, scores=scores)
    document = json.dumps(to_json(answer, detections))
    assert from_json(document) == detections
    assert from_json(json.loads(document)) == detections


def test_json_fields() -> None:
    answer = parse_answer(TEXT, num_regions=len(BOXES))
    document = to_json(answer, to_detections(answer, BOXES, masks=box_masks()))
    assert document["text"] == TEXT
    first, *_, last = document["detections"]
    assert first["region_index"] == 0 and first["label"] == "cat"
    assert first["box_xyxy"] == [0.0, 0.0, 20.0, 20.0]
    assert first["score"] is None
    assert first["mask"]["size"] == [HEIGHT, WIDTH]
    assert last["region_index"] == 3 and last["label"] == ""


def test_files_hold_the_numbers_given_not_their_float32_noise() -> None:
    boxes = [[10.3, 10.7, 50.1, 50.9], [-0.0, -0.0, 30, 30]]
    answer = parse_answer("<ground>cat</ground><objects><region0><region1></objects>", 2)
    detections = to_detections(answer, boxes, scores=np.array([0.9, 0.3]))
    document = to_json(answer, detections)
    assert [d["box_xyxy"] for d in document["detections"]] == [boxes[0], [0.0, 0.0, 30.0, 30.0]]
    assert [d["score"] for d in document["detections"]] == [0.9, 0.3]
    assert "-0.0" not in json.dumps(document)
    first, _ = to_coco_results(detections, 1, [{"id": 1, "name": "cat"}])
    assert first["bbox"] == [10.3, 10.7, 39.8, 40.2] and first["score"] == 0.9
    coco = to_coco_dataset(detections, "a.png", 64, 64)
    assert coco["annotations"][0]["bbox"] == [10.3, 10.7, 39.8, 40.2]


def test_json_of_an_empty_answer_reloads_empty() -> None:
    answer = parse_answer("No cats here.")
    reloaded = from_json(json.dumps(to_json(answer, to_detections(answer, BOXES))))
    assert len(reloaded) == 0 and reloaded.xyxy.shape == (0, 4)


@pytest.mark.parametrize(
    ("labels", "names"),
    [
        (["cat", "dog", "cat"], ["cat", "dog"]),  # first-seen order, no repeats
        (["", "cat", ""], ["cat"]),  # unlabelled references get no category
        ([], []),  # nothing
    ],
)
def test_coco_categories(labels: list[str], names: list[str]) -> None:
    categories = coco_categories(labels)
    assert [c["name"] for c in categories] == names
    assert [c["id"] for c in categories] == list(range(1, len(names) + 1))


def test_coco_results_fields() -> None:
    answer = parse_answer(TEXT, num_regions=len(BOXES))
    detections = to_detections(answer, BOXES)
    categories = coco_categories(detections.data["class_name"])
    results = to_coco_results(detections, image_id=7, categories=categories)
    # The unlabelled reference to region 3 has no category and is left out.
    assert len(results) == 3
    assert results[1] == {
        "image_id": 7,
        "category_id": 1,
        "bbox": [30.0, 20.0, 49.0, 39.0],
        "score": 1.0,
    }
    assert results[2]["category_id"] == 2 and results[2]["bbox"] == [10.5, 5.25, 29.5, 24.75]


@pytest.mark.parametrize("with_masks", [False, True])
def test_coco_results_file_is_accepted_for_matching_ground_truth(
    with_masks: bool, tmp_path: Path
) -> None:
    # Ground truth written independently: regions 0 and 2 are cats, region 1 a "chat noir".
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "chat noir"}]
    annotations = []
    for region, category_id in ((0, 1), (2, 1), (1, 2)):
        x1, y1, x2, y2 = BOXES[region].tolist()
        annotation = {
            "id": len(annotations) + 1,
            "image_id": 1,
            "category_id": category_id,
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1),
            "iscrowd": 0,
        }
        if with_masks:
            rle = coco_mask.encode(np.asfortranarray(box_masks()[region].astype(np.uint8)))
            annotation["segmentation"] = rle | {"counts": rle["counts"].decode()}
        annotations.append(annotation)
    ground_truth_file = tmp_path / "ground_truth.json"
    ground_truth_file.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "width": WIDTH, "height": HEIGHT}],
                "categories": categories,
                "annotations": annotations,
            }
        )
    )

    answer = parse_answer(TEXT, num_regions=len(BOXES))
    masks = box_masks() if with_masks else None
    detections = to_detections(answer, BOXES, masks=masks, scores=np.full(len(BOXES), 0.9))
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(to_coco_results(detections, 1, categories)))

    ground_truth = COCO(str(ground_truth_file))
    evaluation = COCOeval(
        ground_truth, ground_truth.loadRes(str(results_file)), "segm" if with_masks else "bbox"
    )
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    # The answer names exactly the ground-truth boxes: a perfect score.
    assert evaluation.stats[0] == pytest.approx(1.0)


@pytest.mark.parametrize("with_masks", [False, True])
def test_coco_dataset_is_the_answer_as_annotations(with_masks: bool, tmp_path: Path) -> None:
    masks = box_masks() if with_masks else None
    detections = to_detections(parse_answer(TEXT, num_regions=len(BOXES)), BOXES, masks=masks)
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(to_coco_dataset(detections, "cat.jpg", WIDTH, HEIGHT)))
    dataset = COCO(str(path))
    assert dataset.imgs == {1: {"id": 1, "file_name": "cat.jpg", "width": WIDTH, "height": HEIGHT}}
    # The unlabelled reference to region 3 is not an annotation; ids are unique from 1.
    annotations = dataset.loadAnns(dataset.getAnnIds())
    assert [a["id"] for a in annotations] == [1, 2, 3]
    assert [a["category_id"] for a in annotations] == [1, 1, 2]
    assert [a["bbox"] for a in annotations] == [
        [0.0, 0.0, 20.0, 20.0],
        [30.0, 20.0, 49.0, 39.0],
        [10.5, 5.25, 29.5, 24.75],
    ]
    # Area: of the mask when there is one (whole pixels), else of the box.
    expected = [400, 49 * 39, 30 * 25] if with_masks else [400, 49 * 39, 29.5 * 24.75]
    assert [a["area"] for a in annotations] == expected
    if with_masks:
        assert np.array_equal(dataset.annToMask(annotations[1]), box_masks()[2])


def test_coco_dataset_boxes_are_cut_to_the_image() -> None:
    """A box given partly outside the image (the API allows it) is annotated inside it."""
    outside = np.array([[-10.0, -5.0, 50.0, 40.0], [70.0, 50.0, WIDTH + 30.0, HEIGHT + 30.0]])
    answer = parse_answer("<ground>cat</ground><objects><region0><region1></objects>", 2)
    dataset = to_coco_dataset(to_detections(answer, outside), "cat.jpg", WIDTH, HEIGHT)
    assert [a["bbox"] for a in dataset["annotations"]] == [[0, 0, 50, 40], [70, 50, 10, 10]]
    assert [a["area"] for a in dataset["annotations"]] == [2000, 100]


def test_coco_dataset_box_areas_are_written_as_short_as_their_boxes() -> None:
    """12.3 × 27.7 is 340.71000000000004 in floats; the file says 340.71, as its bbox says 12.3
    and 27.7."""
    answer = parse_answer("<ground>cat</ground><objects><region0></objects>", 1)
    box = np.array([[10.0, 20.0, 22.3, 47.7]])
    dataset = to_coco_dataset(to_detections(answer, box), "cat.jpg", WIDTH, HEIGHT)
    assert '"area": 340.71,' in json.dumps(dataset)


def test_coordinates_of_a_wide_image_are_written_without_float32_noise() -> None:
    """Past 4096 px float32 steps are coarser than 4 decimals: 16900.3 is 16900.30078125."""
    boxes = [[16900.3, 10.7, 17900.9, 400.1], [4100.1, 2.2, 4500.7, 300.3]]
    answer = parse_answer("<ground>cat</ground><objects><region0><region1></objects>", 2)
    detections = to_detections(answer, boxes)
    assert [d["box_xyxy"] for d in to_json(answer, detections)["detections"]] == boxes
    first, second = to_coco_dataset(detections, "wide.png", 20000, 500)["annotations"]
    assert first["bbox"] == [16900.3, 10.7, 1000.6, 389.4] and first["area"] == 389633.64
    assert second["bbox"] == [4100.1, 2.2, 400.6, 298.1]
