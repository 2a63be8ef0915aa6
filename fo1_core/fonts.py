"""The font region labels are drawn in: one file that has every character of the labels.

Supervision draws all of an image's labels in one font, and no single installed font covers
every script a user may name things in. The whole fonts (`FONT_FILES`) cover Latin, Cyrillic,
Greek, Chinese, Japanese, Korean, Arabic and Hebrew; Debian's `fonts-noto-core` adds a font per
further script (Thai, Devanagari, Bengali, Tamil, …), some without Latin letters or digits. When
the labels need several of those, they are merged into one font, written once to a cache folder.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from fontTools.merge import Merger
from fontTools.ttLib import TTFont

logger = logging.getLogger(__name__)

# Unicode-capable fonts, widest coverage first (Debian: `fonts-noto-cjk`, `fonts-dejavu-core`):
# Noto CJK for Latin, Cyrillic, Chinese, Japanese and Korean; DejaVu for Arabic, Hebrew, Greek
# and many symbols, which Noto CJK lacks.
FONT_FILES = ("NotoSansCJK-Regular.ttc", "DejaVuSans.ttf", "LiberationSans-Regular.ttf")
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
# Debian `fonts-noto-core`: Noto Sans for Latin, Greek and Cyrillic, merged with the script fonts.
BASE_FONT = "NotoSans-Regular.ttf"
SCRIPT_FONTS = "NotoSans?*-Regular.ttf"
MERGED_DIR = Path(tempfile.gettempdir()) / "fo1-fonts"


@functools.cache
def installed_fonts() -> tuple[str, ...]:
    """Paths of the `FONT_FILES` on this machine, in that order."""
    return fonts_matching(FONT_FILES)


@functools.cache
def base_font() -> tuple[str, ...]:
    """The path of `BASE_FONT` on this machine, if it is there."""
    return fonts_matching([BASE_FONT])[:1]


@functools.cache
def script_fonts() -> tuple[str, ...]:
    """Paths of Noto Sans' script fonts on this machine (none without `fonts-noto-core`)."""
    return fonts_matching([SCRIPT_FONTS])


def font_for(text: str) -> str | None:
    """A font file with every character of `text` where the installed fonts have them all, one
    by one or merged; else the one with the most (the first of `FONT_FILES` among equals), or
    None without any: PIL's Latin-only default is used then."""
    return _font_covering(frozenset(ord(c) for c in text if not c.isspace()))


@functools.lru_cache(maxsize=256)
def _font_covering(needed: frozenset[int]) -> str | None:
    """`font_for`'s choice, kept: a streaming answer is redrawn with the same labels many times."""
    best = max(installed_fonts(), key=lambda path: len(needed & characters_in(path)), default=None)
    covered = needed & characters_in(best) if best is not None else frozenset()
    if covered == needed:
        return best
    merged = _merged_font(needed)
    if merged is not None and len(needed & characters_in(merged)) > len(covered):
        return merged
    return best


def _merged_font(needed: frozenset[int]) -> str | None:
    """Noto Sans and the script fonts that have `needed`'s other characters, as one file; the
    script font alone if it has them all; None if no script font has any."""
    parts = [path for path in base_font() if needed & characters_in(path)]
    missing = needed.difference(*(characters_in(path) for path in parts))
    while missing:
        path = max(script_fonts(), key=lambda font: len(missing & characters_in(font)), default="")
        if not path or not missing & characters_in(path):
            break
        parts.append(path)
        missing -= characters_in(path)
    if not any(path in script_fonts() for path in parts):
        return None
    covering = [path for path in parts if needed <= characters_in(path)]
    if covering:
        return covering[-1]
    return _merge(tuple(parts))


@functools.cache
def _merge(parts: tuple[str, ...]) -> str | None:
    """`parts` merged into one font file in `MERGED_DIR` (kept for the next time), or None if
    fontTools cannot merge them."""
    target = MERGED_DIR / ("+".join(Path(path).stem for path in parts) + ".ttf")
    if target.is_file():
        return str(target)
    try:
        merged = Merger().merge(list(parts))
        MERGED_DIR.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: a drawing in another thread never reads half a font.
        with tempfile.NamedTemporaryFile(dir=MERGED_DIR, suffix=".ttf", delete=False) as file:
            merged.save(file)
        os.replace(file.name, target)
    except Exception:
        logger.warning("Could not merge the fonts %s for labels", parts, exc_info=True)
        return None
    return str(target)


def fonts_matching(patterns: Iterable[str]) -> tuple[str, ...]:
    """The files matching `patterns` in `FONT_DIRS`, by pattern, then by name."""
    found = (
        path
        for pattern in patterns
        for folder in FONT_DIRS
        if folder.is_dir()
        for path in sorted(folder.rglob(pattern), key=lambda path: path.name)
    )
    return tuple(dict.fromkeys(str(path) for path in found))


@functools.cache
def characters_in(path: str) -> frozenset[int]:
    """The code points `path` has glyphs for (the first font of a collection, as PIL uses)."""
    with TTFont(path, fontNumber=0, lazy=True) as font:
        return frozenset(font.getBestCmap())
