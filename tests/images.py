"""Image files written in memory, for the tests that feed odd images to every entry point."""

from __future__ import annotations

import io

from PIL import Image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("L", (40, 30), 100 * i) for i in range(3)]  # different: none merged
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
