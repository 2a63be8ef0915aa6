"""OWLv2 (transformers' port): one box per image patch, scored against the categories the user
names, by the model's own objectness for class-agnostic proposals, or by likeness to example
boxes.

OWLv2 predicts a box for every patch of its padded square input (3600 for the base model at
960 px). The open-vocabulary proposer scores each against the prompt's categories ("red cup,
person" → two text queries) and labels it with the best; the objectness proposer ranks them by
OWLv2's objectness head, trained to say "this patch's box holds an object" of any kind, which
makes it a class-agnostic proposal network like the one FO1 was trained with; the "more like"
proposer scores them against the image's own patches under the example boxes, as OWLv2's
image-conditioned detection does with a query image.
"""

from __future__ import annotations

import numpy as np
import supervision as sv
import torch
from PIL import Image, ImageOps
from torchvision.ops import box_iou
from transformers.image_transforms import center_to_corners_format
from transformers.models.owlv2.modeling_owlv2 import Owlv2ObjectDetectionOutput

from detect_tools.base import CLASS_NAME, LoadedModel, ModelProposer, ProposalOptions, split_prompt

DEFAULT_CHECKPOINT = "google/owlv2-base-patch16-ensemble"

CANDIDATES = 1000
"""Best-scored patches kept for thresholding and NMS: past the first thousand, none would make
the 100 proposals kept."""


class Owlv2Proposer(ModelProposer):
    """Open-vocabulary boxes for the comma-separated categories in the prompt."""

    name = "owlv2"
    label = "OWLv2 (open vocabulary)"
    needs_text = True
    default_threshold = 0.1  # transformers' documented default for OWLv2's scores
    default_checkpoint = DEFAULT_CHECKPOINT
    model_types = ("owlv2",)

    def _load(self) -> LoadedModel:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        return self._from_checkpoint(Owlv2ForObjectDetection, Owlv2Processor)

    @torch.inference_mode()
    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        classes = split_prompt(text or "")
        outputs = self.loaded.model(**self._text_tokens(classes), pixel_values=self._pixels(image))
        detections = self._detections(outputs.logits, outputs.pred_boxes, image, threshold)
        detections.data[CLASS_NAME] = np.array(classes, dtype=str)[detections.class_id]
        return detections

    def _pixels(self, image: Image.Image) -> torch.Tensor:
        processor = self.loaded.processor.image_processor
        # The processor blurs, then resizes, the whole image in float: 1.4 s for a 12-megapixel
        # photo, where PIL shrinks it to the model's side first in 0.06 s. Boxes are read
        # against the long side, which keeps its share of the square either way.
        side = processor.size["height"]
        if max(image.size) > side:
            image = ImageOps.contain(image, (side, side), Image.Resampling.LANCZOS)
        pixels = processor(images=image, return_tensors="pt").pixel_values
        return pixels.to(self.device, self.dtype)

    def _detections(
        self, logits: torch.Tensor, boxes: torch.Tensor, image: Image.Image, threshold: float
    ) -> sv.Detections:
        """`(1, P, classes)` logits and `(1, P, 4)` boxes as detections in image pixels: the
        `CANDIDATES` best patches at `threshold` or above, each with its best class."""
        best = logits.float().max(dim=-1).values[0]
        kept = best.topk(min(CANDIDATES, best.numel())).indices
        outputs = Owlv2ObjectDetectionOutput(
            logits=logits[:, kept].float(), pred_boxes=boxes[:, kept].float()
        )
        # The processor scales boxes by the image's long side: OWLv2 sees it padded to a square.
        result = self.loaded.processor.image_processor.post_process_object_detection(
            outputs, threshold=threshold, target_sizes=[(image.height, image.width)]
        )[0]
        return sv.Detections(
            xyxy=result["boxes"].cpu().numpy().astype(np.float32),
            confidence=result["scores"].cpu().numpy().astype(np.float32),
            class_id=result["labels"].cpu().numpy().astype(int),
        )

    def _patches(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        """`(1, P, D)` features of the image's patches, and their `(1, P, 4)` boxes."""
        model = self.loaded.model
        feature_map, _ = model.image_embedder(pixel_values=self._pixels(image))
        batch, rows, columns, width = feature_map.shape
        features = feature_map.reshape(batch, rows * columns, width)
        return features, model.box_predictor(features, feature_map)


class Owlv2ObjectnessProposer(Owlv2Proposer):
    """Class-agnostic proposals ranked by OWLv2's objectness: any kind of object, no prompt."""

    name = "owlv2-objects"
    label = "OWLv2 objectness (class-agnostic)"
    needs_text = False
    default_threshold = 0.0  # FO1 chooses among the proposals: the count cap bounds them

    @torch.inference_mode()
    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        features, boxes = self._patches(image)
        objectness = self.loaded.model.objectness_predictor(features)[..., None]
        detections = self._detections(objectness, boxes, image, threshold)
        detections.class_id = None  # one "class", which is no label
        return detections


class Owlv2LikeProposer(Owlv2Proposer):
    """More objects like the example boxes: OWLv2's image-conditioned detection, each example
    standing for the embedding of the patch whose box fits it best. Scores are relative to the
    best match (1), as OWLv2's scores for image queries are not calibrated."""

    name = "owlv2-like"
    label = "OWLv2: more like my boxes"
    needs_text = False
    needs_examples = True
    default_threshold = 0.0  # FO1 tells which are alike: the count cap bounds them

    @torch.inference_mode()
    def _predict_like(
        self, image: Image.Image, examples: np.ndarray, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        model = self.loaded.model
        features, boxes = self._patches(image)
        _, embeddings = model.class_predictor(features)
        # Patch boxes are fractions of the padded square, whose side is the image's long side.
        fitted = box_iou(
            torch.from_numpy(examples).to(boxes.device) / max(image.size),
            center_to_corners_format(boxes[0].float()),
        ).argmax(dim=1)
        logits, _ = model.class_predictor(features, embeddings[:, fitted], None)
        detections = self._detections(logits, boxes, image, 0.0)
        if len(detections):
            detections.confidence = detections.confidence / detections.confidence.max()
        detections.class_id = None  # which example a box is like is no label
        return detections
