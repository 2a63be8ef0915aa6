"""The proposer interface: options, errors, device choice, lazy loading and shared post-processing.

A proposer turns a PIL image (and, for text-prompted ones, a prompt) into candidate boxes as
``sv.Detections`` in original image pixels, best first. Every proposer ends in `finalize`, so
clipping, thresholding, NMS, sorting and the count cap are written once, here.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import numbers
import re
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import supervision as sv
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import get_safetensors_metadata, try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, OfflineModeIsEnabled
from PIL import Image
from transformers.utils import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)

from detect_tools.box_rules import box_rows, covers_a_pixel, cut_to_image, is_number
from detect_tools.images import as_rgb, size_problem, turned_as_shown
from detect_tools.memory import (
    MEMORY_TO_SPARE,
    available_memory,
    gigabytes,
    leaves_room,
    safetensors_numel,
)

logger = logging.getLogger(__name__)

MAX_PROPOSALS = 100
"""The most proposals any proposer returns: the downstream model has 100 region tokens."""

CLASS_NAME = sv.config.CLASS_NAME_DATA_FIELD
"""The ``sv.Detections.data`` key holding a proposer's own label (supervision's convention)."""


MAX_PROMPT_CLASSES = 50
"""More categories than this in one prompt is a pasted list by mistake (each costs a pass)."""


class ProposerError(ValueError):
    """A problem the user can fix, with a message written for that user (shown as it is)."""


def split_prompt(text: str) -> list[str]:
    """Categories in a detection prompt: "red cup, person" → ["red cup", "person"].

    Split on commas, semicolons and new lines; spaces tidied, blanks and repeats dropped.
    """
    names = {" ".join(part.split()): None for part in re.split(r"[,;\n]", text)}
    names.pop("", None)
    if not names:
        raise ProposerError(
            'Name at least one category to find, separated by commas (e.g. "red cup, person").'
        )
    if len(names) > MAX_PROMPT_CLASSES:
        raise ProposerError(
            f"At most {MAX_PROMPT_CLASSES} categories at once; the prompt has {len(names)}."
        )
    return list(names)


@dataclass(frozen=True)
class ProposalOptions:
    """What every proposer accepts.

    ``threshold`` None means the proposer's own default (scores are not comparable across
    proposers); ``nms_iou`` None turns class-agnostic NMS off.
    """

    threshold: float | None = None
    nms_iou: float | None = 0.7
    max_count: int = MAX_PROPOSALS

    def __post_init__(self) -> None:
        if self.threshold is not None and not (
            is_number(self.threshold) and 0.0 <= self.threshold <= 1.0
        ):
            raise ProposerError(
                f"Score threshold must be a number between 0 and 1, got {self.threshold!r:.50}."
            )
        if self.nms_iou is not None and not (is_number(self.nms_iou) and 0 < self.nms_iou <= 1):
            raise ProposerError(
                f"NMS IoU must be in (0, 1] (or none: no NMS), got {self.nms_iou!r:.50}."
            )
        if not (
            isinstance(self.max_count, numbers.Integral)
            and not isinstance(self.max_count, bool)
            and 1 <= self.max_count <= MAX_PROPOSALS
        ):
            raise ProposerError(
                f"Maximum count must be between 1 and {MAX_PROPOSALS}, a whole number; "
                f"got {self.max_count!r:.50}."
            )


def option_type(field: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type for the `ProposalOptions` field `field`: a value it refuses is refused
    by the argument parser, which names the option (``argument --max-count: Maximum count must
    be …``), before any model loads. `parse` reads the text (its name is the kind argparse
    reports when it raises ValueError)."""

    def checked(text: str) -> Any:
        value = parse(text)
        try:
            ProposalOptions(**{field: value})
        except ProposerError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    checked.__name__ = parse.__name__
    return checked


def read_device(device: str | torch.device, error: type[Exception]) -> torch.device:
    """`device` as torch reads it, or `error` naming the ones it could be (shared with
    `fo1_core`, which raises its own error type)."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as failure:
        raise error(f"Unknown device {device!r}: use cpu, cuda or cuda:N.") from failure


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    # bfloat16 halves memory and is fast on GPUs; CPUs run float32 far faster and more exactly.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def check_image(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB (`as_rgb`), turned as its EXIF orientation says (as FO1 reads the
    same image, so that its proposals are FO1's boxes), or a ProposerError for a size FO1 refuses
    too (`size_problem`)."""
    if not isinstance(image, Image.Image):
        raise ProposerError(f"Expected a PIL image, got {type(image).__name__}.")
    problem = size_problem(*image.size)  # from the header: a refused image is never decoded
    if problem:
        raise ProposerError(problem)
    return as_rgb(turned_as_shown(image))


