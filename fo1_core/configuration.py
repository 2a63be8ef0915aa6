"""FO1's configuration: Qwen2.5-VL's config plus the region-encoder fields of the checkpoint.

Field names are those of the published `config.json` (SPEC §2); defaults are what the official
implementation assumes when a field is absent. Two fields exist only in test fixtures
(`mm_vision_tower_aux_config`, `mm_simplefp_out_channels`); the published checkpoint names its
DaViT (`davit-large.pth`) and relies on the width left over after the DaViT part of
`mm_region_hidden_size`.
"""

from __future__ import annotations

from pathlib import PurePath

from huggingface_hub.dataclasses import strict
from transformers import Florence2VisionConfig, Qwen2_5_VLConfig

from fo1_core.errors import FO1Error

_DAVIT_PATCHES = {
    "depths": [1, 1, 9, 1],
    "patch_size": [7, 3, 3, 3],
    "patch_stride": [4, 2, 2, 2],
    "patch_padding": [3, 1, 1, 1],
    "patch_prenorm": [False, True, True, True],
    "window_size": 12,
}
DAVIT_LARGE = {
    **_DAVIT_PATCHES,
    "dim_embed": [256, 512, 1024, 2048],
    "num_heads": [8, 16, 32, 64],
    "num_groups": [8, 16, 32, 64],
}
"""The auxiliary tower of the published model (Florence-2-large's image encoder)."""
DAVITS = {
    "davit-large": DAVIT_LARGE,
    "davit-base": {
        **_DAVIT_PATCHES,
        "dim_embed": [128, 256, 512, 1024],
        "num_heads": [4, 8, 16, 32],
        "num_groups": [4, 8, 16, 32],
    },
}
"""The DaViT towers upstream builds by name: `mm_vision_tower_aux`'s last path part, less
`.pth`."""

AUX_IMAGE_SIZE = 768
"""The DaViT input side when squashed (the checkpoint's `aux_image_size` is not read upstream)."""

AUX_SQUARE_SIDES = (384, 448, 512, 576, 640, 704, 768, 832, 896, 960, 1024, 1280, 1536, 1792, 2048)
"""The sides `dynamic_square` chooses from: the one whose square's area is closest the image's."""

AUX_ASPECT_RATIOS = ("squash", "dynamic_square", "dynamic")
"""How the DaViT input is sized: `AUX_IMAGE_SIZE` square, the closest of `AUX_SQUARE_SIDES`, or
the image's own size."""

