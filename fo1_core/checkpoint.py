"""Loading a published FO1 checkpoint (hub id or local folder) into `FO1ForConditionalGeneration`.

The official on-disk names differ from transformers' module names in a few prefixes and in the
DaViT sub-module names; `RENAMES` maps them both ways. Loading is strict: a missing, unexpected or
mis-shaped tensor is an `FO1Error` that names the keys, so a config that disagrees with the
weights is caught the first time the checkpoint is loaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from transformers.initialization import no_init_weights

from detect_tools.base import read_device
from detect_tools.images import refuse_url
from detect_tools.memory import available_memory, gigabytes, leaves_room, safetensors_numel
from fo1_core.configuration import AUX_IMAGE_SIZE, FO1Config
from fo1_core.errors import FO1Error
from fo1_core.modeling import FO1ForConditionalGeneration

logger = logging.getLogger(__name__)

_AUX_OFFICIAL, _AUX_OURS = "model.vision_tower_aux.image_tower.", "model.aux_visual."

PREFIX_RENAMES = (
    ("model.vision_tower.image_tower.", "model.visual."),
    (_AUX_OFFICIAL, _AUX_OURS),
    ("model.object_vp_extractor.", "model.region_encoder."),
    ("model.mm_projector_aux.", "model.region_projector."),
    ("model.mm_projector.", "model.image_projector."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.layers.", "model.language_model.layers."),
    ("model.norm.", "model.language_model.norm."),
)
"""(official prefix, our prefix); the first match wins, in either direction."""

DAVIT_RENAMES = (
    ("convs.*.proj.", "convs.*.conv."),
    (".conv*.fn.dw.", ".conv*."),
    ("spatial_block.window_attn.norm.", "spatial_block.norm1."),
    ("channel_block.channel_attn.norm.", "channel_block.norm1."),
    ("window_attn.fn.", "window_attn."),
    ("channel_attn.fn.", "channel_attn."),
    ("_block.ffn.norm.", "_block.norm2."),
    ("ffn.fn.net.", "ffn."),
)
"""Official DaViT names → transformers' Florence-2 backbone names, below the aux prefix.
`*` stands for a number."""


def _rule(source: str, target: str) -> tuple[re.Pattern[str], str]:
    pattern = re.escape(source).replace(r"\*", r"(\d+)")
    return re.compile(pattern), target.replace("*", r"\1")


_DAVIT_TO_OURS = [_rule(a, b) for a, b in DAVIT_RENAMES]
_DAVIT_TO_OFFICIAL = [_rule(b, a) for a, b in reversed(DAVIT_RENAMES)]


def _rename(key: str, prefixes: Iterable[tuple[str, str]]) -> str:
    for source, target in prefixes:
        if key.startswith(source):
            return target + key[len(source) :]
    return key


def to_our_key(official: str) -> str:
    key = _rename(official, PREFIX_RENAMES)
    if key.startswith(_AUX_OURS):
        for pattern, repl in _DAVIT_TO_OURS:
            key = pattern.sub(repl, key)
    return key


def to_official_key(ours: str) -> str:
    if ours.startswith(_AUX_OURS):
        for pattern, repl in _DAVIT_TO_OFFICIAL:
            ours = pattern.sub(repl, ours)
    return _rename(ours, [(b, a) for a, b in PREFIX_RENAMES])


def default_device_and_dtype() -> tuple[torch.device, torch.dtype]:
    """CUDA + bfloat16 where a GPU is available (as the published demo runs), else the CPU, in
    bfloat16 where it multiplies bfloat16 natively, else in fp32."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.bfloat16 if cpu_has_bfloat16() else torch.float32


