"""Image and box preprocessing for FO1 (SPEC §5): what both vision towers and the HFRE receive.

The image is capped at 2048 px on its long side, resized for the Qwen ViT by the checkpoint's own
image processor (PIL backend, which reproduces the official pixels exactly) and, for DaViT,
squashed to 768×768 (or sized as the checkpoint's `aux_image_aspect_ratio` says). Boxes are
clipped to the image and expressed in both towers' pixel units.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from detect_tools.base import covers_a_pixel, whole_pixel_sides
from detect_tools.images import (
    UNREADABLE_IMAGE,
    as_rgb,
    open_image_file,
    refuse_special_file,
    refuse_url,
    size_problem,
    turned_as_shown,
)
from fo1_core.cache import LRUCache
from fo1_core.configuration import AUX_ASPECT_RATIOS, AUX_IMAGE_SIZE, AUX_SQUARE_SIDES
from fo1_core.errors import FO1Error
from fo1_core.templates import MAX_REGIONS, box_count

MAX_LONG_SIDE = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BICUBIC = Image.Resampling.BICUBIC


ImageSource = str | Path | bytes | Image.Image | np.ndarray
"""An image file's path or bytes, a PIL image, or a uint8 array of shape (H, W), (H, W, 3) RGB
or (H, W, 4) RGBA."""


def open_image(source: ImageSource | None) -> Image.Image:
    """Reads an image as the user sees it: EXIF orientation applied, RGB, size checked."""
    return read_image(source)[0]


def read_image(source: ImageSource | None) -> tuple[Image.Image, list[str]]:
    """`open_image`, with notices of what the model will not see (the later frames of an
    animation or of a multi-page file)."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    else:
        image = _open(source)
    check_size(*image.size)  # from the header: a refused image is never decoded
    frames = getattr(image, "n_frames", 1)
    notices = [] if frames == 1 else [f"The image has {frames} frames; FO1 reads the first only."]
    try:
        if image is source:
            # Turned on a copy, so the caller's image stays as it was; one with nothing to turn
            # is read itself (an opened image, `open_image`'s, is handed on without a copy).
            image = turned_as_shown(image)
            if image is not source:
                # Boxes found on the image as given (its own `.size`) would name other pixels.
                notices.append(
                    f"The image was turned as its EXIF orientation says: boxes are read on it "
                    f"as shown, {image.width}×{image.height}, not {source.width}×{source.height}."
                )
        else:
            ImageOps.exif_transpose(image, in_place=True)  # made here: turned, not copied
        picture = as_rgb(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise FO1Error(f"The image file is damaged or truncated ({error}).") from error
    # An RGB first frame is still the whole file: copied, it is a single picture, which asked
    # about again (as the app does with what it read) tells of no frames the caller was told of.
    return (picture if getattr(picture, "n_frames", 1) == 1 else picture.copy()), notices


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    ):
        raise FO1Error(
            "An image given as an array must be uint8 of shape (H, W), (H, W, 3) RGB or "
            f"(H, W, 4) RGBA; got {array.dtype} of shape {array.shape}."
        )
    return Image.fromarray(array)


def check_size(width: int, height: int) -> None:
    """Raises `FO1Error`, naming the limit, for an image size the model cannot take."""
    problem = size_problem(width, height)
    if problem:
        raise FO1Error(problem)


def image_size(source: str | Path) -> tuple[int, int]:
    """The width and height of the image file at `source` as the user sees it (EXIF orientation
    applied), from its header: nothing is decoded."""
    with _open(source) as image:
        width, height = image.size
        turned = image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def _open(source: object) -> Image.Image:
    """`Image.open`, lazily, with a message for each way it fails."""
    if source is None:
        raise FO1Error("No image: upload an image first.")
    if isinstance(source, (str, Path)):
        refuse_url(source, FO1Error)
        refuse_special_file(source, FO1Error, f"the image {source}")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    else:
        raise FO1Error(
            "An image is given as a file's path or bytes, a PIL image or a uint8 array; got "
            f"{type(source).__name__}."
        )
    try:
        return open_image_file(source)
    except Image.DecompressionBombError as error:
        raise FO1Error(f"The image is too large to open safely ({error}).") from error
    except FileNotFoundError as error:  # a mistyped path, or an upload the server deleted
        raise FO1Error(
            f"The image file '{Path(source).name}' is not there: check the path, or upload "
            "the image again."
        ) from error
    except (UnidentifiedImageError, OSError) as error:
        raise FO1Error(UNREADABLE_IMAGE) from error