def empty_detections(image_size: tuple[int, int], with_mask: bool = False) -> sv.Detections:
    """A valid empty result; with a mask array of shape (0, H, W) when the proposer gives masks."""
    width, height = image_size
    return sv.Detections(
        xyxy=np.zeros((0, 4), dtype=np.float32),
        confidence=np.zeros(0, dtype=np.float32),
        mask=np.zeros((0, height, width), dtype=bool) if with_mask else None,
    )


def shortest_decimal(value: np.float32) -> float:
    """The shortest decimal that reads back as `value`: how a corner or a score is written
    wherever one is (`/propose`, `--json`, exports). Rounded any coarser, a corner near a half
    pixel can cross it and change the box's size in whole pixels (a 1 px proposal at
    [3.46, 4.54] sent back to FO1 as [3.5, 4.5] would be refused as having no area); a score
    rounded to 4 decimals did not reload to its detections, tied scores a ranking tells apart
    (COCO's evaluation sorts by them), and a small one (a product of token probabilities) was
    written as 0."""
    return float(str(np.float32(value)))


def finalize(
    detections: sv.Detections,
    image_size: tuple[int, int],
    threshold: float,
    options: ProposalOptions,
) -> sv.Detections:
    """Clip to the image, drop degenerate boxes and low scores, class-agnostic NMS, sort, cap."""
    if len(detections) == 0:
        return empty_detections(image_size, with_mask=detections.mask is not None)
    xyxy = detections.xyxy.astype(np.float32)
    # Models may emit corners in either order; a box is the span they cover.
    xyxy = np.concatenate(
        [np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])], 1
    )
    detections = dataclasses.replace(
        detections,
        xyxy=cut_to_image(xyxy, image_size).astype(np.float32),
        confidence=detections.confidence.astype(np.float32),
    )
    keep = covers_a_pixel(detections.xyxy) & (detections.confidence >= threshold)
    detections = _selected(detections, np.flatnonzero(keep))
    if len(detections) and options.nms_iou is not None:
        predictions = np.c_[detections.xyxy, detections.confidence]
        kept = sv.box_non_max_suppression(predictions, options.nms_iou)
        detections = _selected(detections, np.flatnonzero(kept))
    order = np.argsort(-detections.confidence, kind="stable")[: options.max_count]
    if len(order) == 0:
        return empty_detections(image_size, with_mask=detections.mask is not None)
    return _selected(detections, order)


def _selected(detections: sv.Detections, rows: np.ndarray) -> sv.Detections:
    """`detections[rows]`, or `detections` itself where that is all of them in order: indexing
    copies the masks, a gigabyte for a hundred of a 12-megapixel photo's."""
    if np.array_equal(rows, np.arange(len(detections))):
        return detections
    return detections[rows]


def example_boxes(
    boxes: npt.ArrayLike | None, image_size: tuple[int, int], label: str
) -> np.ndarray:
    """`boxes` ([x1, y1, x2, y2] in image pixels) cut to the image, those left with a whole
    pixel each way, as float32 (N, 4); a ProposerError, naming the proposer (`label`), where
    none is left."""
    try:
        rows = box_rows(boxes if boxes is not None else [])
        xyxy = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError) as error:
        raise ProposerError(
            f"Example boxes are [x1, y1, x2, y2] numbers each; got {boxes!r:.80}."
        ) from error
    xyxy = cut_to_image(xyxy, image_size)
    xyxy = xyxy[covers_a_pixel(xyxy)]
    if not len(xyxy):
        raise ProposerError(
            f"{label} finds more objects like example boxes: give it at least one, around an "
            "object (inside the image, a pixel or more each way)."
        )
    return xyxy.astype(np.float32)


