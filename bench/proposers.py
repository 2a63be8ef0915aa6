"""Proposals per second for each proposer, on CPU and on a GPU where there is one.

    python -m bench.proposers [--sizes 640x480,1024x768] [--repeat 3] [--json rows.json]
        [--prompt "red cup, person"] [--no-nms] [--checkpoint-florence2 DIR]
        [--checkpoint-omdet-turbo DIR] [--checkpoint-grounding-dino DIR]
        [--checkpoint-owlv2 DIR] [--checkpoint-sam3 DIR]

Without a checkpoint flag a model proposer runs a tiny random checkpoint built on the spot (its
timings measure the pipeline around the model, not the real model): the table says which. The
first call of each proposer loads its model and is not timed. Peak memory is that of the timed
calls: the GPU's where the proposer runs there, else the process's resident peak (SAM3's full-size
masks: `--proposers sam3 --sizes 4000x3000 --prompt "a, b, c, d, e" --no-nms` has 100).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.options import add_json_option, benchmark_parser, exits_on_user_error, image_size
from bench.table import peak_memory_mb, report, reset_peak_memory
from detect_tools import registry, tiny
from detect_tools.base import ModelProposer, ProposalOptions, Proposer
from fo1_core.cli import positive

PROMPT = "red cup, person"
TINY_BUILDERS = {
    "florence2": tiny.build_florence2,
    "florence2-od": tiny.build_florence2,
    "omdet-turbo": tiny.build_omdet_turbo,
    "grounding-dino": tiny.build_grounding_dino,
    "owlv2": tiny.build_owlv2,
    "owlv2-objects": tiny.build_owlv2,
    "owlv2-like": tiny.build_owlv2,
    "sam3": tiny.build_sam3,
    "sam3-like": tiny.build_sam3,
}
# One checkpoint serves Florence-2's two tasks, OWLv2's three scores and SAM3's two prompts.
CHECKPOINT_FLAG = {
    "florence2-od": "florence2",
    "owlv2-objects": "owlv2",
    "owlv2-like": "owlv2",
    "sam3-like": "sam3",
}


def shapes(width: int, height: int) -> list[list[int]]:
    """The boxes of `scene`'s solid shapes."""
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        w, h = (
            int(rng.integers(width // 10, width // 4)),
            int(rng.integers(height // 10, height // 4)),
        )
        boxes.append([x0, y0, x0 + w, y0 + h])
    return boxes


def scene(width: int, height: int) -> Image.Image:
    """Blurred noise with a few solid shapes: something for every proposer to find."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(40, 220, (height, width, 3), dtype=np.uint8)
    for x0, y0, x1, y1 in shapes(width, height):
        pixels[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels)


def example(image: Image.Image) -> list[list[int]]:
    """The scene's first shape, for proposers that find more like example boxes."""
    return shapes(*image.size)[:1]


def bench(
    proposer: Proposer, images: list[Image.Image], repeat: int, prompt: str, nms: bool
) -> list[tuple[str, float, float, float]]:
    """(image size, seconds per image, proposals per second, peak MB) for each image."""
    device = proposer.device if isinstance(proposer, ModelProposer) else torch.device("cpu")
    text = prompt if proposer.needs_text else None
    options = ProposalOptions(threshold=0.0, nms_iou=ProposalOptions.nms_iou if nms else None)
    examples = [example(image) if proposer.needs_examples else None for image in images]
    proposer.propose(images[0], text, options, examples[0])  # loads the model; not timed
    rows = []
    for image, like in zip(images, examples, strict=True):
        reset_peak_memory(device)
        counts, start = [], time.perf_counter()
        for _ in range(repeat):
            counts.append(len(proposer.propose(image, text, options, like)))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / repeat
        size = f"{image.width}×{image.height}"
        rows.append((size, seconds, float(np.mean(counts)) / seconds, peak_memory_mb(device)))
    return rows


def image_sizes(text: str) -> list[tuple[int, int]]:
    """An argparse type: `WIDTHxHEIGHT` sizes separated by commas."""
    return [image_size(size) for size in text.split(",")]


def proposer_names(text: str) -> list[str]:
    """An argparse type: proposer names separated by commas, all checked before any is timed."""
    names = text.split(",")
    unknown = [name for name in names if name not in registry.PROPOSERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown proposer {unknown[0]!r}: choose from {', '.join(registry.available())}"
        )
    return names


@exits_on_user_error
def main() -> None:
    parser = benchmark_parser("bench.proposers", __doc__)
    parser.add_argument(
        "--sizes", type=image_sizes, default="640x480,1024x768", help="images, WIDTHxHEIGHT each"
    )
    parser.add_argument("--repeat", type=positive, default=3, help="timed calls per image")
    parser.add_argument("--prompt", default=PROMPT, help="what text-prompted proposers look for")
    parser.add_argument("--no-nms", action="store_true", help="keep overlapping proposals too")
    parser.add_argument(
        "--proposers",
        type=proposer_names,
        default=",".join(registry.available()),
        help="which, separated by commas",
    )
    for name in ("florence2", "omdet-turbo", "grounding-dino", "owlv2", "sam3"):
        parser.add_argument(
            f"--checkpoint-{name}",
            help=f"real {name} checkpoint (folder or id; none: a tiny random one)",
        )
    add_json_option(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    images = [scene(*size) for size in args.sizes]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        tiny_folders: dict[str, Path] = {}
        for name in args.proposers:
            flag = CHECKPOINT_FLAG.get(name, name).replace("-", "_")
            checkpoint = getattr(args, f"checkpoint_{flag}", None)
            shown = checkpoint or ("tiny random" if name in TINY_BUILDERS else "none")
            if checkpoint is None and name in TINY_BUILDERS:
                builder = TINY_BUILDERS[name]
                if builder.__name__ not in tiny_folders:
                    folder = Path(scratch) / builder.__name__
                    folder.mkdir()
                    tiny_folders[builder.__name__] = builder(folder)
                checkpoint = str(tiny_folders[builder.__name__])
            for device in devices if name in TINY_BUILDERS else ["cpu"]:
                proposer = (
                    registry.get(name, checkpoint, device)
                    if name in TINY_BUILDERS
                    else registry.get(name)
                )
                measured = bench(proposer, images, args.repeat, args.prompt, not args.no_nms)
                for size, seconds, rate, peak_mb in measured:
                    rows.append(
                        {
                            "proposer": name,
                            "checkpoint": shown,
                            "device": device,
                            "image": size,
                            "s_per_image": seconds,
                            "proposals_per_s": rate,
                            "peak_mb": peak_mb,
                        }
                    )
            report(rows, args.json)


if __name__ == "__main__":
    main()
