"""The loader builds the model from config.json and loads the official on-disk format strictly."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from detect_tools.memory import MEMORY_TO_SPARE
from fo1_core import checkpoint
from fo1_core.checkpoint import (
    avoid_cudnn_attention,
    load_model,
    save_checkpoint,
    to_official_key,
    to_our_key,
    weight_count,
)
from fo1_core.configuration import FO1Config
from fo1_core.errors import FO1Error
from fo1_core.modeling import FO1ForConditionalGeneration
from fo1_core.session import load
from fo1_core.templates import IM_END
from tests.conftest import REFERENCE_DIR, RIGGED_ANSWER, SPEC_DIR

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json")


def _published_keys() -> dict[str, list[int]]:
    """Stored tensors of the real 3B checkpoint (non-persistent buffers are not in the files)."""
    keys = {}
    for line in (SPEC_DIR / "state_dict_3b.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        name, shape, _dtype, note = line.split("\t")
        if "non-persistent" not in note:
            keys[name] = json.loads(shape)
    return keys


def test_3b_config_builds_exactly_the_published_keys_and_shapes() -> None:
    config = FO1Config(**json.loads((SPEC_DIR / "config_3b_reconstructed.json").read_text()))
    config.check_supported()
    with torch.device("meta"):
        model = FO1ForConditionalGeneration._from_config(config)
    ours = {to_official_key(k): list(v.shape) for k, v in model.state_dict().items()}
    assert ours == _published_keys()


def test_key_mapping_round_trips_every_published_key() -> None:
    for key in _published_keys():
        assert to_official_key(to_our_key(key)) == key


def _copy_checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoint"
    shutil.copytree(REFERENCE_DIR, folder, ignore=shutil.ignore_patterns("golden"))
    return folder


def _rewrite_weights(folder: Path, edit) -> None:
    weights = load_file(folder / "model.safetensors")
    edit(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a tensor the config needs is not in the files
        (
            lambda w: w.pop(next(k for k in sorted(w) if k.startswith("model.mm_projector_aux."))),
            "missing (1): model.mm_projector_aux",
        ),
        # a tensor nothing in the config uses
        (lambda w: w.update({"model.extra_head.weight": torch.zeros(2)}), "unexpected (1)"),
        # a tensor with the wrong shape
        (
            lambda w: w.update({"model.norm.weight": torch.zeros(3)}),
            "wrong shape (1): model.norm.weight",
        ),
    ],
)
def test_strict_loading_names_the_offending_keys(tmp_path: Path, edit, message: str) -> None:
    folder = _copy_checkpoint(tmp_path)
    _rewrite_weights(folder, edit)
    with pytest.raises(FO1Error, match="does not match its config.json") as error:
        load_model(folder, device="cpu")
    assert message in str(error.value)


def _shard(folder: Path) -> Path:
    """The folder's weights split into two files with an index, as large checkpoints come."""
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    names = sorted(weights)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: weights[k] for k in keys}, folder / shard, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(keys, shard)
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_sharded_checkpoint_loads_the_same_weights(tmp_path: Path) -> None:
    folder = _shard(_copy_checkpoint(tmp_path))
    model, _ = load_model(folder, device="cpu")
    reference, _ = load_model(REFERENCE_DIR, device="cpu")
    for (name, ours), (_, theirs) in zip(
        model.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert torch.equal(ours, theirs), name


@pytest.mark.parametrize(
    "native_bfloat16, dtype",
    [
        (True, torch.bfloat16),  # AVX512-BF16 / AMX: bfloat16, as on a GPU, and faster
        (False, torch.float32),  # emulated bfloat16 would be slower than fp32
    ],
)
def test_cpu_default_dtype_follows_the_cpu_with_the_head_tied_as_configured(
    monkeypatch: pytest.MonkeyPatch, native_bfloat16: bool, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(checkpoint, "cpu_has_bfloat16", lambda: native_bfloat16)
    model, folder = load_model(REFERENCE_DIR, device="cpu")
    assert folder == REFERENCE_DIR
    assert model.dtype == dtype
    tied = model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert tied == model.config.tie_word_embeddings
    assert not model.training


def _free_memory(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    monkeypatch.setattr(checkpoint, "available_memory", lambda: free)
    monkeypatch.setattr(checkpoint, "cpu_has_bfloat16", lambda: False)  # float32 by default


def test_a_cpu_short_of_memory_for_float32_loads_the_model_in_bfloat16_and_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, answering_checkpoint: Path
) -> None:
    """The 3B model takes about 17 GB in float32: on a free CPU Space's 16 GB the process was
    killed while loading, without a word."""
    _free_memory(monkeypatch, weight_count(answering_checkpoint) * 4 + MEMORY_TO_SPARE - 1)
    pipeline = load(answering_checkpoint, device="cpu")
    assert pipeline.model.dtype == torch.bfloat16
    assert "Loading in bfloat16" in caplog.text
    image = Image.new("RGB", (160, 120), (40, 90, 200))
    boxes = [[10, 10, 60, 60], [70, 20, 150, 100], [5, 70, 50, 115]]
    assert pipeline.ask(image, boxes, "OD_template", "circle").text == RIGGED_ANSWER + IM_END


def test_float32_is_kept_where_it_leaves_room_to_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    _free_memory(monkeypatch, weight_count(REFERENCE_DIR) * 4 + MEMORY_TO_SPARE)
    model, _ = load_model(REFERENCE_DIR, device="cpu")
    assert model.dtype == torch.float32


@pytest.mark.parametrize(
    ("dtype", "bytes_per_weight", "message"),
    [
        # not even bfloat16's weights fit: said before loading, not killed while loading
        (None, 1.5, r"need [\d.]+ GB of memory in bfloat16, and [\d.]+ GB are free"),
        # float32 asked for is not changed behind the caller's back
        (torch.float32, 3.5, "in float32, .* or load it in bfloat16"),
    ],
)
def test_weights_that_do_not_fit_in_memory_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype | None, bytes_per_weight, message: str
) -> None:
    _free_memory(monkeypatch, int(weight_count(REFERENCE_DIR) * bytes_per_weight))
    with pytest.raises(FO1Error, match=message):
        load_model(REFERENCE_DIR, device="cpu", dtype=dtype)


def test_a_model_too_large_for_the_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """What CUDA raises when the weights do not fit, told as the fix rather than a traceback."""

    def no_room(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 594.00 MiB")

    monkeypatch.setattr(FO1ForConditionalGeneration, "_from_config", no_room)
    with pytest.raises(FO1Error, match=r"does not fit in the memory of cpu: .*--device cpu"):
        load_model(REFERENCE_DIR, device="cpu", dtype=torch.bfloat16)


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        # a folder without the checkpoint's config (its parent folder, say)
        (lambda f: (f / "config.json").unlink(), "has no config.json"),
        # a sharded download that stopped before its last file
        (lambda f: (_shard(f) / "model-00002-of-00002.safetensors").unlink(), "1 of its 2"),
        (lambda f: _truncate(_shard(f) / "model.safetensors.index.json"), "index.json cannot"),
        # a weight file cut short
        (lambda f: _truncate(f / "model.safetensors"), "model.safetensors cannot be read"),
        (lambda f: (f / "preprocessor_config.json").unlink(), "preprocessor_config.json"),
        (
            lambda f: [(f / name).unlink(missing_ok=True) for name in TOKENIZER_FILES],
            "tokenizer files",
        ),
        # the added tokens' files left, the vocabulary gone: it would read words as nothing
        (
            lambda f: [(f / name).unlink() for name in TOKENIZER_FILES[:3]],
            "tokenizer in .* has no vocabulary",
        ),
    ],
)
def test_a_damaged_checkpoint_folder_is_a_clear_error(tmp_path: Path, damage, message) -> None:
    folder = _copy_checkpoint(tmp_path)
    damage(folder)
    with pytest.raises(FO1Error, match=message):
        load(folder, device="cpu")


