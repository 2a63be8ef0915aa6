"""Options every FO1 benchmark takes: where and how the model runs, and where the rows go."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fo1_core.checkpoint import default_device_and_dtype
from fo1_core.session import DECODE_MODES, FO1Pipeline, load


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=str(default_device_and_dtype()[0]))
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], help="default: the loader's")
    parser.add_argument(
        "--decode", nargs="+", default=["dynamic"], choices=DECODE_MODES, help="one row each"
    )
    parser.add_argument(
        "--cudnn-attention",
        action="store_true",
        help="let SDPA use cuDNN again after loading (PyTorch's own choice), to compare",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")


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