def clip_box(box: Sequence[float], width: float, height: float) -> list[float]:
    """`[x1, y1, x2, y2]` cut to a `width`×`height` image (no area left if wholly outside)."""
    x1, y1, x2, y2 = box
    return [
        min(max(x1, 0), width),
        min(max(y1, 0), height),
        min(max(x2, 0), width),
        min(max(y2, 0), height),
    ]


def box_problem(box: Sequence[float], width: int, height: int) -> str | None:
    """Why a box cut to a `width`×`height` image cannot be read, to follow the box's name in a
    message; None when it can. A box under a whole pixel (`covers_a_pixel`) is refused as the
    page refuses it when typed and drops it when proposed, rather than pooled from a sliver."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return f"has no area inside the {width}×{height} image"
    if not covers_a_pixel(box):
        wide, high = whole_pixel_sides(box)
        return (
            f"is {x2 - x1:.3g}×{y2 - y1:.3g} px inside the {width}×{height} image ({wide:g}×"
            f"{high:g} in whole pixels, as the editor draws it): a box needs at least one whole "
            "pixel each way"
        )
    return None


def capped_size(width: int, height: int, min_side: int) -> tuple[int, int]:
    """Size after the official long-side cap (SPEC §5.1), with a side under `min_side` (one
    merged ViT cell, which the image processor needs at least) enlarged to it."""
    width, height = max(min_side, width), max(min_side, height)
    if max(width, height) > MAX_LONG_SIDE:
        scale = MAX_LONG_SIDE / max(width, height)
        width, height = int(width * scale), int(height * scale)
    return max(min_side, width), max(min_side, height)


def unwrap_boxes(document: object) -> object:
    """The box list in a proposals document, passed on as it is: the app's `/propose` result
    (`{"boxes": [...]}`) or `python -m detect_tools --json`'s (`{"proposals": [{"box": ...}]}`);
    anything else is returned unchanged, for `check_boxes` to judge."""
    for key in ("boxes", "proposals"):
        if isinstance(document, dict) and key in document:
            entries = document[key]
            if not isinstance(entries, list):
                return entries
            return [entry.get("box") if isinstance(entry, dict) else entry for entry in entries]
    return document


def check_boxes(boxes: object, image_size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Validates user boxes `[[x1, y1, x2, y2], …]` in image pixels; returns them and notices.

    Boxes partly outside the image are cut to it, with a notice: the towers read them so (as
    upstream clips them), and the answer's detections and files then hold the boxes the model
    read. More than `MAX_REGIONS` boxes are cut to the first `MAX_REGIONS`, with a notice.
    """
    try:
        written = np.asarray(boxes if boxes is not None else [], dtype=object)
        # numpy would read "10" and True as numbers; a user's boxes file should not pass with them.
        if any(isinstance(value, str | bytes | bool | np.bool_) for value in written.ravel()):
            raise ValueError("not a number")
        array = written.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as error:  # Overflow: a JSON integer too big
        raise FO1Error("Boxes must be a list of [x1, y1, x2, y2] numbers.") from error
    if array.size == 0:
        return np.zeros((0, 4)), []
    if array.ndim != 2 or array.shape[1] != 4:
        raise FO1Error(f"Boxes must be a list of [x1, y1, x2, y2]; got shape {array.shape}.")
    notices = []
    if len(array) > MAX_REGIONS:
        notices.append(
            f"{len(array)} boxes given; FO1 takes at most {MAX_REGIONS}, so only the first "
            f"{MAX_REGIONS} (region 0–{MAX_REGIONS - 1}) are used."
        )
        array = array[:MAX_REGIONS]
    width, height = image_size
    clipped = []
    for index, (x1, y1, x2, y2) in enumerate(array.tolist()):
        if not np.all(np.isfinite([x1, y1, x2, y2])):
            raise FO1Error(f"Box #{index} has a coordinate that is not a number.")
        if x2 < x1 or y2 < y1:
            raise FO1Error(f"Box #{index} is inverted: x2 < x1 or y2 < y1 in {[x1, y1, x2, y2]}.")
        clipped.append(clip_box((x1, y1, x2, y2), width, height))
        if problem := box_problem(clipped[-1], width, height):
            raise FO1Error(f"Box #{index} {[x1, y1, x2, y2]} {problem}.")
    inside = np.asarray(clipped, dtype=np.float64)
    if cut := [index for index, moved in enumerate((inside != array).any(axis=1)) if moved]:
        named = ", ".join(f"#{index}" for index in cut[:10]) + (", …" if len(cut) > 10 else "")
        notices.append(f"Cut to the image: {box_count(len(cut))} reaching out of it ({named}).")
    return inside, notices


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
