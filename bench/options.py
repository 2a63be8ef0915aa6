"""Options every FO1 benchmark takes: where and how the model runs, and where the rows go.

A mistake in them ends the benchmark before anything is built, with one `error:` line and exit
status 2, as `python -m fo1_core` ends; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from detect_tools.base import ProposerError
from detect_tools.images import SMALLEST_ACCEPTED_SIDE
from fo1_core.checkpoint import default_device_and_dtype
from fo1_core.cli import device_name, positive
from fo1_core.errors import FO1Error
from fo1_core.session import DECODE_MODES, FO1Pipeline, load


def writable_file(text: str) -> Path:
    """An argparse type for the rows' file: opened at once (and left as it was), so that a
    mistyped folder ends the run before the benchmark rather than after it."""
    path = Path(text)
    existed = path.exists()
    try:
        path.open("a").close()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {error.strerror}") from error
    if not existed:
        path.unlink()
    return path


def image_size(text: str) -> tuple[int, int]:
    """An argparse type: `WIDTHxHEIGHT` in pixels, each side one FO1 accepts."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or min(int(side) for side in match.groups()) < SMALLEST_ACCEPTED_SIDE:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 1024x768, each side at least "
            f"{SMALLEST_ACCEPTED_SIDE} px, got {text!r}"
        )
    return int(match[1]), int(match[2])


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Adds an option's default to its help where there is one to give (not None, not a
    switch's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def benchmark_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The options of `python -m <module>`, described by the first line of its `doc`; --help
    gives every option's default."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc.split("\n")[0],
        formatter_class=_DefaultsHelp,
    )


def add_size_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--size", type=image_size, default=default, help="the image, WIDTHxHEIGHT")


def add_new_tokens_option(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--new-tokens", type=positive, default=default, help="tokens each answer decodes"
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=writable_file, help="also write the rows here")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        type=device_name,
        default=str(default_device_and_dtype()[0]),
        help="where the model runs",
    )
    parser.add_argument(
        "--dtype", choices=["bfloat16", "float32"], help="the weights' type (default: the loader's)"
    )
    parser.add_argument(
        "--decode", nargs="+", default=["dynamic"], choices=DECODE_MODES, help="one row each"
    )
    parser.add_argument(
        "--cudnn-attention",
        action="store_true",
        help="let SDPA use cuDNN again after loading (PyTorch's own choice), to compare",
    )
    add_json_option(parser)


def exits_on_user_error(main: Callable[[], None]) -> Callable[[], None]:
    """`main`, ending with one `error:` line and exit status 2 on a mistake found only while it
    runs (a folder that holds no checkpoint, a proposer that cannot load)."""

    @functools.wraps(main)
    def run() -> None:
        try:
            main()
        except (FO1Error, ProposerError) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return run


def dtype_of(args: argparse.Namespace) -> torch.dtype | None:
    return getattr(torch, args.dtype) if args.dtype else None


def load_pipeline(folder: Path, args: argparse.Namespace, decode: str) -> FO1Pipeline:
    """The pipeline as the options ask for it (not warmed up)."""
    pipeline = load(folder, device=args.device, dtype=dtype_of(args), decode=decode)
    if args.cudnn_attention:
        torch.backends.cuda.enable_cudnn_sdp(True)
    return pipeline


def cudnn_attention(args: argparse.Namespace) -> bool:
    """Whether SDPA could use cuDNN in a benchmark's row (only GPUs have it)."""
    return args.device.startswith("cuda") and torch.backends.cuda.cudnn_sdp_enabled()
