"""`python app.py [--checkpoint PATH_OR_ID] [--device cpu|cuda] [--host H] [--port P]`.

Loads the checkpoint (downloading it from the hub with a progress bar when given an id), builds
the Gradio app and serves it. A checkpoint that cannot be loaded ends the program with its
message and exit code 2 rather than serving a UI that cannot answer.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import sys
import warnings

# `spaces` must be imported before torch: on ZeroGPU it patches CUDA initialisation.
import spaces  # noqa: F401, I001
import torch
from PIL import Image

from detect_tools.registry import available as available_proposers
from detect_tools.registry import with_models as proposers_with_models
from fo1_core.checkpoint import default_device_and_dtype, parse_device
from fo1_core.cli import add_checkpoint_option, positive, whole_number
from fo1_core.errors import FO1Error
from fo1_core.host_memory import limit_kernel_caches
from fo1_core.session import DECODE_MODES, STATIC_CACHE_TOKENS, load
from fo1_core.templates import DEFAULT_MAX_NEW_TOKENS
from ui import (
    Settings,
    app_css,
    app_head,
    app_theme,
    build_app,
    delete_served_files,
    serve_from_a_folder_of_its_own,
)
from ui.examples import EXAMPLES_DIR
from ui.gpu import ON_ZERO_GPU, ZERO_GPU_MAX_NEW_TOKENS
from ui.sessions import OPEN_PAGES
from ui.waiting_line import queue_with_a_model_line

logger = logging.getLogger("app")


def proposer_checkpoint(text: str) -> tuple[str, str]:
    """`NAME=FOLDER` of `--proposer-checkpoint`."""
    name, _, checkpoint = text.partition("=")
    if not checkpoint:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=FOLDER, e.g. florence2=/models/f2")
    if name not in (names := proposers_with_models()):
        raise argparse.ArgumentTypeError(
            f"{name!r} is not a proposer with a model: one of {', '.join(names)}"
        )
    return name, checkpoint


FILE_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def file_size(text: str) -> int:
    """An argparse type: `50mb`, `1.5gb` or a count of bytes, as a count of bytes (Gradio reads
    only whole numbers with a unit, and fails on anything else with a traceback at launch)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.lower())
    if match is None or match[2] not in FILE_SIZE_UNITS or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a file size: write it as 50mb, 1.5gb or a number of bytes"
        )
    return round(float(match[1]) * FILE_SIZE_UNITS[match[2]])


OPTIONS_VARIABLE = "FO1_APP_OPTIONS"
"""Options read before the command line's (which win): a Space runs `python app.py` as it is,
and its variables and secrets are where its owner sets anything."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="VLM-FO1 browser demo",
        epilog=f"{OPTIONS_VARIABLE}, where set, holds options read before these (which win).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_checkpoint_option(parser)
    parser.add_argument("--device", help="cuda, cpu, …; None: cuda when available")
    # A Hugging Face Space says where to serve in Gradio's variables (0.0.0.0 there).
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="0.0.0.0 to serve the network; GRADIO_SERVER_NAME, when set, is the default",
    )
    parser.add_argument(
        "--port",
        type=whole_number(1, 65535),
        default=os.environ.get("GRADIO_SERVER_PORT", "7860"),
        help="GRADIO_SERVER_PORT, when set, is the default",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive,
        default=ZERO_GPU_MAX_NEW_TOKENS if ON_ZERO_GPU else DEFAULT_MAX_NEW_TOKENS,
        help=f"the answer length the page starts with ({ZERO_GPU_MAX_NEW_TOKENS} on ZeroGPU, "
        "whose slot for it fits a visitor's quota)",
    )
    parser.add_argument(
        "--token-limit",
        type=positive,
        default=Settings.token_limit,
        help="the most the page's answer-length slider allows (raised to --max-new-tokens)",
    )
    parser.add_argument(
        "--decode",
        default="auto",
        choices=["auto", *DECODE_MODES],
        help="auto: compiled on a dedicated GPU (warmed up at start), dynamic elsewhere; "
        "graphed: CUDA-graph decode steps without a compiler (not yet measured on a GPU)",
    )
    parser.add_argument(
        "--static-cache-tokens",
        type=positive,
        default=STATIC_CACHE_TOKENS,
        help="KV slots of static/compiled/graphed decoding; longer requests use a growing cache",
    )
    parser.add_argument("--concurrency", type=positive, default=1, help="GPU jobs at once")
    parser.add_argument(
        "--queue-size",
        type=positive,
        default=32,
        help="questions and proposals waiting for the model at most (other events always go in)",
    )
    parser.add_argument(
        "--proposer",
        choices=list(available_proposers()),
        help="proposer selected at start; None: florence2 where its weights are cached or the "
        "hub is online, else owlv2-objects where its are cached, else offline",
    )
    parser.add_argument(
        "--proposer-checkpoint",
        type=proposer_checkpoint,
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="a proposer's local checkpoint folder (or hub id) instead of its hub default; "
        "once per proposer",
    )
    parser.add_argument(
        "--encode-ahead",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="encode the image and boxes while the question is typed, when the model is idle "
        "(never on ZeroGPU)",
    )
    parser.add_argument(
        "--max-file-size", type=file_size, default="50mb", help="largest upload, e.g. 50mb"
    )
    parser.add_argument(
        "--file-ttl",
        type=positive,
        default=Settings.file_ttl,
        help="seconds uploads and results are kept",
    )
    given = sys.argv[1:] if argv is None else argv
    try:
        from_environment = shlex.split(os.environ.get(OPTIONS_VARIABLE, ""))
    except ValueError as error:  # an unclosed quote
        parser.error(f"{OPTIONS_VARIABLE}: {error}")
    return parser.parse_args([*from_environment, *given])


def decode_mode(args: argparse.Namespace) -> str:
    """`auto`: compiled on a GPU the app keeps; ZeroGPU forks a fresh worker now and then, which
    would compile again inside a visitor's time slot, and CPUs gain less than compiling costs."""
    if args.decode != "auto":
        return args.decode
    device = parse_device(args.device) if args.device else default_device_and_dtype()[0]
    return "compiled" if device.type == "cuda" and not ON_ZERO_GPU else "dynamic"


