"""Pointing at a region shows its box on the result image: a chip (`#3`) in the answer or its
reasoning, or a row of the detections table, lights its box and dims the rest of the image.

With 24 coins boxed, a reasoning that goes through `#17` is read against a picture full of
numbered boxes; the spotlight finds it at once. A click (a tap on a phone) keeps it lit and
brings the box into view; another click, or Escape, puts it out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

BOXES_ATTRIBUTE = "data-fo1-boxes"
"""On the answer's heading (`ui.answer_view.asked_html`): the boxes the model read, as fractions
of the image's width and height, so they land on the result image however large it is drawn."""

FRACTION_DIGITS = 4
"""A hundredth of a pixel on a 2 048 px side: the spotlight sits on the drawn box's own line."""


def boxes_attribute(boxes: Sequence[Sequence[float]], size: tuple[int, int]) -> str:
    """The attribute that carries `boxes` (pixels of an image of `size`, width by height)."""
    width, height = size
    fractions = [
        [round(x1 / width, FRACTION_DIGITS), round(y1 / height, FRACTION_DIGITS)]
        + [round(x2 / width, FRACTION_DIGITS), round(y2 / height, FRACTION_DIGITS)]
        for x1, y1, x2, y2 in boxes
    ]
    return f'{BOXES_ATTRIBUTE}="{html.escape(json.dumps(fractions, separators=(",", ":")))}"'


POINTED = (
    "#fo1-answer .fo1-chip[data-region], #fo1-reasoning .fo1-chip[data-region], "
    "#fo1-detections [role=row]:has([role=gridcell])"
)
"""What lights a box: the answer's and the reasoning's chips (the question's history may be
about other boxes), and the detections' rows, whose first cell is the region."""

SPOTLIGHT_CSS = f"""
{POINTED} {{ cursor: pointer; }}
.fo1-spot-frame {{ position: absolute; overflow: hidden; pointer-events: none; z-index: 1; }}
.fo1-spot {{ position: absolute; box-sizing: border-box; border: 2px solid #fff;
    outline: 1px solid #000; box-shadow: 0 0 0 100vmax rgba(0, 0, 0, 0.55); }}
"""

SPOTLIGHT = f"""() => {{
    const pointed = (event) => event.target.closest?.({json.dumps(POINTED)});
    const regionOf = (element) => Number(element.dataset.region
        ?? element.querySelector("[role=gridcell]").textContent.trim());
    const boxesText = () => document.querySelector(
        "#fo1-answer [{BOXES_ATTRIBUTE}]")?.getAttribute("{BOXES_ATTRIBUTE}") ?? "[]";
    // The region pointed at, and the one a click keeps lit (with its answer's boxes).
    let hovered = null, pinned = null;
    const place = (region) => {{
        const box = JSON.parse(boxesText())[region];
        const image = document.querySelector("#fo1-result img");
        if (!box || !image?.naturalWidth) return null;
        const frame = image.parentElement;
        if (getComputedStyle(frame).position === "static") frame.style.position = "relative";
        // The drawing as the image element shows it: centred, scaled to fit (only ever down,
        // as Gradio's "scale-down" does, but for its full screen's "contain").
        const shown = image.getBoundingClientRect(), around = frame.getBoundingClientRect();
        const fit = Math.min(shown.width / image.naturalWidth, shown.height / image.naturalHeight);
        const scale = getComputedStyle(image).objectFit === "scale-down" ? Math.min(1, fit) : fit;
        const width = image.naturalWidth * scale, height = image.naturalHeight * scale;
        const clip = document.createElement("div");
        clip.className = "fo1-spot-frame";
        Object.assign(clip.style, {{
            left: `${{shown.left - around.left + (shown.width - width) / 2}}px`,
            top: `${{shown.top - around.top + (shown.height - height) / 2}}px`,
            width: `${{width}}px`, height: `${{height}}px`,
        }});
        const spot = document.createElement("div");
        spot.className = "fo1-spot";
        const [x1, y1, x2, y2] = box;
        Object.assign(spot.style, {{
            left: `${{x1 * width}}px`, top: `${{y1 * height}}px`,
            width: `${{(x2 - x1) * width}}px`, height: `${{(y2 - y1) * height}}px`,
        }});
        clip.append(spot);
        frame.append(clip);
        return spot;
    }};
    const refresh = () => {{
        document.querySelectorAll(".fo1-spot-frame").forEach((old) => old.remove());
        if (pinned && pinned.boxes !== boxesText()) pinned = null;  // another answer's
        const region = hovered ?? pinned?.region;
        return region === undefined || region === null ? null : place(region);
    }};
    addEventListener("pointerover", (event) => {{
        // A finger's tap is a click: kept lit then, not shown for the tap's instant.
        const element = pointed(event);
        if (!element || event.pointerType === "touch") return;
        hovered = regionOf(element);
        refresh();
    }});
    addEventListener("pointerout", (event) => {{
        const element = pointed(event);
        if (!element || element.contains(event.relatedTarget)) return;
        hovered = null;
        refresh();
    }});
    addEventListener("click", (event) => {{
        const element = pointed(event);
        const region = element ? regionOf(element) : null;
        const again = region === pinned?.region;
        pinned = region === null || again ? null : {{region, boxes: boxesText()}};
        hovered = null;
        const spot = refresh();
        const {{top, bottom}} = spot?.getBoundingClientRect() ?? {{top: 0, bottom: 0}};
        if (top < 0 || bottom > innerHeight) spot.scrollIntoView({{block: "nearest"}});
    }});
    addEventListener("keydown", (event) => {{
        if (event.key !== "Escape" || !pinned) return;
        pinned = null;
        refresh();
    }});
    // A new drawing of the answer (load does not bubble: caught on its way down), or the
    // window resized: the box is placed again.
    addEventListener("load", (event) => {{
        if (event.target.closest?.("#fo1-result")) refresh();
    }}, true);
    addEventListener("resize", refresh);
}}"""
"""Installed once in the page (`ui.layout`)."""