@pytest.mark.parametrize(
    ("device", "dtype", "attention"),
    [
        ("cuda", torch.bfloat16, "flash_attention_2"),
        ("cuda", torch.float16, "flash_attention_2"),
        ("cuda", torch.float32, "sdpa"),  # flash-attn has no float32 kernels: it would fail
        ("cpu", torch.bfloat16, "sdpa"),
    ],
)
def test_flash_attention_is_the_default_only_where_it_runs(
    monkeypatch: pytest.MonkeyPatch, device: str, dtype: torch.dtype, attention: str
) -> None:
    find_spec = checkpoint.importlib.util.find_spec
    monkeypatch.setattr(
        checkpoint.importlib.util,
        "find_spec",
        lambda name, *args: object() if name == "flash_attn" else find_spec(name, *args),
    )
    assert checkpoint.default_attention(torch.device(device), dtype) == attention


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_asking_for_a_gpu_that_is_not_there_is_a_clear_error() -> None:
    with pytest.raises(FO1Error, match="CUDA GPU was asked for"):
        load_model(REFERENCE_DIR, device="cuda")


@pytest.mark.parametrize("name", ["{tmp}/nope", "models/fo1/VLM-FO1"])  # absolute, relative
def test_missing_folder_is_a_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(FO1Error, match="Checkpoint folder not found"):
        load_model(name.format(tmp=tmp_path), device="cpu")