POSITION_EMBEDDINGS = ("bbox_based", "feature_map_based", "hybrid")
"""Where the region encoder adds position: to each box's feature, to the DaViT maps, or both."""

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
        """The DaViT architecture: the checkpoint's own description, else the one its
        `mm_vision_tower_aux` names."""
        davit = self.mm_vision_tower_aux_config or DAVITS.get(self.aux_tower_name)
        if davit is None:
            raise FO1Error(
                f"This checkpoint's DaViT tower {self.mm_vision_tower_aux!r} is neither "
                f"{' nor '.join(DAVITS)}, and its config does not describe it "
                "(mm_vision_tower_aux_config)."
            )
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
    def aux_tower_name(self) -> str:
        return PurePath(self.mm_vision_tower_aux or "").name.removesuffix(".pth")

    @property
    def aux_aspect_ratio(self) -> str:
        """One of `AUX_ASPECT_RATIOS`. A checkpoint without the field, or with a value upstream's
        image processor does not name, is squashed, as upstream squashes it: the published
        config's value is only inferred (SPEC §14), and refusing to load would cost every user
        the model over a word."""
        value = self.aux_image_aspect_ratio
        return value if value in AUX_ASPECT_RATIOS else "squash"

    @property
    def uses_aux_regions(self) -> bool:
        """Whether region features include the DaViT part (all but the ViT-only variant)."""
        return not self.mm_use_vt_region_feature_only

    @property
    def aux_region_width(self) -> int:
        return sum(self.aux_vision_config().embed_dim) if self.uses_aux_regions else 0

    @property
    def simplefp_out_channels(self) -> int:
        """Width of each SimpleFP level: given, or what `mm_region_hidden_size` leaves for it."""
        if self.mm_simplefp_out_channels is not None:
            return self.mm_simplefp_out_channels
        return (self.mm_region_hidden_size - self.aux_region_width) // len(SIMPLEFP_SCALES)

    @property
    def tapped_vit_blocks(self) -> list[int]:
        """The ViT blocks whose outputs regions are pooled from, in block order: the deepest
        full-attention block feeds the SimpleFP; without it, every full-attention block is pooled
        (upstream records them in block order whatever order the config lists them in)."""
        blocks = sorted(self.vision_config.fullatt_block_indexes)
        return blocks[-1:] if self.mm_use_simpleFPN_for_vt else blocks

    @property
    def vt_region_width(self) -> int:
        """Width of the ViT part of a region feature."""
        if self.mm_use_simpleFPN_for_vt:
            return len(SIMPLEFP_SCALES) * self.simplefp_out_channels
        return len(self.tapped_vit_blocks) * self.vision_config.hidden_size

    def check_supported(self) -> None:
        """Refuse, by name, configuration choices this implementation does not build: those the
        official implementation cannot run either or whose widths it hard-codes for other
        models, and option values it does not name (upstream would quietly read a typo'd
        strategy as no position at all). An unknown aspect mode is read as `squash`
        (`aux_aspect_ratio`)."""
        expected = {
            "mm_use_region_index_token": (True,),
            "mm_use_vision_tower_region_feature": (True,),
            "mm_pos_embedding_strategy": POSITION_EMBEDDINGS,
        }
        if self.uses_aux_regions:  # the ViT-only path has nothing to combine
            expected["mm_region_feature_combination"] = ("concat", "concat_aux_pos")
        wrong = {k: getattr(self, k) for k, v in expected.items() if getattr(self, k) not in v}
        if self.mm_vision_tower_aux is None or self.mm_region_hidden_size is None:
            wrong["mm_vision_tower_aux / mm_region_hidden_size"] = "missing"
        if wrong:
            details = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
            raise FO1Error(
                f"This checkpoint uses an FO1 variant this app does not support ({details}); "
                "it supports the region encoders of the published VLM-FO1 models."
            )
        self._check_widths()

    def _check_widths(self) -> None:
        depth = self.vision_config.depth
        beyond = [i for i in self.vision_config.fullatt_block_indexes if not 0 <= i < depth]
        if beyond:  # found only at the first question otherwise, as an IndexError
            raise FO1Error(
                f"Inconsistent checkpoint config: vision_config.fullatt_block_indexes names "
                f"blocks {beyond}, but the vision tower has {depth} (0 to {depth - 1})."
            )
        parts = {"ViT part": self.vt_region_width}
        if self.uses_aux_regions:
            parts = {"DaViT widths": self.aux_region_width, **parts}
        if sum(parts.values()) != self.mm_region_hidden_size:
            named = " + ".join(f"{name} {width}" for name, width in parts.items())
            raise FO1Error(
                f"Inconsistent checkpoint config: {named} = {sum(parts.values())}, "
                f"but mm_region_hidden_size = {self.mm_region_hidden_size}."
            )
        uneven = [w for w in self.aux_vision_config().embed_dim if w % 4]
        if self.adds_map_position_embedding and uneven:
            raise FO1Error(
                f"Inconsistent checkpoint config: {self.mm_pos_embedding_strategy} position "
                f"embedding needs DaViT widths divisible by 4, not {uneven}."
            )
        # Each box coordinate gets a quarter of the width, as sin/cos pairs.
        if self.adds_box_position_embedding and self.mm_region_hidden_size % 8:
            raise FO1Error(
                "Inconsistent checkpoint config: the box position embedding needs "
                f"mm_region_hidden_size divisible by 8, not {self.mm_region_hidden_size}."
            )

    @property
    def adds_box_position_embedding(self) -> bool:
        """A sine embedding of each box is added to its feature (the ViT-only variant adds it
        whatever the strategy)."""
        strategy = self.mm_pos_embedding_strategy in ("bbox_based", "hybrid")
        return self.mm_apply_position_embedding and (strategy or not self.uses_aux_regions)

    @property
    def adds_map_position_embedding(self) -> bool:
        """A 2-D sine map is added to every DaViT stage before its boxes are pooled."""
        strategy = self.mm_pos_embedding_strategy in ("feature_map_based", "hybrid")
        return self.mm_apply_position_embedding and strategy and self.uses_aux_regions
