"""What streaming one token costs, by answer length.

    python -m bench.streaming [--checkpoint FOLDER] [--lengths 256 1024 4096]

`TokenQueue.put` runs between two decode steps, on the thread that launches them, so on a GPU
its time adds to every token's. `parse_ms` is one parse of the answer so far (with its
detections), which the app does at most 20 times a second (`ui.answering`): parsed after every
token instead, a long answer would cost that much per token, holding the GIL the decode loop
needs. The answer is a detection answer with multi-byte text, repeated.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from transformers import AutoTokenizer

from bench.options import add_json_option, benchmark_parser
from bench.random_checkpoint import TINY, checkpoint_dir
from bench.table import report
from fo1_core.answers import parse_answer, to_detections
from fo1_core.cli import positive
from fo1_core.streaming import TokenQueue
from fo1_core.templates import MAX_REGIONS

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


def parse_cost(text: str, repeats: int = 5) -> float:
    """Milliseconds to parse `text` and turn it into detections, as the app does."""
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (MAX_REGIONS, 1))
    start = time.perf_counter()
    for _ in range(repeats):
        to_detections(parse_answer(text, MAX_REGIONS), boxes)
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = benchmark_parser("bench.streaming", __doc__)
    parser.add_argument(
        "--checkpoint", type=checkpoint_dir, default=str(TINY), help="whose tokenizer"
    )
    parser.add_argument(
        "--lengths",
        type=positive,
        nargs="+",
        default=[256, 1024, 4096],
        help="answer tokens, a row each",
    )
    add_json_option(parser)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(str(args.checkpoint))
    ids = tokenizer(ANSWER * max(args.lengths), add_special_tokens=False).input_ids
    rows = []
    for length in args.lengths:
        text = tokenizer.decode(ids[:length])
        rows.append(
            {
                "answer_tokens": length,
                "ms_per_token": stream_cost(tokenizer, ids[:length]),
                "parse_ms": parse_cost(text),
            }
        )
        report(rows, args.json)


if __name__ == "__main__":
    main()
