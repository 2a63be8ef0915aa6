"""VLM-FO1 as the delta over transformers' Qwen2.5-VL.

The decoder, ViT, generation loop, KV cache and attention backends are transformers' own; FO1 adds
an auxiliary DaViT tower (transformers' Florence-2 vision backbone), the region encoder and two
projectors, and splices one region embedding into each `<regionfeat>` slot of the prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import CompileConfig, Florence2VisionBackbone
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLModel,
    Qwen2_5_VLPreTrainedModel,
)
from transformers.vision_utils import get_vision_window_index

from fo1_core.configuration import FO1Config
from fo1_core.region_encoder import HybridRegionEncoder, build_projector
from fo1_core.templates import REGION_PLACEHOLDER_ID

REGIONS = "regions"
"""Key of the region embeddings in `mm_encoder_outputs`, beside transformers' `image`."""


@dataclass
class ImageEncoding:
    """One image's LLM embeddings and the ViT maps its regions are pooled from."""

    embeds: torch.Tensor  # (gh·gw/merge², hidden)
    vit_maps: list[torch.Tensor]  # the tapped blocks' (1, vision hidden, gh, gw), raster order


@contextmanager
def _record_outputs(modules: Sequence[nn.Module]) -> Iterator[list[torch.Tensor]]:
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for m in modules]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


class FO1Model(Qwen2_5_VLModel):
    config: FO1Config

    def __init__(self, config: FO1Config) -> None:
        super().__init__(config)
        text_hidden = config.text_config.hidden_size
        # The ViT-only variant's checkpoints still hold the DaViT tower, which it never runs.
        self.aux_visual = (
            Florence2VisionBackbone._from_config(config.aux_vision_config())
            if config.uses_aux_regions
            else None
        )
        self.region_encoder = HybridRegionEncoder(config)
        self.image_projector = build_projector(
            config.mm_projector_type,
            config.mm_hidden_size or config.vision_config.out_hidden_size,
            text_hidden,
        )
        self.region_projector = build_projector(
            config.mm_projector_aux_type, config.mm_region_hidden_size, text_hidden
        )
        self.post_init()

    def encode_image(
        self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor
    ) -> ImageEncoding:
        """Runs the ViT once: merged embeddings for the prompt, tapped maps for the regions."""
        tapped_blocks = [self.visual.blocks[i] for i in self.config.tapped_vit_blocks]
        with _record_outputs(tapped_blocks) as tapped:
            out = self.visual(pixel_values.to(self.visual.dtype), grid_thw=image_grid_thw)
        embeds = self.image_projector(out.pooler_output)
        maps = [self._raster_map(hidden, image_grid_thw) for hidden in tapped]
        return ImageEncoding(embeds=embeds, vit_maps=maps)

    def _raster_map(self, hidden: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """ViT hidden states in window order `(L, C)` → a `(1, C, gh, gw)` map in raster order."""
        vision = self.config.vision_config
        merge = vision.spatial_merge_size
        window_index, _ = get_vision_window_index(
            image_grid_thw, merge, vision.window_size, vision.patch_size
        )
        _, gh, gw = image_grid_thw[0].tolist()
        cells = hidden.reshape(-1, merge * merge, hidden.shape[-1])[torch.argsort(window_index)]
        # (gh/m · gw/m, m·m, C) → (gh/m, m, gw/m, m, C) → (gh, gw, C)
        grid = cells.reshape(gh // merge, gw // merge, merge, merge, -1).permute(0, 2, 1, 3, 4)
        return grid.reshape(gh, gw, -1).permute(2, 0, 1).unsqueeze(0)

    def encode_aux(self, aux_pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """DaViT stage outputs, finest first, each `(1, C_i, H_i, W_i)`, as the region encoder
        pools them (position maps added where the config says); none when the region features
        leave the DaViT part out (the tower is then not run)."""
        if self.aux_visual is None:
            return []
        stage_ends = [stage[-1] for stage in self.aux_visual.blocks]
        with _record_outputs(stage_ends) as maps:
            self.aux_visual(aux_pixel_values.to(self.aux_visual.dtype))
        return self.region_encoder.with_position_maps(maps)

    def region_pyramid(self, image: ImageEncoding) -> list[torch.Tensor]:
        """The ViT-side maps regions are pooled from: one image's, whatever its boxes."""
        return self.region_encoder.pyramid(image.vit_maps)

    def encode_regions(
        self,
        vt_maps: list[torch.Tensor],
        aux_maps: list[torch.Tensor],
        aux_boxes: torch.Tensor,
        vt_boxes: torch.Tensor,
    ) -> torch.Tensor:
        """Region embeddings `(N, hidden)`, one per box, in box order.

        `vt_maps` is `region_pyramid(image)`. Boxes are pooled independently, so any subset
        of boxes can be encoded on its own.
        """
        regions = self.region_encoder(aux_maps, vt_maps, aux_boxes, vt_boxes)
        return self.region_projector(regions.to(self.visual.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs,
    ):
        """Qwen2.5-VL's forward; `mm_encoder_outputs["regions"]` fill the -300 slots of the ids.

        Like the image features, region embeddings are passed at prefill only: generate() drops
        `mm_encoder_outputs` on decode steps.
        """
        regions = (mm_encoder_outputs or {}).get(REGIONS)
        # Decode steps carry no regions: testing the ids there would sync the GPU every token.
        if regions is not None and inputs_embeds is None:
            slots = input_ids == REGION_PLACEHOLDER_ID
            if regions.pooler_output.shape[0] != int(slots.sum()):
                raise ValueError("Each region slot of the prompt needs one region embedding")
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(slots, 0))
            region_embeds = regions.pooler_output.to(inputs_embeds.device, inputs_embeds.dtype)
            inputs_embeds = inputs_embeds.masked_scatter(slots[..., None], region_embeds)
        return super().forward(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )


class FO1ForConditionalGeneration(Qwen2_5_VLForConditionalGeneration):
    config_class = FO1Config

    graphed_forward: Callable[..., Any] | None = None
    """Called by generate() in place of a compiled model, when set (the `graphed` decoder's
    `fo1_core.graphed_forward.GraphedForward`): for each decode step on a fixed-size cache, and
    for each prefill chunk when generate() prefills in chunks."""

    def __init__(self, config: FO1Config) -> None:
        # Skip the parent's __init__: it would build a stock Qwen2_5_VLModel only to discard it.
        Qwen2_5_VLPreTrainedModel.__init__(self, config)
        self.model = FO1Model(config)
        self.lm_head = nn.Linear(
            config.text_config.hidden_size, config.text_config.vocab_size, bias=False
        )
        self.post_init()

    def get_compiled_call(self, compile_config: CompileConfig | None) -> Callable[..., Any]:
        if self.graphed_forward is not None:
            return self.graphed_forward
        return super().get_compiled_call(compile_config)