def test_a_file_of_the_checkpoint_is_refused_as_a_file_not_a_missing_folder() -> None:
    folder = re.escape(str(REFERENCE_DIR))
    with pytest.raises(FO1Error, match=rf"config.json is a file: pass the folder .*\({folder}"):
        load_model(REFERENCE_DIR / "config.json", device="cpu")


def test_a_url_is_refused_as_a_url_not_a_missing_folder() -> None:
    with pytest.raises(FO1Error, match="is a URL; this tool reads local files only"):
        load_model("https://huggingface.co/omlab/VLM-FO1_Qwen2.5-VL-3B-v01", device="cpu")


def test_unreachable_hub_says_how_to_use_a_local_folder(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FO1Error, match="no local folder of that name either.*pass its local"):
        load_model("omlab/VLM-FO1_Qwen2.5-VL-3B-v01", device="cpu")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # regions from DaViT alone: upstream's region encoder cannot run them either
        ({"mm_use_vision_tower_region_feature": False}, "mm_use_vision_tower_region_feature=False"),
        ({"mm_region_feature_combination": "mean"}, "mm_region_feature_combination='mean'"),
        # the ViT part without SimpleFP is one map per full-attention block, not 4 × 8 wide
        (
            {"mm_use_simpleFPN_for_vt": False},
            r"DaViT widths \d+ \+ ViT part \d+ = \d+, but mm_region_hidden_size = \d+",
        ),
        # each box coordinate gets a quarter of the width, as sin/cos pairs
        (
            {
                "mm_use_vt_region_feature_only": True,
                "mm_simplefp_out_channels": 1,
                "mm_region_hidden_size": 4,
            },
            "mm_region_hidden_size divisible by 8, not 4",
        ),
    ],
)
def test_unsupported_variant_is_refused_by_name(
    tmp_path: Path, options: dict, message: str
) -> None:
    folder = _copy_checkpoint(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config.update(options)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FO1Error, match=message):
        load_model(folder, device="cpu")


