"""FO1's Hybrid Fine-grained Region Encoder (HFRE): one feature vector per box.

Each box is pooled (RoIAlign, then averaged: `region_pooling.py`) from two pyramids — the
auxiliary DaViT stages and a SimpleFP built on the Qwen ViT's last full-attention map — and a sine
embedding of the box is added (SPEC §4.4–4.5); the config's options vary these steps (SPEC §2.2).
The region projector then maps the result to one LLM embedding per box.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fo1_core.configuration import SIMPLEFP_SCALES, FO1Config
from fo1_core.region_pooling import roi_mean

_MLP_GELU = re.compile(r"^mlp(\d+)x_gelu$")


def build_projector(kind: str, in_features: int, out_features: int) -> nn.Module:
    """The official projector grammar: `identity`, `linear` or `mlp{N}x_gelu`."""
    if kind == "identity":
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(in_features, out_features)
    match = _MLP_GELU.match(kind)
    if match is None:
        raise ValueError(f"Unsupported projector type {kind!r}")
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(out_features, out_features)]
    return nn.Sequential(*layers)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a `(B, C, H, W)` map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvLayerNorm(nn.Conv2d):
    """Bias-free convolution, then a channel LayerNorm (checkpoint keys `i.weight`, `i.norm.*`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.norm = LayerNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


def _simplefp_level(scale: float, dim: int, out_channels: int) -> nn.Sequential:
    if scale == 4.0:
        stem: list[nn.Module] = [
            nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
            LayerNorm2d(dim // 2),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2),
        ]
        width = dim // 4
    elif scale == 2.0:
        stem, width = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)], dim // 2
    elif scale == 1.0:
        stem, width = [], dim
    else:
        stem, width = [nn.MaxPool2d(2, 2)], dim
    return nn.Sequential(
        *stem, ConvLayerNorm(width, out_channels, 1), ConvLayerNorm(out_channels, out_channels, 3)
    )


class SimpleFeaturePyramid(nn.Module):
    """ViTDet-style pyramid: one ViT map at patch stride → four maps at strides p/4, p/2, p, 2p."""

    def __init__(self, dim: int, out_channels: int) -> None:
        super().__init__()
        for level, scale in enumerate(SIMPLEFP_SCALES, start=1):
            self.add_module(f"simfp_{level}", _simplefp_level(scale, dim, out_channels))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [level(x) for level in self.children()]


def _sine_frequencies(width: int, device: torch.device) -> torch.Tensor:
    """`10000^(2⌊i/2⌋/width)` for `i < width`, in float32 as upstream computes it."""
    dim_t = torch.arange(width, dtype=torch.float32, device=device)
    return 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / width)


