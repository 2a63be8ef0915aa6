"""A boxes file as the user has it: a file of labels, or a labelling tool's export as it
downloads, a ZIP archive (CVAT's, Label Studio's, Roboflow's …), of which the file holding the
labels of the user's image is read without unpacking the rest; and the boxes its text holds.
Light (no torch)."""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.sax.saxutils import escape

from detect_tools.images import refuse_special_file
from fo1_core.box_files import BoxesRead, is_named, unwrap_boxes, xml_boxes
from fo1_core.box_lines import line_corners, numbered_lines, text_kind
from fo1_core.cli import (
    MAX_BOXES_FILE_BYTES,
    parse_json,
    read_text,
    refuse_too_large,
    utf8_text,
)
from fo1_core.errors import FO1Error

LABEL_SUFFIXES = (".json", ".xml", ".txt")
"""The files of an archive that may hold labels: COCO, LabelMe, Label Studio, VOC, CVAT, YOLO."""
MAX_FILES_SEARCHED = 20
"""The most files of an archive read in search of one naming the image: an export holds one or
a few (COCO's splits); an archive of thousands is no labelling tool's export."""


@dataclass(frozen=True)
class BoxesText:
    """The text of a boxes file, and its name as the user knows it."""

    text: str
    source: str
    """`labels.json`, or `labels/cat.txt in export.zip`."""


def boxes_in_text(labels: BoxesText, image_name: str, size: tuple[int, int]) -> BoxesRead:
    """The boxes `labels` holds for the image `image_name` of `size` as shown: lines of corners
    or YOLO labels (`line_corners`), a Pascal VOC or CVAT annotation, or a JSON document (a list,
    or a COCO, LabelMe or Label Studio file: `unwrap_boxes`), scaled to `size` where the file
    records its image at another size."""
    kind = text_kind(labels.text)
    if kind == "lines":
        return BoxesRead([line_corners(line, n, *size) for n, line in numbered_lines(labels.text)])
    if kind == "xml":
        return xml_boxes(labels.text, image_name, size)
    return unwrap_boxes(parse_json(labels.text, labels.source), image_name, size)


def boxes_file_text(path: Path, name: str, image_name: str | None) -> BoxesText:
    """The text of the boxes file at `path` (named `name` to the user), or, of a ZIP archive, of
    its file holding the labels of the image named `image_name`: the file of the image's own name
    (a YOLO, VOC or LabelMe export's `labels/cat.txt`, also as the tool renamed the image:
    `is_named`), else the one that names the image (a COCO, CVAT or Label Studio export's), else
    its only JSON or XML file."""
    refuse_special_file(path, FO1Error, name)
    if not zipfile.is_zipfile(path):
        return BoxesText(read_text(path, name, MAX_BOXES_FILE_BYTES), name)
    try:
        with zipfile.ZipFile(path) as archive:
            return _labels_in(archive, name, Path(image_name).name if image_name else None)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
        raise FO1Error(f"Could not read {name}: it is a damaged ZIP archive ({error}).") from None
    except (RuntimeError, NotImplementedError) as error:  # encrypted, or an unknown compression
        raise FO1Error(f"Could not read {name}: {error}.") from None


def _labels_in(archive: zipfile.ZipFile, name: str, image_name: str | None) -> BoxesText:
    files = [
        info
        for info in archive.infolist()
        # A damaged directory can give a file no name, which zipfile's is_dir cannot take.
        if info.filename
        and not info.is_dir()
        and PurePosixPath(info.filename).suffix.lower() in LABEL_SUFFIXES
        # A Mac's resource forks (__MACOSX/._cat.json) and hidden files hold no labels.
        and not any(part.startswith((".", "__MACOSX")) for part in info.filename.split("/"))
    ]
    if not files:
        raise FO1Error(f"{name} holds no labels file ({', '.join(LABEL_SUFFIXES)}).")
    own = [info for info in files if image_name and _labels_of(info.filename, image_name)]
    if own:
        return _member_text(archive, own[0], name)
    shared = [info for info in files if info.filename.lower().endswith((".json", ".xml"))]
    spellings = _spellings(image_name) if image_name else ()
    for info in shared[:MAX_FILES_SEARCHED]:
        read = _member_text(archive, info, name)
        # An export's one file is of its one image, which the reader takes whatever its name.
        if len(shared) == 1 or any(spelling in read.text for spelling in spellings):
            return read
    stem = PurePosixPath(image_name or "image").stem
    own_names = ", ".join(f"{stem}{suffix}" for suffix in LABEL_SUFFIXES)
    searched = f"none of its {len(shared)} JSON and XML files names it" if shared else ""
    raise FO1Error(
        f"No file in {name} holds the labels of {image_name or 'the image'}: none is named "
        f"{own_names}{', and ' if searched else ''}{searched}."
    )


def _labels_of(file_name: str, image_name: str) -> bool:
    """Whether the labels file `file_name` is that of the image `image_name`: of its name but
    for the suffix (`labels/cat.txt`, `Annotations/cat.xml`), as a tool renamed it too."""
    return is_named(str(PurePosixPath(file_name).with_suffix(Path(image_name).suffix)), image_name)


def _spellings(image_name: str) -> set[str]:
    """`image_name` as a labels file may write it: as it is, in JSON's ASCII escapes (Python's
    `json.dump` writes `café` so), in XML's, and as Roboflow renames it (`cat_jpg.rf.…`)."""
    path = Path(image_name)
    escapes = (json.dumps(image_name)[1:-1], escape(image_name, {'"': "&quot;"}))
    return {image_name, *escapes, f"{path.stem}_{path.suffix[1:]}.rf."}


def _member_text(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> BoxesText:
    source = f"{info.filename} in {name}"
    # Read to one byte past the limit, whatever size the archive claims: a bomb stops there.
    with archive.open(info) as member:
        data = member.read(MAX_BOXES_FILE_BYTES + 1)
    refuse_too_large(max(len(data), info.file_size), MAX_BOXES_FILE_BYTES, source)
    return BoxesText(utf8_text(data, source), source)
