"""Everything computed before the first answer token, and kept for the next question.

For one preprocessed image the ViT's embeddings and tapped maps are computed once, and the DaViT
stages and the SimpleFP pyramid once when a box first needs them; each box's region embedding
once per (image, box); and the KV cache of the prompt up to the end of the region
line once per (image, boxes, prefix ids). A follow-up question about the same image and boxes
then only prefills its own words. After a box is drawn, moved or deleted, the KV of the prompt up
to the image's end still holds, so only the region line and the question are prefilled. The KV
cache of each finished turn (prompt and answer) is kept too, so the next turn of a conversation
prefills only its new question, however long the conversation has grown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPooling

from fo1_core.cache import LRUCache
from fo1_core.modeling import REGIONS, FO1ForConditionalGeneration, ImageEncoding
from fo1_core.processing import VisionInputs, num_image_tokens
from fo1_core.prompting import image_prefix_length, prefix_length
from fo1_core.templates import IMAGE_PLACEHOLDER_ID

GIB = 1 << 30
IMAGE_CACHE = (16, GIB)
"""(entries, bytes) kept of ViT features: about 20 MB per 1024 px image at 3B in bf16."""
AUX_MAP_CACHE = (16, GIB)
"""(entries, bytes) kept of DaViT stages: about 35 MB per image at 3B in bf16 for the 768² input
(more where the checkpoint sizes the DaViT input from the image)."""
PYRAMID_CACHE = (8, GIB)
"""(entries, bytes) kept of the ViT-side maps boxes are pooled from: SimpleFP pyramids, about 90 MB
per 1024 px image at 3B in bf16 (without a SimpleFP, the ViT maps themselves)."""
REGION_CACHE = (4096, GIB // 4)
PREFIX_CACHE = (16, GIB)
IMAGE_PREFIX_CACHE = (8, GIB // 2)
"""(entries, bytes) kept of KV caches up to the image's end: about 40 MB per 1024 px image at 3B."""
TURN_CACHE = (8, GIB)


@dataclass
class ModelIds:
    """Prompt ids as the model consumes them: the image placeholder expanded to one
    `image_token_id` per image embedding, region slots kept as -300."""

    input_ids: torch.Tensor  # (1, L)
    mm_token_type_ids: torch.Tensor  # (1, L): 1 on image tokens, 0 elsewhere (regions are text)


def expand_image_placeholder(
    ids: list[int], num_image_tokens: int, image_token_id: int
) -> ModelIds:
    if ids.count(IMAGE_PLACEHOLDER_ID) != 1:
        raise ValueError("The prompt must hold exactly one image placeholder")
    at = ids.index(IMAGE_PLACEHOLDER_ID)
    expanded = ids[:at] + [image_token_id] * num_image_tokens + ids[at + 1 :]
    types = [0] * at + [1] * num_image_tokens + [0] * (len(ids) - at - 1)
    return ModelIds(torch.tensor([expanded]), torch.tensor([types], dtype=torch.int32))


@dataclass
class PromptPrefix:
    kv: DynamicCache  # KV of the prefix; never appended to: questions continue a copy
    length: int  # prefix length in model positions (image slot expanded)
    rope_deltas: torch.Tensor  # M-RoPE offset of text after the image


@dataclass
class Reused:
    """What one question found already computed. A reused prefix holds the image and every box;
    `tokens` counts the prompt positions whose KV was found: the prefix's (an earlier turn's
    covers that turn too), or without one the image's part, kept from other boxes."""

    image: bool = False
    regions: int = 0
    prefix: bool = False
    tokens: int = 0


