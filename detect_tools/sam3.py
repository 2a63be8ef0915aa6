"""SAM3 (transformers' port): text-prompted instance masks, turned into boxes with their masks.

Each category of the prompt ("red cup, person") is one SAM3 concept prompt; the image is encoded
once and reused for every concept. Candidates from all concepts are pooled and chosen on their
predicted boxes (threshold, NMS, count); only the chosen ones get full-size masks, from which
their boxes are then taken, so the answer can later be drawn as masks.

Adaptive threshold: when SAM3 is confident about something (best score ≥ `CONFIDENT_THRESHOLD`)
only confident instances are kept; when even the best is weak, the low threshold
(``ProposalOptions.threshold``, default `LOW_THRESHOLD`) keeps weak candidates, so a hard image
still gets proposals for the answering model to choose from.
"""

from __future__ import annotations

import numpy as np
import supervision as sv
import torch
from PIL import Image

from detect_tools.base import (
    CLASS_NAME,
    LoadedModel,
    ModelProposer,
    ProposalOptions,
    empty_detections,
    finalize,
    split_prompt,
)

DEFAULT_CHECKPOINT = "facebook/sam3"
LOW_THRESHOLD = 0.2
CONFIDENT_THRESHOLD = 0.5
MASK_THRESHOLD = 0.5
CANDIDATES = 1000
"""The best candidates kept for duplicate removal: SAM3's 200 queries for each of 50 concepts,
at threshold 0, made 10 000, whose overlap table took 5 GB and 12 s."""

MASK_CHUNK = 4
"""Masks upsampled to the image at once. Each costs 12·H·W bytes on the way (the processor's float
map, then its int64 binarised mask): 576 MB for 4 on a 12-megapixel photo."""


