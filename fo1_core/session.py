"""One FO1 question end to end: prepare inputs, encode image and regions, stream greedy tokens.

`FO1Pipeline` owns the model, tokenizer and image preprocessor loaded from one checkpoint folder.
Generation is transformers' `generate()` (greedy, KV cache) run on the process's generation
thread (`model_thread.py`), so text can be streamed token by token and cancelled between tokens.
Image features, region embeddings and the prompt prefix's KV cache are kept (see `encoding.py`),
so follow-up questions about the same image and boxes skip the vision towers and most of the
prefill. `Conversation` chains such questions.
"""

from __future__ import annotations

import logging
import numbers
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

import numpy as np
import supervision as sv
import torch
from PIL import Image
from transformers import (
    AutoTokenizer,
    CompileConfig,
    GenerationConfig,
    LogitsProcessorList,
    StaticCache,
    StoppingCriteriaList,
)

from fo1_core import decode_attention, model_thread
from fo1_core.answers import parse_answer, to_detections
from fo1_core.checkpoint import load_model
from fo1_core.confidence import TokenProbabilities, box_scores, region_confidences
from fo1_core.encoding import Encoder, PromptPrefix, Reused
from fo1_core.errors import FO1Error
from fo1_core.graphed_forward import PREFILL_CHUNK, GraphedForward
from fo1_core.host_memory import limit_kernel_caches
from fo1_core.inputs import ImageSource
from fo1_core.modeling import FO1ForConditionalGeneration
from fo1_core.processing import ImagePreprocessor, VisionInputs, num_image_tokens
from fo1_core.prompting import (
    build_prompt,
    misspelt_references_note,
    sanitize_user_text,
    tokenize_prompt,
    unused_text_note,
    user_text_for_task,
)
from fo1_core.streaming import DONE, Cancelled, TokenQueue
from fo1_core.templates import (
    CHAT_CONTROL_STRINGS,
    DEFAULT_MAX_NEW_TOKENS,
    FREE_PROMPT,
    IM_END,
    MAX_TEXT_CHARS,
)

logger = logging.getLogger(__name__)

OUT_OF_MEMORY = (
    "The GPU ran out of memory for this question; the kept image features were dropped to free "
    "it. Try a smaller image, fewer boxes or fewer new tokens."
)

STATIC_CACHE_TOKENS = 8192
"""Slots of the fixed-size KV cache: a 1024 px image, 100 boxes, a long question and a long
answer fit. One size means one compiled decode step; longer requests decode with a growing cache.
About 300 MB at 3B in bf16."""

DECODE_MODES = ("dynamic", "static", "compiled", "graphed")
"""How tokens are decoded. `dynamic`: a growing KV cache, plain PyTorch (the default).
`static`: a fixed-size KV cache, uncompiled. `compiled`: the fixed-size cache and a
`torch.compile`d decode step (CUDA graphs on GPUs), so decoding is not bound by Python and kernel
launches; the first question pays the compilation (see `FO1Pipeline.warm_up`). `graphed`: the
fixed-size cache and an uncompiled decode step recorded as a CUDA graph on its first token
(`recorded_step.py`): no compilation, so a fresh worker decodes fast from its first question."""

WARM_UP_TOKENS = 8


@dataclass
class WarmUp:
    """What `FO1Pipeline.warm_up` did: its seconds, the decode mode kept, and why it fell back."""

    seconds: float
    decode: str
    error: str | None = None


