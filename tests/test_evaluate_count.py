"""`python -m fo1_core.evaluate count`: dataset fields, the counting rule, accuracy, torchrun."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fo1_core.cli import open_named_image
from fo1_core.errors import FO1Error
from fo1_core.evaluate.__main__ import main
from fo1_core.evaluate.count import CountItem, load_items, score
from tests.conftest import REPO

COUNT_ANSWER = (
    "<ground>red circle</ground><objects><region0><region1><region2></objects>There are 3."
)
BOXES = [[2, 2, 20, 20], [30, 2, 50, 20], [60, 30, 80, 50]]


@pytest.fixture(scope="module")
def counting_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.rigged import make_rigged_checkpoint

    return make_rigged_checkpoint(tmp_path_factory.mktemp("counting"), COUNT_ANSWER)


def _dataset(folder: Path) -> Path:
    """Five items in the three accepted styles; the truth is 3 for items 0, 2 and 4."""
    (folder / "images").mkdir()
    for i in range(3):
        Image.new("RGB", (90, 60), (40 * i, 120, 200)).save(folder / "images" / f"{i}.png")
    items = [
        # ours: noun + answer + boxes
        {"image": "images/0.png", "noun": "red circles", "answer": 3, "boxes": BOXES},
        {"image": "images/1.png", "noun": "red circles", "answer": 2, "boxes": BOXES},
        # official processed CountBench / PixMo-Count files: filled question + bboxes
        {
            "image": "images/2.png",
            "question": "How many red circles are there in this image?",
            "answer": 3,
            "bboxes": BOXES,
        },
        # PixMo-Count's own names: label + count
        {"image": "images/0.png", "label": "circle", "count": 5, "bbox_list": BOXES},
        {"image": "images/1.png", "noun": "circle", "number": 3, "boxes": BOXES[:1]},
    ]
    path = folder / "count.jsonl"
    path.write_text("\n".join(json.dumps(item) for item in items))
    return path


def _count_args(checkpoint: Path, dataset: Path, out: Path) -> list[str]:
    return [
        "count", "--checkpoint", str(checkpoint), "--dataset", str(dataset),
        "--out", str(out), "--max-new-tokens", "60",
    ]  # fmt: skip


@pytest.mark.slow
def test_count_accuracy_by_hand(
    counting_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset = _dataset(tmp_path)
    out = tmp_path / "counts.json"
    assert main([*_count_args(counting_checkpoint, dataset, out), "--device", "cpu"]) == 0
    document = json.loads(out.read_text())
    # The answer's region tags are dropped before the first integer is taken: "3", not "0".
    assert [item["prediction"] for item in document["items"]] == [3, 3, 3, 3, 3]
    assert [item["truth"] for item in document["items"]] == [3, 2, 3, 5, 3]
    assert (document["correct"], document["total"], document["accuracy"]) == (3, 5, 0.6)
    assert "Accuracy 0.6000 (3/5, 0 failed)" in capsys.readouterr().out


@pytest.mark.slow
def test_count_under_torchrun_matches_one_process(
    counting_checkpoint: Path, tmp_path: Path
) -> None:
    dataset = _dataset(tmp_path)
    single, parallel = tmp_path / "single.json", tmp_path / "parallel.json"
    assert main(_count_args(counting_checkpoint, dataset, single)) == 0
    done = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            "--standalone", "-m", "fo1_core.evaluate",
            *_count_args(counting_checkpoint, dataset, parallel),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records = sorted((tmp_path / "parallel.json.records").glob("rank-*.jsonl"))
    # Rank r took items r, r + 2, …: three for rank 0, two for rank 1.
    assert [len(path.read_text().splitlines()) for path in records] == [3, 2]
    one, two = json.loads(single.read_text()), json.loads(parallel.read_text())
    assert two["accuracy"] == one["accuracy"] == 0.6

    def strip(document: dict) -> list[tuple]:
        return [(i["key"], i["truth"], i["prediction"], i["answer"]) for i in document["items"]]

    assert strip(two) == strip(one)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        # noun fills the counting template
        ({"image": "a.png", "noun": "cats", "answer": 2}, ("cats", None, 2)),
        # PixMo-Count: label + count
        ({"image": "a.png", "label": "cats", "count": "4"}, ("cats", None, 4)),
        # processed CountBench: question + answer
        ({"image": "a.png", "question": "How many?", "answer": 1}, (None, "How many?", 1)),
        # CountBench's own field name for the truth
        ({"image": "a.png", "object": "cats", "number": 7}, ("cats", None, 7)),
        # a true number past float's range, read as the integer it is
        ({"image": "a.png", "noun": "cats", "answer": 10**400}, ("cats", None, 10**400)),
        # a null id is no id: numbered by position
        ({"id": None, "image": "a.png", "noun": "cats", "answer": 2}, ("cats", None, 2)),
    ],
)
def test_load_items_accepts_common_field_names(tmp_path: Path, item: dict, expected: tuple) -> None:
    path = tmp_path / "items.json"
    path.write_text(json.dumps([item]))
    (loaded,) = load_items(path, None, None)
    assert (loaded.noun, loaded.question, loaded.truth) == expected
    assert loaded.image == tmp_path / "a.png"
    assert loaded.key == "0"


PROPOSED = [{"box": [0, 0, 5, 5], "score": 0.2}, {"box": [1, 1, 9, 9], "score": 0.8}]


@pytest.mark.parametrize(
    ("given", "scores"),
    [
        ({"boxes": [[0, 0, 5, 5], [1, 1, 9, 9]], "scores": [0.2, 0.8]}, [0.2, 0.8]),
        ({"bboxes": [[0, 0, 5, 5], [1, 1, 9, 9]], "score_list": [0.2, 0.8]}, [0.2, 0.8]),
        ({"boxes": [[0, 0, 5, 5], [1, 1, 9, 9]]}, None),
        # `python -m detect_tools --json`'s proposals, under either name
        ({"proposals": PROPOSED}, [0.2, 0.8]),
        ({"boxes": PROPOSED}, [0.2, 0.8]),
    ],
)
def test_an_items_boxes_come_with_their_scores(
    tmp_path: Path, given: dict, scores: list | None
) -> None:
    path = tmp_path / "items.json"
    path.write_text(json.dumps([{"image": "a.png", "noun": "cats", "answer": 2, **given}]))
    (loaded,) = load_items(path, None, None)
    assert loaded.boxes.tolist() == [[0, 0, 5, 5], [1, 1, 9, 9]]
    assert (None if loaded.scores is None else loaded.scores.tolist()) == scores


def test_a_coco_file_given_as_counting_items_is_named_not_printed(tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    coco = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(10_000)]}
    path.write_text(json.dumps([coco]))
    with pytest.raises(FO1Error, match="looks like a COCO annotations file") as raised:
        load_items(path, None, None)
    assert len(str(raised.value)) < 300


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"noun": "cats", "answer": 2}, "no image"),
        (
            {"image": "a.png", "answer": 2},
            "no noun or question \\(one of the fields noun, object, category, label, question\\)",
        ),
        ({"image": "a.png", "noun": "cats"}, "no true number"),
        # a blank noun would be asked as an empty prompt, failing item by item on every rerun
        ({"image": "a.png", "noun": " ", "answer": 2}, "items.jsonl, item 0: its noun is empty"),
    ],
)
def test_load_items_names_a_missing_field(tmp_path: Path, item: dict, message: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(item))
    with pytest.raises(FO1Error, match=message):
        load_items(path, None, None)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        # two questions about one image, recorded under one id, would overwrite each other
        (
            [{"id": "img7", "image": "a.png", "noun": "cats", "answer": 2}] * 2,
            "ids img7 appear more than once",
        ),
        ([{"image": "a.png", "noun": "cats", "answer": "ten"}], "item 0: .* number: 'ten'"),
        ([{"image": "a.png", "noun": "cats", "answer": 2.7}], "not a whole number: 2.7"),
        ([{"image": "a.png", "noun": "cats", "answer": True}], "not a whole number: True"),
        ([{"image": "a.png", "noun": "cats", "answer": -1}], "item 0: .* 0 or more, not -1"),
        # an empty dataset: an accuracy of 0/0 would mean nothing
        ([], "holds no items: there is nothing to score"),
        # boxes that could not be asked about: refused before the model loads, not item by item
        (
            [
                {
                    "image": "a.png",
                    "noun": "cats",
                    "answer": 2,
                    "boxes": [[0, 0, 5, 5]],
                    "scores": [1, 2],
                }
            ],
            "items.json, item 0: The item has 1 boxes but 2 scores",
        ),
        (
            [{"id": "b", "image": "a.png", "noun": "cats", "answer": 2, "boxes": [[0, 0, -5, 5]]}],
            "items.json, item b: The item's box #0 .* is inverted",
        ),
        # an image URL: every item would fail, after the model loaded
        (
            [{"image": "https://example.com/0.jpg", "noun": "cats", "answer": 2}],
            "'https://example.com/0.jpg' is a URL",
        ),
    ],
)
def test_load_items_refuses_items_it_could_not_score(
    tmp_path: Path, items: list[dict], message: str
) -> None:
    path = tmp_path / "items.json"
    path.write_text(json.dumps(items))
    with pytest.raises(FO1Error, match=message):
        load_items(path, None, None)


@pytest.mark.parametrize("via_link", [False, True])
def test_out_that_is_the_dataset_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, via_link: bool
) -> None:
    dataset = _dataset(tmp_path)
    before = dataset.read_text()
    out = tmp_path / "link.jsonl" if via_link else dataset
    if via_link:
        out.symlink_to(dataset)
    assert main(_count_args(tmp_path / "no-checkpoint", dataset, out)) == 2
    assert f"--out {out} is the --dataset file" in capsys.readouterr().err
    assert dataset.read_text() == before


def test_items_without_an_id_or_with_a_null_one_are_numbered_by_position(tmp_path: Path) -> None:
    item = {"image": "a.png", "noun": "cats", "answer": 2}
    path = tmp_path / "items.json"
    path.write_text(json.dumps([{"id": None, **item}, item, {"id": None, **item}]))
    assert [loaded.key for loaded in load_items(path, None, None)] == ["0", "1", "2"]


def test_out_that_is_one_of_the_images_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset = _dataset(tmp_path)
    image = tmp_path / "images" / "2.png"
    before = image.read_bytes()
    assert main(_count_args(tmp_path / "no-checkpoint", dataset, image)) == 2
    assert f"--out {image} is the image {image}, which this run reads" in capsys.readouterr().err
    assert image.read_bytes() == before


def test_items_without_boxes_and_no_proposer_are_refused_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset = _dataset(tmp_path)
    items = [json.loads(line) for line in dataset.read_text().splitlines()]
    del items[1]["boxes"]
    dataset.write_text("\n".join(json.dumps(item) for item in items))
    assert main(_count_args(tmp_path / "no-checkpoint", dataset, tmp_path / "out.json")) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {dataset}: item 1 has no boxes of its own"), error
    assert "pass --proposer NAME" in error


def test_a_proposer_that_cannot_load_ends_the_run_before_fo1_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """It was loaded at the first item without boxes: FO1 loaded for minutes, every item then
    failed with the same error, and the run ended with status 0."""
    args = _count_args(tmp_path / "no-checkpoint", _dataset(tmp_path), tmp_path / "out.json")
    missing = tmp_path / "florence"
    assert main([*args, "--proposer", "florence2", "--proposer-checkpoint", str(missing)]) == 2
    error = capsys.readouterr().err
    assert f"checkpoint folder {missing} does not exist" in error, error


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--max-boxes", "0"), "argument --max-boxes: Maximum count must be between 1 and"),
        (("--threshold", "2"), "argument --threshold: Score threshold must be a number between"),
        (("--images", "nowhere"), "could not read the folder 'nowhere': it does not exist"),
        (("--images", "count.jsonl"), "the folder 'count.jsonl': it is not a folder"),
        # a GPU this machine does not have (the test machines have none, as the Space's CPU)
        (("--device", "cuda:7"), "argument --device: "),
    ],
)
def test_bad_options_are_refused_before_loading(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    extra: tuple[str, str],
    message: str,
) -> None:
    dataset = _dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = _count_args(tmp_path / "no-checkpoint", dataset, tmp_path / "out.json")
    try:
        code = main([*args, *extra])
    except SystemExit as stopped:  # refused by the argument parser
        code = stopped.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.json.records").exists()  # no run started


@pytest.mark.slow
def test_a_results_file_that_cannot_be_written_is_one_message_and_no_torn_file(
    counting_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = _dataset(tmp_path)
    out = tmp_path / "counts.json"
    out.write_text("the last run's results")
    write_text = Path.write_text

    def fill_the_disk(path: Path, text: str, *args: object, **kwargs: object) -> int:
        """Writes half of a results file (not the records), then fails as a size limit does."""
        if path.parent != tmp_path:
            return write_text(path, text, *args, **kwargs)
        write_text(path, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(Path, "write_text", fill_the_disk)
    assert main(_count_args(counting_checkpoint, dataset, out)) == 2
    monkeypatch.undo()
    assert f"error: could not write {out}: File too large" in capsys.readouterr().err
    assert out.read_text() == "the last run's results"  # whole, as it was
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no draft


def test_score_counts_failures_as_wrong() -> None:
    items = [CountItem(str(i), Path("x.png"), truth) for i, truth in enumerate([3, 2, 5, 1])]
    records = {
        "0": {"prediction": 3},  # right
        "1": {"prediction": 3},  # wrong
        "2": {"error": "The image could not be read."},  # failed: wrong
        # "3" missing (never finished): wrong
    }
    result = score(items, records)
    assert (result.correct, result.total, result.failed) == (1, 4, 2)
    assert result.accuracy == 0.25


@pytest.mark.slow
def test_a_broken_item_is_recorded_and_counts_as_wrong(
    counting_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset = _dataset(tmp_path)
    (tmp_path / "images" / "1.png").write_bytes(b"not a png")  # items 1 and 4 use it
    out = tmp_path / "counts.json"
    assert main(_count_args(counting_checkpoint, dataset, out)) == 0
    document = json.loads(out.read_text())
    assert ["error" in item for item in document["items"]] == [False, True, False, False, True]
    assert (document["correct"], document["failed"], document["total"]) == (2, 2, 5)
    assert "Accuracy 0.4000 (2/5, 2 failed)" in capsys.readouterr().out


@pytest.mark.slow
def test_scored_boxes_of_an_item_are_kept_by_their_scores(
    counting_checkpoint: Path, tmp_path: Path
) -> None:
    """--threshold holds for an item's own scored boxes as for a proposer's."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (90, 60)).save(tmp_path / "images" / "0.png")
    item = {"image": "images/0.png", "noun": "circles", "answer": 1, "boxes": BOXES}
    dataset = tmp_path / "count.json"
    dataset.write_text(json.dumps([{**item, "scores": [0.1, 0.9, 0.5]}]))
    out = tmp_path / "counts.json"
    assert main([*_count_args(counting_checkpoint, dataset, out), "--threshold", "0.6"]) == 0
    (record,) = json.loads(out.read_text())["items"]
    assert record["boxes"] == 1


def test_a_missing_image_is_named_by_the_path_tried(tmp_path: Path) -> None:
    (tmp_path / "3.png").touch()  # the same name in another folder
    with pytest.raises(FO1Error, match=f"The image {tmp_path / 'sub' / '3.png'} is not there"):
        open_named_image(tmp_path / "sub" / "3.png")
