"""The server's resident memory (RSS) round after round of images of many sizes.

`python app.py` on a rigged checkpoint (loopback), one `gradio_client` asking about a new
random-size image each round.

    python -m bench.image_sizes                    # 100 rounds of 300–1200 px images
    python -m bench.image_sizes --rounds 200 --every 20
    python -m bench.image_sizes --fixed            # one 800 × 600 size throughout, to compare

A round is what a page does with a new image: `/propose`, then two `/answer` questions (a
detection and a region caption). On a CPU each new size meets oneDNN kernels made for its
shapes, and freed buffers of every size are left scattered on the heap: memory that keeps
growing round after round, where one size keeps it flat, is the sign. The table has a row every
`--every` rounds; the first is taken after one round, once the server has answered.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from bench.load import memory_mib, server_pid
from bench.options import add_json_option, benchmark_parser
from bench.table import report
from fo1_core.cli import positive
from tests.browser.app_server import running_app
from tests.conftest import RIGGED_ANSWER
from tests.rigged import make_rigged_checkpoint

SIDES = (300, 1200)
FIXED_SIZE = (800, 600)


def _round(client: Client, path: Path) -> None:
    proposals = client.predict(handle_file(str(path)), "offline", "", None, 10, api_name="/propose")
    boxes = proposals["boxes"][:5] or [[10, 10, 100, 100]]
    for task, text in (("OD_template", "cup"), ("Brief_Region_Caption_template", "<region0>")):
        client.predict(handle_file(str(path)), boxes, task, text, api_name="/answer")


def run(rounds: int = 100, every: int = 10, fixed: bool = False, seed: int = 0) -> list[dict]:
    """RSS of a fresh server after round 1 and every `every` rounds; a row per measurement."""
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fo1-sizes-") as temp:
        folder = Path(temp)
        checkpoint = make_rigged_checkpoint(folder / "checkpoint", RIGGED_ANSWER)
        with running_app(checkpoint, log=folder / "app.log") as url:
            pid = server_pid()
            client = Client(url, verbose=False)
            start = time.monotonic()
            for index in range(1, rounds + 1):
                width, height = FIXED_SIZE if fixed else rng.integers(*SIDES, endpoint=True, size=2)
                # Two names in turn: a hundred noise images would fill the temporary folder.
                path = folder / f"image{index % 2}.png"
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(path)
                _round(client, path)
                if index == 1 or index % every == 0:
                    rows.append(
                        {
                            "round": index,
                            "last image": f"{width}×{height}",
                            "RSS MiB": round(memory_mib(pid, "VmRSS")),
                            "seconds": round(time.monotonic() - start),
                        }
                    )
    return rows


def main() -> None:
    parser = benchmark_parser("bench.image_sizes", __doc__)
    parser.add_argument("--rounds", type=positive, default=100, help="images asked about")
    parser.add_argument("--every", type=positive, default=10, help="rounds between rows")
    parser.add_argument("--fixed", action="store_true", help=f"every image {FIXED_SIZE}")
    parser.add_argument("--seed", type=int, default=0, help="of the random sizes and pixels")
    add_json_option(parser)
    args = parser.parse_args()
    report(run(args.rounds, args.every, args.fixed, args.seed), args.json)


if __name__ == "__main__":
    main()
