"""Drawing boxes, masks and region labels with supervision; pure functions (no I/O but the
labels' fonts, `fo1_core.fonts`).

Images come in as RGB ``uint8`` arrays (H, W, 3) or PIL images and always go out as new RGB
``uint8`` arrays; the input is never modified. Supervision's annotators assume OpenCV's BGR order,
so the conversion happens once on the way in and once on the way out.

Colours are keyed by region index (position in the user's box list), so a box has the same colour
in the proposals view and in the answer view.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import supervision as sv
from PIL import Image, ImageFont
from supervision.annotators.utils import snap_boxes
from supervision.detection.utils.boxes import spread_out_boxes

from detect_tools.images import as_rgb, turned_as_shown
from fo1_core.answers import CLASS_NAME_KEY, REGION_INDEX_KEY, shown_label
from fo1_core.fonts import font_for

PALETTE = sv.ColorPalette.DEFAULT


def _luminance(color: sv.Color) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""
    linear = [
        c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in color.as_rgb()
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def readable_on(color: sv.Color) -> sv.Color:
    """Black or white, whichever has the higher WCAG contrast ratio with `color`."""
    lightness = _luminance(color) + 0.05
    return sv.Color.BLACK if lightness / 0.05 > 1.05 / lightness else sv.Color.WHITE


TEXT_PALETTE = sv.ColorPalette([readable_on(color) for color in PALETTE.colors])
MASK_OPACITY = 0.4


@dataclass(frozen=True)
class SceneScale:
    """Stroke and text sizes for one image size, in pixels."""

    thickness: int
    font_size: int
    padding: int


LABEL_SPREADS = 20
"""How many times labels are spread apart at most (`_SpreadLabels`)."""


class _SpreadLabels(sv.RichLabelAnnotator):
    """Supervision's labels, spread apart until none covers another: its `smart_position`
    spreads them once, then pushes those it spread past an edge back inside, onto others again
    (the label of a box over the whole image under that of a box in its corner, tags of a row
    of windows under their neighbours'), and later labels are drawn over earlier ones. Built on
    supervision 0.31's `_adjust_labels_in_frame` (the version requirements.txt pins). A hundred
    labels that cannot all fit take at most about 0.6 s on a 2-core CPU."""

    def _adjust_labels_in_frame(
        self, resolution_wh: tuple[int, int], labels: list[str], label_properties: np.ndarray
    ) -> np.ndarray:
        properties = super()._adjust_labels_in_frame(resolution_wh, labels, label_properties)
        for _ in range(LABEL_SPREADS):
            boxes = properties[:, :4]
            overlaps = sv.box_iou_batch(boxes, boxes)
            np.fill_diagonal(overlaps, 0)
            if not overlaps.any():
                break
            properties[:, :4] = snap_boxes(spread_out_boxes(boxes), resolution_wh)
        return properties


MIN_DRAWN_SIDE = 512
"""A drawing's long side at least: a smaller image is drawn enlarged (whole times, each pixel a
block), or its labels would be larger than the image itself."""


SHOWN_FONT_PX = 12
"""The smallest font size, in CSS pixels, of labels on a screen the drawing is known to be shown
at (`scene_scale`'s ``shown_width``)."""
SHOWN_LINE_PX = 1.5
"""The thinnest box line, in CSS pixels, on such a screen."""


def scene_scale(width: int, height: int, shown_width: float | None = None) -> SceneScale:
    """Sizes that stay legible from a 200 px crop to a 4000 px photo shown fit-to-screen.

    Mostly from the geometric mean of the sides; a panorama, shown shrunk to fit its long side,
    gets larger labels, sized by that side (about 12 px on a 700 px wide panel) up to a tenth of
    its short side, so that they still leave the picture to see. ``shown_width``: the CSS width
    the drawing will be shown at, where known (a phone's panel shrinks a photo four times or
    more): labels and lines are made at least `SHOWN_FONT_PX` and `SHOWN_LINE_PX` there, labels
    up to a sixth of the short side and lines up to a quarter of the labels' size (a width made
    up by a script, a pixel say, gets that much and no more).
    """
    side = (width * height) ** 0.5
    fitted = min(max(width, height) / 55, min(width, height) / 10)
    font_size = max(12, round(side / 40), round(fitted))
    thickness = max(2, round(side / 300))
    if shown_width is not None and 0 < shown_width < width:
        shrunk = width / shown_width
        readable = min(math.ceil(SHOWN_FONT_PX * shrunk), min(width, height) // 6)
        font_size = max(font_size, readable)
        thickness = max(thickness, min(math.ceil(SHOWN_LINE_PX * shrunk), font_size // 4))
    return SceneScale(thickness=thickness, font_size=font_size, padding=max(3, font_size // 4))


MAX_SHOWN_SIDE = 4096
"""The long side of a drawing the page or the API shows at most: a larger image is shown reduced
(whole times, `shown_reduction`). A 4K screen is 3840 px wide and the result panel, even full
screen, no wider; a 100-megapixel drawing only cost time in the model's queue slot (4 s to draw,
7 s to encode as WebP). Downloads keep the image's own size."""


def drawing_factor(width: int, height: int) -> int:
    """How many times an image is enlarged to be drawn on (`MIN_DRAWN_SIDE`)."""
    return max(1, math.ceil(MIN_DRAWN_SIDE / max(width, height)))


def shown_reduction(width: int, height: int) -> int:
    """How many times an image is reduced to be shown (`MAX_SHOWN_SIDE`): whole times, so that
    `PIL.Image.reduce` does it in one cheap pass and a mask by taking every so many pixels."""
    return max(1, math.ceil(max(width, height) / MAX_SHOWN_SIDE))


def color_for_region(index: int) -> sv.Color:
    """The colour of region ``index`` in every drawing."""
    return PALETTE.by_idx(index)


def text_color_for_region(index: int) -> sv.Color:
    """The colour of text written on region ``index``'s colour."""
    return TEXT_PALETTE.by_idx(index)


def draw_proposals(
    image: np.ndarray | Image.Image, boxes: sv.Detections | np.ndarray, reduced: int = 1
) -> np.ndarray:
    """Every box with its index number (``#i``), the way the user picks regions to ask about.

    ``boxes`` is an (N, 4) xyxy array or detections; box ``i`` is region ``i`` unless the
    detections carry their own region indexes. ``reduced``: ``image`` is the image the boxes
    are in, reduced that many times (`shown_reduction`). An image under `MIN_DRAWN_SIDE` is
    drawn enlarged (`drawing_factor`), so the drawing can be larger than ``image``.
    """
    if isinstance(boxes, sv.Detections):
        detections = boxes
    else:
        detections = sv.Detections(xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    indexes = _region_indexes(detections)
    return _draw(image, detections, indexes, [f"#{i}" for i in indexes], reduced)


def draw_answer(
    image: np.ndarray | Image.Image,
    detections: sv.Detections,
    reduced: int = 1,
    shown_width: float | None = None,
) -> np.ndarray:
    """The answer's detections: masks when present, boxes, and labels such as ``#3 cat``.
    A region the answer names under several labels is drawn once, as ``#3 man, person``.
    ``reduced`` and the enlargement of a small image: as in `draw_proposals`; ``shown_width``:
    as in `scene_scale`."""
    indexes = _region_indexes(detections)
    names = detections.data.get(CLASS_NAME_KEY, [""] * len(detections))
    first_rows: dict[int, int] = {}
    names_of: dict[int, list[str]] = {}
    for row, (index, name) in enumerate(zip(indexes.tolist(), names, strict=True)):
        first_rows.setdefault(index, row)
        names_of.setdefault(index, []).append(shown_label(str(name)))
    if len(first_rows) < len(detections):  # stacked labels would hide each other's region tag
        rows = list(first_rows.values())
        detections, indexes = detections[rows], indexes[rows]
    labels = [
        f"#{index} {', '.join(name for name in dict.fromkeys(named) if name)}".strip()
        for index, named in names_of.items()
    ]
    return _draw(image, detections, indexes, labels, reduced, shown_width)


def fit_label(label: str, font_size: int, padding: int, width: int, font_path: str | None) -> str:
    """`label` (`#3 cat`) cut with "…" to fit an image `width` pixels wide when written in
    `font_path`, its region tag kept whole however narrow the image: without it the label names
    no box (the full text stays in the answer and the downloads). Unchanged without a TrueType
    font to measure it with."""
    if font_path is None:
        return label
    font = _font(font_path, font_size)
    room = width - 2 * padding
    if font.getlength(label) <= room:
        return label
    tag = len(label.split(" ", 1)[0])
    if font.getlength(label[:tag] + "…") > room:
        return label[:tag]
    # The longest prefix that fits with the ellipsis (found by halving: labels can be long).
    fits, too_long = tag, len(label)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if font.getlength(label[:middle] + "…") <= room:
            fits = middle
        else:
            too_long = middle
    return label[:fits].rstrip() + "…"


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _draw(
    image: np.ndarray | Image.Image,
    detections: sv.Detections,
    indexes: np.ndarray,
    labels: list[str],
    reduced: int,
    shown_width: float | None = None,
) -> np.ndarray:
    scene = _to_bgr(image)
    mask = detections.mask
    # Masks are of the image itself, reduced here as `Image.reduce` reduced the image (an odd
    # side rounds up): supervision would fail on a smaller mask, or tint past the boxes with a
    # larger one.
    if mask is not None and mask[:, ::reduced, ::reduced].shape[1:] != scene.shape[:2]:
        height, width = mask.shape[1:]
        shown = f"{scene.shape[1]}×{scene.shape[0]} px" + (
            f" reduced {reduced} times" if reduced > 1 else ""
        )
        raise ValueError(
            f"The masks are {width}×{height} px but the image is {shown}: masks must be of the "
            "image they are drawn on."
        )
    if reduced > 1:
        detections = dataclasses.replace(
            detections,
            xyxy=detections.xyxy / reduced,
            mask=None if mask is None else mask[:, ::reduced, ::reduced],  # as `Image.reduce`
        )
    elif (factor := drawing_factor(scene.shape[1], scene.shape[0])) > 1:
        scene = scene.repeat(factor, axis=0).repeat(factor, axis=1)
        detections = dataclasses.replace(
            detections,
            xyxy=detections.xyxy * factor,
            mask=None if mask is None else mask.repeat(factor, axis=1).repeat(factor, axis=2),
        )
    if len(detections) == 0:
        return scene[..., ::-1].copy()
    scale = scene_scale(scene.shape[1], scene.shape[0], shown_width)
    font_path = font_for("".join(labels))  # one font for all: supervision draws labels in one
    labels = [
        fit_label(label, scale.font_size, scale.padding, scene.shape[1], font_path)
        for label in labels
    ]
    if detections.mask is not None:
        sv.MaskAnnotator(color=PALETTE, opacity=MASK_OPACITY).annotate(
            scene, detections, custom_color_lookup=indexes
        )
    sv.BoxAnnotator(color=PALETTE, thickness=scale.thickness).annotate(
        scene, detections, custom_color_lookup=indexes
    )
    _SpreadLabels(
        color=PALETTE,
        text_color=TEXT_PALETTE,
        font_path=font_path,
        font_size=scale.font_size,
        text_padding=scale.padding,
        smart_position=True,
    ).annotate(scene, detections, labels=labels, custom_color_lookup=indexes)
    return scene[..., ::-1].copy()


def _region_indexes(detections: sv.Detections) -> np.ndarray:
    if REGION_INDEX_KEY in detections.data:
        return np.asarray(detections.data[REGION_INDEX_KEY], dtype=int)
    return np.arange(len(detections))


def _to_bgr(image: np.ndarray | Image.Image) -> np.ndarray:
    """8-bit BGR, a PIL image read as the model reads it (turned as its EXIF orientation says,
    as the boxes of an answer about it are; `as_rgb`: depth scaled, transparency over white); an
    array is taken as 8-bit RGB or grey, as the app's own are."""
    if isinstance(image, Image.Image):
        image = as_rgb(turned_as_shown(image))
    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    return np.ascontiguousarray(rgb[..., 2::-1], dtype=np.uint8)