@dataclass
class Request:
    """A prepared question: prompt text and ids (with -200/-300 placeholders) plus vision inputs."""

    user_text: str  # the question as the model reads it: the task's template filled
    prompt: str
    prompt_ids: list[int]
    vision: VisionInputs
    preprocess_s: float = 0.0
    text: str = ""  # what the user gave the template, as the model reads it (`removed` out)
    removed: list[str] = field(default_factory=list)  # control strings taken out of the text
    unused_text: str | None = None  # the note for text given to a task that takes none
    misspelt: str | None = None  # the note for region references the model reads as words
    left_out_turns: int = 0  # the earliest turns of a conversation the prompt had no room for
    kept_turns: int = 0  # the earlier turns the prompt holds
    room: int | None = None  # the model's positions left after the prompt: the most answer tokens

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) xyxy in image pixels: the boxes as the model reads them (cut to the image,
        `MAX_REGIONS` at most), which its answers name."""
        return self.vision.boxes.reshape(-1, 4)

    @property
    def num_regions(self) -> int:
        return self.vision.num_regions

    def detections(self, generation: Generation) -> sv.Detections:
        """The boxes `generation`'s answer to this request names (`answer_detections`)."""
        return answer_detections(generation, self.vision)

    @property
    def notices(self) -> list[str]:
        notices = list(self.vision.notices)
        if self.removed:
            removed = ", ".join(self.removed)
            notices.append(f"Removed {removed} from the question: the model's own.")
        notices += [note for note in (self.unused_text, self.misspelt) if note]
        if self.left_out_turns:
            one = self.left_out_turns == 1
            turns = "turn" if one else f"{self.left_out_turns} turns"
            notices.append(
                f"The model did not see the earliest {turns} of this conversation: "
                f"{'it' if one else 'they'} would have left the answer too little of the length "
                "the model reads. Start a new conversation to ask afresh."
            )
        return notices


def answer_detections(generation: Generation, vision: VisionInputs) -> sv.Detections:
    """The boxes of `vision` that `generation`'s answer names, with their labels and the model's
    confidence in each, for `fo1_core.render.draw_answer` and `fo1_core.export`; the regions it
    names without a box are in `parse_answer(generation.text, vision.num_regions).warnings`."""
    scores = box_scores(generation.region_confidence, vision.num_regions)
    answer = parse_answer(generation.text, vision.num_regions)
    return to_detections(answer, vision.boxes.reshape(-1, 4), scores=scores)


class StopReason(StrEnum):
    """Why an answer ended; the values are what JSON outputs write."""

    EOS = "eos"  # the model ended it
    TOKEN_LIMIT = "max_new_tokens"
    MODEL_LENGTH = "model_length"  # the prompt and answer filled the model's length
    CANCELLED = "cancelled"


@dataclass
class Generation:
    """The finished answer: decoded text (special tokens kept), ids, why it stopped, timings."""

    text: str
    token_ids: list[int]
    stop_reason: StopReason
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    reused: Reused = field(default_factory=Reused)
    region_confidence: dict[int, float] = field(default_factory=dict)
    """Each region the answer names: the probability the model gave it (`fo1_core.confidence`)."""

    @property
    def answer(self) -> str:
        """The text without the end-of-turn token, as it goes back into a conversation."""
        text = self.text
        while text.endswith(CHAT_CONTROL_STRINGS):
            text = next(text.removesuffix(c) for c in CHAT_CONTROL_STRINGS if text.endswith(c))
        return text.strip()


@dataclass
class _Progress:
    """What the generation thread reports besides tokens: when each stage began, what it reused."""

    submitted: float
    started: float | None = None
    encoded: float | None = None
    reused: Reused = field(default_factory=Reused)


