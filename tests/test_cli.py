"""`python -m fo1_core` answers one question from the shell and writes a JSON record; it and
`python -m fo1_core.evaluate` refuse URLs where files belong."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoTokenizer

from detect_tools.outputs import CLOSED_PIPE_STATUS
from fo1_core.__main__ import main as cli_main
from fo1_core.evaluate.__main__ import main as evaluate_main
from tests.conftest import REPO, RIGGED_ANSWER


def _run(*args: str, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *python, "-m", "fo1_core", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_prints_the_answer_and_writes_json(answering_checkpoint: Path, tmp_path: Path) -> None:
    Image.new("RGB", (90, 60), "white").save(tmp_path / "image.png")
    (tmp_path / "boxes.json").write_text(
        json.dumps([[1, 1, 30, 30], [40, 5, 80, 50], [5, 35, 20, 55]])
    )
    out = tmp_path / "out.json"
    done = _run(
        "--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "image.png"),
        "--boxes", str(tmp_path / "boxes.json"), "--task", "OD_template", "--text", "red circle",
        "--device", "cpu", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == RIGGED_ANSWER + "<|im_end|>"
    record = json.loads(out.read_text())
    assert record["stop_reason"] == "eos"
    tokenizer = AutoTokenizer.from_pretrained(str(answering_checkpoint))
    answer_ids = tokenizer(RIGGED_ANSWER + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert record["token_ids"] == answer_ids
    assert "Please detect red circle" in record["prompt"]
    assert set(record["timings"]) >= {"first_token_s", "decode_tokens_per_s", "total_s"}
    assert record["region_confidence"] == {"0": 1.0, "2": 1.0}  # the rigged model is certain


def test_cli_warns_that_a_box_task_without_boxes_cannot_mean_anything(
    answering_checkpoint: Path, tmp_path: Path
) -> None:
    Image.new("RGB", (90, 60), "white").save(tmp_path / "image.png")
    done = _run(
        "--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "image.png"),
        "--task", "OD_Counting_template", "--text", "cats", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # still asked, as the official pipeline would
    assert "The task 'Counting' answers by naming boxes, but there are none" in done.stderr
    assert "give them with --boxes" in done.stderr
    # A boxes file holding none is named; an image it cannot read is the one line said.
    (tmp_path / "boxes.json").write_text("[]")
    done = _run(
        "--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "missing.png"),
        "--boxes", str(tmp_path / "boxes.json"), "--task", "OD_template", "--text", "cats",
    )  # fmt: skip
    assert done.returncode == 2 and "there are none" not in done.stderr, done.stderr
    done = _run(
        "--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "image.png"),
        "--boxes", str(tmp_path / "boxes.json"), "--task", "OD_template", "--text", "cats",
        "--max-new-tokens", "4", "--device", "cpu",
    )  # fmt: skip
    assert f"{tmp_path / 'boxes.json'} holds none" in done.stderr, done.stderr


def test_cli_bad_input_is_one_clear_line_before_torch_loads(tmp_path: Path) -> None:
    """A mistake in the files or text is told at once: before the model, and before torch and
    transformers, which take seconds to import."""
    Image.new("RGB", (90, 60), "white").save(tmp_path / "image.png")
    (tmp_path / "boxes.json").write_text(json.dumps([[50, 5, 10, 50]]))
    done = _run(
        "--checkpoint", str(tmp_path / "never-loaded"), "--image", str(tmp_path / "image.png"),
        "--boxes", str(tmp_path / "boxes.json"), "--text", "cat", "--device", "cpu",
        python=("-X", "importtime"),
    )  # fmt: skip
    assert done.returncode == 2
    assert "error: Box #0 is inverted" in done.stderr
    assert "Traceback" not in done.stderr
    timed = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in timed}
    assert "fo1_core.inputs" in imported and not imported & {"torch", "transformers"}


def test_cli_tells_of_the_frames_it_skips_and_the_regions_the_answer_names_without_a_box(
    answering_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The answer names regions 0 and 2, of one box; the image is an animation of 3 frames."""
    frames = [Image.new("RGB", (90, 60), color) for color in ("white", "red", "blue")]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:])
    (tmp_path / "boxes.json").write_text("[[1, 1, 30, 30]]")
    out = tmp_path / "out.json"
    argv = ["--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "anim.webp")]
    argv += ["--boxes", str(tmp_path / "boxes.json"), "--text", "red circle", "--device", "cpu"]
    assert cli_main([*argv, "--json", str(out)]) == 0
    told = ["The image has 3 frames; FO1 reads the first only.", "Region 2 does not exist"]
    assert all(notice in caplog.text for notice in told), caplog.text
    record = json.loads(out.read_text())
    assert [any(notice in line for line in record["notices"]) for notice in told] == [True, True]
    assert record["region_confidence"] == {"0": 1.0}  # no box, no confidence in one


def test_cli_reads_proposals_and_says_when_the_answer_is_cut(
    answering_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`python -m detect_tools --json` output is a boxes file; a cut answer is said to be."""
    Image.new("RGB", (90, 60), "white").save(tmp_path / "image.png")
    proposals = [{"box": [1, 1, 30, 30], "score": 0.9}, {"box": [40, 5, 80, 50], "score": 0.5}]
    boxes = tmp_path / "proposals.json"
    boxes.write_text(json.dumps({"proposer": "offline", "count": 2, "proposals": proposals}))
    out = tmp_path / "out.json"
    argv = ["--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "image.png")]
    argv += ["--boxes", str(boxes), "--text", "cat", "--device", "cpu", "--json", str(out)]
    assert cli_main([*argv, "--max-new-tokens", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() and RIGGED_ANSWER.startswith(printed.out.strip())
    assert "cut at --max-new-tokens 2" in caplog.text
    assert "<region1>" in json.loads(out.read_text())["prompt"]


def test_cli_reads_the_images_boxes_from_a_labelling_tools_file(
    answering_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dataset's COCO file: the boxes of the image named as `--image`'s file, as corners,
    scaled where the file records the image at another size; a Pascal VOC annotation's boxes,
    LabelMe's, and a CVAT export's of the image, also in the ZIP archive it downloads as; a
    YOLO label file's lines."""
    caplog.set_level(logging.INFO)
    Image.new("RGB", (90, 60), "white").save(tmp_path / "image.png")
    labelled = {"id": 2, "file_name": "val/image.png", "width": 180, "height": 120}
    document = {
        "images": [{"id": 1, "file_name": "other.png"}, labelled],
        "annotations": [
            {"id": 1, "image_id": 2, "bbox": [1, 1, 29, 29]},
            {"id": 2, "image_id": 1, "bbox": [5, 5, 9, 9]},
            {"id": 3, "image_id": 2, "bbox": [40, 5, 40, 45]},
        ],
    }
    boxes = tmp_path / "coco.json"
    boxes.write_text(json.dumps(document))
    out = tmp_path / "out.json"
    argv = ["--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "image.png")]
    argv += ["--boxes", str(boxes), "--text", "cat", "--device", "cpu", "--json", str(out)]
    assert cli_main([*argv, "--max-new-tokens", "2"]) == 0
    prompt = json.loads(out.read_text())["prompt"]
    assert "<region1>" in prompt and "<region2>" not in prompt
    assert (
        f"The boxes of {boxes} were scaled from the 180×120 image the COCO file records to this "
        "90×60 one." in caplog.messages
    )
    voc = tmp_path / "image.xml"  # a Pascal VOC annotation: its objects' boxes
    voc.write_text(
        "<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax><ymax>30</ymax>"
        "</bndbox></object></annotation>"
    )
    argv[argv.index(str(boxes))] = str(voc)
    assert cli_main([*argv, "--max-new-tokens", "2"]) == 0
    prompt = json.loads(out.read_text())["prompt"]
    assert "<region0>" in prompt and "<region1>" not in prompt
    argv[argv.index(str(voc))] = str(boxes)
    (tmp_path / "image.png").rename(tmp_path / "photo.png")
    argv[argv.index(str(tmp_path / "image.png"))] = str(tmp_path / "photo.png")
    assert cli_main(argv) == 2
    assert "holds boxes of 2 images (image.png, other.png): none is named photo.png" in (
        capsys.readouterr().err
    )
    labelme = tmp_path / "photo.json"  # LabelMe's: a rectangle, and a point, which has no box
    shapes = [{"points": [[1, 1], [30, 30]], "shape_type": "rectangle"}]
    shapes.append({"points": [[5, 5]], "shape_type": "point"})
    labelme.write_text(json.dumps({"shapes": shapes}))
    argv[argv.index(str(boxes))] = str(labelme)
    assert cli_main(argv) == 2
    assert "Box #1 is a LabelMe point, which has no area" in capsys.readouterr().err
    cvat = tmp_path / "annotations.xml"  # CVAT's, of two images: photo.png's two boxes
    cvat.write_text(
        '<annotations><image name="a.png"><box xtl="1" ytl="1" xbr="9" ybr="9"/></image>'
        '<image name="images/photo.png" width="180" height="120">'
        '<box xtl="2" ytl="2" xbr="60" ybr="60"/><polygon points="80,10;120,10;100,90"/>'
        "</image></annotations>"
    )
    export = tmp_path / "task.zip"  # that file as CVAT's export downloads
    with zipfile.ZipFile(export, "w") as written:
        written.write(cvat, "annotations.xml")
    yolo = tmp_path / "photo.txt"  # a YOLO label file beside the image: three boxes
    yolo.write_text("0 0.5 0.5 0.2 0.2\n1 0.25 0.5 0.5 0.5 0.91\n2 0.1 0.1 0.3 0.1 0.2 0.4\n")
    for given in (cvat, export, yolo):
        argv[argv.index("--boxes") + 1] = str(given)
        assert cli_main([*argv, "--max-new-tokens", "2"]) == 0
        prompt = json.loads(out.read_text())["prompt"]
        assert ("<region2>" in prompt) == (given == yolo) and "<region3>" not in prompt


@pytest.mark.parametrize(
    "argv",
    [
        ["--image", "https://example.com/cat.jpg"],
        ["--image", "HTTP://example.com/cat.jpg"],  # schemes have no case
        ["--image", "ftp://example.com/cat.jpg"],
        ["--image", "data:image/png;base64," + "A" * 10_000],  # cut in the message
        ["--image", "cat.jpg", "--boxes", "https://example.com/boxes.json"],
    ],
)
def test_cli_refuses_a_url_before_loading_anything(
    argv: list[str], capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit:
        cli_main(["--checkpoint", "never/loaded", *argv])
    assert exit.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "is a URL; this tool reads local files only: download it first" in error
    assert len(error) < 300


@pytest.mark.parametrize(
    "argv",
    [
        ["count", "--dataset", "https://example.com/items.jsonl"],
        ["count", "--dataset", "items.jsonl", "--images", "https://example.com/images/"],
        ["coco", "--images", ".", "--annotations", "https://example.com/instances.json"],
    ],
)
def test_evaluation_refuses_a_url_before_loading_anything(
    argv: list[str], capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit:
        evaluate_main([*argv, "--out", "never.json"])
    assert exit.value.code == 2
    assert "is a URL; this tool reads local files only" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["detect_tools", "--proposer", "offline", "--image", "examples/coffee.jpg"],
        ["fo1_core", "--image", "examples/coffee.jpg", "--task", "free", "--text", "What is it?"],
    ],
)
def test_a_reader_that_stops_reading_ends_the_command_quietly(
    command: list[str], answering_checkpoint: Path
) -> None:
    # As `python -m ... | head -0`: the reader is gone before anything is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    if command[0] == "fo1_core":
        command += ["--checkpoint", str(answering_checkpoint), "--device", "cpu"]
    try:
        done = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert done.returncode == CLOSED_PIPE_STATUS
    assert b"Error" not in done.stderr  # no traceback: what it logs before writing stays