class Sam3Proposer(ModelProposer):
    """Instance masks (and their boxes) for the comma-separated categories in the prompt."""

    name = "sam3"
    label = "SAM3 (text-prompted masks)"
    needs_text = True
    default_threshold = LOW_THRESHOLD
    default_checkpoint = DEFAULT_CHECKPOINT
    # facebook/sam3 is the video model's checkpoint; Sam3Model loads its detector part.
    model_types = ("sam3", "sam3_video")

    def _load(self) -> LoadedModel:
        from transformers import Sam3Model, Sam3Processor

        return self._from_checkpoint(Sam3Model, Sam3Processor)

    @torch.inference_mode()
    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        concepts = split_prompt(text or "")
        prompts = [dict(self._text_tokens(concept)) for concept in concepts]
        detections = self._segmented(image, prompts, threshold, options)
        detections.data[CLASS_NAME] = np.array(concepts)[detections.class_id]
        return detections

    def _segmented(
        self,
        image: Image.Image,
        prompts: list[dict[str, torch.Tensor]],
        threshold: float,
        options: ProposalOptions,
    ) -> sv.Detections:
        """Instances for each prompt (the model's inputs besides the image), the image encoded
        once for all; `class_id` is the prompt's index."""
        model, processor = self.loaded.model, self.loaded.processor
        width, height = image.size
        pixels = processor(images=image, return_tensors="pt").pixel_values
        vision = model.get_vision_features(pixel_values=pixels.to(self.device, self.dtype))
        outputs, found = [], []
        for index, prompt in enumerate(prompts):
            output = model(vision_embeds=vision, **prompt)
            # Post-processing in float32: bfloat16 loses whole pixels at image scale.
            for key in ("pred_logits", "pred_boxes", "pred_masks", "presence_logits"):
                if output.get(key) is not None:
                    output[key] = output[key].float()
            outputs.append(output)
            # Every query's predicted box and score (threshold -1 keeps them all, in order).
            boxes = processor.post_process_object_detection(
                output, -1.0, target_sizes=[(height, width)]
            )[0]
            queries = len(boxes["scores"])
            found.append(
                sv.Detections(
                    xyxy=boxes["boxes"].cpu().numpy(),
                    confidence=boxes["scores"].cpu().numpy(),
                    data={"concept": np.full(queries, index), "query": np.arange(queries)},
                )
            )
        candidates = sv.Detections.merge(found)
        if len(candidates) > CANDIDATES:
            candidates = candidates[np.argsort(-candidates.confidence, kind="stable")[:CANDIDATES]]
        best = float(candidates.confidence.max()) if len(candidates) else 0.0
        cut = max(threshold, CONFIDENT_THRESHOLD) if best >= CONFIDENT_THRESHOLD else threshold
        # What the proposal will keep, chosen on the predicted boxes first: only those masks are
        # upsampled to the image, each H·W (a 12 MP photo's 100 candidates would be gigabytes).
        chosen = finalize(candidates, image.size, cut, options)
        if not len(chosen):
            return empty_detections(image.size, with_mask=True)
        # Masks are painted straight into one array in the chosen (best-first) order, so that no
        # later step (merging concepts, sorting) copies a gigabyte of them again.
        xyxy = chosen.xyxy.copy()
        mask = np.zeros((len(chosen), height, width), bool)
        for index, output in enumerate(outputs):
            rows = np.flatnonzero(chosen.data["concept"] == index)
            self._paint_masks(output, chosen.data["query"][rows], rows, mask, xyxy)
        return sv.Detections(
            xyxy=xyxy,
            mask=mask,
            confidence=chosen.confidence,
            class_id=chosen.data["concept"],
        )

    def _paint_masks(
        self,
        output: dict,
        queries: np.ndarray,
        rows: np.ndarray,
        mask: np.ndarray,
        xyxy: np.ndarray,
    ) -> None:
        """Full-size masks of one concept's chosen `queries` into `mask[rows]`, and their
        extents into `xyxy[rows]`."""
        processor = self.loaded.processor
        height, width = mask.shape[1:]
        for start in range(0, len(rows), MASK_CHUNK):
            chunk = torch.from_numpy(queries[start : start + MASK_CHUNK])
            chosen = dict(output)
            for key in ("pred_logits", "pred_boxes", "pred_masks"):
                chosen[key] = output[key][:, chunk.to(output[key].device)]
            result = processor.post_process_instance_segmentation(
                type(output)(**chosen), -1.0, MASK_THRESHOLD, target_sizes=[(height, width)]
            )[0]
            painted = result["masks"].cpu().numpy().astype(bool, copy=False)
            targets = rows[start : start + MASK_CHUNK]
            mask[targets] = painted
            # The box drawn is the mask's own extent, so box and mask always agree; the
            # predicted box stands in only where the mask came out empty.
            filled = painted.any((1, 2))
            extents = sv.mask_to_xyxy(painted[filled]).astype(np.float32)
            extents[:, 2:] += 1  # mask_to_xyxy gives the last pixel; boxes end past it
            xyxy[targets[filled]] = extents


class Sam3LikeProposer(Sam3Proposer):
    """Instance masks of more objects like the example boxes: SAM3's visual exemplar prompt,
    the example boxes given together as one concept."""

    name = "sam3-like"
    label = "SAM3: more like my boxes (masks)"
    needs_text = False
    needs_examples = True

    @torch.inference_mode()
    def _predict_like(
        self, image: Image.Image, examples: np.ndarray, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        # The processor normalises the boxes to the image and names the concept "visual", as
        # SAM3 was trained to read a prompt of boxes alone.
        prompt = self.loaded.processor(
            original_sizes=[[image.height, image.width]],
            input_boxes=[examples.tolist()],
            return_tensors="pt",
        ).to(self.device)
        prompt["input_boxes"] = prompt["input_boxes"].to(self.dtype)
        del prompt["original_sizes"]
        detections = self._segmented(image, [dict(prompt)], threshold, options)
        detections.class_id = None  # one concept, which is no label
        return detections