class Proposer(ABC):
    """Turns an image (and a prompt, if ``needs_text``, or example boxes, if
    ``needs_examples``) into box proposals, best first."""

    name: ClassVar[str]
    label: ClassVar[str]
    needs_text: ClassVar[bool] = False
    needs_examples: ClassVar[bool] = False
    default_threshold: ClassVar[float] = 0.0

    def load(self) -> None:  # noqa: B027 (a default hook: most proposers hold no model)
        """Loads what proposing needs now rather than at the first proposal (`ModelProposer`:
        its model); a proposer without a model has nothing to load."""

    def propose(
        self,
        image: Image.Image,
        text: str | None = None,
        options: ProposalOptions | None = None,
        examples: npt.ArrayLike | None = None,
    ) -> sv.Detections:
        """Proposals in original image pixels, sorted by score, at most ``options.max_count``.
        `examples`: boxes ([x1, y1, x2, y2] in image pixels) to find more objects like, for a
        proposer that `needs_examples`."""
        options = options or ProposalOptions()
        image, like = self.checked_inputs(image, text, examples)
        threshold = self.default_threshold if options.threshold is None else options.threshold
        if like is not None:
            raw = self._predict_like(image, like, threshold, options)
        else:
            raw = self._predict(image, text.strip() if text else None, threshold, options)
        return finalize(raw, image.size, threshold, options)

    def checked_inputs(
        self, image: Image.Image, text: str | None, examples: npt.ArrayLike | None
    ) -> tuple[Image.Image, np.ndarray | None]:
        """The image and, for a proposer that `needs_examples`, the example boxes as `propose`
        reads them; a `ProposerError` for a text or examples it needs and lacks, told before
        any model runs (on ZeroGPU, before a GPU slot is asked for)."""
        image = check_image(image)
        if self.needs_text and not (text and text.strip()):
            raise ProposerError(
                f"The {self.label} proposer needs a text prompt naming what to find "
                '(for example "red cup, person").'
            )
        like = example_boxes(examples, image.size, self.label) if self.needs_examples else None
        return image, like

    def _predict_like(
        self, image: Image.Image, examples: np.ndarray, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        """`_predict` for a proposer that `needs_examples`: candidates like the `examples`
        boxes ((N, 4) float32, cut to the image)."""
        raise NotImplementedError(f"{type(self).__name__} finds nothing like example boxes")

    @abstractmethod
    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        """Raw candidates in image pixels; scores below ``threshold`` may be left for `finalize`,
        which applies `options` (a proposer may use them to skip work on what it would drop)."""


WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
"""The files transformers loads a checkpoint's weights from (a download cut short may leave its
config only)."""


@dataclass
class LoadedModel:
    model: Any
    processor: Any


class _SharedModel:
    """One checkpoint's model on one device and dtype, loaded once for every proposer running it
    (Florence-2's region and detection proposers are one model asked two tasks)."""

    def __init__(self) -> None:
        self.loaded: LoadedModel | None = None
        self.load_lock = threading.Lock()
        # One inference at a time per model: models keep caches (OmDet-Turbo's class embeddings)
        # that are not safe to update from several users' threads at once.
        self.inference_lock = threading.Lock()


_shared_models: weakref.WeakValueDictionary[tuple, _SharedModel] = weakref.WeakValueDictionary()
"""Held by the proposers using them: a model no proposer holds any more is freed."""
_shared_models_lock = threading.Lock()


class ModelProposer(Proposer):
    """A proposer backed by a transformers checkpoint, loaded on first use, once, thread-safely.

    ``checkpoint`` is a local folder or a hub id; None means the module's default hub id.
    Proposers of the same model (the class defining `_load`) on the same checkpoint, device and
    dtype share one loaded copy.
    """

    default_checkpoint: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    """The `model_type`s its checkpoints' config.json may name."""

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.checkpoint = str(checkpoint) if checkpoint is not None else self.default_checkpoint
        self.device = read_device(device, ProposerError) if device is not None else default_device()
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ProposerError(
                "This machine has no usable CUDA GPU: run on the CPU (--device cpu)."
            )
        self.dtype = dtype if dtype is not None else default_dtype(self.device)
        loader = next(cls for cls in type(self).__mro__ if "_load" in vars(cls))
        key = (loader, self.checkpoint, str(self.device), self.dtype)
        with _shared_models_lock:
            self._shared = _shared_models.get(key)
            if self._shared is None:
                self._shared = _shared_models[key] = _SharedModel()

    def propose(
        self,
        image: Image.Image,
        text: str | None = None,
        options: ProposalOptions | None = None,
        examples: npt.ArrayLike | None = None,
    ) -> sv.Detections:
        with self._shared.inference_lock:
            return super().propose(image, text, options, examples)

    def load(self) -> None:
        """Loads the model now rather than at the first proposal: a checkpoint that cannot be
        loaded fails here."""
        _ = self.loaded

    @property
    def loaded(self) -> LoadedModel:
        shared = self._shared
        if shared.loaded is None:
            with shared.load_lock:
                if shared.loaded is None:
                    shared.loaded = self._load_checked()
        return shared.loaded

    @property
    def is_loaded(self) -> bool:
        return self._shared.loaded is not None

    @classmethod
    def within_reach(cls, checkpoint: str | Path | None = None) -> bool:
        """Whether loading may find the weights without a network check: a folder was named
        (a missing one is then reported by name at load), the hub id's config and weights are
        in the Hugging Face cache, or the hub may be asked (not in offline mode)."""
        source = str(checkpoint) if checkpoint is not None else cls.default_checkpoint
        if _names_a_folder(source) or Path(source).is_dir():
            return True
        if not hub_constants.HF_HUB_OFFLINE:
            return True

        def cached(name: str) -> bool:  # not None, nor the "known missing" marker
            return isinstance(try_to_load_from_cache(source, name), str)

        return cached("config.json") and any(map(cached, WEIGHT_FILES))

    @property
    def where_to_pass_a_folder(self) -> str:
        """Where each way of running proposers takes this one's checkpoint folder."""
        return (
            f"app.py --proposer-checkpoint {self.name}=FOLDER; python -m fo1_core.evaluate and "
            "bench.space_request --proposer-checkpoint FOLDER; python -m detect_tools "
            "--checkpoint FOLDER; checkpoint= in Python"
        )

    def _load_checked(self) -> LoadedModel:
        if _names_a_folder(self.checkpoint) and not Path(self.checkpoint).is_dir():
            raise ProposerError(
                f"The {self.label} checkpoint folder {self.checkpoint} does not exist: "
                f"pass the folder that holds its config.json ({self.where_to_pass_a_folder})."
            )
        logger.info(
            "Loading %s from %s on %s (%s)", self.name, self.checkpoint, self.device, self.dtype
        )
        try:
            stored = _stored_model_type(self.checkpoint)
            if stored is not None and stored not in self.model_types:
                # transformers would load it with a warning, random weights and odd errors later.
                raise ProposerError(
                    f"{self.checkpoint!r} holds a model of type {stored!r}, not {self.label}: "
                    "pass the folder of this proposer's checkpoint."
                )
            if self.device.type == "cpu":
                self._check_memory()
            loaded = self._load()
        except ProposerError:
            raise
        except (OSError, ValueError) as error:
            if _hub_unreachable(error):
                # transformers' own text names its docs' URL and "offline mode": the user needs
                # to know the weights are missing here, and how to bring them.
                raise ProposerError(
                    f"The {self.label} model is not on this machine (there is no folder "
                    f"{self.checkpoint!r} here either), and the Hugging Face hub cannot be "
                    f"reached to download {self.checkpoint!r}. Download it where the "
                    "hub can be reached (it is then found in the Hugging Face cache), or give "
                    f"its local folder ({self.where_to_pass_a_folder})."
                ) from error
            if _caused_by(error, GatedRepoError):
                raise ProposerError(
                    f"The {self.label} model {self.checkpoint!r} is gated on the Hugging Face "
                    "hub: accept its terms on its page with a Hugging Face account, then give "
                    "this server that account's token (the HF_TOKEN environment variable; a "
                    "secret on a Space), or give its local folder "
                    f"({self.where_to_pass_a_folder})."
                ) from error
            # transformers reports a missing repo and a folder without the expected files as
            # OSError, and a folder of the wrong kind as ValueError; the user's fix is the same.
            raise ProposerError(
                f"The {self.label} model could not be loaded from {self.checkpoint!r} ({error}). "
                "If this machine cannot reach the Hugging Face hub, download the checkpoint "
                f"elsewhere and pass its local folder ({self.where_to_pass_a_folder})."
            ) from error
        except (torch.OutOfMemoryError, ImportError):  # not the files' fault: told as they are
            raise
        except Exception as error:  # noqa: BLE001 (any other failure: the files are not this model)
            # Another model's folder or a half-downloaded file fails deep inside transformers or
            # safetensors, with errors of many kinds; the log keeps where.
            logger.exception("Loading %s from %s failed", self.name, self.checkpoint)
            raise ProposerError(
                f"{self.checkpoint!r} could not be loaded as {self.label}: its files are damaged "
                f"or incomplete ({type(error).__name__}: {error}). Download it again."
            ) from error
        loaded.model.to(self.device).eval()
        return loaded

    def _check_memory(self) -> None:
        """A `ProposerError` where loading would leave less than `MEMORY_TO_SPARE` free: a
        process out of memory is killed without a word, and the app with it, every user's page
        and the FO1 model loaded beside the proposer."""
        free = available_memory()
        count = self._weight_count() if free is not None else None
        if free is None or count is None:
            return
        need = count * self.dtype.itemsize
        if not leaves_room(need, free):
            raise ProposerError(
                f"There is not enough memory here to load {self.label}: its weights take "
                f"{gigabytes(need)} and {gigabytes(free)} are free, {MEMORY_TO_SPARE >> 30} GB "
                "of which must stay free to answer questions. Draw the boxes yourself, or pick "
                "a proposer that needs no model."
            )

    def _weight_count(self) -> int | None:
        """How many numbers the checkpoint's weights hold: read from the files' headers where
        they are here (a folder, or the Hugging Face cache), else asked of the hub, which is
        about to send them; None where neither tells (weights in another format, or no hub)."""
        folder = Path(self.checkpoint)
        if not folder.is_dir():
            config = try_to_load_from_cache(self.checkpoint, "config.json")
            folder = Path(config).parent if isinstance(config, str) else None
        files = sorted(folder.glob("*.safetensors")) if folder is not None else []
        try:
            if files:
                return sum(safetensors_numel(file) for file in files)
            if folder is None and not hub_constants.HF_HUB_OFFLINE:
                return sum(get_safetensors_metadata(self.checkpoint).parameter_count.values())
        except Exception:  # noqa: BLE001 (loading tells what is wrong with the files)
            logger.debug("No weight count for %s", self.checkpoint, exc_info=True)
        return None

    @abstractmethod
    def _load(self) -> LoadedModel:
        """Model (in ``self.dtype``) and processor via ``from_pretrained(self.checkpoint)``."""

    def _from_checkpoint(self, model_class: Any, processor_class: Any) -> LoadedModel:
        """`_load` for the classes named: each proposer imports its own when first used."""
        model = model_class.from_pretrained(self.checkpoint, dtype=self.dtype)
        return LoadedModel(model, processor_class.from_pretrained(self.checkpoint))

    def _text_tokens(self, texts: str | list[str]) -> Any:
        """`texts` tokenized as the processor does, padded to the text model's length, but a
        text longer than that cut to fit, where the processor would fail the whole prompt."""
        model, processor = self.loaded.model, self.loaded.processor
        return processor.tokenizer(
            texts,
            padding="max_length",
            max_length=model.config.text_config.max_position_embeddings,
            truncation=True,
            return_tensors="pt",
        ).to(self.device)


def _names_a_folder(checkpoint: str) -> bool:
    """A path, never a hub id (`owner/name` is neither absolute nor dotted, and has two parts)."""
    path = Path(checkpoint)
    return path.is_absolute() or checkpoint.startswith(".") or len(path.parts) > 2


def _stored_model_type(checkpoint: str) -> str | None:
    """The `model_type` a checkpoint's config.json names (from a hub id, only that file is
    fetched; loading fetches the rest)."""
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(checkpoint)
    return config.get("model_type")


def _caused_by(error: BaseException, kinds: type | UnionType) -> bool:
    """Whether `error` or one it was raised from is of `kinds`: huggingface_hub's errors come
    wrapped in transformers' own."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:  # a chain can loop back on itself
        chain.append(link)
        link = link.__cause__ or link.__context__
    return any(isinstance(link, kinds) for link in chain)


def _hub_unreachable(error: BaseException) -> bool:
    """Whether `error` comes from weights that are neither cached nor downloadable (offline mode,
    or no connection)."""
    return _caused_by(error, LocalEntryNotFoundError | OfflineModeIsEnabled)
