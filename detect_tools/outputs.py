"""Writing what a command line was asked for: a file never over one of its own inputs, and
whole or not at all; standard output until its reader stops. Shared by `python -m detect_tools`
and FO1's command lines."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

CLOSED_PIPE_STATUS = 141
"""A program's status when killed for writing to a closed pipe (128 + SIGPIPE), as the shell
reports `yes | head`'s `yes`."""


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Exits with `main()`'s status. A reader that stops reading (`| head`, `| less` closed)
    ends the program quietly, as it ends other command-line tools, instead of with a
    traceback."""
    try:
        try:
            status = main()
        finally:  # an exit from inside `main` too (argparse's, after --help)
            sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes standard output again at exit, which would fail and be reported.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = CLOSED_PIPE_STATUS
    sys.exit(status)


def output_file(text: str) -> Path:
    """An argparse type for a file to write: refused before anything loads when it could not be
    written, rather than after a run of minutes or hours."""
    path = Path(text)
    if path.is_dir():
        problem = "it is a folder; name a file in it"
    elif path.exists() and not path.is_file():  # a device or a pipe: written to as it is
        if os.access(path, os.W_OK):
            return path
        problem = "permission denied"
    elif not path.parent.is_dir():
        problem = f"the folder {str(path.parent)!r} does not exist"
    elif not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        problem = "permission denied"
    else:
        return path
    raise argparse.ArgumentTypeError(f"could not write {text!r}: {problem}")


def refuse_overwriting(
    out: Path, out_option: str, error: type[Exception], **inputs: Path | None
) -> None:
    """Raises `error` when `out` (given as `--{out_option}`) is one of the run's input files
    (`inputs` by option name), however it is spelled: through a link, say."""
    for option, given in inputs.items():
        if given is not None and same_file(out, given):
            raise error(
                f"--{out_option} {out} is the --{option} file: writing would overwrite it. "
                f"Pass another --{out_option}."
            )


def same_file(out: Path, given: Path) -> bool:
    """Whether `out` names the existing file `given`, through a link or another spelling."""
    return out.exists() and given.exists() and out.samefile(given)


def write_atomically(path: Path, text: str) -> None:
    """Writes `text` to `path` as UTF-8; a write that fails (a full disk, a size limit) leaves
    what `path` held before, not half a file. A link is written through, to the file it names;
    a device or a pipe (`/dev/stdout`) is written to as it is. Raises `OSError`."""
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        path.write_text(text, encoding="utf-8")
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_output(path: Path, text: str) -> int:
    """`write_atomically` for a command line: its exit status, 0, or 2 once it has said why the
    file could not be written (a full disk, a permission) in one line rather than a
    traceback."""
    try:
        write_atomically(path, text)
    except OSError as error:
        print(f"error: could not write {path}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0
