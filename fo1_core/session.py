"""One FO1 question end to end: prepare inputs, encode image and regions, stream greedy tokens.

`FO1Pipeline` owns the model, tokenizer and image preprocessor loaded from one checkpoint folder.
Generation is transformers' `generate()` (greedy, KV cache) run in a worker thread, so text can be
streamed token by token and cancelled between tokens.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoTokenizer, GenerationConfig, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from fo1_core.checkpoint import load_model
from fo1_core.errors import FO1Error
from fo1_core.modeling import REGIONS, FO1ForConditionalGeneration
from fo1_core.processing import ImagePreprocessor, VisionInputs, num_image_tokens
from fo1_core.prompting import (
    build_prompt,
    expand_image_placeholder,
    sanitize_user_text,
    tokenize_prompt,
    user_text_for_task,
)
from fo1_core.templates import DEFAULT_MAX_NEW_TOKENS, IM_END


@dataclass
class Request:
    """A prepared question: prompt text and ids (with -200/-300 placeholders) plus vision inputs."""

    user_text: str
    prompt: str
    prompt_ids: list[int]
    vision: VisionInputs
    preprocess_s: float = 0.0

    @property
    def notices(self) -> list[str]:
        return self.vision.notices


@dataclass
class Generation:
    """The finished answer: decoded text (special tokens kept), ids, why it stopped, timings."""

    text: str
    token_ids: list[int]
    stop_reason: str  # "eos", "max_new_tokens" or "cancelled"
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


class _TokenQueue(BaseStreamer):
    """Receives generated ids from `generate()` and hands out the new text after each token."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.events: queue.Queue = queue.Queue()
        self.ids: list[int] = []
        self._sent = 0
        self._prompt_seen = False
        self.first_token_at: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first pushes the prompt itself
            self._prompt_seen = True
            return
        self.first_token_at = self.first_token_at or time.perf_counter()
        self.ids += value.flatten().tolist()
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        # Hold back a split multi-byte character until its remaining bytes arrive.
        if not text.endswith("\ufffd") and len(text) > self._sent:
            self.events.put(text[self._sent :])
            self._sent = len(text)

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        if len(text) > self._sent:
            self.events.put(text[self._sent :])
            self._sent = len(text)


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), device=input_ids.device)


_DONE = object()