def cpu_has_bfloat16() -> bool:
    """AVX512-BF16 or AMX. There the 3B model answers about 3× sooner in bfloat16 than in fp32
    (and decodes 2× faster); elsewhere bfloat16 arithmetic is emulated and slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # x86 only, private
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def default_attention(device: torch.device, dtype: torch.dtype) -> str:
    """Flash-attention 2 for half-precision weights on a GPU where the package is installed
    (it has no float32 kernels: a float32 model would fail at its first question), else
    PyTorch's SDPA."""
    half = dtype in (torch.bfloat16, torch.float16)
    if device.type == "cuda" and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def avoid_cudnn_attention(device: torch.device) -> None:
    """Takes cuDNN out of PyTorch's SDPA kernels for the whole process, on GPUs.

    Since PyTorch 2.9, SDPA tries cuDNN's attention first on H100, H200 (ZeroGPU's card) and B200.
    cuDNN builds an execution plan for every new combination of shapes before it runs one, and
    other projects measured hundreds of milliseconds per plan. FO1's shapes change with every
    image size and prompt length, and with every token when the KV cache grows; flash and
    memory-efficient attention need no plan. Process-wide, because PyTorch keeps the choice
    process-wide: proposers in the same process benefit too. `--cudnn-attention` in the
    benchmarks turns it back on, to compare.
    """
    if device.type == "cuda" and torch.backends.cuda.cudnn_sdp_enabled():
        torch.backends.cuda.enable_cudnn_sdp(False)
        logger.info("SDPA without cuDNN attention: it would build a plan for every new shape")


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A local folder as it is; anything else is a hub id, downloaded with a progress bar."""
    refuse_url(name_or_path, FO1Error)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise FO1Error(
            f"{name_or_path} is a file: pass the folder that holds the checkpoint's files "
            f"({path.parent}, if this is one of them)."
        )
    # A hub id is "owner/name": anything with more parts is a folder path.
    if path.exists() or str(name_or_path).startswith((".", "/", "~")) or len(path.parts) > 2:
        raise FO1Error(f"Checkpoint folder not found: {name_or_path}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path)))
    except Exception as error:  # network, auth, unknown repo: all end the same way for the user
        raise FO1Error(
            f"Could not download the checkpoint {name_or_path!r} ({type(error).__name__}: "
            f"{error}); there is no local folder of that name either. If the model hub is "
            "unreachable, download the checkpoint elsewhere and pass its local folder instead "
            "(for example --checkpoint /path/to/VLM-FO1)."
        ) from error


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise FO1Error(
                f"{index} cannot be read ({type(error).__name__}: {error}). Download it again."
            ) from error
        missing = [shard for shard in shards if not (folder / shard).is_file()]
        if missing:
            raise FO1Error(
                f"The checkpoint in {folder} is incomplete: {len(missing)} of its {len(shards)} "
                f"weight files are missing ({', '.join(missing[:4])}). Download it again."
            )
        return [folder / shard for shard in shards]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FO1Error(f"No *.safetensors weights in {folder}")
    return files


def _unreadable(file: Path, error: Exception) -> FO1Error:
    return FO1Error(
        f"The weight file {file} cannot be read ({error}); a download cut short "
        "leaves such a file: download the checkpoint again."
    )


def weight_count(folder: Path) -> int:
    """How many numbers the checkpoint's weights hold, read from the files' headers."""
    total = 0
    for file in _weight_files(folder):
        try:
            total += safetensors_numel(file)
        except (ValueError, OSError) as error:
            raise _unreadable(file, error) from error
    return total


def host_dtype(folder: Path, dtype: torch.dtype, asked: bool) -> torch.dtype:
    """The dtype to load the model in on the CPU: `dtype`, or bfloat16 where `dtype` was not
    `asked` for and would not leave room to answer in the memory free here (the 3B model needs
    about 17 GB in float32, 8.3 GB in bfloat16: a free CPU Space has 16 GB). A process that runs
    out of memory while loading is killed without a word: an `FO1Error` says so first where
    even the smallest choice does not fit."""
    free = available_memory()
    if free is None:
        return dtype
    count = weight_count(folder)
    smaller = [torch.bfloat16] if not asked and dtype.itemsize > 2 else []
    choices = [dtype, *smaller]
    choice = next((d for d in choices if leaves_room(count * d.itemsize, free)), None)
    if choice is None:
        choice = choices[-1]
        need = gigabytes(count * choice.itemsize)
        if count * choice.itemsize > free:
            advice = ", or load it in bfloat16" if choice.itemsize > 2 else ""
            raise FO1Error(
                f"The model's {count / 1e9:.2g} billion weights need {need} of memory in "
                f"{_dtype_name(choice)}, and {gigabytes(free)} are free here: use a GPU or a "
                f"machine with more memory{advice}."
            )
        logger.warning(
            "The model's weights take %s in %s and %s are free: answering may run out of memory.",
            need, _dtype_name(choice), gigabytes(free),
        )  # fmt: skip
    if choice != dtype:
        logger.warning(
            "Loading in bfloat16: in %s the model's weights would take %s, and %s are free. "
            "On a CPU without native bfloat16 it answers more slowly.",
            _dtype_name(dtype), gigabytes(count * dtype.itemsize), gigabytes(free),
        )  # fmt: skip
    return choice


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass
class LoadReport:
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]

    def raise_if_any(self, folder: Path) -> None:
        problems = [
            f"{what} ({len(keys)}): {', '.join(keys[:8])}{' …' if len(keys) > 8 else ''}"
            for what, keys in (
                ("missing", self.missing),
                ("unexpected", self.unexpected),
                ("wrong shape", self.mismatched),
            )
            if keys
        ]
        if problems:
            raise FO1Error(
                f"The checkpoint in {folder} does not match its config.json — "
                + "; ".join(problems)
            )


def load_weights(model: FO1ForConditionalGeneration, folder: Path) -> LoadReport:
    """Copies every tensor of the folder's safetensors files into `model`, strictly."""
    params = model.state_dict()
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    seen: set[str] = set()
    unexpected, mismatched = [], []
    with torch.no_grad():
        for file in _weight_files(folder):
            try:
                with safe_open(str(file), framework="pt") as weights:
                    for official in weights.keys():
                        key = to_our_key(official)
                        if _unused_tower(model, key):
                            continue
                        target = params.get(key)
                        if target is None or key in tied:
                            if key not in tied:
                                unexpected.append(official)
                            continue
                        tensor = weights.get_tensor(official)
                        if tensor.shape != target.shape:
                            shapes = f"{list(tensor.shape)}≠{list(target.shape)}"
                            mismatched.append(f"{official} {shapes}")
                            continue
                        target.copy_(tensor)
                        seen.add(key)
            except (SafetensorError, OSError) as error:
                raise _unreadable(file, error) from error
    missing = [to_official_key(k) for k in params if k not in seen and k not in tied]
    return LoadReport(missing=missing, unexpected=unexpected, mismatched=mismatched)


