"""Resumable records, sharding and the timing summary of `fo1_core.evaluate`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fo1_core.errors import FO1Error
from fo1_core.evaluate.distributed import Shard, shard_from_env
from fo1_core.evaluate.records import RecordLog, check_settings, read_records
from fo1_core.evaluate.timing import StageTiming, summarize
from tests.conftest import REPO


def test_records_survive_a_line_cut_by_a_crash(tmp_path: Path) -> None:
    with RecordLog(tmp_path, rank=0) as log:
        log.append({"key": "1", "value": 1})
    with (tmp_path / "rank-0.jsonl").open("a") as file:
        file.write('{"key": "2", "val')  # the process died mid-write
    assert list(read_records(tmp_path)) == ["1"]
    with RecordLog(tmp_path, rank=0) as log:  # the resumed run redoes item 2
        log.append({"key": "2", "value": 2})
    assert read_records(tmp_path) == {"1": {"key": "1", "value": 1}, "2": {"key": "2", "value": 2}}


def _on_a_full_disk(max_bytes: int, body: str, folder: Path) -> str:
    """What `body` prints, run with `folder` as `FOLDER` in a process of its own whose files may
    hold at most `max_bytes`: the kernel, not a stand-in, refuses the write. It must end without
    a traceback."""
    script = f"""
import resource
from pathlib import Path
from fo1_core.errors import FO1Error
from fo1_core.evaluate.records import RecordLog, check_settings

resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes}))
FOLDER = Path({str(folder)!r})
try:
{textwrap.indent(body.strip(), "    ")}
except FO1Error as error:
    print(error)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


def test_a_record_that_cannot_be_written_is_one_message(tmp_path: Path) -> None:
    written = """
with RecordLog(FOLDER, rank=0) as log:
    log.append({"key": "1"})
    log.append({"key": "2", "answer": "x" * 2000})
"""
    printed = _on_a_full_disk(1024, written, tmp_path)
    assert f"could not write {tmp_path / 'rank-0.jsonl'}: File too large" in printed
    assert list(read_records(tmp_path)) == ["1"]  # the line cut short is redone next run


def test_settings_that_cannot_be_written_are_one_message(tmp_path: Path) -> None:
    printed = _on_a_full_disk(64, 'check_settings(FOLDER, {"checkpoint": "x" * 200})', tmp_path)
    assert f"could not write {tmp_path / 'settings.json'}: File too large" in printed
    assert list(tmp_path.iterdir()) == []  # no half-written draft left behind


def test_records_of_every_rank_are_read(tmp_path: Path) -> None:
    for rank in range(3):
        with RecordLog(tmp_path, rank) as log:
            log.append({"key": str(rank)})
    assert sorted(read_records(tmp_path)) == ["0", "1", "2"]


def test_an_item_done_after_failing_under_another_layout_counts_as_done(tmp_path: Path) -> None:
    """Failed in rank 3's file of a run of 4, done in rank 0's of a run alone: rank 3's file is
    read last, and its error had the last word, so the item failed for good."""
    (tmp_path / "rank-0.jsonl").write_text('{"key": "3", "value": 3}\n')
    (tmp_path / "rank-3.jsonl").write_text('{"key": "3", "error": "unreadable"}\n')
    assert read_records(tmp_path) == {"3": {"key": "3", "value": 3}}


def test_settings_are_kept_and_checked(tmp_path: Path) -> None:
    check_settings(tmp_path, {"checkpoint": "a", "threshold": None})
    check_settings(tmp_path, {"checkpoint": "a", "threshold": None})  # same run: fine
    assert json.loads((tmp_path / "settings.json").read_text())["checkpoint"] == "a"
    with pytest.raises(FO1Error, match="other settings \\(checkpoint\\)"):
        check_settings(tmp_path, {"checkpoint": "b", "threshold": None})


def test_a_file_where_the_records_folder_goes_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "counts.json.records"
    folder.write_text("not a folder")
    with pytest.raises(FO1Error, match=f"{folder} is a file, .*: remove it, or pass another"):
        check_settings(folder, {"checkpoint": "a"})


@pytest.mark.parametrize(
    "stored",
    [
        "",  # empty: the disk filled up, say
        '{"checkpoint": "a"',  # cut short
        '["checkpoint"]',  # JSON, but not settings
    ],
)
def test_damaged_settings_are_refused(tmp_path: Path, stored: str) -> None:
    (tmp_path / "settings.json").write_text(stored)
    with pytest.raises(FO1Error, match=f"not the settings of .*: delete {tmp_path} to start"):
        check_settings(tmp_path, {"checkpoint": "a"})


@pytest.mark.parametrize(
    ("rank", "world", "expected"),
    [
        (0, 1, [0, 1, 2, 3, 4]),  # one process takes everything
        (0, 2, [0, 2, 4]),  # rank 0 of 2: even positions
        (1, 2, [1, 3]),  # rank 1 of 2: odd positions
        (3, 4, [3]),  # the last rank of 4
        (5, 8, []),  # more ranks than items: some idle
    ],
)
def test_shard_takes_every_world_th_item(rank: int, world: int, expected: list[int]) -> None:
    assert Shard(rank, world).take(range(5)) == expected


@pytest.mark.parametrize(
    ("requested", "shard", "expected"),
    [
        ("cpu", Shard(1, 2, 1), "cpu"),  # an explicit device other than cuda is kept
        ("cuda", Shard(3, 4, 1), "cuda:1"),  # each rank its local GPU
        ("cuda", Shard(), "cuda"),  # one process: whatever cuda means here
        ("cuda:2", Shard(1, 2, 1), "cuda:2"),  # an explicit GPU is kept
    ],
)
def test_shard_device(requested: str, shard: Shard, expected: str) -> None:
    assert shard.device(requested) == expected


def test_shard_from_the_launchers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert shard_from_env() == Shard(5, 8, 1)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    assert shard_from_env() == Shard(0, 1, 0)


def test_timing_summary() -> None:
    timings = [
        {"proposals_s": 1.0, "fo1_s": 2.0},
        {"proposals_s": 3.0, "fo1_s": 4.0},
        {"fo1_s": 9.0},  # boxes came with the data: no proposal time
    ]
    assert summarize(timings) == [
        StageTiming("proposals_s", 2, 2.0, 2.0, 3.0),
        StageTiming("fo1_s", 3, 5.0, 4.0, 9.0),
    ]
