"""Region encoding at a checkpoint profile's shape: our pooling against upstream's, in one run.

    python -m bench.regions                              # 3B shape, 1024×768, 100 boxes
    python -m bench.regions --profile mid --boxes 10 --json out.json

Only the region encoder is built (random weights, random tower maps of the shapes the image gives
the profile), so the 3B shape runs in seconds on a CPU. The profiles are all the published
model's variant: a SimpleFP, and DaViT's input squashed to 768². Each row is one pooling: `ours`
(RoIAlign means as row and column weights, `fo1_core/region_pooling.py`) or `upstream`
(`roi_align` on the DaViT stages upsampled to the finest one's size, as the official
implementation runs it).
`pyramid_s`: the SimpleFP pyramid of the image (the app keeps it per image; upstream builds it
for every question); `all_boxes_s`: pooling every box; `moved_box_s`: pooling one moved box;
`max_abs_diff`: the largest difference of the pooled features from upstream's. Medians of
`--runs` runs after one more run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import roi_align

from bench.options import (
    add_json_option,
    add_size_option,
    benchmark_parser,
    exits_on_user_error,
)
from bench.random_checkpoint import PROFILES, TINY, profile_config
from bench.table import peak_memory_mb, report, reset_peak_memory
from fo1_core import region_encoder
from fo1_core.checkpoint import default_device_and_dtype
from fo1_core.cli import device_name, positive
from fo1_core.configuration import AUX_IMAGE_SIZE, FO1Config
from fo1_core.processing import ImagePreprocessor
from fo1_core.region_encoder import HybridRegionEncoder


def upstream_roi_mean(
    feature_maps: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    scale: float,
    bins: int,
    pooled_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The official implementation's pooling: upsample the maps to one size, concatenate them,
    `roi_align`, then the mean of the grid."""
    size = pooled_size or tuple(feature_maps[0].shape[-2:])
    maps = [
        m.float()
        if m.shape[-2:] == size
        else F.interpolate(m.float(), size, mode="bilinear", align_corners=False)
        for m in feature_maps
    ]
    pooled = roi_align(
        torch.cat(maps, dim=1), [boxes], output_size=bins, spatial_scale=scale, aligned=False
    )
    return pooled.mean(dim=(2, 3))


def random_boxes(width: int, height: int, count: int) -> np.ndarray:
    """`count` boxes from 5% to 80% of the image's sides, anywhere inside it."""
    rng = np.random.default_rng(0)
    size = rng.uniform(0.05, 0.8, (count, 2)) * [width, height]
    corner = rng.uniform(0, 1, (count, 2)) * ([width, height] - size)
    return np.concatenate([corner, corner + size], axis=1)


def tower_maps(
    config: FO1Config, grid_hw: tuple[int, int], device: str, dtype: torch.dtype
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Random DaViT stage maps and ViT map of the shapes an image of ViT grid `grid_hw` gives."""
    aux = config.aux_vision_config()
    side, aux_maps = AUX_IMAGE_SIZE, []
    for stride, channels in zip(aux.patch_stride, aux.embed_dim, strict=True):
        side //= stride
        aux_maps.append(torch.randn(1, channels, side, side, device=device, dtype=dtype))
    vit_map = torch.randn(1, config.vision_config.hidden_size, *grid_hw, device=device, dtype=dtype)
    return aux_maps, vit_map


def _seconds(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def _row(args: argparse.Namespace, method: str, encode: Callable[..., torch.Tensor], inputs: dict):
    reset_peak_memory(torch.device(args.device))
    all_boxes, moved = inputs["all_boxes"], inputs["moved_box"]
    return {
        "profile": args.profile,
        "device": args.device,
        "dtype": args.dtype,
        "image": "x".join(map(str, args.size)),
        "boxes": args.boxes,
        "method": method,
        "pyramid_s": inputs["pyramid_s"],
        "all_boxes_s": _seconds(lambda: encode(*all_boxes), args.runs),
        "moved_box_s": _seconds(lambda: encode(*moved), args.runs),
        "peak_mem_MB": peak_memory_mb(torch.device(args.device)),
    }


@exits_on_user_error
def main() -> None:
    parser = benchmark_parser("bench.regions", __doc__)
    parser.add_argument("--profile", default="3b", choices=PROFILES, help="the model's sizes")
    add_size_option(parser, "1024x768")
    parser.add_argument("--boxes", type=positive, default=100, help="regions pooled")
    parser.add_argument(
        "--runs", type=positive, default=3, help="timed runs, their median reported"
    )
    device, dtype = default_device_and_dtype()
    parser.add_argument("--device", type=device_name, default=str(device), help="where it runs")
    parser.add_argument(
        "--dtype",
        choices=["bfloat16", "float32"],
        default=str(dtype).removeprefix("torch."),
        help="the weights' type",
    )
    add_json_option(parser)
    args = parser.parse_args()

    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    tiny = args.profile == "tiny"
    config = FO1Config.from_pretrained(TINY) if tiny else profile_config(args.profile)
    encoder = HybridRegionEncoder(config).to(args.device, dtype).eval()
    width, height = args.size
    boxes = random_boxes(width, height, args.boxes)
    vision = ImagePreprocessor(TINY)(Image.new("RGB", (width, height)), boxes)
    grid = tuple(vision.image_grid_thw[0, 1:].tolist())
    aux_maps, vit_map = tower_maps(config, grid, args.device, dtype)
    aux_boxes, vt_boxes = vision.aux_boxes.to(args.device), vision.vt_boxes.to(args.device)
    rows, features = [], []
    with torch.inference_mode():
        vt_maps = encoder.pyramid([vit_map])
        inputs = {
            "pyramid_s": _seconds(lambda: encoder.pyramid([vit_map]), args.runs),
            "all_boxes": (aux_maps, vt_maps, aux_boxes, vt_boxes),
            "moved_box": (aux_maps, vt_maps, aux_boxes[:1] + 8, vt_boxes[:1] + 8),
        }
        # Ours first: on the CPU peak memory only grows, so upstream's row shows its own peak.
        for method, pool in (("ours", region_encoder.roi_mean), ("upstream", upstream_roi_mean)):
            with mock.patch.object(region_encoder, "roi_mean", pool):
                rows.append(_row(args, method, encoder, inputs))
                features.append(encoder(*inputs["all_boxes"]))
    for row in rows:
        row["max_abs_diff"] = (features[0] - features[1]).abs().max().item()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} CPU threads, medians of {args.runs} runs")
    report(rows, args.json)


if __name__ == "__main__":
    main()
