"""Pointing at a region shows its box: a chip (`#3`) in the answer or its reasoning, or a row of
the detections table, lights its box on the result image and in the editor, and dims the rest.

With 24 coins boxed, a reasoning that goes through `#17` is read against a picture full of
numbered boxes; the spotlight finds it at once. A click (a tap on a phone) keeps it lit and
brings the box into view; another click, or Escape, puts it out. From the keyboard, the
detections' cells light their rows' boxes as the arrows move through them. The other way round,
a box the answer names, pointed at on the result image, is lit and its chips are ringed: where
a long grounded caption speaks of it. Before asking, the region picker's options (pointed at,
tapped or on the keyboard) light their boxes in the editor, as they stand now.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence

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


CHIPS = "#fo1-answer .fo1-chip[data-region], #fo1-reasoning .fo1-chip[data-region]"
"""The answer's and the reasoning's chips (the question's history may be about other boxes)."""

POINTED = f"{CHIPS}, #fo1-detections [role=row]:has([role=gridcell])"
"""What lights a box: the chips, and the detections' rows, whose first cell is the region."""

REFERENCES = "#fo1-insert"
"""The free prompt's list of region references."""

REGION_OPTIONS = "#fo1-regions [data-testid=checkbox-group] label"
"""The region picker's options, one a region (not its "select all" box, beside its title)."""

PICKER_OPTIONS = f"{REGION_OPTIONS}, {REFERENCES} [role=option]"
"""The region picker's options (`#3`), and the free prompt's region references: each lights its
box as the editor has it now, in the editor alone (the result image is an earlier question's)."""

SPOT_CSS = """
.fo1-spot { position: absolute; box-sizing: border-box; border: 2px solid #fff;
    outline: 1px solid #000; box-shadow: 0 0 0 100vmax rgba(0, 0, 0, 0.55); }
"""
"""A lit box: a white line around it, the rest of the image darkened (within a frame that
clips the shadow to the image)."""

LIT_CHIP = "outline: 2px solid var(--chip); outline-offset: 2px; transform: scale(1.15);"
"""A chip whose box is lit: ringed in its own colour, so that it stands out in a long answer."""

SPOTLIGHT_CSS = f"""{SPOT_CSS}
{POINTED} {{ cursor: pointer; }}
.fo1-chip.fo1-chip-lit {{ {LIT_CHIP} }}
.fo1-spot-frame {{ position: absolute; overflow: hidden; pointer-events: none; z-index: 1; }}
"""


def spotlit_figure(
    image: str,
    boxes: Sequence[Sequence[float]],
    size: tuple[int, int],
    drawn: Iterable[int] | None = None,
) -> str:
    """`image` (an `<img>` tag) with a spot over each box it draws (`drawn`, indexes into
    `boxes`, pixels of an image of `size`; by default all), each lit by `spotlit_css` alone
    while its region's chip, or the box itself, is pointed at: for the offline report, which
    runs no script."""
    width, height = size
    shown = range(len(boxes)) if drawn is None else sorted(set(drawn))

    def area(i: int) -> float:
        x1, y1, x2, y2 = boxes[i]
        return (x2 - x1) * (y2 - y1)

    # Largest first: a box inside another lies over it, and is the one a pointer there finds.
    spots = "".join(
        f'<i class="fo1-spot" data-spot="{i}" style="left:{100 * x1 / width:.3f}%;'
        f"top:{100 * y1 / height:.3f}%;width:{100 * (x2 - x1) / width:.3f}%;"
        f'height:{100 * (y2 - y1) / height:.3f}%"></i>'
        for i in sorted(shown, key=area, reverse=True)
        for x1, y1, x2, y2 in [boxes[i]]
    )
    return f'<div class="fo1-figure">{image}{spots}</div>'


def spotlit_css(count: int) -> str:
    """The style that lights `spotlit_figure`'s spot of region i, and rings the chips of
    region i, while one of them or the spot is pointed at, for regions 0 to `count` - 1."""
    lit = "\n".join(
        f'body:has(.fo1-chip[data-region="{i}"]:hover) [data-spot="{i}"] {{ opacity: 1; }}\n'
        f'body:has([data-spot="{i}"]:hover) .fo1-chip[data-region="{i}"] {{ {LIT_CHIP} }}'
        for i in range(count)
    )
    return f"""{SPOT_CSS}
.fo1-figure {{ position: relative; display: inline-block; max-width: 100%; overflow: hidden;
    vertical-align: top; border: 1px solid #ccc; }}
.fo1-figure img {{ display: block; border: 0; }}
.fo1-figure .fo1-spot {{ opacity: 0; }}
.fo1-figure .fo1-spot:hover {{ opacity: 1; }}
.fo1-chip[data-region] {{ cursor: pointer; }}
{lit}
"""


SPOTLIGHT = f"""() => {{
    const pointed = (event) => event.target.closest?.({json.dumps(POINTED)});
    const regionOf = (element) => Number(element.dataset.region
        ?? element.querySelector("[role=gridcell]").textContent.trim());
    const option = (event) => event.target.closest?.({json.dumps(PICKER_OPTIONS)});
    const optionRegion = (element) => Number(/#(\\d+)/.exec(element.textContent)?.[1] ?? -1);
    const boxesText = () => document.querySelector(
        "#fo1-answer [{BOXES_ATTRIBUTE}]")?.getAttribute("{BOXES_ATTRIBUTE}") ?? "[]";
    // The region pointed at, the one the keyboard is on (a cell of the detections, which
    // arrows move through), and the one a click keeps lit (with its answer's boxes).
    let hovered = null, focused = null, pinned = null, queued = false;
    // The picker's option pointed at, tapped or on the keyboard, and by what: the keyboard's
    // stays lit as the page moves under a resting pointer (a list opened, the page scrolled to
    // the focus), which tells the pointer it is over something new; the pointer's goes then.
    let picked = null, pickedBy = null;
    // The editor draws its image through a transform of its own (fitted, zoomed, panned): each
    // drawing is watched for where the image lands on its canvas, and a lit box follows it.
    const editor = document.querySelector("#fo1-editor");
    const follow = () => {{
        if (queued || (hovered === null && focused === null && !pinned && !picked)) {{
            return;
        }}
        queued = true;
        requestAnimationFrame(() => {{
            queued = false;
            refresh();
        }});
    }};
    const watch = (canvas) => {{
        const context = canvas.getContext("2d");
        if (!context || context.fo1Watched) return;
        context.fo1Watched = true;
        const {{drawImage}} = context;
        context.drawImage = function (image, ...place) {{
            if (place.length === 4) {{
                canvas.fo1Drawn = {{
                    at: this.getTransform(), width: place[2], height: place[3],
                    image: {{
                        width: image.naturalWidth ?? image.width,
                        height: image.naturalHeight ?? image.height,
                    }},
                }};
                follow();
            }}
            return drawImage.call(this, image, ...place);
        }};
    }};
    const watchAll = () => editor?.querySelectorAll("canvas").forEach(watch);
    if (editor) new MutationObserver(watchAll).observe(editor, {{subtree: true, childList: true}});
    watchAll();
    // Where a box can be lit: the element it goes in, the part of the screen it is seen
    // through (`view`), and where the whole image lies on the screen.
    const onTheResult = () => {{
        const image = document.querySelector("#fo1-result img");
        if (!image?.naturalWidth) return null;
        // The drawing as the image element shows it: centred, scaled to fit (only ever down,
        // as Gradio's "scale-down" does, but for its full screen's "contain").
        const shown = image.getBoundingClientRect();
        const fit = Math.min(shown.width / image.naturalWidth, shown.height / image.naturalHeight);
        const scale = getComputedStyle(image).objectFit === "scale-down" ? Math.min(1, fit) : fit;
        const width = image.naturalWidth * scale, height = image.naturalHeight * scale;
        const picture = {{
            left: shown.left + (shown.width - width) / 2,
            top: shown.top + (shown.height - height) / 2, width, height,
        }};
        return {{frame: image.parentElement, view: picture, picture}};
    }};
    // The image as the editor shows it, turned by its buttons or not: the corners of its
    // drawing carried through the transform it was drawn with.
    const inTheEditor = () => {{
        const canvas = editor?.querySelector("canvas");
        const drawn = canvas?.fo1Drawn;
        if (!drawn?.width) return null;
        const {{a, b, c, d, e, f}} = drawn.at;
        const corners = [[0, 0], [drawn.width, 0], [0, drawn.height], [drawn.width, drawn.height]];
        const xs = corners.map(([x, y]) => a * x + c * y + e);
        const ys = corners.map(([x, y]) => b * x + d * y + f);
        const shown = canvas.getBoundingClientRect(), css = shown.width / canvas.width;
        const left = Math.min(...xs), top = Math.min(...ys);
        const picture = {{
            left: shown.left + left * css, top: shown.top + top * css,
            width: (Math.max(...xs) - left) * css, height: (Math.max(...ys) - top) * css,
        }};
        // Quarter turns clockwise, read from the rotation (its cosine at a quarter is not 0).
        const turns = Math.abs(b) > Math.abs(a) ? (b > 0 ? 1 : 3) : (a > 0 ? 0 : 2);
        return {{frame: canvas.parentElement, view: shown, picture, drawn, turns}};
    }};
    // Box `region` as the editor has it now, in fractions of its image as shown: the editor
    // holds a box in the image's pixels (their sides swapped, turned a quarter) times its
    // `scaleFactor`, the one it draws the image at once the box has reached it (1 before: a
    // small image's enlarged copy comes with its boxes unscaled). Turned since they were read,
    // they are turned here as the editor turned them.
    const inTheEditorNow = (region, {{drawn: {{image}}, turns}}) => {{
        const box = (window.fo1EditorBoxes ?? [])[region];
        if (!box) return null;
        const read = window.fo1EditorTurns ?? 0, {{width, height}} = image;
        const [across, down] = read % 2 ? [height, width] : [width, height];
        const scale = box.scaleFactor ?? 1;
        let [x1, y1, x2, y2] = [box.xmin / across, box.ymin / down, box.xmax / across,
            box.ymax / down].map((fraction) => fraction / scale);
        for (let turn = read; turn % 4 !== turns; turn++) {{
            [x1, y1, x2, y2] = [1 - y2, x1, 1 - y1, x2];
        }}
        return [x1, y1, x2, y2];
    }};
    const light = ({{frame, view, picture}}, [x1, y1, x2, y2]) => {{
        if (getComputedStyle(frame).position === "static") frame.style.position = "relative";
        const around = frame.getBoundingClientRect();
        const clip = document.createElement("div");
        clip.className = "fo1-spot-frame";
        Object.assign(clip.style, {{
            left: `${{view.left - around.left}}px`, top: `${{view.top - around.top}}px`,
            width: `${{view.width}}px`, height: `${{view.height}}px`,
        }});
        const spot = document.createElement("div");
        spot.className = "fo1-spot";
        Object.assign(spot.style, {{
            left: `${{picture.left - view.left + x1 * picture.width}}px`,
            top: `${{picture.top - view.top + y1 * picture.height}}px`,
            width: `${{(x2 - x1) * picture.width}}px`,
            height: `${{(y2 - y1) * picture.height}}px`,
        }});
        clip.append(spot);
        frame.append(clip);
        return spot;
    }};
    // The box under a point of the result image: the smallest of those its drawing shows,
    // the final answer's regions (the reasoning's where the answer names none).
    const underOnTheResult = (event) => {{
        const place = event.target.closest?.("#fo1-result img") && onTheResult();
        if (!place) return null;
        const {{left, top, width, height}} = place.picture;
        const x = (event.clientX - left) / width, y = (event.clientY - top) / height;
        const regionsIn = (where) => [
            ...document.querySelectorAll(`${{where}} .fo1-chip[data-region]`),
        ].map((chip) => Number(chip.dataset.region));
        const named = regionsIn("#fo1-answer .fo1-answer");
        const boxes = JSON.parse(boxesText());
        let under = null, smallest = Infinity;
        for (const region of named.length ? named : regionsIn("#fo1-reasoning")) {{
            const [x1, y1, x2, y2] = boxes[region] ?? [];
            const area = (x2 - x1) * (y2 - y1);
            if (x1 <= x && x <= x2 && y1 <= y && y <= y2 && area < smallest) {{
                under = region;
                smallest = area;
            }}
        }}
        return under;
    }};
    const refresh = () => {{
        document.querySelectorAll(".fo1-spot-frame").forEach((old) => old.remove());
        document.querySelectorAll(".fo1-chip-lit").forEach((chip) => {{
            chip.classList.remove("fo1-chip-lit");
        }});
        // An option gone from the page (its list closed, its task changed) under a pointer
        // resting on it was never left.
        if (!picked?.isConnected) picked = pickedBy = null;
        if (picked) {{
            const place = inTheEditor();
            const box = place && inTheEditorNow(optionRegion(picked), place);
            return box ? [light(place, box)] : [];
        }}
        if (pinned && pinned.boxes !== boxesText()) pinned = null;  // another answer's
        const region = hovered ?? focused ?? pinned?.region ?? -1;
        const box = JSON.parse(boxesText())[region];
        if (!box) return [];
        // Its chips too: where the answer speaks of the box pointed at on the image.
        document.querySelectorAll({json.dumps(CHIPS)}).forEach((chip) => {{
            if (Number(chip.dataset.region) === region) chip.classList.add("fo1-chip-lit");
        }});
        // Not over an image the editor's buttons turned: the answer's boxes are the unturned.
        const editing = inTheEditor();
        return [onTheResult(), editing?.turns ? null : editing]
            .filter(Boolean).map((on) => light(on, box));
    }};
    const seen = (spot) => {{
        const {{top, bottom}} = spot.getBoundingClientRect();
        return top >= 0 && bottom <= innerHeight;
    }};
    const pick = (element, by = "pointer") => {{
        pickedBy = element ? by : null;
        if ((element || null) === picked) return;
        picked = element || null;
        refresh();
    }};
    addEventListener("pointerover", (event) => {{
        if (event.pointerType !== "touch" && (option(event) || pickedBy === "pointer")) {{
            pick(option(event));
        }}
        // A finger's tap is a click: kept lit then, not shown for the tap's instant.
        const element = pointed(event);
        if (!element || event.pointerType === "touch") return;
        hovered = regionOf(element);
        refresh();
    }});
    addEventListener("pointermove", (event) => {{
        const image = event.target.closest?.("#fo1-result img");
        if (!image || event.pointerType === "touch") return;
        const region = underOnTheResult(event);
        image.style.cursor = region === null ? "" : "pointer";
        if (region === hovered) return;
        hovered = region;
        refresh();
    }});
    // Left, not just moved within (to a cell of the same row, a chip's own text).
    const leaves = (event, find = pointed) => {{
        const element = find(event);
        return element && !element.contains(event.relatedTarget);
    }};
    addEventListener("pointerout", (event) => {{
        if (leaves(event, option)) pick(null);
        if (!leaves(event) && !event.target.closest?.("#fo1-result img")) return;
        hovered = null;
        refresh();
    }});
    addEventListener("focusin", (event) => {{
        // From the keyboard only: a tap focuses an option of its own accord.
        if (option(event) && event.target.matches(":focus-visible")) {{
            pick(option(event), "keyboard");
        }}
        const element = pointed(event);
        if (!element) return;
        // The keyboard's move is the latest: it outranks a pointer resting where it was.
        focused = regionOf(element);
        hovered = null;
        refresh();
    }});
    addEventListener("focusout", (event) => {{
        if (leaves(event, option)) pick(null);
        if (!leaves(event)) return;
        focused = null;
        refresh();
    }});
    addEventListener("click", (event) => {{
        // A finger has no hover: a picked region's box is lit as it is tapped. A chosen
        // reference's list has closed under the pointer.
        const tapped = option(event);
        pick(tapped?.matches({json.dumps(REGION_OPTIONS)}) ? tapped : null);
        const element = pointed(event);
        const region = element ? regionOf(element) : underOnTheResult(event);
        const again = region === pinned?.region;
        pinned = region === null || again ? null : {{region, boxes: boxesText()}};
        hovered = focused = null;
        // Brought into view where neither image shows it: on the result, the answer's drawing.
        const [spot, ...others] = refresh();
        if (spot && ![spot, ...others].some(seen)) spot.scrollIntoView({{block: "nearest"}});
    }});
    addEventListener("keydown", (event) => {{
        // The references' arrows move the list's highlight, not the focus: the box follows the
        // highlight, once the list has drawn it; none once Enter or Tab has taken the focus
        // away (the closing list still shows its highlight a while).
        if (event.target.closest?.({json.dumps(REFERENCES)})) {{
            requestAnimationFrame(() => pick(
                document.activeElement?.closest({json.dumps(REFERENCES)})
                && document.querySelector({json.dumps(REFERENCES + " [role=option].active")}),
                "keyboard"));
        }}
        if (event.key !== "Escape" || (!pinned && focused === null && !picked)) return;
        pinned = focused = picked = pickedBy = null;
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
