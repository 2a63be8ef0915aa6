"""`python -m fo1_core` answers one question from the shell and writes a JSON record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import REPO, RIGGED_ANSWER


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fo1_core", *args],
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
    assert len(record["token_ids"]) == 10
    assert "Please detect red circle" in record["prompt"]
    assert set(record["timings"]) >= {"first_token_s", "decode_tokens_per_s", "total_s"}


def test_cli_bad_input_is_one_clear_line(answering_checkpoint: Path, tmp_path: Path) -> None:
    Image.new("RGB", (90, 60), "white").save(tmp_path / "image.png")
    (tmp_path / "boxes.json").write_text(json.dumps([[50, 5, 10, 50]]))
    done = _run(
        "--checkpoint", str(answering_checkpoint), "--image", str(tmp_path / "image.png"),
        "--boxes", str(tmp_path / "boxes.json"), "--text", "cat", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 2
    assert "error: Box #0 is inverted" in done.stderr
    assert "Traceback" not in done.stderr
