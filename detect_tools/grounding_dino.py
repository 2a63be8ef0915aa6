"""Grounding DINO (transformers' port): open-set detection of the categories the user names.

Grounding DINO reads one caption, the categories joined as "red cup. person.", and scores each
of its queries' boxes against every token of it. A box's score for a category is its best score
over that category's tokens; the box is labelled with its best category, as OmDet-Turbo's are.
"""

from __future__ import annotations

import logging

import numpy as np
import supervision as sv
import torch
from PIL import Image
from transformers.image_transforms import center_to_corners_format

from detect_tools.base import CLASS_NAME, LoadedModel, ModelProposer, ProposalOptions, split_prompt

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "IDEA-Research/grounding-dino-tiny"


class GroundingDinoProposer(ModelProposer):
    """Open-set boxes for the comma-separated categories in the prompt."""

    name = "grounding-dino"
    label = "Grounding DINO (open set)"
    needs_text = True
    default_threshold = 0.35  # the box threshold of the authors' demo
    default_checkpoint = DEFAULT_CHECKPOINT
    model_types = ("grounding-dino",)

    def _load(self) -> LoadedModel:
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        return self._from_checkpoint(GroundingDinoForObjectDetection, GroundingDinoProcessor)

    @torch.inference_mode()
    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        classes = split_prompt(text or "")
        model, processor = self.loaded.model, self.loaded.processor
        caption, tokens_of_class = self._caption(classes)
        pixels = processor.image_processor(images=image, return_tensors="pt").to(self.device)
        outputs = model(
            **caption,
            pixel_values=pixels.pixel_values.to(self.dtype),
            pixel_mask=pixels.pixel_mask,
        )
        token_scores = outputs.logits[0].float().sigmoid()
        class_scores = torch.stack(
            [
                token_scores[:, tokens].max(dim=1).values
                if len(tokens)
                else token_scores.new_zeros(len(token_scores))
                for tokens in tokens_of_class
            ],
            dim=1,
        )
        scores, labels = class_scores.max(dim=1)
        width, height = image.size
        xyxy = center_to_corners_format(outputs.pred_boxes[0].float())
        xyxy = xyxy * xyxy.new_tensor([width, height, width, height])
        detections = sv.Detections(
            xyxy=xyxy.cpu().numpy().astype(np.float32),
            confidence=scores.cpu().numpy().astype(np.float32),
            class_id=labels.cpu().numpy().astype(int),
        )
        detections.data[CLASS_NAME] = np.array(classes, dtype=str)[detections.class_id]
        return detections

    def _caption(self, classes: list[str]) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
        """The model's inputs for the caption "a. b.", cut to the text length the model reads,
        and the positions of each class's tokens in it (none for a class cut away)."""
        spans, caption = [], ""
        for name in classes:
            lowered = name.lower()  # the model was trained on lower-case captions
            spans.append((len(caption), len(caption) + len(lowered)))
            caption += f"{lowered}. "
        encoded = self.loaded.processor.tokenizer(
            caption.rstrip(),
            truncation=True,
            max_length=self.loaded.model.config.max_text_len,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping")[0].tolist()
        tokens_of_class = [
            # Special tokens span no characters.
            [k for k, (start, end) in enumerate(offsets) if first <= start < min(end, last)]
            for first, last in spans
        ]
        left_out = [
            name for name, tokens in zip(classes, tokens_of_class, strict=True) if not tokens
        ]
        if left_out:
            logger.warning(
                "Grounding DINO reads %d tokens of text: %d categories left out (%s)",
                self.loaded.model.config.max_text_len,
                len(left_out),
                ", ".join(left_out),
            )
        return encoded.to(self.device), tokens_of_class