def test_an_aspect_mode_upstream_does_not_name_is_squashed_as_upstream_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The published config's aspect mode is only inferred (SPEC §14): a value upstream's image
    processor does not name must cost no user the model, and it squashes as upstream's does."""
    folder = _copy_checkpoint(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "aux_image_aspect_ratio": "pad"}))
    pipeline = load(folder, device="cpu")
    assert "aux_image_aspect_ratio='pad' is no mode upstream names" in caplog.text
    assert pipeline.preprocessor.aux_size(1000, 300) == (768, 768)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # transformers' default full-attention blocks, 7 to 31, past a smaller tower's depth
        (
            lambda c: c["vision_config"].pop("fullatt_block_indexes"),
            r"fullatt_block_indexes names blocks \[.*\], but the vision tower has \d+",
        ),
        (
            lambda c: c.update(mm_projector_aux_type="mlp2x-gelu"),
            "cannot be built from the config.json .*mlp2x-gelu",
        ),
        (
            lambda c: c["mm_vision_tower_aux_config"].pop("num_groups"),
            "cannot be built from the config.json .*KeyError: 'num_groups'",
        ),
    ],
)
def test_a_config_fo1_cannot_be_built_from_is_refused_at_loading(
    tmp_path: Path, edit, message: str
) -> None:
    """Each was a raw KeyError or ValueError, or loaded and failed at the first question."""
    folder = _copy_checkpoint(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FO1Error, match=message):
        load_model(folder, device="cpu")


def test_a_dtype_that_is_not_floating_point_is_refused() -> None:
    with pytest.raises(FO1Error, match="dtype must be a floating-point torch dtype"):
        load_model(REFERENCE_DIR, device="cpu", dtype=torch.int8)


@pytest.mark.parametrize(
    ("name", "widths"),
    [
        ("davit-large.pth", [256, 512, 1024, 2048]),  # the published config's
        ("/checkpoints/davit-base.pth", [128, 256, 512, 1024]),  # DaViT-Large was built
        ("davit-base", [128, 256, 512, 1024]),
    ],
)
def test_the_davit_tower_is_the_one_its_name_says(name: str, widths: list[int]) -> None:
    fields = json.loads((SPEC_DIR / "config_3b_reconstructed.json").read_text())
    config = FO1Config(**{**fields, "mm_vision_tower_aux": name})
    assert config.mm_vision_tower_aux_config is None
    assert list(config.aux_vision_config().embed_dim) == widths


def test_a_davit_tower_known_by_neither_name_nor_description_is_refused() -> None:
    fields = json.loads((SPEC_DIR / "config_3b_reconstructed.json").read_text())
    config = FO1Config(**{**fields, "mm_vision_tower_aux": "davit-huge.pth"})
    with pytest.raises(FO1Error, match="'davit-huge.pth' is neither davit-large nor davit-base"):
        config.check_supported()


def test_a_sine_map_needs_davit_widths_in_fours(tmp_path: Path) -> None:
    folder = _copy_checkpoint(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    davit = config["mm_vision_tower_aux_config"]
    widths = davit["dim_embed"]  # the same sum, the first stage 2 wide
    widths = [2, widths[0] + widths[1] - 2, *widths[2:]]
    config["mm_vision_tower_aux_config"] = {**davit, "dim_embed": widths}
    config["mm_pos_embedding_strategy"] = "hybrid"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FO1Error, match="hybrid position embedding needs DaViT widths divisible"):
        load_model(folder, device="cpu")


