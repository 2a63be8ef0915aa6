"""Load time, time to first token (first question and follow-up), decode speed and peak memory.

    python -m bench.generation                           # tiny fixture + mid-size random, CPU
    python -m bench.generation --profiles 3b --decode dynamic compiled --json out.json   # GPU

Each row is one checkpoint asked about a 640×480 image with 10 boxes. `first_ttft_s`: a new image
(caches empty); `followup_ttft_s`: another question about the same image and boxes (cached image
features, regions and prompt prefix); `uncached_ttft_s`: that follow-up recomputed from scratch,
as the official pipeline does; `moved_box_ttft_s`: that follow-up again after one box moved (the
image's features and its part of the prompt reused; one region and the rest of the prompt
computed), and `moved_box_ratio` that over `first_ttft_s`; `ahead_ttft_s`: the first question
once the image and boxes were encoded ahead of it (`FO1Pipeline.encode_ahead`, as the app does
while the question is typed), and `ahead_ratio` that over `first_ttft_s`; `turn5_ttft_s`: the
fifth question of one conversation (the four before it written into its prompt), and
`turn5_ratio` that over `first_ttft_s`. Random checkpoints never emit the end token, so each
run decodes `--new-tokens` tokens. One row per checkpoint and `--decode` mode; `warm_up_s` is the
pipeline's warm-up (where a compiled decode step is built). Medians of `--runs` runs after one
more run.
`graphs` counts the graphs compiled for the row: `compiled` builds two, one for questions on a
cached prefix and one for the uncached comparison (which passes M-RoPE positions in another
layout); more means recompiling. `cudagraph_skips`: compiled graphs that run without CUDA graphs
(each of them on the CPU; 0 is the fast case on a GPU).
`same_ids`: how many leading tokens of the first question's answer equal those of the profile's
first row (its first `--decode` mode), out of `new_tokens`; `cached_same_ids`: the same for the
cached follow-up against its uncached recomputation. A decoder that computes something else
differs from the first token; rounding (bfloat16 on random weights, whose top logits can be
close) only later.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from bench.options import (
    add_model_options,
    add_new_tokens_option,
    benchmark_parser,
    cudnn_attention,
    exits_on_user_error,
    load_pipeline,
)
from bench.random_checkpoint import checkpoint_folder, profile_or_folder
from bench.table import peak_memory_mb, report, reset_peak_memory
from fo1_core.cli import positive
from fo1_core.session import Conversation, FO1Pipeline

BOXES = [[20 + 55 * i, 40 + 30 * (i % 3), 80 + 55 * i, 140 + 30 * (i % 3)] for i in range(10)]
MOVED_BOXES = [[30, 60, 120, 200], *BOXES[1:]]
IMAGE = Image.new("RGB", (640, 480), (90, 140, 200))
FOLLOW_UPS = ["And <region1>?", "Why?", "Is <region2> larger than <region3>?", "Count them."]


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _last_turn_ttft(pipeline: FO1Pipeline, new_tokens: int) -> float:
    chat = Conversation(pipeline, IMAGE, BOXES)
    chat.ask("OD_template", "red cup", new_tokens)
    for text in FOLLOW_UPS:
        last = chat.ask("free", text, new_tokens)
    return last.timings["first_token_s"]


def _compiled() -> dict[str, int]:
    counters = torch._dynamo.utils.counters
    return {
        "graphs": counters["stats"]["unique_graphs"],
        "cudagraph_skips": counters["inductor"]["cudagraph_skips"],
    }


def _leading_matches(ids: list[int], reference: list[int]) -> int:
    common = min(len(ids), len(reference))
    return next((i for i in range(common) if ids[i] != reference[i]), common)


def bench_profile(
    folder: Path, profile: str, decode: str, args: argparse.Namespace
) -> tuple[dict, list[int]]:
    """The row of one checkpoint and decode mode, and the first question's answer ids."""
    new_tokens = args.new_tokens
    reset_peak_memory(torch.device(args.device))
    compiled_before = _compiled()
    start = time.perf_counter()
    pipeline = load_pipeline(folder, args, decode)
    load_s = time.perf_counter() - start
    warm_up = pipeline.warm_up()
    first_q = pipeline.prepare(IMAGE, BOXES, "OD_template", "red cup")
    followup_q = pipeline.prepare(IMAGE, BOXES, "OD_Counting_template", "blue bottles")
    moved_q = pipeline.prepare(IMAGE, MOVED_BOXES, "OD_Counting_template", "blue bottles")
    first, followup, moved, uncached, decode, turn5, ahead = [], [], [], [], [], [], []
    for _ in range(args.runs + 1):
        pipeline.encoder.clear()
        result = pipeline.generate(first_q, new_tokens)
        first.append(result.timings["first_token_s"])
        decode.append(result.timings["decode_tokens_per_s"])
        cached = pipeline.generate(followup_q, new_tokens)
        followup.append(cached.timings["first_token_s"])
        moved.append(pipeline.generate(moved_q, new_tokens).timings["first_token_s"])
        plain = pipeline.generate(followup_q, new_tokens, use_cache=False)
        uncached.append(plain.timings["first_token_s"])
        pipeline.encoder.clear()
        turn5.append(_last_turn_ttft(pipeline, new_tokens))
        pipeline.encoder.clear()
        pipeline.encode_ahead(IMAGE, BOXES).wait()
        ahead.append(pipeline.generate(first_q, new_tokens).timings["first_token_s"])
    first, followup, moved, uncached, decode, turn5, ahead = (
        v[1:] for v in (first, followup, moved, uncached, decode, turn5, ahead)
    )
    row = {
        "profile": profile,
        "device": str(pipeline.model.device),
        "dtype": str(pipeline.model.dtype).removeprefix("torch."),
        "decode": warm_up.decode,
        "cudnn_sdpa": cudnn_attention(args),
        "params_M": sum(p.numel() for p in pipeline.model.parameters()) / 1e6,
        "load_s": load_s,
        "warm_up_s": warm_up.seconds,
        "first_ttft_s": _median(first),
        "followup_ttft_s": _median(followup),
        "followup_ttft_ratio": _median(followup) / _median(first),
        "uncached_ttft_s": _median(uncached),
        "moved_box_ttft_s": _median(moved),
        "moved_box_ratio": _median(moved) / _median(first),
        "turn5_ttft_s": _median(turn5),
        "turn5_ratio": _median(turn5) / _median(first),
        "ahead_ttft_s": _median(ahead),
        "ahead_ratio": _median(ahead) / _median(first),
        "decode_tok_s": _median(decode),
        "peak_mem_MB": peak_memory_mb(pipeline.model.device),
        **{k: now - compiled_before[k] for k, now in _compiled().items()},
        "new_tokens": len(result.token_ids),
        "cached_same_ids": _leading_matches(cached.token_ids, plain.token_ids),
    }
    return row, result.token_ids


@exits_on_user_error
def main() -> None:
    parser = benchmark_parser("bench.generation", __doc__)
    parser.add_argument(
        "--profiles",
        nargs="+",
        type=profile_or_folder,
        default=["tiny", "mid"],
        help="tiny, mid, 3b or checkpoint folders",
    )
    add_model_options(parser)
    add_new_tokens_option(parser, 64)
    parser.add_argument(
        "--runs", type=positive, default=3, help="timed runs, their median reported"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory() as scratch:
        rows = []
        for profile in args.profiles:
            folder = checkpoint_folder(profile, Path(scratch), args.device)
            reference = None
            for decode in args.decode:
                row, ids = bench_profile(folder, profile, decode, args)
                reference = ids if reference is None else reference
                rows.append(row | {"same_ids": _leading_matches(ids, reference)})
                report(rows, args.json)


if __name__ == "__main__":
    main()