class Encoder:
    """Runs the towers, the region encoder and prefix prefill, reusing earlier results.

    Not thread-safe on its own: the pipeline serialises model work.
    """

    def __init__(self, model: FO1ForConditionalGeneration, merge_size: int) -> None:
        self.model = model
        self.merge_size = merge_size
        self.images: LRUCache[ImageEncoding] = LRUCache(*IMAGE_CACHE)
        self.aux_maps: LRUCache[list[torch.Tensor]] = LRUCache(*AUX_MAP_CACHE)
        self.pyramids: LRUCache[list[torch.Tensor]] = LRUCache(*PYRAMID_CACHE)
        self.regions: LRUCache[torch.Tensor] = LRUCache(*REGION_CACHE)
        self.prefixes: LRUCache[PromptPrefix] = LRUCache(*PREFIX_CACHE)
        self.image_prefixes: LRUCache[PromptPrefix] = LRUCache(*IMAGE_PREFIX_CACHE)
        self.turns: LRUCache[PromptPrefix] = LRUCache(*TURN_CACHE)

    def clear(self) -> None:
        for cache in (
            self.images,
            self.aux_maps,
            self.pyramids,
            self.regions,
            self.prefixes,
            self.image_prefixes,
            self.turns,
        ):
            cache.clear()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def image_features(self, vision: VisionInputs, use_cache: bool = True) -> ImageEncoding:
        if not use_cache:
            return self._encode_image(vision)
        return self.images.get_or_create(vision.image_key, lambda: self._encode_image(vision))

    def _encode_image(self, vision: VisionInputs) -> ImageEncoding:
        return self.model.model.encode_image(
            vision.pixel_values.to(self.device), vision.image_grid_thw.to(self.device)
        )

    def _aux_maps(self, vision: VisionInputs, use_cache: bool) -> list[torch.Tensor]:
        """The DaViT stages, run only once a box needs them (as upstream, which skips DaViT for a
        question without boxes)."""

        def encode() -> list[torch.Tensor]:
            return self.model.model.encode_aux(vision.aux_pixel_values.to(self.device))

        return self.aux_maps.get_or_create(vision.image_key, encode) if use_cache else encode()

    def region_embeds(
        self, vision: VisionInputs, features: ImageEncoding, use_cache: bool = True
    ) -> torch.Tensor | None:
        """`(N, hidden)` region embeddings; with the cache, only boxes not seen before are run."""
        if not vision.num_regions:
            return None
        aux, vt = vision.aux_boxes.to(self.device), vision.vt_boxes.to(self.device)
        keys = self._region_keys(vision)
        found = [self.regions.get(key) if use_cache else None for key in keys]
        missing = [i for i, embed in enumerate(found) if embed is None]
        if missing:
            new = self.model.model.encode_regions(
                self._region_pyramid(vision, features, use_cache),
                self._aux_maps(vision, use_cache),
                aux[missing],
                vt[missing],
            )
            for i, embed in zip(missing, new, strict=True):
                found[i] = embed.clone()
                if use_cache:
                    self.regions.put(keys[i], found[i])
        return torch.stack(found)

    def _region_pyramid(
        self, vision: VisionInputs, features: ImageEncoding, use_cache: bool
    ) -> list[torch.Tensor]:
        pyramid = self.model.model.region_pyramid
        if not use_cache:
            return pyramid(features)
        return self.pyramids.get_or_create(vision.image_key, lambda: pyramid(features))

    @staticmethod
    def _region_keys(vision: VisionInputs) -> list[tuple]:
        pairs = zip(vision.aux_boxes.tolist(), vision.vt_boxes.tolist(), strict=True)
        return [(vision.image_key, *aux, *vt) for aux, vt in pairs]

    def model_ids(self, prompt_ids: list[int], vision: VisionInputs) -> ModelIds:
        count = num_image_tokens(vision.image_grid_thw, self.merge_size)
        ids = expand_image_placeholder(prompt_ids, count, self.model.config.image_token_id)
        return ModelIds(ids.input_ids.to(self.device), ids.mm_token_type_ids.to(self.device))

    def full_inputs(self, prompt_ids: list[int], vision: VisionInputs, use_cache: bool) -> dict:
        """Keyword arguments of `model.generate`/`model(...)` for the whole prompt."""
        features = self.image_features(vision, use_cache)
        encoded = {"image": BaseModelOutputWithPooling(pooler_output=(features.embeds,))}
        regions = self.region_embeds(vision, features, use_cache)
        if regions is not None:
            encoded[REGIONS] = BaseModelOutputWithPooling(pooler_output=regions)
        ids = self.model_ids(prompt_ids, vision)
        return {
            "input_ids": ids.input_ids,
            "attention_mask": torch.ones_like(ids.input_ids),
            "mm_token_type_ids": ids.mm_token_type_ids,
            "image_grid_thw": vision.image_grid_thw.to(self.device),
            "mm_encoder_outputs": encoded,
        }

    def prefix(self, prompt_ids: list[int], vision: VisionInputs) -> tuple[PromptPrefix, Reused]:
        """The KV cache of the longest start of the prompt already computed (an earlier turn of
        this conversation, else the part up to the last image/region slot, computed once), and
        what of the prompt was found already computed."""
        closest = self._closest_turn(prompt_ids, vision)
        if closest and (turn := self.turns.get(closest[0])) is not None:
            key, shared = closest
            if shared < len(key[2]):
                # The answer came back as history tokenised otherwise; a causal cache still
                # holds for every start of its ids. Not kept itself: the turn's own entry holds
                # it, and this turn's entry will once answered.
                length = turn.length - (len(key[2]) - shared)
                turn = PromptPrefix(self.copy_kv(turn.kv, length), length, turn.rope_deltas)
            return turn, Reused(True, vision.num_regions, prefix=True, tokens=turn.length)
        head = prompt_ids[: prefix_length(prompt_ids)]
        key = self._key(head, vision)
        if (kept := self.prefixes.get(key)) is not None:
            return kept, Reused(True, vision.num_regions, prefix=True, tokens=kept.length)
        regions = sum(region in self.regions for region in self._region_keys(vision))
        reused = Reused(image=vision.image_key in self.images, regions=regions)
        prefix, reused.tokens = self._prefill(head, vision)
        self.prefixes.put(key, prefix)
        return prefix, reused

    def keep_turn(
        self,
        ids: list[int],
        vision: VisionInputs,
        kv: Cache,
        length: int,
        rope_deltas: torch.Tensor,
    ) -> PromptPrefix:
        """Keeps a copy of the first `length` positions of `kv`, which hold `ids` (a prompt and
        the answer fed back so far), for the next turn of the conversation."""
        turn = PromptPrefix(self.copy_kv(kv, length), length, rope_deltas)
        self.turns.put(self._key(ids, vision), turn)
        return turn

    def copy_kv(self, kv: Cache, length: int) -> DynamicCache:
        """A cache of its own holding the first `length` positions of `kv` (`update` on an
        empty layer concatenates onto it: the tensors come out copied, at their exact size)."""
        copy = DynamicCache(config=self.model.config.text_config)
        for index, layer in enumerate(kv.layers):
            copy.update(layer.keys[:, :, :length], layer.values[:, :, :length], index)
        return copy

    def _closest_turn(
        self, prompt_ids: list[int], vision: VisionInputs
    ) -> tuple[tuple, int] | None:
        """The kept turn sharing the longest start with `prompt_ids` past the region line, and
        how many ids it shares (leaving one at least to prefill)."""
        scope, region_line = self._key([], vision)[:2], prefix_length(prompt_ids)
        closest = None
        for key in self.turns.keys():
            shared = _shared_start(key[2], prompt_ids[:-1]) if key[:2] == scope else 0
            if shared > max(region_line, closest[1] if closest else 0):
                closest = (key, shared)
        return closest

    @staticmethod
    def _key(ids: list[int], vision: VisionInputs) -> tuple:
        return (vision.image_key, tuple(vision.aux_boxes.flatten().tolist()), tuple(ids))

    def _prefill(self, head: list[int], vision: VisionInputs) -> tuple[PromptPrefix, int]:
        """The KV cache of `head`, and how many of its positions came from the kept KV of the
        image part (the same image asked about with other boxes before)."""
        image_head = head[: image_prefix_length(head)]
        image_key = (vision.image_key, tuple(image_head))  # whatever the boxes
        start = self.image_prefixes.get(image_key) if len(image_head) < len(head) else None
        if start is None:
            prefix = self._prefill_from_start(head, vision)
            image_length = self.model_ids(image_head, vision).input_ids.shape[1]
            kept = PromptPrefix(
                self.copy_kv(prefix.kv, image_length), image_length, prefix.rope_deltas
            )
            self.image_prefixes.put(image_key, kept)
            return prefix, 0
        ids = self.model_ids(head, vision).input_ids[:, start.length :]
        kv = self.copy_kv(start.kv, start.length)
        regions = self.region_embeds(vision, self.image_features(vision))
        encoded = {REGIONS: BaseModelOutputWithPooling(pooler_output=regions)}
        # Positions after the image follow from its M-RoPE offset, as in generate()'s decoding.
        self.model.model.rope_deltas = start.rope_deltas
        self.model.model(
            input_ids=ids, mm_encoder_outputs=encoded, past_key_values=kv, use_cache=True
        )
        return PromptPrefix(kv, kv.get_seq_length(), start.rope_deltas), start.length

    def _prefill_from_start(self, head: list[int], vision: VisionInputs) -> PromptPrefix:
        inputs = self.full_inputs(head, vision, use_cache=True)
        kv = DynamicCache(config=self.model.config.text_config)
        self.model.model(**inputs, past_key_values=kv, use_cache=True)
        deltas = self.model.model.rope_deltas.clone()
        return PromptPrefix(kv=kv, length=inputs["input_ids"].shape[1], rope_deltas=deltas)


def _shared_start(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids `a` and `b` have in common."""
    pairs = zip(a, b, strict=False)
    return next((i for i, (x, y) in enumerate(pairs) if x != y), min(len(a), len(b)))