VARIANTS = [
    # the optional LayerNorms on both halves of the region feature
    ({"mm_apply_region_layer_norm": True}, "model.object_vp_extractor.aux_region_norm.weight"),
    # a linear primary projector between the merger and the decoder
    # (its input width is the merger's output, `mm_hidden_size`, set from the vision config)
    ({"mm_projector_type": "linear"}, "model.mm_projector.weight"),
    # a deeper region projector
    ({"mm_projector_aux_type": "mlp3x_gelu"}, "model.mm_projector_aux.4.weight"),
    # an output head stored apart from the embeddings
    ({"tie_word_embeddings": False}, "lm_head.weight"),
    # no box position embedding, a 5×5 RoI grid
    ({"mm_apply_position_embedding": False, "mm_roi_output_size": 5}, "model.norm.weight"),
    # position as a sine map on each DaViT stage, alone or beside the box's
    ({"mm_pos_embedding_strategy": "feature_map_based"}, "model.norm.weight"),
    (
        {"mm_pos_embedding_strategy": "hybrid", "mm_region_feature_combination": "concat_aux_pos"},
        "model.norm.weight",
    ),
    # the DaViT input sized from the image: the closest listed square, or the image's own size
    ({"aux_image_aspect_ratio": "dynamic_square"}, "model.norm.weight"),
    ({"aux_image_aspect_ratio": "dynamic"}, "model.norm.weight"),
    # the ViT part pooled from every full-attention block's map, without a SimpleFP
    (
        {"mm_use_simpleFPN_for_vt": False, "mm_apply_region_layer_norm": True},
        "model.object_vp_extractor.vt_region_norm.weight",
    ),
    # the ViT part alone (upstream keeps its LayerNorm's weights but does not apply them, and
    # has no DaViT boxes to embed)
    (
        {"mm_use_vt_region_feature_only": True, "mm_apply_region_layer_norm": True},
        "model.object_vp_extractor.simple_fpn.simfp_1.0.weight",
    ),
    (
        {"mm_use_vt_region_feature_only": True, "mm_region_feature_combination": "concat_aux_pos"},
        "model.object_vp_extractor.simple_fpn.simfp_1.0.weight",
    ),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bfloat16: the GPU dtype flow
@pytest.mark.parametrize(("options", "expected_key"), VARIANTS)
def test_config_variants_save_load_and_answer(
    tmp_path: Path, options: dict, expected_key: str, dtype: torch.dtype
) -> None:
    """Each FO1 option builds its modules from config.json and round-trips the official names."""
    folder = _copy_checkpoint(tmp_path)
    config = FO1Config.from_pretrained(folder)
    config.mm_hidden_size = config.vision_config.out_hidden_size
    config.mm_simplefp_out_channels = config.simplefp_out_channels
    for key, value in options.items():
        setattr(config, key, value)
    config.mm_region_hidden_size = config.aux_region_width + config.vt_region_width
    torch.manual_seed(0)
    save_checkpoint(FO1ForConditionalGeneration._from_config(config), folder)
    assert expected_key in load_file(folder / "model.safetensors")

    from fo1_core.session import load

    pipeline = load(folder, device="cpu", dtype=dtype)
    assert pipeline.model.dtype == dtype
    result = pipeline.ask(
        Image.new("RGB", (100, 70)), [[5, 5, 50, 40], [30, 20, 90, 65]], "OD_template", "cat", 4
    )
    assert len(result.token_ids) >= 1


def test_the_vit_only_variant_leaves_the_davit_tower_it_never_runs_unloaded() -> None:
    folder = Path(__file__).parent / "fixtures" / "fo1_variants" / "vit_only"
    stored = load_file(folder / "model.safetensors")
    tower = [key for key in stored if key.startswith("model.vision_tower_aux.")]
    assert tower  # the official format keeps the tower's weights in this variant too
    model, _ = load_model(folder, device="cpu", dtype=torch.float32)  # strict: nothing left over
    assert model.model.aux_visual is None
    kept = sum(parameter.numel() for parameter in model.parameters())
    assert kept == sum(stored[key].numel() for key in stored if key not in tower)


@pytest.mark.parametrize(
    "device, cudnn_after",
    [
        ("cuda", False),  # a GPU: no cuDNN attention, whose plans are built per shape
        ("cpu", True),  # the CPU has no cuDNN: the process-wide switch is left alone
    ],
)
def test_loading_on_a_gpu_takes_cudnn_out_of_sdpa(device: str, cudnn_after: bool) -> None:
    before = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        avoid_cudnn_attention(torch.device(device))
        assert torch.backends.cuda.cudnn_sdp_enabled() is cudnn_after
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)
