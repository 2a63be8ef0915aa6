"""One huge image asked about on the page: the seconds inside the model's queue slot and after.

    python -m bench.big_image                        # 10000x9990 gradient PNG, tiny FO1, CPU
    python -m bench.big_image --size 4000x3000

`slot_s` is what every question queued behind this one waits for: `Handlers.run` (preprocessing,
the answer, the drawing shown) and Gradio encoding that drawing. `downloads_s` is written after
the slot (`Handlers.downloads`): the full-size annotated image, JSON, COCO and report.
`peak_rss_MB`: this process's peak resident memory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from bench.options import (
    add_json_option,
    add_new_tokens_option,
    add_size_option,
    benchmark_parser,
)
from bench.random_checkpoint import TINY
from bench.table import peak_memory_mb, report
from fo1_core.render import shown_reduction
from fo1_core.session import load
from ui.answering import Answerer
from ui.boxes import editor_value
from ui.handlers import Handlers
from ui.proposing import Proposing

REQUEST = gr.Request(session_hash="bench")


def gradient(width: int, height: int, path: Path) -> None:
    """A PNG that compresses to almost nothing: the size that costs is the decoded one."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    planes = [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width))]
    rgb = np.stack([*planes, (planes[0] + planes[1]) / 2], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def main() -> None:
    parser = benchmark_parser("bench.big_image", __doc__)
    add_size_option(parser, "10000x9990")
    add_new_tokens_option(parser, 32)
    add_json_option(parser)
    args = parser.parse_args()
    width, height = args.size
    handlers = Handlers(Answerer(load(TINY, device="cpu")), Proposing("cpu"), [])
    result = gr.Image(type="filepath", format="png", interactive=False)  # as `ui.layout`'s
    boxes = [[10, 10, 2000, 2000], [width // 3, height // 3, width // 2, height // 2]]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "big.png"
        gradient(width, height, path)
        start = time.perf_counter()
        *_, last = handlers.run(
            editor_value(str(path), boxes), "OD_template", "cup", [], "",
            args.new_tokens, {}, None, False, None, None, REQUEST,
        )  # fmt: skip
        run_s = time.perf_counter() - start
        result.postprocess(last[2])
        slot_s = time.perf_counter() - start
        start = time.perf_counter()
        files = handlers.downloads(REQUEST)
        downloads_s = time.perf_counter() - start
        reduced = shown_reduction(width, height)
        row = {
            "image": f"{width}x{height}",
            "file_MB": path.stat().st_size / 1e6,
            "shown": f"{-(-width // reduced)}x{-(-height // reduced)}",  # as `Image.reduce`
            "run_s": run_s,
            "slot_s": slot_s,
            "downloads_s": downloads_s,
            "download_MB": sum(Path(file).stat().st_size for file in files) / 1e6,
            "peak_rss_MB": peak_memory_mb(handlers.answerer.pipeline.device),
        }
    report([row], args.json)


if __name__ == "__main__":
    main()
