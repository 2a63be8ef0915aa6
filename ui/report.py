"""Files a user takes away: annotated image, JSON, a COCO instances file and a one-file HTML
report.

The report embeds the image as a data URI and carries no scripts or external links, so it opens
offline and is safe to mail around.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import supervision as sv
from PIL import Image

from fo1_core.answers import Answer
from fo1_core.export import to_coco_dataset, to_json
from fo1_core.inputs import open_image
from fo1_core.render import draw_answer
from ui.answer_view import (
    CHIP_CSS,
    DETECTION_COLUMNS,
    Turn,
    answer_html,
    chip,
    conversation_html,
    detection_rows,
    reasoning_html,
)
from ui.boxes import Box
from ui.files import AppFolder
from ui.spotlight import spotlit_css, spotlit_figure


@dataclass
class Result:
    """One finished question, everything the downloads need."""

    image: np.ndarray  # the annotated image as shown, RGB
    image_name: str  # the file name of the image asked about
    boxes_image: np.ndarray  # every box with its index, as the question saw them, as shown
    boxes: list[Box]
    task_label: str
    prompt: str
    answer: Answer
    detections: sv.Detections
    status: str
    warnings: list[str] = field(default_factory=list)  # what the status added to `status`
    stop_reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    earlier_turns: list[Turn] = field(default_factory=list)
    # (width, height) of the image asked about, which the boxes and masks are in; None: that of
    # `image` (a small image's drawing is larger, `fo1_core.render.drawing_factor`).
    image_size: tuple[int, int] | None = None
    # The image asked about, drawn on again at its own size for the download where `image` is
    # it reduced `reduced` times (`fo1_core.render.shown_reduction`).
    source: str | Image.Image | None = None
    reduced: int = 1


@dataclass
class Downloads:
    image: str
    json: str
    coco: str
    report: str


ANSWER_FILES_KEPT_S = 600
"""How long the app keeps its own copy of an answer's files. Gradio copies them into its cache
(emptied after `--file-ttl`) when the handler hands them over, so the original is soon unused."""


class AnswerFolders(AppFolder):
    """One temporary folder per answer; making a new one removes those older than `keep_s`."""

    def __init__(self, keep_s: float = ANSWER_FILES_KEPT_S) -> None:
        super().__init__("fo1-answers-", keep_s)

    def new(self) -> Path:
        self.prune()
        return Path(tempfile.mkdtemp(dir=self.root))


STEM_BYTES = 120
"""The most of a download's name taken from the image's, in UTF-8 bytes."""


def file_stem(image_name: str) -> str:
    """The start of the downloads' names: the image's, so that answers about several images
    land in one folder side by side rather than as "fo1-answer (3).png"."""
    # Composed (macOS names its files decomposed), marks kept: "café", "हिन्दी", not "cafe", "ह_न_द".
    name = unicodedata.normalize("NFC", Path(image_name).stem)
    kept = "".join(c if _name_safe(c) else "/" for c in name)  # "/": in no stem
    stem = re.sub("/+", "_", kept).strip("._")
    # Cut by bytes: file systems limit names to 255 of them, and a letter can take four.
    stem = stem.encode("utf-8", "ignore")[:STEM_BYTES].decode("utf-8", "ignore")
    return f"{stem}-fo1" if stem else "fo1"


def _name_safe(character: str) -> bool:
    return (
        re.fullmatch(r"[\w.-]", character) is not None or unicodedata.category(character)[0] == "M"
    )


def write_shown(result: Result, folder: Path) -> str:
    """The drawing as shown, as a PNG in `folder` named by the image (its download button saves
    it so): the annotated image's download too, unless the image was reduced to be shown (then
    its name gives its size)."""
    height, width = result.image.shape[:2]
    suffix = "" if result.reduced == 1 else f"-{width}x{height}"
    path = folder / f"{file_stem(result.image_name)}-answer{suffix}.png"
    Image.fromarray(result.image).save(path)
    return str(path)


FULL_SIZE_DRAWINGS = threading.Lock()
"""Held while an annotated image is drawn at a huge image's own size (`write_downloads` of an
image shown reduced): one at a time, each holding a full-size copy (300 MB at 100 megapixels).
Other answers' downloads are written meanwhile: they waited seconds behind a stranger's photo."""


def write_downloads(result: Result, folder: Path, shown: str | None = None) -> Downloads:
    """Writes the four files to `folder` (Gradio serves copies of them); `shown`: the drawing as
    shown, where `write_shown` already wrote it. The annotated image is at the image's own size."""
    stem = file_stem(result.image_name)
    if result.reduced > 1:
        image_path = folder / f"{stem}-answer.png"
        with FULL_SIZE_DRAWINGS:
            drawn = draw_answer(open_image(result.source), result.detections)
            Image.fromarray(drawn).save(image_path)
    else:
        image_path = Path(shown or write_shown(result, folder))
    document = {
        "image": result.image_name,
        "task": result.task_label,
        "prompt": result.prompt,
        "earlier_turns": [
            {"asked": turn.shown, "question": turn.question, "answer": turn.answer}
            for turn in result.earlier_turns
        ],
        **to_json(result.answer, result.detections),
        "boxes": result.boxes,
        "stop_reason": result.stop_reason,
        "timings": result.timings,
        "status": result.status,
        "warnings": result.warnings,
    }
    json_path = folder / f"{stem}-answer.json"
    # As written, not \u-escaped; a lone surrogate (a crafted file name) cannot be UTF-8, here
    # or in the report.
    text = json.dumps(document, indent=2, ensure_ascii=False)
    json_path.write_text(text, encoding="utf-8", errors="replace")
    width, height = result.image_size or result.image.shape[1::-1]
    coco = to_coco_dataset(result.detections, result.image_name, width, height)
    coco_path = folder / f"{stem}-coco.json"
    coco_path.write_text(json.dumps(coco, indent=2), encoding="utf-8")
    report_path = folder / f"{stem}-report.html"
    report_path.write_text(report_html(result), encoding="utf-8", errors="replace")
    return Downloads(str(image_path), str(json_path), str(coco_path), str(report_path))


