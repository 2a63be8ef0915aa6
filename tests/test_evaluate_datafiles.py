"""Reading the evaluation's JSON files: a file Python's JSON reader chokes on is one message
naming it, whichever of the files it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fo1_core.cli import MAX_DATA_FILE_BYTES
from fo1_core.errors import FO1Error
from fo1_core.evaluate.coco import read_annotations
from fo1_core.evaluate.datafiles import as_whole_number, read_items


@pytest.mark.parametrize(
    "reader",
    [
        read_items,  # count datasets and COCO proposals
        read_annotations,  # COCO instances files
    ],
)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        # bytes that are not UTF-8
        (b'\xff\xfe[{"id": 1}]', "is not UTF-8 text"),
        # lists within lists past Python's recursion limit
        (b"[" * 100_000 + b"]" * 100_000, "nest too deeply"),
        # an integer past Python's 4300-digit limit for reading one
        (b'[{"answer": ' + b"7" * 5000 + b"}]", "a number with too many digits"),
        # a JSON list cut short
        (b'[{"id": 1}', "is not valid JSON"),
    ],
)
def test_unreadable_json_is_one_message_naming_the_file(
    tmp_path: Path, reader: Callable[[Path], object], content: bytes, message: str
) -> None:
    path = tmp_path / "data.json"
    path.write_bytes(content)
    with pytest.raises(FO1Error, match=message) as error:
        reader(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("reader", [read_items, read_annotations])
def test_a_data_file_past_the_cap_is_refused_unread(
    tmp_path: Path, reader: Callable[[Path], object]
) -> None:
    path = tmp_path / "data.json"
    with path.open("wb") as file:  # sparse: it takes no room on disk
        file.truncate(MAX_DATA_FILE_BYTES + 1)
    with pytest.raises(FO1Error, match="data.json: it is 2,000.1 MB; at most 2,000 MB is read"):
        reader(path)


def test_a_bad_json_line_is_named_by_its_number(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1}\n\n{"id": 2\n')
    with pytest.raises(FO1Error, match=f"{path} line 3: it is not valid JSON"):
        read_items(path)


def test_one_object_written_over_several_lines_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('{\n  "items": [{"id": 1}]\n}\n')
    with pytest.raises(FO1Error, match="holds one JSON object: write a list of items"):
        read_items(path)
    path.write_text('{"id": 1}\n')  # one item a line, one line
    assert read_items(path) == [{"id": 1}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        ("3", 3),
        (3.0, 3),
        (10**400, 10**400),  # past float's range: float() would overflow
        (2.5, None),  # a fraction
        ("three", None),
        ("1e400", None),  # infinity
        (True, None),  # JSON true is no number
        ([3], None),
        (None, None),
    ],
)
def test_as_whole_number(value: object, expected: int | None) -> None:
    assert as_whole_number(value) == expected


def test_a_file_that_starts_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Some editors (Notepad among them) start a UTF-8 file with one; JSON's reader refused it."""
    path = tmp_path / "data.json"
    path.write_bytes(b'\xef\xbb\xbf[{"id": 1}]')
    assert read_items(path) == [{"id": 1}]
