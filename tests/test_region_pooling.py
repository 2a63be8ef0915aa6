"""Region pooling against what upstream runs: `roi_align` on bilinearly upsampled maps."""

from __future__ import annotations

import pytest
import torch

from bench.regions import upstream_roi_mean
from fo1_core.region_pooling import roi_mean
from tests.conftest import TEST_DEVICE

BINS = 7


def _upstream(feature_map: torch.Tensor, boxes: torch.Tensor, scale: float, size=None):
    return upstream_roi_mean([feature_map], boxes, scale, BINS, size)


def _boxes(generator: torch.Generator, count: int, extent: tuple[float, float]) -> torch.Tensor:
    """Boxes of every size over an input `extent` (width, height), some past its edges."""
    scale = torch.tensor(extent)
    corner = torch.rand(count, 2, generator=generator) * scale * 1.1 - 4
    size = torch.rand(count, 2, generator=generator) * scale
    size[: count // 4] *= 0.02  # smaller than one map pixel
    return torch.cat([corner, corner + size], dim=1)


@pytest.mark.parametrize("stride", [4.0, 3.5, 14.0, 28.0])
@pytest.mark.parametrize("upsampled", [None, (40, 58), (48, 31)])
def test_pooled_means_match_roi_align(stride: float, upsampled: tuple[int, int] | None) -> None:
    generator = torch.Generator().manual_seed(int(stride * 10))
    feature_map = torch.randn(1, 6, 24, 29, generator=generator)
    height, width = upsampled or (24, 29)
    boxes = _boxes(generator, 40, (width * stride, height * stride))
    edges = [
        [0, 0, width * stride, height * stride],  # the whole map
        [5, 5, 5, 5],  # a point
        [width * stride - 1, 0, width * stride, height * stride],  # a one-pixel strip at the edge
    ]
    boxes = torch.cat([boxes, torch.tensor(edges)])
    expected = _upstream(feature_map, boxes, 1 / stride, upsampled)
    on_device = [feature_map.to(TEST_DEVICE)], boxes.to(TEST_DEVICE)
    actual = roi_mean(*on_device, 1 / stride, BINS, upsampled)
    torch.testing.assert_close(actual.cpu(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(roi_mean(*on_device, 1 / stride, BINS, upsampled), actual)  # repeatable


def test_a_box_outside_the_map_pools_zeros_like_roi_align() -> None:
    feature_map = torch.randn(1, 3, 10, 10)
    boxes = torch.tensor([[200.0, 200.0, 260.0, 240.0], [-90.0, -90.0, -40.0, -40.0]])
    expected = _upstream(feature_map, boxes, 1 / 4)
    assert torch.equal(expected, torch.zeros(2, 3))
    assert torch.equal(roi_mean([feature_map], boxes, 1 / 4, BINS), torch.zeros(2, 3))


def test_no_boxes_pool_to_an_empty_batch() -> None:
    pooled = roi_mean([torch.randn(1, 5, 8, 8)], torch.zeros(0, 4), 1 / 4, BINS, (16, 16))
    assert pooled.shape == (0, 5)


def test_bfloat16_maps_pool_in_float32() -> None:
    feature_map = torch.randn(1, 4, 12, 12).to(torch.bfloat16)
    boxes = torch.tensor([[3.0, 7.0, 30.0, 41.0]])
    pooled = roi_mean([feature_map], boxes, 1 / 4, BINS, (24, 24))
    assert pooled.dtype == torch.float32
    expected = _upstream(feature_map.float(), boxes, 1 / 4, (24, 24))
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)