@dataclass
class Unwritten:
    """A finished answer's downloads, written after the model's queue slot (`write`): for a
    huge image, drawing and encoding it at its own size takes seconds that no one waiting for
    the model should wait through."""

    result: Result
    folder: Path
    shown: str  # `write_shown`'s file

    def write(self) -> list[str]:
        """The files, in the order the page lists them."""
        files = write_downloads(self.result, self.folder, self.shown)
        return [files.image, files.json, files.coco, files.report]


def data_uri(image: np.ndarray) -> str:
    # JPEG: a photo as PNG would make the report several times larger for no visible gain.
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pixels(value: float) -> str:
    """A coordinate as both of the report's tables show it: to a tenth of a pixel, as the
    page's table, without a trailing .0."""
    return f"{round(float(value), 1):g}"


def report_html(result: Result) -> str:
    num = len(result.boxes)
    box_rows = "".join(
        f"<tr><td>{chip(i)}</td>" + "".join(f"<td>{_pixels(v)}</td>" for v in box) + "</tr>"
        for i, box in enumerate(result.boxes)
    )
    detections = detection_rows(result.detections)
    detection_table = "".join(
        "<tr>"
        + f"<td>{chip(int(region))}</td><td>{html.escape(str(label))}</td>"
        + "".join(f"<td>{_pixels(v)}</td>" for v in box)
        + f"<td>{confidence}</td></tr>"
        for region, label, *box, confidence in detections
    )
    header = "".join(f"<th>{name}</th>" for name in DETECTION_COLUMNS)
    conversation = conversation_html(result.earlier_turns, num, "Earlier in this conversation")
    warnings = "".join(f"<p class=warning>⚠ {html.escape(note)}</p>" for note in result.warnings)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    reasoning = (  # the page's "No reasoning in this answer." is only noise in a saved file
        f"<details><summary>Reasoning</summary>{reasoning_html(result.answer, num)}</details>"
        if result.answer.thinking
        else ""
    )
    name = html.escape(result.image_name)
    size = result.image_size or result.image.shape[1::-1]
    annotated = f'<img alt="annotated image" src="{data_uri(result.image)}">'
    numbered = (
        f'<img alt="all boxes with their region numbers" src="{data_uri(result.boxes_image)}">'
    )
    drawn = [int(row[0]) for row in detections]  # the regions the answer's drawing shows
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · VLM-FO1 answer</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }}
img {{ max-width: 100%; border: 1px solid #ccc; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 2px 8px; }}
.fo1-table {{ overflow-x: auto; }}
pre {{ white-space: pre-wrap; background: #f5f5f5; padding: 0.6em; }}
.warning {{ background: #fff4e0; border-left: 4px solid #e69500; padding: 0.3em 0.6em; }}
{CHIP_CSS}
{spotlit_css(num)}
</style></head><body><main>
<h1>VLM-FO1 answer about {name}</h1>
<p>{html.escape(" · ".join(filter(None, [created, result.status])))}</p>
{warnings}{spotlit_figure(annotated, result.boxes, size, drawn)}
{conversation}
<h2>Question</h2>
<p><b>Task:</b> {html.escape(result.task_label)}</p>
<pre>{html.escape(result.prompt)}</pre>
<h2>Answer</h2>
{answer_html(result.answer, num)}
{reasoning}
<details><summary>Raw answer</summary><pre>{html.escape(result.answer.text)}</pre></details>
<h2>Detections</h2>
<div class="fo1-table"><table><tr>{header}</tr>{detection_table}</table></div>
<h2>Boxes ({num})</h2>
{spotlit_figure(numbered, result.boxes, size)}
<div class="fo1-table">
<table><tr><th>region</th><th>x1</th><th>y1</th><th>x2</th><th>y2</th></tr>{box_rows}</table>
</div>
</main></body></html>
"""
