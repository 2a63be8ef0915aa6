"""Load time, time to first token (first question and follow-up), decode speed and peak memory.

    python -m bench.generation                           # tiny fixture + mid-size random, CPU
    python -m bench.generation --profiles 3b --json out.json   # full 3B shape, random bf16 (GPU)

Each row is one checkpoint asked about a 640×480 image with 10 boxes. `first_ttft_s`: a new image
(caches empty); `followup_ttft_s`: another question about the same image and boxes (cached image
features, regions and prompt prefix); `uncached_ttft_s`: that follow-up recomputed from scratch,
as the official pipeline does. Random checkpoints never emit the end token, so each run decodes
`--new-tokens` tokens. Medians of `--runs` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from bench.random_checkpoint import TINY, make_random_checkpoint
from fo1_core.session import FO1Pipeline, load

BOXES = [[20 + 55 * i, 40 + 30 * (i % 3), 80 + 55 * i, 140 + 30 * (i % 3)] for i in range(10)]
IMAGE = Image.new("RGB", (640, 480), (90, 140, 200))


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _clear(pipeline: FO1Pipeline) -> None:
    encoder = pipeline.encoder
    for cache in (encoder.images, encoder.regions, encoder.prefixes):
        cache.clear()


def _median(values: list[float]) -> float:
    return statistics.median(values)


def bench_profile(
    profile: str, device: str, new_tokens: int, runs: int, scratch: Path, static_cache: bool
) -> dict:
    folder = TINY if profile == "tiny" else make_random_checkpoint(scratch / profile, profile)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    pipeline = load(folder, device=device, static_cache=static_cache)
    load_s = time.perf_counter() - start
    first_q = pipeline.prepare(IMAGE, BOXES, "OD_template", "red cup")
    followup_q = pipeline.prepare(IMAGE, BOXES, "OD_Counting_template", "blue bottles")
    first, followup, uncached, decode = [], [], [], []
    for _ in range(runs + 1):
        _clear(pipeline)
        result = pipeline.generate(first_q, new_tokens)
        first.append(result.timings["first_token_s"])
        decode.append(result.timings["decode_tokens_per_s"])
        followup.append(pipeline.generate(followup_q, new_tokens).timings["first_token_s"])
        plain = pipeline.generate(followup_q, new_tokens, use_cache=False)
        uncached.append(plain.timings["first_token_s"])
    first, followup, uncached, decode = (v[1:] for v in (first, followup, uncached, decode))
    return {
        "profile": profile,
        "device": str(pipeline.model.device),
        "dtype": str(pipeline.model.dtype).removeprefix("torch."),
        "kv_cache": "static" if static_cache else "dynamic",
        "params_M": sum(p.numel() for p in pipeline.model.parameters()) / 1e6,
        "load_s": load_s,
        "first_ttft_s": _median(first),
        "followup_ttft_s": _median(followup),
        "followup_ttft_ratio": _median(followup) / _median(first),
        "uncached_ttft_s": _median(uncached),
        "decode_tok_s": _median(decode),
        "peak_mem_MB": _peak_memory_mb(pipeline.model.device),
        "new_tokens": len(result.token_ids),
    }


def print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    width = max(len(c) for c in columns)
    print(" | ".join(f"{c:>{width}}" for c in columns))
    print("-+-".join("-" * width for _ in columns))
    for row in rows:
        cells = [
            f"{v:>{width}.3f}" if isinstance(v, float) else f"{v!s:>{width}}" for v in row.values()
        ]
        print(" | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument(
        "--profiles", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid", "3b"]
    )
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--static-cache", action="store_true", help="fixed-size KV cache (compiled on GPUs)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [
            bench_profile(
                p, args.device, args.new_tokens, args.runs, Path(scratch), args.static_cache
            )
            for p in args.profiles
        ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
