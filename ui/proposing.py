"""Box proposals for the UI and the API, through `detect_tools`' registry.

Masks (SAM3) are kept per box, keyed by the box's pixel corners: the box editor knows nothing of
masks, so a box the user has not moved finds its mask again by its corners.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import gradio as gr
import numpy as np
import supervision as sv
from PIL import Image

import detect_tools
from detect_tools import ProposalOptions, ProposerError
from detect_tools.base import CLASS_NAME, MAX_PROPOSALS, ModelProposer, shortest_decimal
from detect_tools.registry import with_shared_models, within_reach
from fo1_core.inputs import open_image
from fo1_core.templates import TASKS, FillKind, TaskTemplate
from ui.boxes import Box, region_label
from ui.gpu import on_gpu

logger = logging.getLogger(__name__)

DEFAULT_PROPOSALS = 30
"""How many proposals the page and the API ask for unless told: a useful set of candidates that
leaves the region picker short enough to read."""


@dataclass(frozen=True)
class PackedMask:
    """A proposer's mask as a session keeps it: only the rows and columns it covers, one bit per
    pixel. Full masks of 100 SAM3 boxes on a 12-megapixel photo would be 1.2 GB per session."""

    shape: tuple[int, int]
    top: int
    left: int
    height: int
    width: int
    bits: np.ndarray  # the covered part, bit-packed row after row

    @classmethod
    def pack(cls, mask: np.ndarray) -> PackedMask:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            return cls(mask.shape, 0, 0, 0, 0, np.zeros(0, np.uint8))
        covered = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        return cls(mask.shape, int(rows[0]), int(cols[0]), *covered.shape, np.packbits(covered))

    def unpack(self) -> np.ndarray:
        mask = np.zeros(self.shape, bool)
        covered = np.unpackbits(self.bits, count=self.height * self.width).astype(bool)
        bottom, right = self.top + self.height, self.left + self.width
        mask[self.top : bottom, self.left : right] = covered.reshape(self.height, self.width)
        return mask


MaskStore = dict[tuple[int, int, int, int], PackedMask]


@dataclass
class Proposals:
    boxes: list[Box]
    scores: list[float]
    labels: list[str]
    masks: np.ndarray | None  # (N, H, W) bool, or None when the proposer gives no masks
    seconds: float

    def as_json(self, proposer: str) -> dict:
        return {
            "proposer": proposer,
            "count": len(self.boxes),
            "boxes": self.boxes,
            "scores": self.scores,
            "labels": self.labels,
            "has_masks": self.masks is not None,
            "seconds": round(self.seconds, 3),
        }


DUPLICATE_IOU = 0.9
"""A proposal overlapping one of the user's boxes this much is that box again (the same proposer
run twice, or two proposers finding the same object), and is not added a second time."""


def new_to(kept: list[Box], found: list[Box]) -> list[int]:
    """Indices of the `found` boxes that are not already among the `kept` ones."""
    if not kept or not found:
        return list(range(len(found)))
    overlap = sv.box_iou_batch(np.array(found, float), np.array(kept, float))
    return [i for i, row in enumerate(overlap) if row.max() < DUPLICATE_IOU]


def box_key(box: Box) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (round(v) for v in box)
    return x1, y1, x2, y2


@dataclass(frozen=True)
class Proposed:
    """The last Propose, for the status of answers about its boxes."""

    seconds: float
    boxes: frozenset[tuple[int, int, int, int]]  # `box_key`s of the boxes it added

    def seconds_if_asked(self, boxes: list[Box]) -> float | None:
        """How long it took, while one of its boxes is among `boxes` as it gave it."""
        return self.seconds if any(box_key(box) in self.boxes for box in boxes) else None


def _names_things(task: TaskTemplate) -> bool:
    """Whether `task`'s text names what to look for: a text-prompted proposer left without a
    text of its own looks for that."""
    return task.fill is FillKind.TEXT and not task.is_question


NAMING_TASKS = [task.label for task in TASKS.values() if _names_things(task)]


@dataclass(frozen=True)
class ProposerInput:
    """What a Propose gives its proposer besides the image, and how its status names what the
    user did not type for it (`asked_for`: "for “cup” (from the task)", "like #0")."""

    text: str | None
    examples: list[Box] | None = None
    asked_for: str | None = None


def proposer_input(
    proposer: detect_tools.Proposer,
    text: str | None,
    task: str,
    task_text: str | None,
    boxes: list[Box],
    regions: list[int] | None,
) -> ProposerInput:
    """`text` typed for `proposer`, or, for one that needs a text and was given none, what the
    `task`'s text names; for one that finds more like example boxes, the `regions` picked for a
    region task (a Visual-prompt detection's reference), else every one of `boxes`. A
    `ProposerError` where nothing can stand for what it needs."""
    template = TASKS.get(task)
    if proposer.needs_text and not (text or "").strip():
        named = (task_text or "").strip() if template and _names_things(template) else ""
        if not named:
            tasks = ", ".join(NAMING_TASKS[:-1]) + f" or {NAMING_TASKS[-1]}"
            raise ProposerError(
                f"{proposer.label} finds what it is told: type what to find (e.g. “red cup, "
                f"person”), or pick a {tasks} task and name it there."
            )
        return ProposerInput(named, asked_for=f"for “{named}” (from the task)")
    if proposer.needs_examples:
        if not boxes:
            raise ProposerError(
                f"{proposer.label} finds more objects like your boxes: draw a box around one "
                "example first (or a few), then Propose."
            )
        picked = sorted({i for i in regions or () if i < len(boxes)})
        if template is not None and template.fill is FillKind.REGIONS and picked:
            labels = ", ".join(region_label(i) for i in picked)
            return ProposerInput(text, [boxes[i] for i in picked], f"like {labels}")
        plural = "es" if len(boxes) > 1 else ""
        return ProposerInput(text, boxes, f"like your {len(boxes)} box{plural}")
    return ProposerInput(text)


PREFERRED_PROPOSERS = ("florence2", "owlv2-objects", "offline")
"""The proposer selected at start unless one is named, the first within reach: class-agnostic
region proposals give every kind of object a box for FO1 to name; the offline one needs nothing."""


class Proposing:
    """Runs any registered proposer; model proposers load on first use and may fail visibly."""

    def __init__(
        self,
        device: str | None = None,
        checkpoints: Mapping[str, str] | None = None,
        loads_at_start: bool = False,
    ) -> None:
        """`checkpoints`: proposer name → its local folder or hub id, where not the default.

        `loads_at_start` (on ZeroGPU): every proposer's model is loaded by `load_all`, as the app
        starts, not at a visitor's Propose. There, only the main thread may put weights on the
        GPU outside a slot (`spaces` stands in for CUDA with a torch mode of that thread: from a
        handler's thread the load fails), and the weights loaded then are handed to the worker
        `spaces` forks for each slot, as FO1's. Loaded inside a slot instead, a model would be
        downloaded there, in the visitor's 20 s and quota, and again in each new worker."""
        self.device = device
        self.checkpoints = with_shared_models(checkpoints or {})
        self.loads_at_start = loads_at_start
        # Fixed at start: a visitor is offered only what can run on this server.
        self.within_reach = within_reach(self.checkpoints)
        self._propose_on_gpu = on_gpu(self._propose)

    def default(self, named: str | None = None) -> str:
        """`named`, or the first of `PREFERRED_PROPOSERS` within reach."""
        return named or next(name for name in PREFERRED_PROPOSERS if name in self.within_reach)

    def choices(self, named: str | None = None) -> list[tuple[str, str]]:
        """(label, name) of the proposers within reach, and of `named` in any case: a proposer
        its operator asked for fails at Propose with a message on what it lacks."""
        return [
            (label, name)
            for name, label in detect_tools.available().items()
            if name in self.within_reach or name == named
        ]

    def load(self, name: str) -> None:
        """Loads `name`'s model now, in this process, if it has one (`ProposerError` if it
        cannot)."""
        self.proposer(name).load()

    def load_all(self) -> None:
        """Loads every proposer within reach, in this thread; one that fails (a gated model
        without a token, too little memory) is logged and no longer offered, and the app serves
        all the same."""
        not_offered = (
            "The proposer %s did not load at start: not offered unless --proposer names it"
        )
        for name in list(self.within_reach):
            try:
                self.load(name)
                continue
            except ProposerError as error:  # its operator is told why, without a traceback
                logger.warning(f"{not_offered} (%s)", name, error)
            except Exception:  # noqa: BLE001 (whatever else fails, the log keeps where)
                logger.exception(not_offered, name)
            del self.within_reach[name]

    def proposer(self, name: str) -> detect_tools.Proposer:
        try:
            return detect_tools.get(name, self.checkpoints.get(name), device=self.device)
        except ProposerError:
            raise
        except Exception as error:  # a constructor may check its environment
            logger.exception("The proposer %s could not start", name)
            raise ProposerError(f"The proposer {name!r} cannot start here ({error}).") from error

    def _propose(
        self,
        name: str,
        image: Image.Image,
        text: str | None,
        options: ProposalOptions,
        examples: list[Box] | None,
    ) -> Proposals:
        start = time.perf_counter()
        detections = self.proposer(name).propose(image, text, options, examples)
        labels = detections.data.get(CLASS_NAME)
        return Proposals(
            boxes=[[shortest_decimal(v) for v in box] for box in detections.xyxy],
            scores=[shortest_decimal(s) for s in detections.confidence],
            labels=[str(label) for label in labels]
            if labels is not None
            else [""] * len(detections),
            masks=None if detections.mask is None else detections.mask.astype(bool, copy=False),
            seconds=time.perf_counter() - start,
        )

    def propose(
        self,
        image: str | Image.Image | None,
        name: str,
        text: str | None,
        threshold: float | None,
        max_count: int,
        examples: list[Box] | None = None,
    ) -> Proposals:
        """Raises `ProposerError` or `FO1Error` (an image the model could not read either) with
        a message for the user on every failure it can name. `examples`: boxes to find more
        like, for a proposer that needs them."""
        if isinstance(max_count, bool) or not (
            isinstance(max_count, int) or isinstance(max_count, float) and max_count.is_integer()
        ):  # float's is_integer is False for NaN and infinity too
            raise ProposerError(f"Maximum count must be a whole number, got {max_count!r:.50}.")
        picture = open_image(image)
        # A whole float past the limit is refused as written (1e+308), not as 53 of its digits.
        count = int(max_count) if abs(max_count) <= MAX_PROPOSALS else max_count
        options = ProposalOptions(threshold=threshold, max_count=count)
        proposer = self.proposer(name)
        proposer.checked_inputs(picture, text, examples)  # what is missing, told before a slot
        # A proposer without a model asks for no GPU slot, nor a visitor's quota for one.
        propose = self._propose_on_gpu if isinstance(proposer, ModelProposer) else self._propose
        try:
            return propose(name, picture, text, options, examples)
        except (ProposerError, MemoryError):
            raise
        except gr.Error as error:  # ZeroGPU's refusal of a slot, written for the visitor
            raise ProposerError(error.message) from error
        except Exception as error:  # a model that loads but cannot run: still the user's notice
            logger.exception("The proposer %s failed", name)
            message = f"The proposer {name!r} failed ({type(error).__name__}: {error})."
            raise ProposerError(message) from error


def packed_bytes(store: MaskStore) -> int:
    return sum(mask.bits.nbytes for mask in store.values())


def within(store: MaskStore, boxes: list[Box], limit: int) -> MaskStore:
    """`store` less its oldest masks of boxes not among `boxes`, until it holds at most `limit`
    bytes or only theirs: the masks of the boxes shown are always kept."""
    shown = {box_key(box) for box in boxes}
    total = packed_bytes(store)
    kept = dict(store)
    for key, mask in store.items():
        if total <= limit:
            break
        if key not in shown:
            total -= mask.bits.nbytes
            del kept[key]
    return kept


def masks_for(boxes: list[Box], store: MaskStore) -> np.ndarray | None:
    """(N, H, W) masks aligned with `boxes`, empty where a box has none; None without any."""
    found = [store.get(box_key(box)) for box in boxes]
    shapes = {mask.shape for mask in found if mask is not None}
    if len(shapes) != 1:  # none, or masks from another image
        return None
    shape = shapes.pop()
    empty = np.zeros(shape, bool)
    return np.stack([mask.unpack() if mask is not None else empty for mask in found])
