"""The mean of a box's RoIAlign grid, computed as two weight vectors instead of a sampled grid.

Upstream pools each box with `roi_align(..., aligned=False, sampling_ratio=-1)` and averages the
k×k result; the DaViT stages are first upsampled (bilinear) to the finest stage's size. Every
step is linear in the map and separable in y and x, so the whole pooled vector of box n is
`Σ_ij wy[n, i] · wx[n, j] · map[:, i, j]`: one weight per map row and one per map column. The
upsampling folds into those weights too, so the upsampled pyramid (566 MB in float32 for the
published model) is never made, and 100 boxes cost two small matrix products per map.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


def roi_axis_weights(
    starts: torch.Tensor, ends: torch.Tensor, scale: float, bins: int, length: int
) -> torch.Tensor:
    """`(N, length)`: how much each map row (or column) weighs in each box's pooled mean.

    `starts`/`ends` are the boxes' edges along one axis in input pixels; `scale` maps them onto
    the map; `bins` is RoIAlign's output size. The sample points, their validity and clamping are
    torchvision's `roi_align` with `aligned=False` and an adaptive sampling grid; each sample is
    shared by its bin's and the bins' averages, which makes the factor `1 / (bins · grid)`.
    """
    start = starts.float() * scale
    extent = (ends.float() * scale - start).clamp(min=1.0)
    bin_size = extent / bins
    grid = torch.ceil(extent / bins).clamp(min=1)
    grid_max = max(int(grid.max().item()), 1) if grid.numel() else 1
    # Sample s of bin b sits at start + b·bin + (s + ½)·bin / grid; samples s ≥ grid are padding.
    sample = torch.arange(grid_max, dtype=torch.float32, device=starts.device)
    offsets = (sample + 0.5)[None, :] * bin_size[:, None] / grid[:, None]
    corners = torch.arange(bins, dtype=torch.float32, device=starts.device)
    points = start[:, None, None] + corners[None, :, None] * bin_size[:, None, None]
    points = (points + offsets[:, None, :]).flatten(1)
    used = (sample[None, :] < grid[:, None]).repeat(1, bins)
    used &= (points >= -1.0) & (points <= length)
    points = points.clamp(min=0.0)
    # At the last row both corners are that row, so its weights add up to the sample's share.
    low = points.floor().clamp(max=length - 1)
    high = (low + 1).clamp(max=length - 1)
    frac = points - low
    share = used.float() / (bins * grid[:, None])
    weights = torch.zeros(len(starts), length, dtype=torch.float32, device=starts.device)
    weights.scatter_add_(1, low.long(), share * (1 - frac))
    weights.scatter_add_(1, high.long(), share * frac)
    return weights


@functools.lru_cache(maxsize=64)
def upsampling_matrix(out_length: int, in_length: int) -> torch.Tensor:
    """`(out_length, in_length)`: bilinear `F.interpolate` (`align_corners=False`) on one axis.

    Kept per pair of lengths, a bounded number: maps come in a few sizes, unless the DaViT input
    takes each image's own size. Not to be written to."""
    ratio = in_length / out_length
    source = (torch.arange(out_length, dtype=torch.float32) + 0.5) * ratio - 0.5
    source = source.clamp(min=0.0)
    low = source.floor().clamp(max=in_length - 1)
    high = (low + 1).clamp(max=in_length - 1)
    frac = (source - low).clamp(0.0, 1.0)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float32)
    rows = torch.arange(out_length)
    matrix.index_put_((rows, low.long()), 1 - frac, accumulate=True)
    matrix.index_put_((rows, high.long()), frac, accumulate=True)
    return matrix


def roi_mean(
    feature_maps: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    scale: float,
    bins: int,
    pooled_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """`(N, ΣC)`: `roi_align(maps, [boxes], bins, scale, aligned=False).mean((2, 3))`, where
    `maps` is the feature maps (each `(1, C, h, w)`) bilinearly upsampled to `pooled_size` (by
    default the first map's size) and concatenated along channels. Pooled in float32.

    boxes: `(N, 4)` xyxy in input pixels.
    """
    height, width = pooled_size or feature_maps[0].shape[-2:]
    # The weights are summed on the CPU, where scatter adds in a fixed order: a GPU's atomic adds
    # would make the same box pool to values a rounding apart from one call to the next.
    boxes = boxes.detach().float().cpu()
    wy = roi_axis_weights(boxes[:, 1], boxes[:, 3], scale, bins, height)
    wx = roi_axis_weights(boxes[:, 0], boxes[:, 2], scale, bins, width)
    return torch.cat([_weighted_sum(m, wy, wx) for m in feature_maps], dim=1)


def _weighted_sum(feature_map: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    """`(N, C)`: `Σ_ij wy[n, i] · wx[n, j] · map[:, i, j]`, the weights given on the pooled grid
    and folded onto the map's own rows and columns first."""
    source_h, source_w = feature_map.shape[-2:]
    if wy.shape[1] != source_h:
        wy = wy @ upsampling_matrix(wy.shape[1], source_h)
    if wx.shape[1] != source_w:
        wx = wx @ upsampling_matrix(wx.shape[1], source_w)
    # Only the rows and columns some box weighs are read (and converted to float32).
    top, bottom = _weighed_span(wy)
    left, right = _weighed_span(wx)
    window = feature_map[0, :, top:bottom, left:right].float()
    wy, wx = (w.to(feature_map.device) for w in (wy[:, top:bottom], wx[:, left:right]))
    rows = torch.matmul(wy, window)  # (C, N, columns)
    return torch.einsum("cnw,nw->nc", rows, wx)


def _weighed_span(weights: torch.Tensor) -> tuple[int, int]:
    """The first and one past the last index with a non-zero weight in any row of `weights`."""
    used = torch.nonzero(weights.any(dim=0)).flatten()
    if not used.numel():
        return 0, 0
    return int(used[0]), int(used[-1]) + 1
