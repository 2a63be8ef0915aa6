"""`python -m fo1_core.evaluate coco`: results file, pycocotools scoring, resumption."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from fo1_core.errors import FO1Error
from fo1_core.evaluate.__main__ import main
from fo1_core.evaluate.coco import category_prompts, read_annotations, score
from fo1_core.evaluate.records import records_folder
from tests.conftest import REPO

# RIGGED_ANSWER names regions 0 and 2 as "red circle"; each image's boxes are, in order,
# red circle, blue square, red circle — exactly its ground truth.
CATEGORIES = [{"id": 1, "name": "red circle"}, {"id": 2, "name": "blue square"}]
LAYOUT = [((4, 4, 28, 28), 1), ((36, 8, 60, 40), 2), ((66, 30, 90, 58), 1)]


def _dataset(folder: Path, images: int = 3) -> tuple[Path, Path, Path]:
    """Images, COCO annotations and a proposals file (the ground-truth boxes) in `folder`."""
    (folder / "images").mkdir()
    entries, annotations, proposals = [], [], []
    for image_id in range(1, images + 1):
        picture = Image.new("RGB", (96, 64), "white")
        draw = ImageDraw.Draw(picture)
        for (x1, y1, x2, y2), category in LAYOUT:
            if category == 1:
                draw.ellipse((x1, y1, x2, y2), fill="red")
            else:
                draw.rectangle((x1, y1, x2, y2), fill="blue")
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        name = f"{image_id:03d}.png"
        picture.save(folder / "images" / name)
        entries.append({"id": image_id, "file_name": name, "width": 96, "height": 64})
        proposals.append({"id": image_id, "bbox_list": [list(box) for box, _ in LAYOUT]})
    instances = folder / "instances.json"
    instances.write_text(
        json.dumps({"images": entries, "annotations": annotations, "categories": CATEGORIES})
    )
    boxes = folder / "proposals.jsonl"
    boxes.write_text("\n".join(json.dumps(item) for item in proposals))
    return folder / "images", instances, boxes


def _coco_args(checkpoint: Path, folder: Path, *extra: str, max_new_tokens: int = 40) -> list[str]:
    """Command-line arguments for the dataset in `folder` (written on first use)."""
    if not (folder / "images").exists():
        _dataset(folder)
    boxes = [] if "--proposer" in extra else ["--proposals", str(folder / "proposals.jsonl")]
    return [
        "coco", "--checkpoint", str(checkpoint), "--device", "cpu",
        "--images", str(folder / "images"), "--annotations", str(folder / "instances.json"),
        "--out", str(folder / "preds.json"), "--max-new-tokens", str(max_new_tokens),
        *boxes, *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_coco_scores_a_known_answer(
    answering_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from pycocotools.coco import COCO

    assert main(_coco_args(answering_checkpoint, tmp_path)) == 0
    results = json.loads((tmp_path / "preds.json").read_text())
    # Two red circles per image, each with its ground-truth box and score 1.0 (no scores given).
    assert len(results) == 6
    assert {r["category_id"] for r in results} == {1}
    assert sorted(r["bbox"] for r in results if r["image_id"] == 1) == [
        [4.0, 4.0, 24.0, 24.0],
        [66.0, 30.0, 24.0, 28.0],
    ]
    assert all(r["score"] == 1.0 for r in results)
    truth = COCO(str(tmp_path / "instances.json"))
    assert len(truth.loadRes(str(tmp_path / "preds.json")).getAnnIds()) == 6
    printed = capsys.readouterr().out
    # Red circles found perfectly (AP 1), blue squares never named (AP 0): mean 0.5.
    assert "mAP 0.5000" in printed
    assert "AP red circle: 1.0000" in printed
    assert "AP blue square: 0.0000" in printed
    assert "fo1" in printed  # the timing table; no proposer ran, so no proposals row
    assert "proposals" not in printed


@pytest.mark.slow
def test_coco_resumes_where_it_stopped(
    answering_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert main(_coco_args(answering_checkpoint, tmp_path, "--limit", "2")) == 0
    assert "2 of its 2 items to do" in caplog.text
    caplog.clear()
    assert main(_coco_args(answering_checkpoint, tmp_path)) == 0
    assert "1 of its 3 items to do (2 already" in caplog.text
    lines = (records_folder(tmp_path / "preds.json") / "rank-0.jsonl").read_text().splitlines()
    assert [json.loads(line)["image_id"] for line in lines] == [1, 2, 3]
    assert len(json.loads((tmp_path / "preds.json").read_text())) == 6


@pytest.mark.slow
def test_a_failed_image_is_said_and_retried_by_the_next_run(
    answering_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    args = _coco_args(answering_checkpoint, tmp_path)
    image = tmp_path / "images" / "002.png"
    image.rename(tmp_path / "away.png")
    assert main(args) == 0
    assert "1 of 3 images failed" in capsys.readouterr().out
    assert "Wrote 4 detections on 2 images" in caplog.text  # the failed one is not counted
    (tmp_path / "away.png").rename(image)
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "failed" not in printed and "mAP 0.5000" in printed
    assert len(json.loads((tmp_path / "preds.json").read_text())) == 6


@pytest.mark.slow
def test_categories_asked_in_several_prompts_give_each_detection_once(
    answering_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # The rigged model names the same two red circles whatever it is asked.
    assert main(_coco_args(answering_checkpoint, tmp_path, "--categories-per-prompt", "1")) == 0
    assert len(json.loads((tmp_path / "preds.json").read_text())) == 6
    assert "mAP 0.5000" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra", [("--categories-per-prompt", "0"), ("--limit", "-1"), ("--max-new-tokens", "0")]
)
def test_counts_below_one_are_refused(tmp_path: Path, extra: tuple[str, str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(_coco_args(tmp_path / "no-checkpoint", tmp_path, *extra))
    assert stopped.value.code == 2


def test_coco_without_a_source_of_boxes_is_refused_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = _coco_args(tmp_path / "no-checkpoint", tmp_path)
    at = args.index("--proposals")
    del args[at : at + 2]
    assert main(args) == 2
    assert "pass --proposer NAME or --proposals FILE" in capsys.readouterr().err


def test_an_unreadable_annotations_file_is_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = _coco_args(tmp_path / "no-checkpoint", tmp_path)
    (tmp_path / "instances.json").write_text("[1, 2]")
    assert main(args) == 2
    assert "is not a COCO annotations file" in capsys.readouterr().err


def _without(entry: dict, field: str) -> dict:
    return {key: value for key, value in entry.items() if key != field}


IMAGE = {"id": 1, "file_name": "001.png", "width": 96, "height": 64}
BOX = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 24, 24], "area": 576, "iscrowd": 0}


@pytest.mark.parametrize(
    ("key", "entries", "message"),
    [
        # nothing to ask about
        ("categories", [], "lists no categories"),
        # nothing to score (pycocotools would score every annotation instead)
        ("images", [], "lists no images: there is nothing to score"),
        # a category the model cannot be asked about
        ("categories", [{"id": 1}], "categories[0] has no name"),
        ("categories", [{"id": 1, "name": 5}], "categories[0] has name 5, not a name"),
        # a name the model could never answer with
        ("categories", [{"id": 1, "name": " "}], "categories[0] has name ' ', not a name"),
        # the same name once its spaces are stripped
        (
            "categories",
            [{"id": 1, "name": "cat"}, {"id": 2, "name": "cat "}],
            "two categories have the name 'cat'",
        ),
        # mixed id types: "2" is no whole number
        (
            "categories",
            [{"id": 1, "name": "cat"}, {"id": "2", "name": "dog"}],
            "categories[1] has id '2', not a whole number",
        ),
        # the model is asked for names: both would get the boxes it finds for one
        (
            "categories",
            [{"id": 1, "name": "cat"}, {"id": 2, "name": "cat"}],
            "two categories have the name 'cat'",
        ),
        # an image that cannot be found, or whose results cannot be matched
        ("images", [_without(IMAGE, "id")], "images[0] has no id"),
        ("images", [{**IMAGE, "file_name": None}], "images[0] has no file_name"),
        # pycocotools keeps one of two images of one id
        ("images", [IMAGE, IMAGE], "two images have the id 1"),
        # pycocotools needs these of every ground-truth box, and would fail after the run
        ("annotations", [_without(BOX, "bbox")], "annotations[0] has no bbox"),
        ("annotations", [_without(BOX, "area")], "annotations[0] has no area"),
        ("annotations", [_without(BOX, "id")], "annotations[0] has no id"),
        ("annotations", [_without(BOX, "iscrowd")], "annotations[0] has no iscrowd"),
        (
            "annotations",
            [{**BOX, "bbox": [4, 4, 24]}],
            "has bbox [4, 4, 24], not [x, y, width, height]",
        ),
        # a negative side: scored as a box elsewhere than the one annotated
        (
            "annotations",
            [{**BOX, "bbox": [20, 20, -5, 80]}],
            "has bbox [20, 20, -5, 80], not [x, y, width, height] with no negative side",
        ),
        ("annotations", ["box"], "annotations[0] is not a JSON object"),
        # pycocotools drops a box of an image or category the file does not list
        (
            "annotations",
            [BOX, {**BOX, "id": 2, "image_id": 9}],
            "annotations[1] has image_id 9, which none of its images has as id",
        ),
        (
            "annotations",
            [{**BOX, "category_id": 7}],
            "annotations[0] has category_id 7, which none of its categories has as id",
        ),
    ],
)
def test_a_malformed_annotations_file_is_refused_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture, key: str, entries: list, message: str
) -> None:
    args = _coco_args(tmp_path / "no-checkpoint", tmp_path)
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps({**json.loads(instances.read_text()), key: entries}))
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {instances}") and message in error, error


@pytest.mark.parametrize(
    "spelling",
    [
        lambda folder: folder / "instances.json",  # the same path
        lambda folder: folder / "images" / ".." / "instances.json",  # another path to it
        lambda folder: folder / "link.json",  # a link to it
    ],
)
def test_out_that_is_the_annotations_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, spelling: Callable[[Path], Path]
) -> None:
    args = _coco_args(tmp_path / "no-checkpoint", tmp_path)
    (tmp_path / "link.json").symlink_to(tmp_path / "instances.json")
    before = (tmp_path / "instances.json").read_text()
    args[args.index("--out") + 1] = str(spelling(tmp_path))
    assert main(args) == 2
    assert "is the --annotations file" in capsys.readouterr().err
    assert (tmp_path / "instances.json").read_text() == before


def test_category_names_are_stripped(tmp_path: Path) -> None:
    _, instances, _ = _dataset(tmp_path, images=1)
    document = json.loads(instances.read_text())
    document["categories"][0]["name"] = " red circle\n"
    instances.write_text(json.dumps(document))
    names = [category["name"] for category in read_annotations(instances)["categories"]]
    assert names == ["red circle", "blue square"]
    # the per-category AP lines name each category as the model was asked about it
    found = [{"image_id": 1, "category_id": 1, "bbox": [4, 4, 24, 24], "score": 0.9}]
    assert list(score(instances, found, [1]).per_category) == ["red circle", "blue square"]


def test_a_category_name_with_a_semicolon_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, instances, _ = _dataset(tmp_path, images=1)
    document = json.loads(instances.read_text())
    document["categories"][0]["name"] = "red; circle"
    instances.write_text(json.dumps(document))
    read_annotations(instances)
    assert "The category 'red; circle' holds a semicolon" in caplog.text


def test_out_that_is_one_of_the_images_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = _coco_args(tmp_path / "no-checkpoint", tmp_path)
    image = tmp_path / "images" / "002.png"
    before = image.read_bytes()
    args[args.index("--out") + 1] = str(image)
    assert main(args) == 2
    assert f"--out {image} is the image {image}, which this run reads" in capsys.readouterr().err
    assert image.read_bytes() == before


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--images", "nowhere", "could not read the folder 'nowhere': it does not exist"),
        ("--images", "instances.json", "the folder 'instances.json': it is not a folder"),
        ("--out", "images", "could not write 'images': it is a folder"),  # the dataset's folder
        ("--out", "/", "could not write '/': it is a folder"),  # no name to add ".records" to
        ("--out", "nowhere/preds.json", "the folder 'nowhere' does not exist"),
    ],
)
def test_paths_that_cannot_be_used_are_refused_before_loading(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    value: str,
    message: str,
) -> None:
    args = _coco_args(tmp_path / "no-checkpoint", tmp_path)
    monkeypatch.chdir(tmp_path)
    args[args.index(option) + 1] = value
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}: " in error and message in error


@pytest.mark.slow
def test_a_box_past_float32s_range_is_cut_to_the_image(
    answering_checkpoint: Path, tmp_path: Path
) -> None:
    args = _coco_args(answering_checkpoint, tmp_path, "--limit", "1")
    proposals = tmp_path / "proposals.jsonl"
    boxes = [list(box) for box, _ in LAYOUT[:2]] + [[0, 0, 1e39, 1e39]]
    proposals.write_text(json.dumps({"id": 1, "bbox_list": boxes}))
    assert main(args) == 0
    results = json.loads((tmp_path / "preds.json").read_text())
    # The answer names region 2 as a red circle: the box the model read, the whole 96×64 image.
    assert [0.0, 0.0, 96.0, 64.0] in [result["bbox"] for result in results]


@pytest.mark.slow
def test_given_slivers_are_left_out_and_the_image_still_scored(
    answering_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Detector and COCO-style box files hold boxes under a pixel; they cost only themselves."""
    args = _coco_args(answering_checkpoint, tmp_path, "--limit", "1")
    boxes = [list(box) for box, _ in LAYOUT]
    slivers = [[50, 50, 50.4, 60], [120, 0, 130, 10]]  # 0.4 px wide; wholly outside the image
    proposals = tmp_path / "proposals.jsonl"
    proposals.write_text(json.dumps({"id": 1, "bbox_list": [boxes[0], *slivers, *boxes[1:]]}))
    assert main(args) == 0
    assert "2 of 5 given boxes cover less than a whole pixel of the 96×64 image" in caplog.text
    results = json.loads((tmp_path / "preds.json").read_text())
    # Regions are numbered over the kept boxes: 0 and 2 are the red circles, as without slivers.
    assert sorted(r["bbox"] for r in results) == [[4.0, 4.0, 24.0, 24.0], [66.0, 30.0, 24.0, 28.0]]


