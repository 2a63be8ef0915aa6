"""Files and network: the app serves only its own files, fetches no URL for a user, listens on
loopback unless told otherwise, caps uploads and deletes them.

One `python app.py` on the answering checkpoint, with its Gradio temp folder in a test folder (so
what uploads leave behind can be seen) and a two-second file TTL (so the cleanup can be watched).
"""

from __future__ import annotations

import http.client
import http.server
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.browser.app_server import REPO, call_raw, running_app

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "examples"
BOXES = [[1, 1, 30, 30], [2, 2, 40, 40], [3, 3, 50, 50]]
FILE_TTL_S = 2
SECRETS = (b"root:", b"import spaces", b"HF_HUB_OFFLINE")
"""Bytes of /etc/passwd, of app.py and of the server's environment: none may come back."""


@pytest.fixture(scope="module")
def temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gradio-temp")


@pytest.fixture(scope="module")
def url(answering_checkpoint: Path, temp_dir: Path) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(temp_dir))
        with running_app(answering_checkpoint, "--file-ttl", str(FILE_TTL_S)) as app_url:
            yield app_url


def _get(url: str, raw_path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (httpx would remove the dot segments first)."""
    address = urlparse(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", raw_path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "green").save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(url: str, name: str, content: bytes) -> httpx.Response:
    return httpx.post(f"{url}gradio_api/upload", files={"files": (name, content)}, timeout=60)


def test_host_defaults_to_loopback_and_uploads_are_capped() -> None:
    from app import parse_args

    args = parse_args([])
    assert args.host == "127.0.0.1"
    assert args.max_file_size == 50 * 2**20  # 50mb


def _outward_address() -> str | None:
    """This machine's address on its default route, without sending anything (UDP connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_server_is_not_reachable_on_another_interface(url: str) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no interface besides loopback")
    with pytest.raises(OSError), socket.create_connection((address, urlparse(url).port), 2):
        pass


ABSOLUTE_EXAMPLES = quote(str(EXAMPLES))
TRAVERSALS = [
    "/gradio_api/file=/etc/passwd",  # an absolute path outside the app
    "/gradio_api/file=%2Fetc%2Fpasswd",  # the same, URL-encoded
    "/gradio_api/file=//etc/passwd",  # a doubled slash
    "/gradio_api/file=/proc/self/environ",  # the server's environment
    "/gradio_api/file=app.py",  # the app's own source, relative
    "/gradio_api/file=../../app.py",  # dot segments
    "/gradio_api/file=..%2F..%2Fapp.py",  # encoded dot segments
    "/gradio_api/file=%2e%2e/%2e%2e/etc/passwd",  # encoded dots
    "/gradio_api/file=%252e%252e%252fapp.py",  # double encoding
    f"/gradio_api/file={ABSOLUTE_EXAMPLES}/../app.py",  # out of an allowed folder
    f"/gradio_api/file={ABSOLUTE_EXAMPLES}/..%2Fapp.py",  # … with an encoded slash
    f"/gradio_api/file={ABSOLUTE_EXAMPLES}%2F..%2F..%2F..%2Fetc%2Fpasswd",  # … all encoded
    f"/gradio_api/file={quote(str(REPO))}/app.py",  # the repository root is not allowed
    "/gradio_api/file=..\\..\\app.py",  # Windows separators
    "/file=/etc/passwd",  # the Gradio 3 route
    "/static/../../app.py",  # static routes
    "/assets/..%2F..%2Fapp.py",
    "/gradio_api/file=~/.bashrc",  # a home folder
]


@pytest.mark.parametrize("raw_path", TRAVERSALS)
def test_file_routes_serve_nothing_outside_the_app(url: str, raw_path: str) -> None:
    status, body = _get(url, raw_path)
    assert status != 200 or not any(secret in body for secret in SECRETS), raw_path
    assert status in (400, 403, 404, 405), (status, body[:200])


def test_own_example_files_are_served(url: str) -> None:
    status, body = _get(url, f"/gradio_api/file={ABSOLUTE_EXAMPLES}/coffee.jpg")
    assert status == 200 and body == (EXAMPLES / "coffee.jpg").read_bytes()


def test_upload_over_the_cap_is_refused_with_a_message(url: str) -> None:
    response = _upload(url, "big.png", _png_bytes() + b"\0" * (51 * 1024 * 1024))
    assert response.status_code == 413
    assert "maximum allowed size of 52428800 bytes" in response.text


@pytest.mark.parametrize(
    "name",
    [
        "../../escape.png",  # dot segments in the file name
        "/tmp/absolute.png",  # an absolute file name
        "..\\..\\windows.png",  # Windows separators
        "a" * 300 + ".png",  # longer than a file name may be
    ],
)
def test_uploads_stay_in_the_temp_folder(url: str, temp_dir: Path, name: str) -> None:
    response = _upload(url, name, _png_bytes())
    assert response.status_code == 200, response.text
    (stored,) = response.json()
    assert Path(stored).resolve().is_relative_to(temp_dir.resolve())
    assert not (REPO / "escape.png").exists() and not (REPO.parent / "escape.png").exists()


@pytest.mark.parametrize("endpoint", ["answer", "propose"])
def test_another_programs_files_in_gradios_folder_are_neither_served_nor_read(
    url: str, temp_dir: Path, endpoint: str
) -> None:
    """The folder Gradio serves from is shared by every Gradio program on the machine unless
    each is given its own: this app served and answered about files it never wrote."""
    other = temp_dir / "0f3e9a" / f"other-{endpoint}.png"  # as another Gradio app stores one
    other.parent.mkdir(exist_ok=True)
    other.write_bytes(_png_bytes())
    status, _ = _get(url, f"/gradio_api/file={quote(str(other))}")
    assert status in (403, 404), status
    image = {"path": str(other), "meta": {"_type": "gradio.FileData"}}
    arguments = [BOXES, "OD_template", "cup"] if endpoint == "answer" else ["offline", "", None, 5]
    events = call_raw(url, endpoint, json.dumps({"data": [image, *arguments]}))
    assert "event: error" in events and "handle_file(path)" in events, events


def test_uploads_are_deleted_after_their_ttl(url: str) -> None:
    (stored,) = _upload(url, "short-lived.png", _png_bytes()).json()
    assert Path(stored).exists()
    deadline = time.monotonic() + 10 * FILE_TTL_S + 5
    while Path(stored).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not Path(stored).exists()


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # the name http.server calls
        self.hits.append(self.path)
        body = _png_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def image_server() -> Iterator[tuple[str, list[str]]]:
    """A tiny image server on loopback that records every request made to it."""
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/image.png", _Recorder.hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("endpoint", ["/answer", "/propose"])
def test_an_image_url_is_refused_not_fetched(url: str, image_server, endpoint: str) -> None:
    image_url, hits = image_server
    image = {"path": image_url, "meta": {"_type": "gradio.FileData"}}
    arguments = (BOXES, "OD_template", "cup") if endpoint == "/answer" else ("offline", "", 0, 5)
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="does not fetch images from URLs"):
        client.submit(image, *arguments, api_name=endpoint).result(timeout=60)
    assert hits == []