class FO1Pipeline:
    def __init__(
        self,
        model: FO1ForConditionalGeneration,
        tokenizer,
        preprocessor: ImagePreprocessor,
        generation_config: GenerationConfig | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        self.eos_token_ids = self._eos_ids(generation_config)
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.eos_token_ids[0]

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        attn_implementation: str | None = None,
    ) -> FO1Pipeline:
        model, folder = load_model(name_or_path, device, dtype, attn_implementation)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), config=model.config)
        try:
            generation_config = GenerationConfig.from_pretrained(str(folder))
        except OSError:
            generation_config = None
        return cls(model, tokenizer, ImagePreprocessor(folder), generation_config)

    def _eos_ids(self, generation_config: GenerationConfig | None) -> list[int]:
        eos = generation_config.eos_token_id if generation_config is not None else None
        if eos is None:
            eos = self.model.config.text_config.eos_token_id
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        im_end = self.tokenizer.convert_tokens_to_ids(IM_END)
        if isinstance(im_end, int) and im_end not in ids and im_end != self.tokenizer.unk_token_id:
            ids.append(im_end)
        return ids

    def prepare(
        self, image: Image.Image | str | Path, boxes: object = None, task: str = "", text: str = ""
    ) -> Request:
        """Validates and preprocesses one question (raises `FO1Error` on bad input)."""
        start = time.perf_counter()
        vision = self.preprocessor(image, boxes)
        clean = sanitize_user_text(text, self.tokenizer)
        user_text = user_text_for_task(task, clean, vision.num_regions)
        prompt = build_prompt(user_text, vision.num_regions)
        ids = tokenize_prompt(prompt, self.tokenizer)
        limit = self.model.config.tokenizer_model_max_length
        if limit is not None and len(ids) + self._num_image_tokens(vision) - 1 > limit:
            raise FO1Error(f"The prompt is too long for this model ({limit} tokens at most).")
        return Request(user_text, prompt, ids, vision, time.perf_counter() - start)

    def _num_image_tokens(self, vision: VisionInputs) -> int:
        return num_image_tokens(vision.image_grid_thw, self.preprocessor.merge_size)

    @torch.inference_mode()
    def model_inputs(self, request: Request) -> dict:
        """Encodes the image and regions and returns the keyword arguments of `model.generate`."""
        model, vision, device = self.model.model, request.vision, self.model.device
        grid = vision.image_grid_thw.to(device)
        image = model.encode_image(vision.pixel_values.to(device), grid)
        encoded = {"image": BaseModelOutputWithPooling(pooler_output=(image.embeds,))}
        if vision.num_regions:
            encoded[REGIONS] = BaseModelOutputWithPooling(
                pooler_output=model.encode_regions(
                    image.vit_map,
                    vision.aux_pixel_values.to(device),
                    vision.aux_boxes.to(device),
                    vision.vt_boxes.to(device),
                )
            )
        ids = expand_image_placeholder(
            request.prompt_ids, self._num_image_tokens(vision), self.model.config.image_token_id
        )
        return {
            "input_ids": ids.input_ids.to(device),
            "attention_mask": torch.ones_like(ids.input_ids, device=device),
            "mm_token_type_ids": ids.mm_token_type_ids.to(device),
            "image_grid_thw": grid,
            "mm_encoder_outputs": encoded,
        }

    def stream(
        self,
        request: Request,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        cancel: threading.Event | None = None,
    ) -> Iterator[str | Generation]:
        """Yields text pieces as they are generated, then the finished `Generation`.

        Setting `cancel` stops generation after the current token.
        """
        cancel = cancel or threading.Event()
        start = time.perf_counter()
        inputs = self.model_inputs(request)
        encoded = time.perf_counter()
        streamer = _TokenQueue(self.tokenizer)
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
        )

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        generation_config=config,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
                    )
                streamer.events.put(_DONE)
            except Exception as error:  # re-raised in the caller's thread
                streamer.events.put(error)

        worker = threading.Thread(target=work, name="fo1-generate", daemon=True)
        worker.start()
        while (event := streamer.events.get()) is not _DONE:
            if isinstance(event, Exception):
                raise event
            yield event
        worker.join()
        yield self._finish(request, streamer, cancel.is_set(), start, encoded, max_new_tokens)

    def _finish(
        self,
        request: Request,
        streamer: _TokenQueue,
        cancelled: bool,
        start: float,
        encoded: float,
        max_new_tokens: int,
    ) -> Generation:
        end = time.perf_counter()
        ids = streamer.ids
        if ids and ids[-1] in self.eos_token_ids:
            reason = "eos"
        elif cancelled:
            reason = "cancelled"
        else:
            reason = "max_new_tokens" if len(ids) >= max_new_tokens else "eos"
        first = streamer.first_token_at or end
        decode_s = end - first
        return Generation(
            text=self.tokenizer.decode(ids, skip_special_tokens=False).strip(),
            token_ids=ids,
            stop_reason=reason,
            timings={
                "preprocess_s": request.preprocess_s,
                "encode_s": encoded - start,
                "first_token_s": first - start,
                "decode_tokens_per_s": (len(ids) - 1) / decode_s if len(ids) > 1 else 0.0,
                "total_s": end - start + request.preprocess_s,
            },
            notices=list(request.notices),
        )

    def generate(
        self, request: Request, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Generation:
        *_, result = self.stream(request, max_new_tokens)
        return result

    def ask(
        self,
        image: Image.Image | str | Path,
        boxes: object = None,
        task: str = "",
        text: str = "",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> Generation:
        """Convenience: prepare and generate in one call."""
        return self.generate(self.prepare(image, boxes, task, text), max_new_tokens)


def load(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> FO1Pipeline:
    """Loads a VLM-FO1 checkpoint (hub id or local folder) ready to answer questions."""
    return FO1Pipeline.from_pretrained(name_or_path, device, dtype, attn_implementation)
