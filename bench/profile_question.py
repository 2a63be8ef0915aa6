"""Where one question's time goes: cold and warm, token by token, and profiled where it runs.

    python -m bench.profile_question                                   # tiny fixture, CPU
    python -m bench.profile_question --profile 3b --dtype bfloat16 --decode dynamic compiled \\
        --torch-profiler                                               # GPU
    python -m bench.profile_question --profile 3b --dtype bfloat16 --cudnn-attention

One row per `--decode` mode, on the `bench.generation` image and boxes. After the pipeline's
warm-up, `first_cold_ttft_s` is the first question in the process (every shape new), and
`first_warm_ttft_s` the same question again after emptying the caches: their difference is what
a fresh process (a new ZeroGPU worker) pays once. `followup_cold_ttft_s` / `followup_warm_ttft_s`
do the same for a follow-up on the cached image and boxes. `gap_*_ms`: time between streamed
pieces of the warm follow-up (one per token); `tail_ms`: from its last piece to the finished
`Generation`. Then the warm follow-up is asked once more under cProfile, on the generation thread
where it runs, and with `--torch-profiler` under PyTorch's profiler (CUDA kernels included).
`--cudnn-attention` lets SDPA use cuDNN's kernels again (the loader turns them off on GPUs: they
build a plan for each new shape), to compare.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch

from bench.generation import BOXES, IMAGE
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
from fo1_core import model_thread
from fo1_core.cli import positive
from fo1_core.session import FO1Pipeline, Generation, Request


def _ttft(pipeline: FO1Pipeline, request: Request, new_tokens: int) -> float:
    return pipeline.generate(request, new_tokens).timings["first_token_s"]


def _gaps(pipeline: FO1Pipeline, request: Request, new_tokens: int) -> dict[str, float]:
    stamps = []
    for event in pipeline.stream(request, new_tokens):
        stamps.append(time.perf_counter())
        if isinstance(event, Generation):
            break
    pieces = stamps[:-1]  # the last event is the finished `Generation`
    gaps = [(b - a) * 1e3 for a, b in pairwise(pieces)] or [0.0]
    return {
        "gap_median_ms": statistics.median(gaps),
        "gap_min_ms": min(gaps),
        "gap_max_ms": max(gaps),
        "tail_ms": (stamps[-1] - stamps[-2]) * 1e3,
    }


def _on_generation_thread(call) -> None:
    """Profilers watch the thread that starts them: this one is where every question runs."""
    model_thread.submit(call).wait()


def print_profiles(
    pipeline: FO1Pipeline, request: Request, new_tokens: int, lines: int, torch_profiler: bool
) -> None:
    python = cProfile.Profile()
    _on_generation_thread(python.enable)
    pipeline.generate(request, new_tokens)
    _on_generation_thread(python.disable)
    pstats.Stats(python).sort_stats("tottime").print_stats(lines)
    if not torch_profiler:
        return
    activities, sort_keys = [torch.profiler.ProfilerActivity.CPU], ["self_cpu_time_total"]
    if pipeline.model.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sort_keys.insert(0, "self_cuda_time_total")
    kernels = torch.profiler.profile(activities=activities)
    _on_generation_thread(kernels.start)
    pipeline.generate(request, new_tokens)
    _on_generation_thread(kernels.stop)
    for key in sort_keys:
        print(kernels.key_averages().table(sort_by=key, row_limit=lines, max_name_column_width=60))


def profile_decode(folder: Path, profile: str, args: argparse.Namespace, decode: str) -> dict:
    reset_peak_memory(torch.device(args.device))
    pipeline = load_pipeline(folder, args, decode)
    warm_up = pipeline.warm_up()
    first = pipeline.prepare(IMAGE, BOXES, "OD_template", "red cup")
    followup = pipeline.prepare(IMAGE, BOXES, "OD_Counting_template", "blue bottles")
    row = {"profile": profile, "device": str(pipeline.model.device), "decode": warm_up.decode}
    row["cudnn_sdpa"] = cudnn_attention(args)
    row["first_cold_ttft_s"] = _ttft(pipeline, first, args.new_tokens)
    row["followup_cold_ttft_s"] = _ttft(pipeline, followup, args.new_tokens)
    pipeline.encoder.clear()
    row["first_warm_ttft_s"] = _ttft(pipeline, first, args.new_tokens)
    row["followup_warm_ttft_s"] = _ttft(pipeline, followup, args.new_tokens)
    row |= _gaps(pipeline, followup, args.new_tokens)
    row["peak_mem_MB"] = peak_memory_mb(pipeline.model.device)
    print(f"---- {profile}, {decode}: the warm follow-up, profiled", flush=True)
    print_profiles(pipeline, followup, args.new_tokens, args.lines, args.torch_profiler)
    return row


@exits_on_user_error
def main() -> None:
    parser = benchmark_parser("bench.profile_question", __doc__)
    parser.add_argument(
        "--profile",
        type=profile_or_folder,
        default="tiny",
        help="tiny, mid, 3b or a checkpoint folder",
    )
    add_model_options(parser)
    add_new_tokens_option(parser, 64)
    parser.add_argument("--lines", type=positive, default=25, help="rows of each profile table")
    parser.add_argument(
        "--torch-profiler",
        action="store_true",
        help="also profile the operators with torch.profiler",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = checkpoint_folder(args.profile, Path(scratch), args.device)
        for decode in args.decode:
            rows.append(profile_decode(folder, args.profile, args, decode))
            report(rows, args.json)


if __name__ == "__main__":
    main()