def test_a_public_url_is_refused_before_any_lookup(url: str) -> None:
    # Without the refusal Gradio would resolve and download it ("Unable to resolve hostname").
    image = {"path": "https://example.com/cat.png", "meta": {"_type": "gradio.FileData"}}
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="does not fetch images from URLs"):
        client.submit(image, BOXES, "OD_template", "cup", api_name="/answer").result(timeout=60)


def test_stopping_the_app_deletes_its_files(
    answering_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # SIGTERM (what `kill`, Docker and a Space's restart send) must clean up as Ctrl+C does.
    temp = tmp_path_factory.mktemp("stopped-app-temp")
    upload = tmp_path_factory.mktemp("visitor") / "visitor.png"
    upload.write_bytes(_png_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(temp))  # the app's own folders
        patch.setenv("GRADIO_TEMP_DIR", str(temp / "gradio"))  # uploads, served copies
        with running_app(answering_checkpoint) as app_url:
            Client(app_url, verbose=False).predict(
                handle_file(str(upload)), BOXES, "OD_template", "cup", api_name="/answer"
            )
            assert any(temp.rglob("visitor.png")) and any(temp.glob("fo1-*"))
    left = [path for path in temp.rglob("*") if path.is_file() or path.name.startswith("fo1-")]
    # Gradio keeps its copies of the app's own examples (the page's example gallery) to reuse.
    examples = {path.name for path in EXAMPLES.iterdir()}
    assert [path for path in left if path.name not in examples] == []


def test_an_image_under_the_limit_is_read_without_pillows_bomb_warning(tmp_path: Path) -> None:
    """Pillow warns from 89.5 megapixels, a raw "decompression bomb DOS attack" line on the
    command lines' stderr, for an image the limit of 100 allows."""
    path = tmp_path / "large.png"
    Image.new("L", (9720, 9720)).save(path)
    read = f"from fo1_core.inputs import open_image; print(open_image({str(path)!r}).size)"
    done = subprocess.run(
        [sys.executable, "-c", read], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "(9720, 9720)", done.stderr
    assert done.stderr == ""
