"""Writing the file a command line was asked for: never over one of its own inputs, and whole
or not at all. Shared by `python -m detect_tools` and FO1's command lines."""

from __future__ import annotations

import os
from pathlib import Path


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
