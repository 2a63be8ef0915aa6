"""Resumable results: one JSON line per finished item, appended and flushed as it finishes.

Each rank appends to its own file in a shared folder (`<out>.records/rank-R.jsonl`), so ranks
never write to the same file. Finished keys are read from *every* file in the folder, so a run
can resume with a different number of ranks. A line cut short by a crash is ignored (that item
is simply done again). The folder also keeps the run's settings, so resuming with different
ones — whose records would mix two experiments — is refused.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from contextlib import suppress
from pathlib import Path

from fo1_core.errors import FO1Error

logger = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"


def records_folder(out: Path) -> Path:
    return out.with_name(out.name + ".records")


def check_settings(folder: Path, settings: dict) -> None:
    """Stores `settings` on the first run; on a resumed run, refuses settings that differ."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FO1Error(
            f"{folder} is a file, where this run keeps its records: remove it, or pass another "
            "--out."
        ) from None
    except OSError as error:
        raise FO1Error(f"could not make {folder}: {error.strerror or error}.") from error
    path = folder / SETTINGS_FILE
    # Ranks start together: the file appears whole (hard link of a finished temporary file) and
    # only the first rank's link succeeds; the others compare against it.
    draft = folder / f".{SETTINGS_FILE}.{uuid.uuid4().hex}"
    try:
        draft.write_text(json.dumps(settings, indent=2, sort_keys=True))
        with suppress(FileExistsError):
            os.link(draft, path)
    except OSError as error:
        raise FO1Error(
            f"could not write {path}: {error.strerror or error}. Make room, or pass another --out."
        ) from error
    finally:
        with suppress(OSError):
            draft.unlink()
    refuse_other_settings(folder, settings)


def refuse_other_settings(folder: Path, settings: dict) -> None:
    """Raises `FO1Error` if `folder` holds records of a run with settings other than
    `settings`; writes nothing (a check before the model loads, `check_settings` after)."""
    path = folder / SETTINGS_FILE
    if not path.exists():
        return
    stored = _read_settings(path)
    changed = sorted(k for k in {*stored, *settings} if stored.get(k) != settings.get(k))
    if changed:
        raise FO1Error(
            f"{folder} holds results of a run with other settings ({', '.join(changed)}). "
            "Pass another --out, or delete that folder to start over."
        )


def _read_settings(path: Path) -> dict:
    """The settings a run stored; a file cut short or edited by hand is an error saying what
    to do, as its records cannot be told to belong to this run."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        stored = None
    if not isinstance(stored, dict):
        raise FO1Error(
            f"{path} is not the settings of an earlier run (empty or damaged), so its records "
            f"cannot be trusted: delete {path.parent} to start over, or pass another --out."
        )
    return stored


def read_records(folder: Path) -> dict[str, dict]:
    """Every complete record in the folder, by key: a later line for the same key wins, but an
    error never over a success. An item failed, then done by a run of another number of ranks
    (a torchrun resumed alone, say), has the two lines in two ranks' files, read in name order."""
    records: dict[str, dict] = {}
    for path in sorted(folder.glob("rank-*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning(
                    "%s line %d is incomplete (a crash?); redoing its item", path, number
                )
                continue
            key = str(record["key"])
            if "error" in record and "error" not in records.get(key, record):
                continue
            records[key] = record
    return records


class RecordLog:
    """Appends this rank's records; each line is flushed to disk before the next item starts."""

    def __init__(self, folder: Path, rank: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"rank-{rank}.jsonl"
        self._file = self.path.open("a+", encoding="utf-8")
        # After a crash mid-line the file ends without a newline: start on a fresh line.
        if self._file.tell() > 0:
            self._file.seek(self._file.tell() - 1)
            if self._file.read(1) != "\n":
                self._file.write("\n")

    def append(self, record: dict) -> None:
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as error:
            raise FO1Error(
                f"could not write {self.path}: {error.strerror or error}. The items recorded "
                "so far are kept: make room and run again with the same --out."
            ) from error

    def close(self) -> None:
        # Every append flushes: only the line whose append failed, already reported, is left.
        with suppress(OSError):
            self._file.close()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
