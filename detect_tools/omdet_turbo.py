"""OmDet-Turbo (transformers' port): open-vocabulary detection of the categories the user names.

The paper's proposal network is a variant of OmDet-Turbo, so this is the closest match when the
user's question names what to look for. The prompt "red cup, person" becomes the classes
``["red cup", "person"]``; each box carries the class it was scored for as its label.
"""

from __future__ import annotations

import numpy as np
import supervision as sv
import torch
from PIL import Image

from detect_tools.base import CLASS_NAME, LoadedModel, ModelProposer, ProposalOptions, split_prompt

DEFAULT_CHECKPOINT = "omlab/omdet-turbo-swin-tiny-hf"

CLASS_NMS_IOU = 0.5
"""Per-class NMS inside the model's post-processing (its documented default)."""

CANDIDATES = 300
"""Top (query, class) pairs kept before thresholding: bounds NMS work with many classes."""


class OmDetTurboProposer(ModelProposer):
    """Open-vocabulary boxes for the comma-separated categories in the prompt."""

    name = "omdet-turbo"
    label = "OmDet-Turbo (open vocabulary)"
    needs_text = True
    default_threshold = 0.3
    default_checkpoint = DEFAULT_CHECKPOINT
    model_types = ("omdet-turbo",)

    def _load(self) -> LoadedModel:
        # The default config builds its Swin backbone through timm (a runtime dependency).
        from transformers import OmDetTurboForObjectDetection, OmDetTurboProcessor

        return self._from_checkpoint(OmDetTurboForObjectDetection, OmDetTurboProcessor)

    @torch.inference_mode()
    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        classes = split_prompt(text or "")
        model, processor = self.loaded.model, self.loaded.processor
        inputs = processor(images=image, text=classes, return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        outputs = model(**inputs)
        # Post-processing runs in float32: bfloat16 box corners lose whole pixels.
        outputs.decoder_coord_logits = outputs.decoder_coord_logits.float()
        outputs.decoder_class_logits = outputs.decoder_class_logits.float()
        result = processor.post_process_grounded_object_detection(
            outputs,
            text_labels=classes,
            threshold=threshold,
            nms_threshold=CLASS_NMS_IOU,
            target_sizes=[(image.height, image.width)],
            max_num_det=min(CANDIDATES, outputs.decoder_class_logits[0].numel()),
        )[0]
        detections = sv.Detections(
            xyxy=result["boxes"].cpu().numpy().astype(np.float32),
            confidence=result["scores"].cpu().numpy().astype(np.float32),
            class_id=result["labels"].cpu().numpy().astype(int),
        )
        detections.data[CLASS_NAME] = np.array(result["text_labels"], dtype=str).reshape(-1)
        return detections
