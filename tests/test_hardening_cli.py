"""`python -m fo1_core` given bad files and text: one `error:` line and exit code 2, or an answer;
and every file argument of the command lines given a pipe, a device or a folder.

Each case starts Python and loads the rigged checkpoint (seconds each), so the table is short
and every row is an input class the API tests cannot send (files on disk, command-line bytes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, RIGGED_ANSWER

pytestmark = pytest.mark.slow

GOOD_BOXES = [[1, 1, 30, 30], [40, 5, 80, 50], [5, 35, 20, 55]]


def _files(folder: Path) -> None:
    Image.new("RGB", (90, 60), "white").save(folder / "good.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not a PNG")
    (folder / "zero.png").write_bytes(b"")
    (folder / "good.json").write_text(json.dumps(GOOD_BOXES))
    (folder / "nan.json").write_text("[[NaN, 1, 30, 30]]")
    (folder / "sliver.json").write_text("[[1, 1, 30, 30], [10, 10, 10.2, 50]]")
    (folder / "not-json.json").write_text("[[1, 2, 3, 4]")
    (folder / "object.json").write_text('{"boxes": 3}')
    (folder / "latin1.json").write_bytes(b"[[1, 1, 30, 30]] # caf\xe9")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "long.json").write_text(f"[[0, 0, {'9' * 5000}, 30]]")
    (folder / "padded.json").write_text(json.dumps(GOOD_BOXES) + " " * 10_999_000)
    with open(folder / "huge.json", "wb") as huge:  # sparse: it takes no room on disk
        huge.truncate(2 * 10**9)


def _run(command: list, folder: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, timeout=timeout)


CASES = [
    # an image file that does not exist
    (["--image", "missing.png", "--boxes", "good.json"], 2, "The image missing.png is not there"),
    # a file that only starts like a PNG
    (["--image", "corrupt.png", "--boxes", "good.json"], 2, "corrupt.png: The file is not an"),
    # an empty file
    (["--image", "zero.png", "--boxes", "good.json"], 2, "not an image this app can read"),
    # a folder where the image should be
    (["--image", ".", "--boxes", "good.json"], 2, "the image .: it is a folder"),
    # boxes that are not JSON
    (["--image", "good.png", "--boxes", "not-json.json"], 2, "Could not read boxes"),
    # a JSON object instead of a list
    (["--image", "good.png", "--boxes", "object.json"], 2, "list"),
    # boxes that are not UTF-8 text
    (["--image", "good.png", "--boxes", "latin1.json"], 2, "latin1.json: it is not UTF-8 text"),
    # lists within lists past Python's recursion limit
    (["--image", "good.png", "--boxes", "deep.json"], 2, "deep.json: its lists or objects nest"),
    # an integer past Python's 4300-digit limit for reading one
    (["--image", "good.png", "--boxes", "long.json"], 2, "long.json: it holds a number with too"),
    # good boxes padded past the 10 MB a boxes file may hold, and 2 GB: refused unread
    (["--image", "good.png", "--boxes", "padded.json"], 2, "padded.json: it is 11 MB; at most 10"),
    (["--image", "good.png", "--boxes", "huge.json"], 2, "huge.json: it is 2,000 MB; at most 10"),
    # a box a fifth of a pixel wide: refused, naming it and its size
    (
        ["--image", "good.png", "--boxes", "sliver.json", "--text", "cup"],
        2,
        "Box #1 [10.0, 10.0, 10.2, 50.0] is 0.2×40",
    ),
    # NaN, which Python's JSON reader accepts
    (["--image", "good.png", "--boxes", "nan.json"], 2, "not a number"),
    # bytes that are not UTF-8 in the text (Python passes them on as lone surrogates)
    ([b"--image", b"good.png", b"--boxes", b"good.json", b"--text", b"cup \xff\xfe"], 0, ""),
    # 100 kB of text
    (["--image", "good.png", "--boxes", "good.json", "--text", "x" * 100_000], 2, "characters"),
    # no tokens to answer with
    (["--image", "good.png", "--max-new-tokens", "0"], 2, "at least 1"),
    # results into a folder that does not exist, or onto a folder: refused before loading
    (["--image", "good.png", "--json", "nowhere/a.json"], 2, "'nowhere' does not exist"),
    (["--image", "good.png", "--json", "."], 2, "could not write '.': it is a folder"),
    # results onto the command's own input: refused, the input kept
    (["--image", "good.png", "--json", "good.png"], 2, "--json good.png is the --image file"),
    (["--image", "good.png", "--boxes", "good.json", "--json", "./good.json"], 2, "--boxes file"),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES)
def test_cli_bad_input(answering_checkpoint: Path, tmp_path: Path, args, code, message) -> None:
    _files(tmp_path)
    command = [sys.executable, "-m", "fo1_core", "--checkpoint", str(answering_checkpoint)]
    command += ["--device", "cpu", *args]
    done = _run(command, tmp_path, timeout=300)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == code, stderr
    assert "Traceback" not in stderr
    if code == 0:
        assert done.stdout.decode().startswith(RIGGED_ANSWER)
    else:
        assert "error: " in stderr and message in stderr, stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "free", "--text", "What is <region5>?"], "refers to <region5>, but the"),
        (["--task", "OD_template"], "needs input: type the categories"),
        # nothing left once the model's own strings are taken out
        (["--task", "OD_template", "--text", "<image><|im_start|>"], "needs input: type the"),
    ],
)
def test_a_prompt_that_cannot_be_asked_is_refused_before_the_model_loads(
    answering_checkpoint: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    _files(tmp_path)
    command = [sys.executable, "-m", "fo1_core", "--checkpoint", str(answering_checkpoint)]
    done = _run([*command, "--image", "good.png", "--boxes", "good.json", *args], tmp_path, 300)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and "error: " in stderr and message in stderr, stderr
    assert "Loaded" not in stderr  # no minutes of loading the 3B model for a typo


def test_text_a_task_does_not_use_is_said(answering_checkpoint: Path, tmp_path: Path) -> None:
    _files(tmp_path)
    command = [sys.executable, "-m", "fo1_core", "--checkpoint", str(answering_checkpoint)]
    command += ["--image", "good.png", "--boxes", "good.json", "--device", "cpu"]
    done = _run([*command, "--task", "Grounding_template", "--text", "a cat"], tmp_path, 300)
    assert done.returncode == 0
    assert "--text is not used: Grounding_template takes none." in done.stderr.decode()
    assert done.stderr.decode().count("not used") == 1


PIPE = "a named pipe"
DEVICE = "a device"
NOT_REGULAR_CASES = [
    # a named pipe: reading it waits for a writer that never comes
    (["fo1_core", "--image", "pipe"], "the image pipe", PIPE),
    (["fo1_core", "--image", "good.png", "--boxes", "pipe"], "boxes from pipe", PIPE),
    (["detect_tools", "--proposer", "offline", "--image", "pipe"], "the image pipe", PIPE),
    (["fo1_core.evaluate", "count", "--dataset", "pipe"], "pipe", PIPE),
    (["fo1_core.evaluate", "coco", "--annotations", "pipe"], "the annotations pipe", PIPE),
    (
        ["fo1_core.evaluate", "coco", "--annotations", "coco.json", "--proposals", "pipe"],
        "pipe",
        PIPE,
    ),
    # a device that never ends
    (["fo1_core", "--image", "/dev/zero"], "the image /dev/zero", DEVICE),
    (["fo1_core", "--image", "good.png", "--boxes", "/dev/zero"], "boxes from /dev/zero", DEVICE),
    # a folder
    (["fo1_core", "--image", "good.png", "--boxes", "."], "boxes from .", "a folder"),
]
EVALUATION_OPTIONS = {
    "count": ["--proposer", "offline", "--out", "out.json"],
    "coco": ["--images", ".", "--proposer", "offline", "--out", "out.json"],
}
COCO = {
    "images": [{"id": 1, "file_name": "good.png", "width": 90, "height": 60}],
    "annotations": [],
    "categories": [{"id": 1, "name": "cup"}],
}


@pytest.mark.parametrize(("args", "named", "kind"), NOT_REGULAR_CASES)
def test_a_file_that_is_no_regular_file_is_refused(tmp_path: Path, args, named, kind) -> None:
    _files(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "coco.json").write_text(json.dumps(COCO))
    module, *options = args
    command = [sys.executable, "-m", module, *options, "--checkpoint", "never-loaded"]
    if module == "fo1_core.evaluate":
        command += EVALUATION_OPTIONS[options[0]]
    # A regression waits or reads forever: the timeout fails it instead.
    done = _run(command, tmp_path, timeout=60)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 2, stderr
    assert f"error: Could not read {named}: it is {kind}; it must be a regular file." in stderr
    assert "Traceback" not in stderr