def box_sine_embedding(boxes_cxcywh: torch.Tensor, width: int) -> torch.Tensor:
    """`(N, 4)` normalised boxes → `(N, width)`: interleaved sin/cos of each coordinate.

    Coordinates are embedded in the order (cy, cx, w, h), `width / 4` values each (SPEC §4.5.6).
    """
    dim_t = _sine_frequencies(width // 4, boxes_cxcywh.device)
    cx, cy, w, h = (boxes_cxcywh[:, i, None] * 2 * math.pi / dim_t for i in range(4))

    def interleave(e: torch.Tensor) -> torch.Tensor:
        return torch.stack((e[:, 0::2].sin(), e[:, 1::2].cos()), dim=2).flatten(1)

    return torch.cat([interleave(e) for e in (cy, cx, w, h)], dim=1)


def map_sine_embedding(
    height: int, width: int, channels: int, device: torch.device
) -> torch.Tensor:
    """`(channels, height, width)`: the 2-D sine map the `feature_map_based` and `hybrid`
    strategies add to a DaViT stage; each pixel's channels are the sin and cos of its row's, then
    its column's, fractional position at `channels / 4` frequencies, sin and cos side by side."""
    dim_t = _sine_frequencies(channels // 4, device)
    rows = torch.arange(height, dtype=torch.float32, device=device) / height
    columns = torch.arange(width, dtype=torch.float32, device=device) / width
    y, x = torch.meshgrid(rows, columns, indexing="ij")

    def embed(grid: torch.Tensor) -> torch.Tensor:
        angles = grid[..., None] * (2 * math.pi) / dim_t
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)

    return torch.cat([embed(y), embed(x)], dim=-1).permute(2, 0, 1)


def _map_embedding_like(feature_map: torch.Tensor) -> torch.Tensor:
    _, channels, height, width = feature_map.shape
    embedding = map_sine_embedding(height, width, channels, feature_map.device)
    return embedding.to(feature_map.dtype)


def _layer_norm_fp32(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """Upstream runs the optional region LayerNorms in float32 whatever the model dtype."""
    weight, bias = norm.weight.float(), norm.bias.float()
    return F.layer_norm(x.float(), norm.normalized_shape, weight, bias, norm.eps)


class HybridRegionEncoder(nn.Module):
    """Pools every box from both pyramids and adds its position embedding → `(N, region width)`.

    The published model's choices are the defaults; the checkpoint's config may instead pool the
    ViT part from every full-attention block's map (no SimpleFP), leave out the DaViT part, add
    position as a sine map on each DaViT stage, or normalise each part (SPEC §2.2).
    """

    def __init__(self, config: FO1Config) -> None:
        super().__init__()
        vision = config.vision_config
        aux = config.aux_vision_config()
        self.patch_size = vision.patch_size
        if config.mm_use_simpleFPN_for_vt:
            self.simple_fpn = SimpleFeaturePyramid(vision.hidden_size, config.simplefp_out_channels)
            self.vt_strides = [vision.patch_size / scale for scale in SIMPLEFP_SCALES]
        else:  # every tapped map, at patch stride
            self.simple_fpn = None
            self.vt_strides = [vision.patch_size] * len(config.tapped_vit_blocks)
        self.aux_stride = aux.patch_stride[0]
        self.roi_size = config.mm_roi_output_size
        self.region_width = config.mm_region_hidden_size
        self.uses_aux = config.uses_aux_regions
        self.box_embedding = config.adds_box_position_embedding
        self.map_embedding = config.adds_map_position_embedding
        combination = config.mm_region_feature_combination
        self.embeds_aux_boxes = self.uses_aux and combination == "concat_aux_pos"
        self.aux_region_norm = self.vt_region_norm = None
        if config.mm_apply_region_layer_norm:
            self.vt_region_norm = nn.LayerNorm(config.vt_region_width)
            if self.uses_aux:
                self.aux_region_norm = nn.LayerNorm(sum(aux.embed_dim))

    def with_position_maps(self, aux_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The DaViT stages as boxes are pooled from them: with a 2-D sine map added to each
        when the config asks for one (in the stages' dtype, as upstream)."""
        if not self.map_embedding:
            return aux_maps
        return [m + _map_embedding_like(m) for m in aux_maps]

    def pyramid(self, vit_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The ViT-side maps boxes are pooled from, given the tapped maps in block order."""
        if self.simple_fpn is None:
            return vit_maps
        fpn_dtype = next(self.simple_fpn.parameters()).dtype
        return self.simple_fpn(vit_maps[-1].to(fpn_dtype))

    def forward(
        self,
        aux_maps: list[torch.Tensor],
        vt_maps: list[torch.Tensor],
        aux_boxes: torch.Tensor,
        vt_boxes: torch.Tensor,
    ) -> torch.Tensor:
        """
        aux_maps: `with_position_maps(DaViT stage outputs)`, finest first, each
            `(1, C_i, H_i, W_i)` (unused, and may be empty, without the DaViT part).
        vt_maps: `pyramid(vit_maps)`.
        aux_boxes / vt_boxes: `(N, 4)` xyxy in DaViT-input and ViT-input pixels.
        """
        vt = torch.cat(
            [
                roi_mean([level], vt_boxes, 1 / stride, self.roi_size)
                for level, stride in zip(vt_maps, self.vt_strides, strict=True)
            ],
            dim=1,
        )
        if self.uses_aux:
            # Upstream upsamples every DaViT stage to the finest (first) one's size and pools
            # them as one map.
            aux = roi_mean(aux_maps, aux_boxes, 1 / self.aux_stride, self.roi_size)
            if self.aux_region_norm is not None:
                aux = _layer_norm_fp32(self.aux_region_norm, aux)
                vt = _layer_norm_fp32(self.vt_region_norm, vt)
            regions = torch.cat([aux, vt], dim=1)
        else:
            regions = vt  # upstream's ViT-only path has no LayerNorm
        if self.box_embedding:
            cxcywh = self.position_boxes(aux_maps, vt_maps, aux_boxes, vt_boxes)
            regions = regions + box_sine_embedding(cxcywh, self.region_width)
        return regions

    def position_boxes(
        self,
        aux_maps: list[torch.Tensor],
        vt_maps: list[torch.Tensor],
        aux_boxes: torch.Tensor,
        vt_boxes: torch.Tensor,
    ) -> torch.Tensor:
        """The boxes whose sine embedding is added, as (cx, cy, w, h) fractions: the ViT-input
        boxes over the ViT grid's extent, or with `concat_aux_pos` the DaViT-input boxes over
        the finest DaViT stage's."""
        if self.embeds_aux_boxes:
            return normalized_boxes(aux_boxes, aux_maps[0].shape[-2:], self.aux_stride)
        grid = vt_maps[self.vt_strides.index(self.patch_size)].shape[-2:]
        return normalized_boxes(vt_boxes, grid, self.patch_size)


def normalized_boxes(boxes: torch.Tensor, grid_hw: Sequence[int], stride: float) -> torch.Tensor:
    """xyxy boxes in input pixels → (cx, cy, w, h) as fractions of the extent of a `grid_hw` map
    at `stride` pixels per cell."""
    gh, gw = grid_hw
    scale = boxes.new_tensor([gw * stride, gh * stride, gw * stride, gh * stride])
    x1, y1, x2, y2 = (boxes / scale).unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)
