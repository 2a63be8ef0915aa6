"""Image and box preprocessing for FO1 (SPEC §5): what both vision towers and the HFRE receive.

The image is capped at 2048 px on its long side, resized for the Qwen ViT by the checkpoint's own
image processor (PIL backend, which reproduces the official pixels exactly) and, for DaViT,
squashed to 768×768 (or sized as the checkpoint's `aux_image_aspect_ratio` says). Boxes are
clipped to the image and expressed in both towers' pixel units.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from fo1_core.cache import LRUCache
from fo1_core.configuration import AUX_ASPECT_RATIOS, AUX_IMAGE_SIZE, AUX_SQUARE_SIDES
from fo1_core.errors import FO1Error
from fo1_core.inputs import ImageSource, check_boxes, read_image

MAX_LONG_SIDE = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BICUBIC = Image.Resampling.BICUBIC


def capped_size(width: int, height: int, min_side: int) -> tuple[int, int]:
    """Size after the official long-side cap (SPEC §5.1), with a side under `min_side` (one
    merged ViT cell, which the image processor needs at least) enlarged to it."""
    width, height = max(min_side, width), max(min_side, height)
    if max(width, height) > MAX_LONG_SIDE:
        scale = MAX_LONG_SIDE / max(width, height)
        width, height = int(width * scale), int(height * scale)
    return max(min_side, width), max(min_side, height)


@dataclass
class VisionInputs:
    """Everything the model needs for one image and its boxes."""

    pixel_values: torch.Tensor  # (gh·gw, C·T·p·p)
    image_grid_thw: torch.Tensor  # (1, 3)
    aux_pixel_values: torch.Tensor  # (1, 3, H, W): 768×768 unless the config sizes it otherwise
    aux_boxes: torch.Tensor  # (N, 4) xyxy in DaViT-input pixels
    vt_boxes: torch.Tensor  # (N, 4) xyxy in ViT-input pixels
    boxes: np.ndarray  # (N, 4) the user's boxes, original image pixels
    image_key: str = ""  # identifies the image read (size and pixels), for caching its features
    notices: list[str] = field(default_factory=list)

    @property
    def num_regions(self) -> int:
        return len(self.boxes)


TOWER_PIXELS_CACHE = (8, 384 * 2**20)
"""Entries and bytes of the towers' inputs `ImagePreprocessor` keeps, of the images last asked
about: a 2048×1536 photo's take 82 MB. Another question about one (a follow-up, a moved box, the
question typed while the app encoded ahead) skips resizing and normalising it: 0.3 s of a
12-megapixel photo's 0.45 s."""


@dataclass(frozen=True)
class TowerPixels:
    """What the vision towers are given of one image: the same for every question about it."""

    size: tuple[int, int]  # (width, height) the model reads it at (`capped_size`)
    pixel_values: torch.Tensor  # (gh·gw, C·T·p·p)
    image_grid_thw: torch.Tensor  # (1, 3)
    aux_pixel_values: torch.Tensor  # (1, 3, H, W)
    aux_size: tuple[int, int]  # (width, height) of the DaViT input


