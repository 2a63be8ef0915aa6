"""What streaming one token costs the generation thread, by answer length.

    python -m bench.streaming [--checkpoint FOLDER] [--lengths 256 1024 4096]

`TokenQueue.put` runs between two decode steps, on the thread that launches them, so on a GPU
its time adds to every token's. The answer is a detection answer with multi-byte text, repeated.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoTokenizer

from bench.options import add_json_option
from bench.random_checkpoint import TINY, checkpoint_dir
from bench.table import report
from fo1_core.cli import positive
from fo1_core.streaming import TokenQueue

ANSWER = "<ground>red cup</ground><objects><region2><region5></objects> a cat 🐱, naïve café. "


def stream_cost(tokenizer, ids: list[int]) -> float:
    """Milliseconds per token to queue the text of `ids`, one id at a time."""
    queue = TokenQueue(tokenizer)
    queue.put(torch.tensor([ids[:1]]))  # generate() pushes the prompt first
    start = time.perf_counter()
    for token in ids:
        queue.put(torch.tensor([token]))
    queue.end()
    return (time.perf_counter() - start) / len(ids) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", type=checkpoint_dir, default=str(TINY), help="whose tokenizer"
    )
    parser.add_argument("--lengths", type=positive, nargs="+", default=[256, 1024, 4096])
    add_json_option(parser)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(str(args.checkpoint))
    ids = tokenizer(ANSWER * max(args.lengths), add_special_tokens=False).input_ids
    rows = []
    for length in args.lengths:
        rows.append({"answer_tokens": length, "ms_per_token": stream_cost(tokenizer, ids[:length])})
        report(rows, args.json)


if __name__ == "__main__":
    main()
