"""Many `gradio_client` sessions at once against `python app.py` on a rigged checkpoint (loopback).

    python -m bench.load                               # 20 clients × 4 questions
    python -m bench.load --clients 20 --questions 2 --queue-size 5   # a waiting line that fills

Each client has its own solid-colour image and its own boxes. The rigged model names regions 0
and 2, so every answer can be checked for being this client's: the annotated image shows the
client's colour (not another's) and the detections carry the client's boxes. A request is
answered, refused (the waiting line is full), lost (an error, or no answer before the deadline)
or mixed up (someone else's image or boxes). Traffic goes only to 127.0.0.1; the whole run has a
hard deadline, after which unfinished requests count as lost and the server is stopped.
"""

from __future__ import annotations

import colorsys
import math
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from bench.options import add_json_option, benchmark_parser
from bench.table import report
from fo1_core.cli import positive
from tests.browser.app_server import running_app
from tests.conftest import RIGGED_ANSWER
from tests.rigged import make_rigged_checkpoint

IMAGE_HEIGHT = 64
PROBE_ROW = 62
"""Below every box, at the right edge: a pixel that keeps the client's colour when drawn."""


@dataclass
class Outcome:
    kind: str  # answered | refused | lost | mixed
    seconds: float
    detail: str = ""


@dataclass
class LoadResult:
    clients: int
    questions: int
    outcomes: list[Outcome] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    final_rss_mib: float = 0.0

    def count(self, kind: str) -> int:
        return sum(outcome.kind == kind for outcome in self.outcomes)

    @property
    def lost(self) -> int:
        """Requests with no outcome at the deadline count as lost too."""
        return self.count("lost") + self.clients * self.questions - len(self.outcomes)

    def row(self) -> dict[str, object]:
        latencies = sorted(o.seconds for o in self.outcomes if o.kind == "answered")
        # Nearest rank: the smallest latency that 95 % of the answers took at most.
        p95 = latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else float("nan")
        return {
            "clients": self.clients,
            "requests": self.clients * self.questions,
            "answered": self.count("answered"),
            "queue full": self.count("refused"),
            "lost": self.lost,
            "mixed up": self.count("mixed"),
            "p50 s": round(statistics.median(latencies), 2) if latencies else float("nan"),
            "p95 s": round(p95, 2),
            "peak RSS MiB": round(self.peak_rss_mib),
            "RSS after MiB": round(self.final_rss_mib),
        }


def client_colour(index: int, clients: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(index / clients, 0.8, 0.9)
    return round(r * 255), round(g * 255), round(b * 255)


def image_width(clients: int) -> int:
    """Wide enough that the most shifted boxes stay inside (clipped boxes would not compare)."""
    return 100 + clients


def client_boxes(index: int) -> list[list[int]]:
    """Three boxes, regions 0 and 2 shifted by the client's index so each client's differ."""
    return [[2 + index, 2, 40 + index, 30], [5, 5, 20, 20], [10 + index, 20, 60 + index, 60]]


def memory_mib(pid: int, key: str) -> float:
    """`key` of `/proc/PID/status` (`VmRSS`, `VmHWM`) in MiB; 0 where it is missing."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_pid() -> int:
    """The `app.py` child of this process (`running_app` yields only its URL)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if parent == me and b"app.py" in command:
            return int(stat.parent.name)
    raise RuntimeError("the app.py server process was not found")


def _judge(result: tuple, colour: tuple[int, int, int], boxes: list, colours: list) -> str:
    """ "answered" when the answer is this client's, else "mixed" with what was wrong."""
    image, raw, detections = result
    pixel = np.asarray(Image.open(image).convert("RGB"))[PROBE_ROW, -2].astype(int)
    nearest = min(colours, key=lambda c: np.abs(pixel - c).sum())
    drawn = [d["box_xyxy"] for d in detections["detections"]]
    if nearest != colour or drawn != [boxes[0], boxes[2]] or not raw.startswith(RIGGED_ANSWER):
        return f"mixed: pixel {pixel.tolist()} boxes {drawn}"
    return "answered"


def _client(url: str, index: int, result: LoadResult, folder: Path, deadline: float) -> None:
    colours = [client_colour(i, result.clients) for i in range(result.clients)]
    colour, boxes = colours[index], client_boxes(index)
    path = folder / f"client{index}.png"
    Image.new("RGB", (image_width(result.clients), IMAGE_HEIGHT), colour).save(path)
    client = Client(url, verbose=False)
    for question in range(result.questions):
        start = time.monotonic()
        if start >= deadline:
            return
        job = client.submit(
            handle_file(str(path)), boxes, "OD_template", f"client {index} question {question}",
            api_name="/answer",
        )  # fmt: skip
        try:
            verdict = _judge(job.result(timeout=deadline - start), colour, boxes, colours)
            outcome = Outcome(verdict.split(":")[0], time.monotonic() - start, verdict)
        except TimeoutError:
            outcome = Outcome("lost", time.monotonic() - start, "no answer before the deadline")
        except Exception as error:  # every failure is classified, none raised
            full = "queue is full" in str(error).lower()
            outcome = Outcome("refused" if full else "lost", time.monotonic() - start, str(error))
        result.outcomes.append(outcome)  # list.append is atomic under the GIL


def _watch_memory(pid: int, result: LoadResult, done: threading.Event) -> None:
    while not done.wait(0.2):
        result.peak_rss_mib = max(result.peak_rss_mib, memory_mib(pid, "VmHWM"))


def run(
    clients: int = 20, questions: int = 4, timeout_s: float = 300, queue_size: int = 32
) -> LoadResult:
    """One load run on a fresh server; never takes (much) longer than `timeout_s` plus start-up."""
    result = LoadResult(clients, questions)
    with tempfile.TemporaryDirectory(prefix="fo1-load-") as temp:
        folder = Path(temp)
        checkpoint = make_rigged_checkpoint(folder / "checkpoint", RIGGED_ANSWER)
        extra = ("--queue-size", str(queue_size))
        with running_app(checkpoint, *extra, log=folder / "app.log") as url:
            pid = server_pid()
            done = threading.Event()
            watcher = threading.Thread(target=_watch_memory, args=(pid, result, done), daemon=True)
            watcher.start()
            deadline = time.monotonic() + timeout_s
            threads = [
                threading.Thread(
                    target=_client, args=(url, i, result, folder, deadline), daemon=True
                )
                for i in range(clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()) + 5)
            done.set()
            result.peak_rss_mib = max(result.peak_rss_mib, memory_mib(pid, "VmHWM"))
            result.final_rss_mib = memory_mib(pid, "VmRSS")
    return result


def main() -> None:
    parser = benchmark_parser("bench.load", __doc__)
    parser.add_argument("--clients", type=positive, default=20, help="sessions asking at once")
    parser.add_argument("--questions", type=positive, default=4, help="questions per client")
    parser.add_argument("--timeout", type=positive, default=300, help="whole seconds for the run")
    parser.add_argument("--queue-size", type=positive, default=32, help="the app's waiting line")
    add_json_option(parser)
    args = parser.parse_args()
    result = run(args.clients, args.questions, args.timeout, args.queue_size)
    report([result.row()], args.json)
    for outcome in result.outcomes:
        if outcome.kind in ("lost", "mixed"):
            print(outcome.detail if outcome.kind == "mixed" else f"lost: {outcome.detail}")


if __name__ == "__main__":
    main()
