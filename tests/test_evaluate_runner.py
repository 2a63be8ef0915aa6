"""Where `fo1_core.evaluate` gets an image's boxes: the data's own, or a proposer's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from PIL import Image

from detect_tools.base import MAX_PROMPT_CLASSES, ProposalOptions, Proposer, split_prompt
from fo1_core.cli import open_named_image
from fo1_core.errors import FO1Error
from fo1_core.evaluate.distributed import Shard
from fo1_core.evaluate.runner import BoxSource, open_item_image, run


class NamedBoxes(Proposer):
    """A text-prompted stand-in: name "nK" is one box at x = K mod 60, score K / 1000."""

    name = "named"
    label = "Named boxes"
    needs_text = True

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        self.prompts.append(text or "")
        numbers = [int(name[1:]) for name in split_prompt(text or "")]
        return sv.Detections(
            xyxy=np.array([[n % 60 * 3, 0, n % 60 * 3 + 2, 2] for n in numbers], dtype=np.float32),
            confidence=np.array([n / 1000 for n in numbers], dtype=np.float32),
        )


def test_many_names_are_proposed_in_batches_and_merged() -> None:
    proposer = NamedBoxes()
    source = BoxSource(proposer, ProposalOptions(max_count=100))
    names = [f"n{k}" for k in range(120)]
    boxes = source.boxes(Image.new("RGB", (200, 10)), names)
    assert len(proposer.prompts) == -(-120 // MAX_PROMPT_CLASSES)
    # Names K and K + 60 share a box: the union keeps the better-scored one of each pair.
    assert len(boxes.xyxy) == 60
    assert boxes.scores.max() == pytest.approx(0.119)
    assert boxes.scores.min() == pytest.approx(0.060)
    assert boxes.seconds is not None


@pytest.mark.parametrize(
    ("given", "scores", "expected_scores"),
    [
        ([[0, 0, 5, 5], [1, 1, 4, 4]], [0.9, 0.4], [0.9, 0.4]),  # boxes with scores
        ([[0, 0, 5, 5]], None, None),  # boxes without scores: COCO results score 1.0
        ([], None, None),  # an image with no boxes: FO1 is not asked
    ],
)
def test_given_boxes_win_over_the_proposer(
    given: list, scores: list | None, expected_scores: list | None
) -> None:
    proposer = NamedBoxes()
    boxes = BoxSource(proposer, ProposalOptions()).boxes(
        Image.new("RGB", (10, 10)), ["n1"], given, scores
    )
    assert boxes.xyxy.shape == (len(given), 4)
    assert (boxes.scores is None) == (expected_scores is None)
    if expected_scores is not None:
        assert boxes.scores.tolist() == expected_scores
    assert boxes.seconds is None
    assert proposer.prompts == []


def test_given_boxes_are_kept_as_a_proposers_would_be() -> None:
    """--threshold and --max-boxes hold for boxes given with the data (`--proposals`) too."""
    given = [[0, 0, 5, 5], [1, 1, 4, 4], [2, 2, 6, 6], [3, 3, 9, 9]]
    source = BoxSource(None, ProposalOptions(threshold=0.3, max_count=2))
    image = Image.new("RGB", (10, 10))
    scored = source.boxes(image, [], given, [0.2, 0.5, 0.9, 0.4])
    assert scored.xyxy.tolist() == [[2, 2, 6, 6], [1, 1, 4, 4]]
    assert scored.scores.tolist() == [0.9, 0.5]
    assert source.boxes(image, [], given).xyxy.tolist() == given[:2]  # no scores: the first


def test_given_boxes_are_cut_to_the_image_and_slivers_left_out_with_their_scores() -> None:
    given = [[-5, 0, 5, 5], [2, 2, 2.4, 8], [6, 6, 30, 30], [12, 0, 20, 5]]
    kept = BoxSource(None, ProposalOptions()).boxes(
        Image.new("RGB", (10, 10)), [], given, [0.1, 0.9, 0.5, 0.8]
    )
    assert kept.xyxy.tolist() == [[6, 6, 10, 10], [0, 0, 5, 5]]  # best first, as proposals
    assert kept.scores.tolist() == [0.5, 0.1]


def test_no_boxes_and_no_proposer_is_a_user_error() -> None:
    with pytest.raises(FO1Error, match="--proposer"):
        BoxSource(None, ProposalOptions()).boxes(Image.new("RGB", (10, 10)), ["cat"])


@pytest.mark.parametrize(
    ("given", "scores", "message"),
    [
        ([[1, 2, 3]], None, "must be \\[\\[x1"),  # three numbers
        ("oops", None, "must be numbers"),
        ([[1, 2, 30, 40]], [0.5, 0.6], "1 boxes but 2 scores"),
        # scores that would be written to the results file as NaN or Infinity, not JSON
        ([[1, 2, 30, 40]], [float("nan")], "scores must be finite numbers"),
        ([[1, 2, 30, 40]], [1e39], "scores must be finite numbers"),  # past float32
        ([[1, 2, float("nan"), 40]], None, "boxes must be finite numbers"),
        ([[0, 0, 5, 5], [30, 40, 10, 10]], None, "box #1 .* is inverted"),  # [x, y, w, h]
    ],
)
def test_malformed_boxes_of_an_item_are_its_own_error(given, scores, message) -> None:
    with pytest.raises(FO1Error, match=message):
        BoxSource(None, ProposalOptions()).boxes(Image.new("RGB", (50, 50)), [], given, scores)


def test_an_unforeseen_error_is_its_items_record_and_logged_in_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def work(item: int) -> dict:
        if item == 1:
            raise KeyError("bbox")
        return {"done": item}

    records = run([0, 1, 2], str, lambda: work, tmp_path / "out.json", {}, Shard())
    assert records == {
        "0": {"key": "0", "done": 0},
        "1": {"key": "1", "error": "KeyError: 'bbox'"},
        "2": {"key": "2", "done": 2},
    }
    assert "Item 1 failed unexpectedly" in caplog.text
    assert "Traceback" in caplog.text  # a bug is not hidden behind one line


def test_a_finished_run_asked_again_loads_nothing(tmp_path: Path) -> None:
    """Its scores are printed again without a minute of loading the model."""
    started = []

    def start() -> Callable[[int], dict]:
        started.append(True)
        return lambda item: {"done": item}

    first = run([0, 1], str, start, tmp_path / "out.json", {}, Shard())
    assert run([0, 1], str, start, tmp_path / "out.json", {}, Shard()) == first
    assert started == [True]


def test_an_items_image_is_read_as_stored_as_the_official_evaluation_reads_it(
    tmp_path: Path,
) -> None:
    """A dataset's boxes are in the pixels as stored: an image turned upside down by its EXIF
    orientation (3) would put every box on the wrong object, at the same size, unsaid."""
    image = Image.new("RGB", (60, 40), "white")
    image.paste((255, 0, 0), (0, 0, 10, 10))  # red in the stored top-left corner
    exif = image.getexif()
    exif[0x0112] = 3
    image.save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95)
    stored = open_item_image(tmp_path / "turned.jpg")
    assert stored.size == (60, 40) and stored.getpixel((2, 2))[0] > 200 > stored.getpixel((2, 2))[1]
    shown = open_named_image(tmp_path / "turned.jpg")  # the app's and the command line's
    assert shown.getpixel((57, 37))[0] > 200 > shown.getpixel((57, 37))[1]
