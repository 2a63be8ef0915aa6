"""Draws `examples/signs.jpg`, the region OCR example: three signs on a brick wall.

No licence-clear photograph with printed text was at hand, so the example is drawn: the wall is
scikit-image's CC0 brick texture (`skimage.data.brick`), the lettering Noto Sans (SIL Open Font
License; what a font draws is not bound by it). Run from the repository root:

    PYTHONPATH=. .venv/bin/python scripts/draw_signs_example.py

It prints the signs' boxes, which `examples/examples.json` gives the example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from skimage import data

from fo1_core.fonts import fonts_matching

OUT = Path(__file__).resolve().parents[1] / "examples" / "signs.jpg"
SIZE = (640, 448)
BRICK_TINT = ((0.45, 0.35), (0.22, 0.20), (0.16, 0.15))  # per channel: base, texture's share
SHADOW_OFFSET, SHADOW_BLUR = (6, 8), 6

Box = tuple[int, int, int, int]


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(fonts_matching([name])[0], size)


def wall(width: int, height: int) -> Image.Image:
    brick = data.brick().astype(np.float32) / 255.0
    reps = (-(-height // brick.shape[0]), -(-width // brick.shape[1]))
    texture = np.tile(brick, reps)[:height, :width]
    rgb = np.stack([base + share * texture for base, share in BRICK_TINT], axis=-1)
    return Image.fromarray((rgb * 255).clip(0, 255).astype(np.uint8))


def cast_shadow(image: Image.Image, box: Box, radius: int) -> None:
    dx, dy = SHADOW_OFFSET
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy), radius, fill=140
    )
    image.paste((30, 20, 15), (0, 0), mask.filter(ImageFilter.GaussianBlur(SHADOW_BLUR)))


def inset(box: Box, by: int) -> Box:
    return (box[0] + by, box[1] + by, box[2] - by, box[3] - by)


def centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def draw() -> tuple[Image.Image, list[Box]]:
    image = wall(*SIZE)
    pen = ImageDraw.Draw(image)
    bold = "NotoSans-Bold.ttf"

    street = (40, 40, 360, 130)  # blue enamel, white border
    cast_shadow(image, street, 12)
    pen.rounded_rectangle(street, 12, fill=(24, 64, 140))
    pen.rounded_rectangle(inset(street, 8), 8, outline="white", width=4)
    pen.text(centre(street), "Maple Street", font=font(bold, 44), fill="white", anchor="mm")

    shop = (420, 60, 600, 150)  # red on cream
    cast_shadow(image, shop, 14)
    pen.rounded_rectangle(shop, 14, fill=(245, 236, 214))
    pen.rounded_rectangle(inset(shop, 8), 10, outline=(190, 30, 30), width=3)
    pen.text(centre(shop), "OPEN", font=font(bold, 52), fill=(190, 30, 30), anchor="mm")

    menu = (120, 190, 520, 410)  # a chalkboard in a wooden frame
    cast_shadow(image, menu, 6)
    pen.rectangle(menu, fill=(120, 80, 40))
    pen.rectangle(inset(menu, 12), fill=(38, 48, 44))
    chalk = font("NotoSans-Regular.ttf", 30)
    for row, line in enumerate(("Today's soup: tomato", "Espresso  2.40", "Latte  3.10")):
        pen.text((menu[0] + 40, menu[1] + 32 + 56 * row), line, font=chalk, fill=(236, 236, 228))

    # A touch of blur: drawn edges are sharper than any camera's.
    return image.filter(ImageFilter.GaussianBlur(0.6)), [street, shop, menu]


if __name__ == "__main__":
    image, boxes = draw()
    image.save(OUT, quality=85)
    print(OUT, [list(box) for box in boxes])