class ImagePreprocessor:
    """Reads the checkpoint's `preprocessor_config.json` once; turns image + boxes into tensors,
    keeping the towers' inputs of the images last asked about (`TOWER_PIXELS_CACHE`).

    `aux_aspect_ratio` is the checkpoint's `aux_image_aspect_ratio` (`FO1Config.aux_aspect_ratio`).
    """

    def __init__(self, checkpoint_folder: str | Path, aux_aspect_ratio: str = "squash") -> None:
        if aux_aspect_ratio not in AUX_ASPECT_RATIOS:
            raise ValueError(f"aux_aspect_ratio must be one of {AUX_ASPECT_RATIOS}")
        self.aux_aspect_ratio = aux_aspect_ratio
        self.tower_pixels: LRUCache[TowerPixels] = LRUCache(*TOWER_PIXELS_CACHE)
        try:
            self.primary = Qwen2VLImageProcessorPil.from_pretrained(str(checkpoint_folder))
        except (OSError, ValueError) as error:
            raise FO1Error(
                f"The image processor settings (preprocessor_config.json) in {checkpoint_folder} "
                f"are missing or unreadable: {error}"
            ) from error
        self.aux = CLIPImageProcessorPil(
            size={"height": AUX_IMAGE_SIZE, "width": AUX_IMAGE_SIZE},
            do_resize=True,
            do_center_crop=False,
            resample=BICUBIC,
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
            do_convert_rgb=True,
        )

    @property
    def merge_size(self) -> int:
        return self.primary.merge_size

    @property
    def patch_size(self) -> int:
        return self.primary.patch_size

    def __call__(self, image: ImageSource, boxes: object = None) -> VisionInputs:
        image, image_notices = read_image(image)
        user_boxes, box_notices = check_boxes(boxes, image.size)
        key = f"{image.width}x{image.height}:{_content_hash(image)}"
        pixels = self.tower_pixels.get_or_create(key, lambda: self._tower_pixels(image))
        (width, height), grid = pixels.size, pixels.image_grid_thw
        scale = np.array([width / image.width, height / image.height] * 2)
        aux_boxes, vt_boxes = self._tower_boxes(
            user_boxes * scale, pixels.size, pixels.aux_size, grid[0].tolist()[1:]
        )
        return VisionInputs(
            pixel_values=pixels.pixel_values,
            image_grid_thw=grid,
            aux_pixel_values=pixels.aux_pixel_values,
            aux_boxes=aux_boxes,
            vt_boxes=vt_boxes,
            boxes=user_boxes,
            image_key=key,
            notices=image_notices + box_notices,
        )

    def _tower_pixels(self, image: Image.Image) -> TowerPixels:
        width, height = capped_size(*image.size, min_side=self.patch_size * self.merge_size)
        if (width, height) != image.size:
            image = image.resize((width, height), BICUBIC)
        primary = self.primary(images=image, return_tensors="pt")
        aux_width, aux_height = self.aux_size(width, height)
        aux_pixels = self.aux(
            images=image,
            size={"height": aux_height, "width": aux_width},
            do_resize=(aux_width, aux_height) != (width, height),
            return_tensors="pt",
        )["pixel_values"]
        return TowerPixels(
            size=(width, height),
            pixel_values=primary["pixel_values"],
            image_grid_thw=primary["image_grid_thw"],
            aux_pixel_values=aux_pixels,
            aux_size=(aux_width, aux_height),
        )

    def aux_size(self, width: int, height: int) -> tuple[int, int]:
        """The DaViT input's width and height for an image of `width`×`height` (after the cap)."""
        if self.aux_aspect_ratio == "dynamic":
            return width, height
        if self.aux_aspect_ratio == "dynamic_square":
            # The first listed side wins a tie, as upstream's search keeps it.
            side = min(AUX_SQUARE_SIDES, key=lambda side: abs(side * side - width * height))
            return side, side
        return AUX_IMAGE_SIZE, AUX_IMAGE_SIZE

    def _tower_boxes(
        self,
        boxes: np.ndarray,
        size: tuple[int, int],
        aux_size: tuple[int, int],
        grid_hw: Sequence[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Same arithmetic and rounding as upstream: clip, float64 → DaViT input as float32, then
        # scale to the ViT input with a float32 factor (SPEC §5.4).
        (width, height), (aux_width, aux_height) = size, aux_size
        extent, aux_extent = np.array([width, height] * 2), np.array([aux_width, aux_height] * 2)
        aux = torch.tensor(np.clip(boxes, 0, extent) * aux_extent / extent)
        aux = aux.to(torch.float32).reshape(-1, 4)
        gh, gw = grid_hw
        fx = torch.tensor(gw * self.patch_size / aux_width, dtype=torch.float32)
        fy = torch.tensor(gh * self.patch_size / aux_height, dtype=torch.float32)
        return aux, aux * torch.stack([fx, fy, fx, fy])


def _content_hash(image: Image.Image) -> str:
    # SHA-256: the fastest of hashlib's here (CPUs hash it in hardware), 30 ms for 12 megapixels.
    return hashlib.sha256(image.tobytes()).hexdigest()


def num_image_tokens(image_grid_thw: torch.Tensor, merge_size: int) -> int:
    return math.prod(image_grid_thw[0].tolist()) // merge_size**2