@pytest.mark.slow
def test_an_image_is_read_as_stored_and_one_of_another_size_than_annotated_is_said(
    answering_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ground truth is in the pixels as stored, as the official evaluation reads them: an
    EXIF orientation (a phone's portrait photo) is not applied, and every box still lands."""
    args = _coco_args(answering_checkpoint, tmp_path, "--limit", "1")
    image = Image.open(tmp_path / "images" / "001.png")
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: shown turned a quarter
    image.save(tmp_path / "images" / "001.png", exif=exif)
    assert main(args) == 0
    assert "reads as" not in caplog.text
    assert len(json.loads((tmp_path / "preds.json").read_text())) == 2  # regions 0 and 2
    image.resize((48, 32)).save(tmp_path / "images" / "001.png")  # not the file annotated
    shutil.rmtree(records_folder(tmp_path / "preds.json"))
    assert main(args) == 0
    assert "Image 1 (001.png) reads as 48×32 but the annotations say 96×64" in caplog.text


@pytest.mark.slow
def test_coco_with_a_proposer_times_it(
    answering_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from pycocotools.coco import COCO

    args = _coco_args(answering_checkpoint, tmp_path, "--proposer", "offline", "--limit", "1")
    assert main(args) == 0
    results = json.loads((tmp_path / "preds.json").read_text())
    # Regions 0 and 2 of the offline proposer's boxes, with the proposer's scores.
    assert len(results) == 2
    assert all(r["image_id"] == 1 and r["category_id"] == 1 for r in results)
    assert all(0.0 < r["score"] < 1.0 for r in results)
    COCO(str(tmp_path / "instances.json")).loadRes(results)
    assert "proposals" in capsys.readouterr().out


@pytest.mark.slow
def test_coco_refuses_to_mix_runs_with_other_settings(
    answering_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_coco_args(answering_checkpoint, tmp_path, "--limit", "1")) == 0
    assert main(_coco_args(answering_checkpoint, tmp_path, max_new_tokens=41)) == 2
    assert "other settings (max_new_tokens)" in capsys.readouterr().err
    # Told before the model loads: this checkpoint is never looked for.
    assert main(_coco_args(tmp_path / "never-loaded", tmp_path)) == 2
    assert "other settings (checkpoint)" in capsys.readouterr().err
    # The same file name with other contents: its earlier records do not hold for it.
    instances = tmp_path / "instances.json"
    annotations = json.loads(instances.read_text())
    instances.write_text(json.dumps({**annotations, "images": annotations["images"][::-1]}))
    assert main(_coco_args(answering_checkpoint, tmp_path)) == 2
    assert "other settings (annotations_sha256)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "results",
    [
        [],  # nothing detected
        [{"image_id": 4, "category_id": 1, "bbox": [1, 1, 9, 9], "score": 0.9}],  # a stray box
    ],
)
def test_images_without_ground_truth_have_no_ap(tmp_path: Path, results: list[dict]) -> None:
    _, instances, _ = _dataset(tmp_path, images=1)
    document = json.loads(instances.read_text())
    document["images"].append({"id": 4, "file_name": "004.png", "width": 96, "height": 64})
    instances.write_text(json.dumps(document))
    # pycocotools' -1 would read as a (bad) score; None is printed "n/a".
    result = score(instances, results, [4])
    assert (result.map, result.map_50, result.map_75) == (None, None, None)
    assert result.per_category == {}


@pytest.mark.parametrize(
    ("per_prompt", "expected"),
    [
        (None, ["cat; dog; car"]),  # default: every category in one prompt, in id order
        (2, ["cat; dog", "car"]),  # the last prompt takes the rest
        (5, ["cat; dog; car"]),  # more per prompt than categories
    ],
)
def test_category_prompts(per_prompt: int | None, expected: list[str]) -> None:
    """The official evaluation's question, word for word (its processed COCO file's)."""
    categories = [{"id": 3, "name": "car"}, {"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert category_prompts(categories, per_prompt) == [
        f"Please detect {names} in the image and return the object indexes." for names in expected
    ]


def test_missing_proposals_for_an_image_is_an_error(tmp_path: Path) -> None:
    from fo1_core.evaluate.coco import load_images

    _, instances, proposals = _dataset(tmp_path)
    proposals.write_text(json.dumps({"image_id": 1, "boxes": [[0, 0, 5, 5]]}))
    annotations = json.loads(instances.read_text())
    with pytest.raises(FO1Error, match="no boxes for image 2"):
        load_images(annotations, tmp_path / "images", proposals, None)


def test_malformed_proposals_end_the_run_before_the_model_loads(
    answering_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # where the loader says "Loaded FO1 …"
    args = _coco_args(answering_checkpoint, tmp_path)
    proposals = tmp_path / "proposals.jsonl"
    lines = proposals.read_text().splitlines()
    lines[1] = json.dumps({"id": 2, "boxes": [[0, 0, 5, 5], [1, 1, 9, 9]], "scores": [0.5]})
    proposals.write_text("\n".join(lines))
    assert main(args) == 2
    printed = capsys.readouterr()
    assert f"error: {proposals}, image 2: The item has 2 boxes but 1 scores." in printed.err
    assert "Loaded" not in caplog.text
    assert not (tmp_path / "preds.json").exists()


def test_proposals_given_twice_for_an_image_are_an_error(tmp_path: Path) -> None:
    from fo1_core.evaluate.coco import load_images

    _, instances, proposals = _dataset(tmp_path)
    lines = proposals.read_text().splitlines()
    # the same image under both accepted spellings of its id: which boxes were meant?
    proposals.write_text("\n".join([*lines, json.dumps({"image_id": 2, "boxes": []})]))
    annotations = json.loads(instances.read_text())
    with pytest.raises(FO1Error, match=f"{proposals}: the image id 2 appears more than once"):
        load_images(annotations, tmp_path / "images", proposals, None)


@pytest.mark.parametrize(
    "image_id",
    [
        "x1",  # text
        1.5,  # a fraction would have been cut to image 1
        [1],
    ],
)
def test_a_proposals_image_id_that_is_no_whole_number_is_an_error(
    tmp_path: Path, image_id: object
) -> None:
    from fo1_core.evaluate.coco import load_images

    _, instances, proposals = _dataset(tmp_path)
    proposals.write_text(json.dumps({"image_id": image_id, "boxes": [[0, 0, 5, 5]]}))
    annotations = json.loads(instances.read_text())
    with pytest.raises(FO1Error, match=f"{proposals}: the image id .* is not a whole number"):
        load_images(annotations, tmp_path / "images", proposals, None)


@pytest.mark.slow
def test_coco_resumes_under_torchrun_with_another_world_size(
    answering_checkpoint: Path, tmp_path: Path
) -> None:
    assert main(_coco_args(answering_checkpoint, tmp_path, "--limit", "1")) == 0
    done = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "fo1_core.evaluate", *_coco_args(answering_checkpoint, tmp_path),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # Image 1 was done alone; of the rest, rank 0 took image 3 and rank 1 image 2.
    assert "[rank 0] Rank 0: 1 of its 2 items to do (1 already" in done.stderr
    assert "[rank 1] Rank 1: 1 of its 1 items to do (0 already" in done.stderr
    records = records_folder(tmp_path / "preds.json")
    assert [
        [json.loads(line)["image_id"] for line in path.read_text().splitlines()]
        for path in sorted(records.glob("rank-*.jsonl"))
    ] == [[1, 3], [2]]
    results = json.loads((tmp_path / "preds.json").read_text())
    assert [r["image_id"] for r in results] == [1, 1, 2, 2, 3, 3]  # merged in image order
    assert "mAP 0.5000" in done.stdout