def _unused_tower(model: FO1ForConditionalGeneration, key: str) -> bool:
    """Whether `key` is a weight of the DaViT tower, which a model whose regions leave the
    DaViT part out (`FO1Config.uses_aux_regions`) does not build."""
    return model.model.aux_visual is None and key.startswith(_AUX_OURS)


def parse_device(device: str | torch.device) -> torch.device:
    """`device` as torch reads it, or an `FO1Error` naming the ones it could be."""
    return read_device(device, FO1Error)


def require_present(device: torch.device) -> None:
    """An `FO1Error` for a CUDA device on a machine where PyTorch finds none. Apart from
    `parse_device`, which also reads devices only to choose by their type (the app's decoding)."""
    if device.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise FO1Error("A CUDA GPU was asked for, but PyTorch finds none here: use the CPU.")
    count = torch.cuda.device_count()
    if (device.index or 0) >= count:
        raise FO1Error(
            f"There is no GPU {device}: this machine has {count} (cuda:0 to cuda:{count - 1})."
        )


def load_model(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> tuple[FO1ForConditionalGeneration, Path]:
    """Builds the model from the checkpoint's config and loads its weights strictly.

    Returns the model in eval mode and the local folder it came from (tokenizer and image
    processor settings are read from the same folder).
    """
    folder = resolve_checkpoint(name_or_path)
    if not (folder / "config.json").is_file():
        raise FO1Error(
            f"{folder} has no config.json: pass the folder that holds the checkpoint's files."
        )
    default_device, default_dtype = default_device_and_dtype()
    device = parse_device(device) if device is not None else default_device
    require_present(device)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise FO1Error(
            f"dtype must be a floating-point torch dtype (torch.bfloat16, torch.float16 or "
            f"torch.float32); got {dtype!r}."
        )
    asked = dtype is not None
    dtype = dtype or (default_dtype if device.type == default_device.type else torch.float32)
    if device.type == "cpu":
        dtype = host_dtype(folder, dtype, asked)
    try:
        config = FO1Config.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as error:
        raise FO1Error(f"Unreadable config.json in {folder}: {error}") from error
    try:
        config.check_supported()
        if config.aux_image_aspect_ratio not in (None, config.aux_aspect_ratio):
            logger.warning(
                "aux_image_aspect_ratio=%r is no mode upstream names; the DaViT input is "
                "squashed to %d², as upstream does.", config.aux_image_aspect_ratio, AUX_IMAGE_SIZE,
            )  # fmt: skip
        with torch.device(device), no_init_weights():
            model = FO1ForConditionalGeneration._from_config(
                config,
                attn_implementation=attn_implementation or default_attention(device, dtype),
                dtype=dtype,
            )
    except FO1Error:
        raise
    except torch.OutOfMemoryError as error:
        size = gigabytes(weight_count(folder) * dtype.itemsize)
        raise FO1Error(
            f"The model does not fit in the memory of {device}: its weights take {size} in "
            f"{_dtype_name(dtype)}, beside what else runs there. Use a GPU with more free "
            "memory, or the CPU (--device cpu)."
        ) from error
    except (KeyError, TypeError, ValueError, ImportError) as error:
        # A field missing or of another type than the published config's, an attention
        # implementation transformers does not know or cannot load here.
        raise FO1Error(
            f"The model cannot be built from the config.json in {folder} "
            f"({type(error).__name__}: {error})."
        ) from error
    avoid_cudnn_attention(device)
    load_weights(model, folder).raise_if_any(folder)
    model.tie_weights()
    logger.info("Loaded FO1 from %s on %s (%s)", folder, device, dtype)
    return model.eval(), folder


def save_checkpoint(
    model: FO1ForConditionalGeneration, folder: str | Path, copy_from: str | Path | None = None
) -> None:
    """Writes `config.json` and `model.safetensors` with the official key names.

    `copy_from`: a checkpoint folder whose other files (tokenizer, image processor, generation
    config) are copied alongside.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if copy_from is not None:
        for file in Path(copy_from).iterdir():
            if file.is_file() and file.name != "config.json" and ".safetensors" not in file.name:
                shutil.copyfile(file, folder / file.name)
    model.config.save_pretrained(folder)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    weights = {
        to_official_key(key): tensor.detach().contiguous().cpu()
        for key, tensor in model.state_dict().items()
        if key not in tied
    }
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
