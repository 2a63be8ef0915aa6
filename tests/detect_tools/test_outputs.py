from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from detect_tools.outputs import refuse_overwriting, write_atomically


def test_a_write_that_fails_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    out.write_text('{"done": true}')
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limits[1]))  # Python ignores SIGXFSZ
    try:
        with pytest.raises(OSError):
            write_atomically(out, "x" * 4096)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert out.read_text() == '{"done": true}'
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]  # no partial file left
    write_atomically(out, "é")
    assert out.read_bytes() == "é".encode()


def test_a_link_is_written_through_and_a_pipe_written_to(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("{}")
    (tmp_path / "link.json").symlink_to(real)
    write_atomically(tmp_path / "link.json", "[1]")
    assert (tmp_path / "link.json").is_symlink() and real.read_text() == "[1]"
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomically(pipe, "through")
        assert os.read(reader, 100) == b"through" and pipe.exists() and not pipe.is_file()
    finally:
        os.close(reader)


def test_an_input_is_refused_as_the_output_however_spelled(tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"...")
    (tmp_path / "link.jpg").symlink_to(image)
    with pytest.raises(ValueError, match="--out .*link.jpg is the --image file"):
        refuse_overwriting(tmp_path / "link.jpg", "out", ValueError, image=image, boxes=None)
    refuse_overwriting(tmp_path / "new.json", "out", ValueError, image=image)
