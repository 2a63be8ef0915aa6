"""Load time, time to first token and decode speed of the FO1 pipeline, as a table.

    python -m bench.generation                      # tiny fixture + mid-size random, CPU
    python -m bench.generation --profiles 3b        # full 3B shape, random bf16 weights (GPU)

Each row: one checkpoint, a 640×480 image with 10 boxes, an OD question, `--new-tokens` greedy
tokens (random checkpoints never emit the end token), median of `--runs` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from bench.random_checkpoint import TINY, make_random_checkpoint
from fo1_core.session import load

BOXES = [[20 + 55 * i, 40 + 30 * (i % 3), 80 + 55 * i, 140 + 30 * (i % 3)] for i in range(10)]


def _checkpoint(profile: str, scratch: Path, device: str) -> Path:
    if profile == "tiny":
        return TINY
    return make_random_checkpoint(scratch / profile, profile, device)


def bench_profile(profile: str, device: str, new_tokens: int, runs: int, scratch: Path) -> dict:
    folder = _checkpoint(profile, scratch, device)
    start = time.perf_counter()
    pipeline = load(folder, device=device)
    load_s = time.perf_counter() - start
    image = Image.new("RGB", (640, 480), (90, 140, 200))
    request = pipeline.prepare(image, BOXES, "OD_template", "red cup")
    timings = []
    for _ in range(runs + 1):
        result = pipeline.generate(request, max_new_tokens=new_tokens)
        timings.append(result.timings)
    timings = timings[1:]
    params = sum(p.numel() for p in pipeline.model.parameters())
    return {
        "profile": profile,
        "device": str(pipeline.model.device),
        "dtype": str(pipeline.model.dtype).removeprefix("torch."),
        "params_M": params / 1e6,
        "load_s": load_s,
        "encode_s": statistics.median(t["encode_s"] for t in timings),
        "first_token_s": statistics.median(t["first_token_s"] for t in timings),
        "decode_tok_s": statistics.median(t["decode_tokens_per_s"] for t in timings),
        "new_tokens": len(result.token_ids),
    }


def print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    print(" | ".join(f"{c:>13}" for c in columns))
    print("-+-".join("-" * 13 for _ in columns))
    for row in rows:
        cells = [f"{v:>13.3f}" if isinstance(v, float) else f"{v!s:>13}" for v in row.values()]
        print(" | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--profiles", nargs="+", default=["tiny", "mid"])
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [
            bench_profile(p, args.device, args.new_tokens, args.runs, Path(scratch))
            for p in args.profiles
        ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print_table(rows)


if __name__ == "__main__":
    main()
