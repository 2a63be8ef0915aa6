"""One Space visitor's request end to end: proposals on a 1024 px image, then FO1 on 100 boxes.

    python -m bench.space_request                              # mid-size random FO1, CPU
    python -m bench.space_request --profile 3b --decode dynamic compiled --json out.json  # GPU

`total_s` (proposals and answer) is compared with ZeroGPU's default GPU slot of 60 s. Caches
start empty in every run, as in a freshly forked ZeroGPU worker. Proposals are topped up with a
grid of boxes to exactly `--boxes`. Random FO1 weights never stop early, so each answer is
`--new-tokens` tokens long. `followup_ttft_s`: the visitor's next question about the same image
and boxes (a count), which finds them encoded (`followup_reused_tokens` prompt positions) and
preprocessed (`followup_prepare_s`); it is not part of `total_s`. Needs neither Gradio nor
`spaces`, so it runs on a bare GPU machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.options import (
    add_model_options,
    add_new_tokens_option,
    add_size_option,
    benchmark_parser,
    cudnn_attention,
    exits_on_user_error,
    load_pipeline,
)
from bench.proposers import scene
from bench.random_checkpoint import checkpoint_folder, profile_or_folder
from bench.table import peak_memory_mb, report, reset_peak_memory
from detect_tools import registry
from detect_tools.base import ProposalOptions
from fo1_core.cli import positive, whole_number
from fo1_core.templates import MAX_REGIONS

TASK, CATEGORIES = "OD_template", "person, car, dog, red cup"
FOLLOWUP_TASK, FOLLOWUP_TEXT = "OD_Counting_template", "person"
ZERO_GPU_DEFAULT_SLOT_S = 60  # what `@spaces.GPU` grants without a duration


def grid_boxes(width: int, height: int, count: int) -> np.ndarray:
    """`count` boxes tiling the image row by row."""
    side = int(np.ceil(np.sqrt(count)))
    w, h = width / side, height / side
    return np.array(
        [[c * w, r * h, (c + 1) * w, (r + 1) * h] for r in range(side) for c in range(side)][
            :count
        ],
        dtype=np.float32,
    )


def run_once(pipeline, proposer, image, count: int, new_tokens: int) -> dict:
    pipeline.encoder.clear()
    pipeline.preprocessor.tower_pixels.clear()
    start = time.perf_counter()
    proposed = proposer.propose(
        image, CATEGORIES if proposer.needs_text else None, ProposalOptions()
    )
    proposals_s = time.perf_counter() - start
    boxes = np.concatenate([proposed.xyxy, grid_boxes(*image.size, count)])[:count]
    request = pipeline.prepare(image, boxes.tolist(), TASK, CATEGORIES)
    timings = pipeline.generate(request, new_tokens).timings
    followup = pipeline.prepare(image, boxes.tolist(), FOLLOWUP_TASK, FOLLOWUP_TEXT)
    answered = pipeline.generate(followup, new_tokens)
    followup_s = answered.timings["first_token_s"]
    return {
        "proposed": len(proposed),
        "proposals_s": proposals_s,
        "prepare_s": timings["preprocess_s"],
        "first_token_s": timings["first_token_s"],
        "decode_tok_s": timings["decode_tokens_per_s"],
        "answer_s": timings["total_s"],
        "followup_prepare_s": followup.preprocess_s,
        "followup_ttft_s": followup_s,
        "followup_ttft_ratio": followup_s / timings["first_token_s"],
        "followup_reused_tokens": answered.reused.tokens,
    }


@exits_on_user_error
def main() -> None:
    parser = benchmark_parser("bench.space_request", __doc__)
    parser.add_argument(
        "--profile",
        type=profile_or_folder,
        default="mid",
        help="tiny, mid, 3b or a checkpoint folder",
    )
    add_model_options(parser)
    parser.add_argument(
        "--proposer",
        default="offline",
        choices=sorted(registry.on_their_own()),
        help="what proposes the boxes",
    )
    parser.add_argument("--proposer-checkpoint", help="its checkpoint (model proposers)")
    add_size_option(parser, "1024x768")
    parser.add_argument(
        "--boxes",
        type=whole_number(1, MAX_REGIONS),
        default=MAX_REGIONS,
        help="boxes asked about (the model reads at most this many)",
    )
    add_new_tokens_option(parser, 256)
    parser.add_argument(
        "--runs", type=positive, default=2, help="timed requests, their median reported"
    )
    args = parser.parse_args()

    image = scene(*args.size)
    proposer = registry.get(args.proposer, args.proposer_checkpoint)
    proposer.propose(image, CATEGORIES if proposer.needs_text else None)  # loads its model
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{args.new_tokens} new tokens, medians of {args.runs} runs"
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = checkpoint_folder(args.profile, Path(scratch), args.device)
        for decode in args.decode:
            reset_peak_memory(torch.device(args.device))
            pipeline = load_pipeline(folder, args, decode)
            warm_up = pipeline.warm_up()
            runs = [
                run_once(pipeline, proposer, image, args.boxes, args.new_tokens)
                for _ in range(args.runs)
            ]
            row = {
                "fo1": args.profile,
                "device": args.device,
                "dtype": str(pipeline.model.dtype).removeprefix("torch."),
                "decode": warm_up.decode,
                "cudnn_sdpa": cudnn_attention(args),
                "image": f"{image.width}x{image.height}",
                "boxes": args.boxes,
                "proposer": args.proposer,
                "warm_up_s": warm_up.seconds,
            }
            row |= {key: statistics.median_low(run[key] for run in runs) for key in runs[0]}
            row["total_s"] = row["proposals_s"] + row["answer_s"]
            row["fits_60s"] = row["total_s"] < ZERO_GPU_DEFAULT_SLOT_S
            row["peak_mem_MB"] = peak_memory_mb(pipeline.model.device)
            rows.append(row)
            report(rows, args.json)
            del pipeline


if __name__ == "__main__":
    main()
