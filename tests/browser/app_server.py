"""Starts `python app.py` as the README says, on a free port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(checkpoint: Path, *extra: str, log: Path | None = None) -> Iterator[str]:
    """Yields the app's URL; the server is stopped (and its log kept) afterwards."""
    port = free_port()
    # No hub here: offline mode makes model proposers fail at once instead of retrying.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "app.py", "--checkpoint", str(checkpoint), "--device", "cpu"]
    command += ["--port", str(port), *extra]
    log = log or REPO / "test-artifacts" / f"app-{port}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=output)
        url = f"http://127.0.0.1:{port}/"
        try:
            _wait_until_up(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app.py did not start in {START_TIMEOUT_S} s:\n{log.read_text()}")


def call_raw(url: str, endpoint: str, body: str) -> str:
    """Posts `body` to `endpoint` as it is (JSON with NaN, say, or a file no client uploaded,
    which no client sends) and returns the events of its result."""
    headers = {"Content-Type": "application/json"}
    start = httpx.post(f"{url}gradio_api/call/{endpoint}", content=body, headers=headers)
    if start.status_code != 200:
        return f"HTTP {start.status_code}: {start.text}"
    event_id = start.json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{endpoint}/{event_id}", timeout=60).text