class FO1Pipeline:
    def __init__(
        self,
        model: FO1ForConditionalGeneration,
        tokenizer,
        preprocessor: ImagePreprocessor,
        generation_config: GenerationConfig | None = None,
        decode: str = "dynamic",
        static_cache_tokens: int = STATIC_CACHE_TOKENS,
    ) -> None:
        if decode not in DECODE_MODES:
            raise FO1Error(
                f"Unknown decode mode {decode!r}; choose one of {', '.join(DECODE_MODES)}."
            )
        if decode == "graphed" and "sliding_attention" in model.config.text_config.layer_types:
            # A sliding-window cache layer counts its tokens on the host: a recording would
            # keep the count it was recorded with.
            raise FO1Error(
                "The graphed decoder needs full attention in every layer and this checkpoint "
                "uses sliding windows: choose static or compiled."
            )
        self.model = model
        self.decode = decode
        # generate() calls it where it would call a compiled model.
        model.graphed_forward = GraphedForward(model.__call__) if decode == "graphed" else None
        self.static_cache_tokens = static_cache_tokens
        # One fixed-size cache is kept and refilled for every question: a compiled decode step
        # (and its CUDA graphs) stays valid only while the cache tensors and shapes stay the same.
        self._static: StaticCache | None = None
        self._compile_config = CompileConfig()
        # transformers compiles on accelerators only unless told otherwise: `compiled` means
        # compiled wherever it runs, so the CPU tests exercise the same compiled path.
        self._compile_config._compile_all_devices = True
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        self.encoder = Encoder(model, preprocessor.merge_size)
        self.eos_token_ids = self._eos_ids(generation_config)
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.eos_token_ids[0]
        # The model keeps per-call state (M-RoPE offsets) and shares cached KV: one call at a time.
        self._model_lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        attn_implementation: str | None = None,
        decode: str = "dynamic",
        static_cache_tokens: int = STATIC_CACHE_TOKENS,
    ) -> FO1Pipeline:
        limit_kernel_caches()  # for every caller: the CLI, an evaluation, a Python program
        grouped_decode = attn_implementation is None and decode != "dynamic"
        if grouped_decode:
            # Flash-attention breaks the compiled decode step into pieces (transformers turns
            # fullgraph off for it) and needs the whole mask at every step of a fixed-size cache;
            # SDPA picks flash kernels itself where they apply.
            attn_implementation = "sdpa"
        model, folder = load_model(name_or_path, device, dtype, attn_implementation)
        if grouped_decode:  # the language model's steps over that cache: see decode_attention.py
            model.config.text_config._attn_implementation = decode_attention.NAME
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), config=model.config)
        except (OSError, ValueError) as error:
            raise FO1Error(
                f"The tokenizer files in {folder} are missing or unreadable: {error}"
            ) from error
        # Without tokenizer.json, vocab.json and merges.txt the added tokens alone still load,
        # and every word would then reach the model as nothing.
        if not tokenizer.encode("a cup", add_special_tokens=False):
            raise FO1Error(
                f"The tokenizer in {folder} has no vocabulary: tokenizer.json (or vocab.json "
                "and merges.txt) is missing."
            )
        try:
            generation_config = GenerationConfig.from_pretrained(str(folder))
        except OSError:
            generation_config = None
        preprocessor = ImagePreprocessor(folder, model.config.aux_aspect_ratio)
        return cls(model, tokenizer, preprocessor, generation_config, decode, static_cache_tokens)

    def warm_up(self) -> WarmUp:
        """Answers one short question so that the first user does not pay the compilation.

        A compiled decode that fails falls back to `dynamic`, a decode step that cannot be
        recorded to `static` (logged, and said in the result); the caches are emptied afterwards,
        between other threads' questions.
        """
        start = time.perf_counter()
        image = Image.new("RGB", (448, 448), (128, 128, 128))
        request = self.prepare(image, [[32, 32, 224, 224], [200, 160, 416, 400]], FREE_PROMPT, "Hi")
        error = None
        try:
            self.generate(request, WARM_UP_TOKENS)
        except Exception as failure:  # noqa: BLE001 (any compiler failure means: do not compile)
            if self.decode != "compiled":
                raise
            error = f"{type(failure).__name__}: {failure}"
            logger.warning("Compiled decoding failed, decoding uncompiled instead: %s", error)
            self.decode, self._static = "dynamic", None
            self.generate(request, WARM_UP_TOKENS)
        finally:
            with self._model_lock:  # another thread's question may be using the caches
                self._release_memory()
        graphed = self.model.graphed_forward
        if graphed is not None and graphed.failed is not None:
            error, self.decode, self.model.graphed_forward = graphed.failed, "static", None
        return WarmUp(time.perf_counter() - start, self.decode, error)

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
        self,
        image: ImageSource,
        boxes: object = None,
        task: str = FREE_PROMPT,
        text: str | None = "",
        history: Sequence[tuple[str, str]] = (),
    ) -> Request:
        """Validates and preprocesses one question (raises `FO1Error` on bad input). `text`
        None is no text, as for the tasks that take none.

        `history`: earlier (question, answer) turns about the same image and boxes.
        """
        start = time.perf_counter()
        vision = self.preprocessor(image, boxes)
        request = self.request(vision, task, text, history)
        request.preprocess_s = time.perf_counter() - start
        return request

    def request(
        self,
        vision: VisionInputs,
        task: str,
        text: str | None,
        history: Sequence[tuple[str, str]] = (),
    ) -> Request:
        """A question about already preprocessed vision inputs, after earlier turns `history`."""
        if not isinstance(text, str | None):
            raise FO1Error(f"The text must be a string; got {type(text).__name__} {text!r:.40}.")
        # Before cleaning, whose passes grow with the text's nesting (of "<ima<image>ge>").
        if text and len(text) > MAX_TEXT_CHARS:
            raise FO1Error(
                f"The text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}."
            )
        clean = sanitize_user_text(text or "", self.tokenizer)
        user_text = user_text_for_task(task, clean.text, vision.num_regions)
        history = list(history)
        if not all(
            isinstance(turn, tuple | list)
            and len(turn) == 2
            and all(isinstance(t, str) for t in turn)
            for turn in history
        ):
            raise FO1Error(
                "history must be earlier turns as (question, answer) pairs of strings, such as "
                "Conversation.history."
            )
        # A model can write a placeholder too; in an earlier answer it must stay text.
        history = [
            (
                sanitize_user_text(question, self.tokenizer).text,
                sanitize_user_text(answer, self.tokenizer).text,
            )
            for question, answer in history
        ]
        prompt, ids, left_out, room = self._fitted_prompt(user_text, vision, history)
        return Request(
            user_text, prompt, ids, vision, text=clean.text, removed=clean.removed,
            unused_text=unused_text_note(task, clean.text),
            misspelt=misspelt_references_note(clean.text), left_out_turns=left_out,
            kept_turns=len(history) - left_out, room=room,
        )  # fmt: skip

    def _fitted_prompt(
        self, user_text: str, vision: VisionInputs, history: list[tuple[str, str]]
    ) -> tuple[str, list[int], int, int]:
        """The prompt and its ids, with as many of the latest turns of `history` as fit the
        model's length (`tokenizer_model_max_length` where the checkpoint sets one, else its
        positions) with room for an answer of `DEFAULT_MAX_NEW_TOKENS` (or a quarter of that
        length), how many of the earliest were left out, and the room left for the answer. A
        question that leaves no room on its own is refused.

        How many to leave out is found by halving (fewer turns are never longer): trying one
        more at a time tokenized the whole conversation once per turn left out, 3 minutes per
        question after 800 turns."""
        config = self.model.config
        limit = config.tokenizer_model_max_length
        length_limit = min(n for n in (limit, config.text_config.max_position_embeddings) if n)
        # Every turn kept but the answer's room: an answer cut off after a few tokens is worth
        # less than the earliest turn of a conversation.
        budget = length_limit - min(DEFAULT_MAX_NEW_TOKENS, length_limit // 4)
        image_tokens = num_image_tokens(vision.image_grid_thw, self.preprocessor.merge_size)

        def fitted(left_out: int) -> tuple[str, list[int], int]:
            prompt = build_prompt(user_text, vision.num_regions, history[left_out:])
            ids = tokenize_prompt(prompt, self.tokenizer)
            return prompt, ids, len(ids) + image_tokens - 1

        tried: dict[int, tuple[str, list[int], int]] = {}
        fewest, most = 0, len(history)  # the turns to leave out lie between these
        while fewest < most:
            middle = (fewest + most) // 2
            tried[middle] = fitted(middle)
            if tried[middle][2] <= budget:
                most = middle
            else:
                fewest = middle + 1
        left_out = fewest
        prompt, ids, length = tried[left_out] if left_out in tried else fitted(left_out)
        if length >= length_limit:
            raise FO1Error(
                f"The prompt is too long for this model ({length_limit - 1} tokens at most, so "
                "that the answer has room)."
            )
        return prompt, ids, left_out, length_limit - length

    @property
    def device(self) -> torch.device:
        return self.model.device

    @staticmethod
    def idle() -> bool:
        """Whether the generation thread, which every pipeline of the process shares, has no job
        queued or running (a question, or an encoding ahead)."""
        return model_thread.idle()

    def encode_ahead(self, image: ImageSource, boxes: object) -> threading.Event:
        """Queues what every question about `image` and `boxes` starts with (the image's and the
        regions' features, and the prompt's KV up to its region line) into the caches, so that
        the next question about them only prefills its own words. Returns an event set once
        done. Bad input raises `FO1Error` here, as `prepare` does; a failure in the model is
        logged only: the question itself meets it again and reports it.
        """
        vision = self.preprocessor(image, boxes)
        head = self.request(vision, FREE_PROMPT, "?").prompt_ids

        def encode() -> None:
            try:
                with self._model_lock, torch.inference_mode():
                    self.encoder.prefix(head, vision)
            except Exception:
                logger.exception("Encoding an image and its boxes ahead of a question failed")

        return model_thread.submit(encode)

    def model_inputs(self, request: Request, use_cache: bool = False) -> dict:
        """Keyword arguments of `model.generate` / `model(...)` for the whole, uncached prompt."""
        with self._model_lock, torch.inference_mode():
            return self.encoder.full_inputs(request.prompt_ids, request.vision, use_cache)

    def stream(
        self,
        request: Request,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        cancel: threading.Event | None = None,
        use_cache: bool = True,
    ) -> Iterator[str | Generation]:
        """Yields text pieces as they are generated, then the finished `Generation`.

        Setting `cancel` stops generation after the current token; so does leaving the loop early.
        `use_cache=False` recomputes everything, as the official pipeline does.
        """
        max_new_tokens = checked_max_new_tokens(max_new_tokens)
        # Past the model's length an answer would be guesswork (`StopReason.MODEL_LENGTH`).
        max_new_tokens = min(max_new_tokens, request.room or max_new_tokens)
        cancel = cancel or threading.Event()
        streamer = TokenQueue(self.tokenizer)
        probabilities = TokenProbabilities()
        progress = _Progress(submitted=time.perf_counter())
        answer = partial(
            self._answer,
            request,
            streamer,
            probabilities,
            cancel,
            max_new_tokens,
            use_cache,
            progress,
        )
        job = model_thread.submit(partial(self._run, answer, streamer, progress))
        finished = False
        try:
            while (event := streamer.events.get()) is not DONE:
                if isinstance(event, BaseException):
                    raise event
                yield event
            finished = True
        finally:
            if not finished:  # the caller stopped reading: stop the worker too
                cancel.set()
            job.wait()
        yield self._finish(
            request, streamer, probabilities, cancel.is_set(), progress, max_new_tokens
        )

    def _run(self, answer: Callable[[], None], streamer: TokenQueue, progress: _Progress) -> None:
        """Runs `answer` (`_answer` with its arguments) on the generation thread; a question that
        runs out of GPU memory before its first token runs once more on emptied caches."""
        try:
            with self._model_lock, torch.inference_mode():
                progress.started = time.perf_counter()
                for retry in (False, True):
                    try:
                        answer()
                        break
                    except torch.OutOfMemoryError as error:
                        # What the caches keep may be what filled the GPU: drop it, and try
                        # again unless part of the answer is out (it cannot start over unseen).
                        self._release_memory()
                        if retry or streamer.ids:
                            raise FO1Error(OUT_OF_MEMORY) from error
                        logger.warning(
                            "Out of GPU memory; emptied the caches and retrying: %s", error
                        )
                        streamer.restart()
            streamer.events.put(DONE)
        except Exception as error:  # re-raised in the caller's thread
            streamer.events.put(error)

    def _answer(
        self,
        request: Request,
        streamer: TokenQueue,
        probabilities: TokenProbabilities,
        cancel: threading.Event,
        max_new_tokens: int,
        use_cache: bool,
        progress: _Progress,
    ) -> None:
        if cancel.is_set():  # stopped or superseded while it waited for the model thread
            return
        probabilities.reset()  # a run retried after running out of memory starts over
        prefix = None
        if use_cache:
            prefix, progress.reused = self.encoder.prefix(request.prompt_ids, request.vision)
            inputs = self._continue_from(prefix, request)
        else:
            inputs = self.encoder.full_inputs(request.prompt_ids, request.vision, False)
        length = inputs["input_ids"].shape[1] + max_new_tokens
        static = self.decode != "dynamic" and length <= self.static_cache_tokens
        if static:
            inputs["past_key_values"] = self._static_cache(prefix)
        elif prefix is not None:
            # generate() appends to the cache it is given; the kept prefix stays as it is, even
            # when a forward pass fails with some layers' keys appended and others' not.
            inputs["past_key_values"] = self.encoder.copy_kv(prefix.kv, prefix.length)
        progress.encoded = time.perf_counter()
        self.model.generate(
            **inputs,
            generation_config=self._generation_config(
                max_new_tokens, static, continued=prefix is not None
            ),
            streamer=streamer,
            logits_processor=LogitsProcessorList([probabilities]),
            stopping_criteria=StoppingCriteriaList([Cancelled(cancel)]),
        )
        if prefix is not None:
            self._keep_turn(request, inputs, streamer.ids, prefix)

    def _release_memory(self) -> None:
        """Empties the caches (features, regions, prompt KV) and hands their memory back."""
        self.encoder.clear()
        if self.model.device.type == "cuda":
            torch.cuda.empty_cache()

    def _keep_turn(
        self, request: Request, inputs: dict, answer_ids: list[int], prefix: PromptPrefix
    ) -> None:
        """Keeps this turn's KV for a follow-up that repeats it as history. The last answer token
        was never fed back, so the cache holds the prompt and all answer tokens but that one."""
        if not answer_ids:
            return
        fed = answer_ids[:-1]
        length = inputs["input_ids"].shape[1] + len(fed)
        kv = inputs["past_key_values"]
        ids = request.prompt_ids + fed
        try:
            self.encoder.keep_turn(ids, request.vision, kv, length, prefix.rope_deltas)
        except torch.OutOfMemoryError as error:  # the answer is out: only the shortcut is lost
            logger.warning("Out of GPU memory keeping the turn for a follow-up: %s", error)

    def _continue_from(self, prefix: PromptPrefix, request: Request) -> dict:
        ids = self.encoder.model_ids(request.prompt_ids, request.vision)
        # generate() derives the positions of uncached tokens from the model's stored offset.
        self.model.model.rope_deltas = prefix.rope_deltas
        return {
            "input_ids": ids.input_ids,
            "attention_mask": torch.ones_like(ids.input_ids),
            "mm_token_type_ids": ids.mm_token_type_ids,
            "image_grid_thw": request.vision.image_grid_thw.to(self.model.device),
        }

    def _static_cache(self, prefix: PromptPrefix | None) -> StaticCache:
        """The pipeline's one fixed-size cache, holding `prefix` (if any) and nothing else."""
        if self._static is None:
            self._static = StaticCache(
                config=self.model.config.text_config, max_cache_len=self.static_cache_tokens
            )
        self._static.reset()
        for index, layer in enumerate(prefix.kv.layers if prefix is not None else ()):
            self._static.update(layer.keys, layer.values, index)
        return self._static

    def _generation_config(
        self, max_new_tokens: int, static: bool, continued: bool
    ) -> GenerationConfig:
        """`continued`: the prompt continues a cached prefix, so only text is left to prefill."""
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
        )
        if static and self.decode in ("compiled", "graphed"):
            config.compile_config = self._compile_config
            if self.decode == "graphed" and continued:  # chunks reach the recorded forward
                config.prefill_chunk_size = PREFILL_CHUNK
        else:  # transformers would compile a static cache on GPUs by itself
            config.disable_compile = True
        return config

    def _finish(
        self,
        request: Request,
        streamer: TokenQueue,
        probabilities: TokenProbabilities,
        cancelled: bool,
        progress: _Progress,
        max_new_tokens: int,
    ) -> Generation:
        end = time.perf_counter()
        ids = streamer.ids
        if ids and ids[-1] in self.eos_token_ids:
            reason = StopReason.EOS
        elif len(ids) >= max_new_tokens:  # also when Stop came with the last token
            at_length = max_new_tokens == request.room
            reason = StopReason.MODEL_LENGTH if at_length else StopReason.TOKEN_LIMIT
        else:
            reason = StopReason.CANCELLED if cancelled else StopReason.EOS
        notices = list(request.notices)
        if reason == StopReason.MODEL_LENGTH:
            room = " or a new conversation" if request.kept_turns else ""
            notices.append(
                f"The answer was cut at {max_new_tokens} tokens: with the prompt, that is all "
                f"the model reads (a shorter question{room} leaves the answer more room)."
            )
        started = end if progress.started is None else progress.started
        first = streamer.first_token_at or end
        return Generation(
            text=self.tokenizer.decode(ids, skip_special_tokens=False).strip(),
            token_ids=ids,
            stop_reason=reason,
            timings={
                "preprocess_s": request.preprocess_s,
                "queued_s": started - progress.submitted,
                "encode_s": (end if progress.encoded is None else progress.encoded) - started,
                "first_token_s": first - started,
                "decode_tokens_per_s": (
                    (len(ids) - 1) / (streamer.last_token_at - first) if len(ids) > 1 else 0.0
                ),
                "total_s": end - progress.submitted + request.preprocess_s,
            },
            reused=progress.reused,
            notices=notices,
            region_confidence=region_confidences(
                self.tokenizer, ids, probabilities.probabilities()
            ),
        )

    def generate(
        self, request: Request, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, use_cache: bool = True
    ) -> Generation:
        *_, result = self.stream(request, max_new_tokens, use_cache=use_cache)
        return result

    def ask(
        self,
        image: ImageSource,
        boxes: object = None,
        task: str = FREE_PROMPT,
        text: str = "",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> Generation:
        """Convenience: prepare and generate in one call."""
        return self.generate(self.prepare(image, boxes, task, text), max_new_tokens)


class Conversation:
    """Several questions about one image and one box list, each seeing the earlier turns.

    The official model answers single questions; a conversation writes earlier turns into the
    prompt as ChatML history, so every turn reuses the cached image, regions and prefix.
    """

    def __init__(self, pipeline: FO1Pipeline, image: ImageSource, boxes: object = None):
        self.pipeline = pipeline
        self.vision = pipeline.preprocessor(image, boxes)
        self.history: list[tuple[str, str]] = []

    def stream(
        self,
        task: str,
        text: str = "",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        cancel: threading.Event | None = None,
    ) -> Iterator[str | Generation]:
        """Streams the next answer; the finished turn is added to the history, a stopped one not
        (the next question would otherwise see an answer cut off mid-word)."""
        request = self.pipeline.request(self.vision, task, text, self.history)
        for event in self.pipeline.stream(request, max_new_tokens, cancel):
            if isinstance(event, Generation) and event.stop_reason != StopReason.CANCELLED:
                self.history.append((request.user_text, event.answer))
            yield event

    def ask(
        self, task: str, text: str = "", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Generation:
        """The next answer, whole (`stream`); `text`: as `FO1Pipeline.prepare` takes it, none
        for a task that takes none."""
        *_, result = self.stream(task, text, max_new_tokens)
        return result

    def detections(self, generation: Generation) -> sv.Detections:
        """The boxes a turn's answer names (`answer_detections`): every turn has the same."""
        return answer_detections(generation, self.vision)


def checked_max_new_tokens(value: object) -> int:
    """`value` as an `int`; `FO1Error` unless it is a whole number of at least 1 (numpy's too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise FO1Error(f"max_new_tokens must be a whole number of at least 1; got {value!r}.")
    return int(value)


def load(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    decode: str = "dynamic",
    static_cache_tokens: int = STATIC_CACHE_TOKENS,
) -> FO1Pipeline:
    """Loads a VLM-FO1 checkpoint (hub id or local folder) ready to answer questions.

    `decode`: one of `DECODE_MODES`; `"compiled"` is the fast one on GPUs (call `warm_up()` once),
    `"graphed"` the fast one without a compiler (not yet measured on a GPU).
    `static_cache_tokens`: slots of the fixed-size cache of the `static`, `compiled` and
    `graphed` modes.
    """
    return FO1Pipeline.from_pretrained(
        name_or_path, device, dtype, attn_implementation, decode, static_cache_tokens
    )
