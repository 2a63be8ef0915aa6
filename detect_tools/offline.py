"""A weight-free proposer: graph segmentation at a few scales plus greedy region merging.

Coarse by design. It needs no model and no download, so automatic proposals still work on a
machine with no hub access, but it finds regions of uniform colour, not objects: expect boxes
around parts, shadows and background patches as well as whole things.

Method, in the spirit of selective search: Felzenszwalb segmentation of a downscaled copy at
three scales; within each, adjacent regions are merged greedily (most similar colour, smallest,
most box-filling pair first) until one is left; every region ever formed is a candidate. A
candidate's score is its boundary contrast: the mean Lab colour difference to the regions it
touches, weighted by shared boundary length, so regions that stand out from their surroundings
rank first.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import cv2
import numpy as np
import supervision as sv
from PIL import Image
from skimage.segmentation import felzenszwalb

from detect_tools.base import ProposalOptions, Proposer

WORK_SIDE = 512
"""Segmentation runs on a copy with this long side: it sets speed (~1 s at 2 cores) and detail."""

SCALES = (60, 200, 600)
"""Felzenszwalb ``scale`` values: larger gives fewer, bigger initial regions."""

CONTRAST_HALF = 20.0
"""Boundary contrast (Lab units) that halves a region's score."""

SIZE_HALF = 0.002
"""Share of the image area that halves a region's score (a 20×20 patch of a 512×384 copy)."""


@dataclass
class _Region:
    area: int
    colour: np.ndarray  # mean Lab colour, shape (3,)
    box: np.ndarray  # x0, y0, x1, y1 in work pixels, exclusive end
    border: dict[int, int] = field(default_factory=dict)  # neighbour id → shared edge length


class OfflineProposer(Proposer):
    """Coarse colour-region proposals with no model (see the module docstring)."""

    name = "offline"
    label = "Offline (coarse, no model)"
    # Above 0: the whole image (which touches no other region) scores 0 and is no proposal.
    default_threshold = 0.01

    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        pixels = np.asarray(image)
        height, width = pixels.shape[:2]
        scale = min(1.0, WORK_SIDE / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(pixels.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        boxes, scores = [], []
        for k in SCALES:
            labels = felzenszwalb(pixels, scale=k, sigma=0.8, min_size=max(20, k // 2))
            for box, score in _merge_regions(labels, lab):
                boxes.append(box)
                scores.append(score)
        # Work pixels back to original pixels, per axis (rounding makes the two scales differ).
        stretch = np.array([width, height] * 2, np.float32) / (
            [pixels.shape[1], pixels.shape[0]] * 2
        )
        xyxy = np.array(boxes, dtype=np.float32) * stretch
        return sv.Detections(xyxy=xyxy, confidence=np.array(scores, dtype=np.float32))


def _initial_regions(labels: np.ndarray, lab: np.ndarray) -> dict[int, _Region]:
    count = int(labels.max()) + 1
    flat = labels.ravel()
    area = np.bincount(flat, minlength=count)
    colour = (
        np.stack([np.bincount(flat, lab[..., c].ravel(), minlength=count) for c in range(3)], 1)
        / np.maximum(area, 1)[:, None]
    )
    ys, xs = np.indices(labels.shape)
    height, width = labels.shape
    box = np.tile(np.array([width, height, 0, 0]), (count, 1))
    np.minimum.at(box[:, 0], flat, xs.ravel())
    np.minimum.at(box[:, 1], flat, ys.ravel())
    np.maximum.at(box[:, 2], flat, xs.ravel() + 1)
    np.maximum.at(box[:, 3], flat, ys.ravel() + 1)
    regions = {i: _Region(int(area[i]), colour[i], box[i]) for i in range(count) if area[i]}
    # Shared edge lengths from horizontally and vertically adjacent pixel pairs.
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1),
        ]
    )
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], 1)
    keys, lengths = np.unique(pairs[:, 0] * count + pairs[:, 1], return_counts=True)
    for key, length in zip(keys.tolist(), lengths.tolist(), strict=True):
        a, b = divmod(key, count)
        regions[a].border[b] = length
        regions[b].border[a] = length
    return regions


def _score(region: _Region, regions: dict[int, _Region], image_area: int) -> float:
    """Boundary contrast × size × compactness, each in [0, 1]; the whole image scores 0."""
    total = sum(region.border.values())
    if total == 0:
        return 0.0
    weighted = sum(
        length * float(np.linalg.norm(region.colour - regions[n].colour))
        for n, length in region.border.items()
    )
    contrast = weighted / total
    share = region.area / image_area
    box_area = float((region.box[2] - region.box[0]) * (region.box[3] - region.box[1]))
    # Specks and texture contrast strongly but are not objects, hence the size term; whole
    # things fill their box while stray merges do not, hence the compactness term.
    return (
        contrast
        / (contrast + CONTRAST_HALF)
        * share
        / (share + SIZE_HALF)
        * (0.5 + 0.5 * region.area / box_area)
    )


def _merge_cost(a: _Region, b: _Region, image_area: int) -> float:
    # Selective search's three cues: colour, size (merge small regions first, so the hierarchy
    # grows evenly) and fill (prefer pairs whose union fills its box, i.e. fits together).
    colour = float(np.linalg.norm(a.colour - b.colour)) / 100.0
    union = np.r_[np.minimum(a.box[:2], b.box[:2]), np.maximum(a.box[2:], b.box[2:])]
    box_area = float((union[2] - union[0]) * (union[3] - union[1]))
    size = (a.area + b.area) / image_area
    fill = (box_area - a.area - b.area) / image_area
    return colour + size + fill


def _merge_regions(labels: np.ndarray, lab: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(box, score) for every initial region and every region formed by merging."""
    regions = _initial_regions(labels, lab)
    image_area = labels.size
    candidates = [(r.box, _score(r, regions, image_area)) for r in regions.values()]
    heap = [
        (_merge_cost(regions[a], regions[b], image_area), a, b)
        for a in regions
        for b in regions[a].border
        if a < b
    ]
    heapq.heapify(heap)
    next_id = max(regions) + 1
    while heap:
        _, a, b = heapq.heappop(heap)
        if a not in regions or b not in regions:
            continue  # one side was already merged away: a stale entry
        ra, rb = regions.pop(a), regions.pop(b)
        area = ra.area + rb.area
        merged = _Region(
            area=area,
            colour=(ra.colour * ra.area + rb.colour * rb.area) / area,
            box=np.r_[np.minimum(ra.box[:2], rb.box[:2]), np.maximum(ra.box[2:], rb.box[2:])],
        )
        for old in (ra, rb):
            for n, length in old.border.items():
                if n in regions:
                    merged.border[n] = merged.border.get(n, 0) + length
        for n, length in merged.border.items():
            neighbour = regions[n].border
            neighbour.pop(a, None)
            neighbour.pop(b, None)
            neighbour[next_id] = length
            heapq.heappush(heap, (_merge_cost(merged, regions[n], image_area), n, next_id))
        regions[next_id] = merged
        candidates.append((merged.box, _score(merged, regions, image_area)))
        next_id += 1
    return candidates
