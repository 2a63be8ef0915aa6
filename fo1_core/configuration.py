"""FO1's configuration: Qwen2.5-VL's config plus the region-encoder fields of the checkpoint.

Field names are those of the published `config.json` (SPEC §2); defaults are what the official
implementation assumes when a field is absent. Two fields exist only in test fixtures
(`mm_vision_tower_aux_config`, `mm_simplefp_out_channels`); the published checkpoint relies on
DaViT-Large and on the width left over after the DaViT part of `mm_region_hidden_size`.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import Florence2VisionConfig, Qwen2_5_VLConfig

from fo1_core.errors import FO1Error

DAVIT_LARGE = {
    "depths": [1, 1, 9, 1],
    "dim_embed": [256, 512, 1024, 2048],
    "num_heads": [8, 16, 32, 64],
    "num_groups": [8, 16, 32, 64],
    "patch_size": [7, 3, 3, 3],
    "patch_stride": [4, 2, 2, 2],
    "patch_padding": [3, 1, 1, 1],
    "patch_prenorm": [False, True, True, True],
    "window_size": 12,
}
"""The auxiliary tower of the published model (Florence-2-large's image encoder)."""

AUX_IMAGE_SIZE = 768
"""The DaViT input is always 768×768 (the checkpoint's `aux_image_size` is not read upstream)."""

SIMPLEFP_SCALES = (4.0, 2.0, 1.0, 0.5)
"""SimpleFP upsampling factors relative to the ViT patch grid, finest first."""


@strict
class FO1Config(Qwen2_5_VLConfig):
    model_type = "omchat_qwen2_5_vl"

    mm_vision_tower: str | None = None
    mm_vision_tower_aux: str | None = None
    mm_vision_tower_aux_config: dict | None = None
    mm_projector_type: str = "linear"
    mm_hidden_size: int | None = None
    mm_projector_aux_type: str = "linear"
    mm_region_hidden_size: int | None = None
    mm_simplefp_out_channels: int | None = None
    mm_roi_output_size: int = 7
    mm_apply_position_embedding: bool = True
    mm_pos_embedding_strategy: str = "bbox_based"
    mm_use_vision_tower_region_feature: bool = False
    mm_use_simpleFPN_for_vt: bool = False
    mm_region_feature_combination: str = "concat"
    mm_apply_region_layer_norm: bool = False
    mm_use_vt_region_feature_only: bool = False
    mm_use_region_index_token: bool = False
    aux_image_size: int = AUX_IMAGE_SIZE
    aux_image_aspect_ratio: str | None = None
    delay_load: bool = True
    tokenizer_model_max_length: int | None = None
    tokenizer_padding_side: str = "right"

    def aux_vision_config(self) -> Florence2VisionConfig:
        """The DaViT architecture: the checkpoint's own description, else DaViT-Large."""
        davit = dict(self.mm_vision_tower_aux_config or DAVIT_LARGE)
        return Florence2VisionConfig(
            depths=davit["depths"],
            embed_dim=davit["dim_embed"],
            num_heads=davit["num_heads"],
            num_groups=davit["num_groups"],
            patch_size=davit["patch_size"],
            patch_stride=davit["patch_stride"],
            patch_padding=davit["patch_padding"],
            patch_prenorm=davit["patch_prenorm"],
            window_size=davit["window_size"],
            drop_path_rate=0.0,
        )

    @property
    def aux_region_width(self) -> int:
        return sum(self.aux_vision_config().embed_dim)

    @property
    def simplefp_out_channels(self) -> int:
        """Width of each SimpleFP level: given, or what `mm_region_hidden_size` leaves for it."""
        if self.mm_simplefp_out_channels is not None:
            return self.mm_simplefp_out_channels
        return (self.mm_region_hidden_size - self.aux_region_width) // len(SIMPLEFP_SCALES)

    def check_supported(self) -> None:
        """Refuse, by name, configuration choices this implementation does not build."""
        expected = {
            "mm_use_region_index_token": True,
            "mm_use_vision_tower_region_feature": True,
            "mm_use_simpleFPN_for_vt": True,
            "mm_use_vt_region_feature_only": False,
            "mm_pos_embedding_strategy": "bbox_based",
        }
        wrong = {k: getattr(self, k) for k, v in expected.items() if getattr(self, k) != v}
        if self.mm_region_feature_combination not in ("concat", "concat_aux_pos"):
            wrong["mm_region_feature_combination"] = self.mm_region_feature_combination
        if self.mm_vision_tower_aux is None or self.mm_region_hidden_size is None:
            wrong["mm_vision_tower_aux / mm_region_hidden_size"] = "missing"
        if self.aux_image_aspect_ratio not in (None, "squash"):
            wrong["aux_image_aspect_ratio"] = self.aux_image_aspect_ratio
        if wrong:
            details = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
            raise FO1Error(
                f"This checkpoint uses an FO1 variant this app does not support ({details}); "
                "it supports the hybrid region encoder of the published VLM-FO1 models."
            )
        width = self.aux_region_width + len(SIMPLEFP_SCALES) * self.simplefp_out_channels
        if width != self.mm_region_hidden_size:
            raise FO1Error(
                f"Inconsistent checkpoint config: DaViT widths + 4 × SimpleFP width = {width}, "
                f"but mm_region_hidden_size = {self.mm_region_hidden_size}."
            )
