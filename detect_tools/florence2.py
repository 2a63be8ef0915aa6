"""Florence-2 (transformers' native port): class-agnostic region proposals or labelled detections.

Florence-2 writes boxes as text: an optional phrase, then four ``<loc_k>`` tokens per box, each
a bin of 1000 along the image side. The processor's own parser drops the token probabilities, so
the generated ids are read here and each box is scored by the geometric mean of its four location
tokens' probabilities, which ranks boxes for the 100-region cap.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

import numpy as np
import supervision as sv
import torch
from PIL import Image

from detect_tools.base import CLASS_NAME, LoadedModel, ModelProposer, ProposalOptions

DEFAULT_CHECKPOINT = "florence-community/Florence-2-large"
LOCATION_BINS = 1000


class Florence2Proposer(ModelProposer):
    """Class-agnostic region proposals (``<REGION_PROPOSAL>``): the closest public stand-in for
    the proposal network FO1 was trained with."""

    name = "florence2"
    label = "Florence-2 region proposals"
    task = "<REGION_PROPOSAL>"
    default_checkpoint = DEFAULT_CHECKPOINT
    model_types = ("florence2",)

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        max_new_tokens: int = 1024,
    ) -> None:
        super().__init__(checkpoint, device, dtype)
        self.max_new_tokens = max_new_tokens

    def _load(self) -> LoadedModel:
        from transformers import Florence2ForConditionalGeneration, Florence2Processor

        return self._from_checkpoint(Florence2ForConditionalGeneration, Florence2Processor)

    @cached_property
    def _location_bin(self) -> dict[int, int]:
        """Token id → bin of each ``<loc_k>`` token."""
        tokenizer = self.loaded.processor.tokenizer
        location_ids = tokenizer.convert_tokens_to_ids([f"<loc_{k}>" for k in range(LOCATION_BINS)])
        return {token_id: k for k, token_id in enumerate(location_ids)}

    @cached_property
    def _special_ids(self) -> set[int]:
        return set(self.loaded.processor.tokenizer.all_special_ids)

    @torch.inference_mode()
    def _predict(
        self, image: Image.Image, text: str | None, threshold: float, options: ProposalOptions
    ) -> sv.Detections:
        model, processor = self.loaded.model, self.loaded.processor
        inputs = processor(text=self.task, images=image, return_tensors="pt")
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        # Greedy decoding: beams would change the per-token scores the boxes are ranked by.
        generated = model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            num_beams=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        log_probs = model.compute_transition_scores(
            generated.sequences, generated.scores, normalize_logits=True
        )[0]
        # sequences = [decoder start token, generated ids…] with one score per generated id.
        token_ids = generated.sequences[0, -log_probs.shape[0] :].tolist()
        return self._parse(token_ids, log_probs.float().cpu().tolist(), image.size)

    def _parse(
        self, token_ids: list[int], log_probs: list[float], image_size: tuple[int, int]
    ) -> sv.Detections:
        """Boxes from ``phrase<loc><loc><loc><loc>…`` ids; a truncated or odd tail is ignored."""
        tokenizer = self.loaded.processor.tokenizer
        bins, scores, labels = [], [], []
        phrase_ids: list[int] = []
        pending: list[tuple[int, float]] = []
        label = ""
        for token_id, log_prob in zip(token_ids, log_probs, strict=True):
            location = self._location_bin.get(token_id)
            if location is None:
                pending = []  # a box is four consecutive location tokens
                if token_id not in self._special_ids:
                    phrase_ids.append(token_id)
                continue
            if phrase_ids:
                # Several boxes may follow one phrase ("car<4 locs><4 locs>"): keep the label.
                label = tokenizer.decode(phrase_ids).strip()
                phrase_ids = []
            pending.append((location, log_prob))
            if len(pending) == 4:
                bins.append([k for k, _ in pending])
                scores.append(math.exp(sum(lp for _, lp in pending) / 4))
                labels.append(label)
                pending = []
        if not bins:
            return sv.Detections.empty()
        # Each bin's centre, as the post-processor's `dequantize` computes it but in fractions:
        # it ends in `.int()`, which moved every box up to a pixel up and left, a box reaching
        # the right edge stopped a pixel short, and a one-pixel object lost its width.
        bins_w, bins_h = self.loaded.processor.post_processor.quantize_bins
        width, height = image_size
        xyxy = (np.array(bins, dtype=np.float32) + 0.5) * np.array(
            [width / bins_w, height / bins_h] * 2, dtype=np.float32
        )
        detections = sv.Detections(xyxy=xyxy, confidence=np.array(scores, dtype=np.float32))
        if any(labels):
            detections.data[CLASS_NAME] = np.array(labels)
        return detections


class Florence2DetectionProposer(Florence2Proposer):
    """Labelled object detection (``<OD>``): fewer, named boxes of common categories."""

    name = "florence2-od"
    label = "Florence-2 object detection"
    task = "<OD>"