def warms_up(decode: str, device: torch.device) -> bool:
    """Whether to answer a question before serving, so that the first visitor does not wait for
    CUDA's start-up or the compiler. On ZeroGPU the server process has no GPU to do it with."""
    return not ON_ZERO_GPU and (decode == "compiled" or device.type == "cuda")


def main(argv: list[str] | None = None) -> int:
    limit_kernel_caches()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The app refuses images over its own pixel limit with a message for the user; Pillow's
    # warning from 89 MP on only repeated that in the server log, once for each place that opens
    # the upload. Pillow's error at twice its limit still guards decoding.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    logger.info("Loading %s …", args.checkpoint)
    try:
        pipeline = load(
            args.checkpoint,
            device=args.device,
            decode=decode_mode(args),
            static_cache_tokens=args.static_cache_tokens,
        )
    except FO1Error as error:
        logger.error("%s", error)
        print(f"error: {error}", file=sys.stderr)  # noqa: T201 (the one line a user must see)
        return 2
    if warms_up(pipeline.decode, pipeline.device):
        logger.info("Warming up (a first question; compiling when decoding compiled) …")
        warm = pipeline.warm_up()
        logger.info("Warm-up took %.1f s; decoding %s.", warm.seconds, warm.decode)
    if args.max_new_tokens > args.token_limit:
        logger.warning(
            "--max-new-tokens %d is over --token-limit %d: the page's slider goes to %d.",
            args.max_new_tokens, args.token_limit, args.max_new_tokens,
        )  # fmt: skip
    settings = Settings(
        max_new_tokens=args.max_new_tokens,
        token_limit=max(args.token_limit, args.max_new_tokens),
        concurrency=args.concurrency,
        device=args.device,
        default_proposer=args.proposer,
        proposer_checkpoints=dict(args.proposer_checkpoint),
        file_ttl=args.file_ttl,
        encode_ahead=args.encode_ahead,
    )
    serve_from_a_folder_of_its_own()
    demo = build_app(pipeline, settings)
    queue_with_a_model_line(demo, args.concurrency, args.queue_size)
    # `kill`, Docker and a Space's restart stop the server with SIGTERM, which would end the
    # process without closing the server or running `atexit`: uploads and answer files would stay
    # on disk. As Ctrl+C, it closes the server and returns here, where they are deleted.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            allowed_paths=[str(EXAMPLES_DIR)],
            max_file_size=args.max_file_size,
            # Gradio keeps each session's component values (an editor's boxes, say) for 10 000
            # sessions by default: as many as the app keeps pages of its own.
            state_session_capacity=OPEN_PAGES,
            show_error=True,
            css=app_css(),
            head=app_head(),
            theme=app_theme(),
        )
    except OSError as error:  # the port is taken, or the host is not this machine's
        message = f"error: cannot serve on {args.host}:{args.port}: {error}"
        print(message, file=sys.stderr)  # noqa: T201 (the one line a user must see)
        return 2
    delete_served_files(demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
