"""Random-weight FO1 checkpoints in the official on-disk format, for benchmarks.

Profiles: `mid` (4 layers, hidden 512) and `3b` (the published architecture, from the spec's
reconstructed config). Tokenizer and image-processor files come from the reference fixture. Rows
of the (tied) embedding for the end-of-turn token and for ids the tokenizer does not have are
zeroed, so greedy decoding never stops early and every run decodes the requested token count.

    python -m bench.random_checkpoint --profile mid --out /tmp/fo1-mid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoTokenizer

from bench.options import benchmark_parser
from fo1_core.checkpoint import save_checkpoint
from fo1_core.cli import device_name
from fo1_core.configuration import FO1Config
from fo1_core.modeling import FO1ForConditionalGeneration

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fo1-reference"
TINY = SHARED / "tiny"
RANDOM_PROFILES = ("mid", "3b")
PROFILES = ("tiny", *RANDOM_PROFILES)
MID = {
    "hidden_size": 512,
    "intermediate_size": 1408,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "rope_scaling": {"mrope_section": [8, 12, 12], "rope_type": "default", "type": "default"},
    "vision_config": {
        "depth": 4,
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_heads": 4,
        "out_hidden_size": 512,
        "fullatt_block_indexes": [1, 3],
    },
    "mm_simplefp_out_channels": 64,
    "mm_vision_tower_aux_config": {"dim_embed": [32, 64, 96, 128], "num_heads": [2, 2, 4, 4]},
}


def profile_config(profile: str) -> FO1Config:
    tiny = json.loads((TINY / "config.json").read_text())
    if profile == "3b":
        fields = json.loads((SHARED / "config_3b_reconstructed.json").read_text())
        for key in (
            "image_token_id",
            "video_token_id",
            "vision_start_token_id",
            "vision_end_token_id",
            "bos_token_id",
            "eos_token_id",
            "pad_token_id",
        ):
            fields[key] = tiny[key]  # the tokenizer is the fixture's
    elif profile == "mid":
        fields = dict(tiny, **{k: v for k, v in MID.items() if not isinstance(v, dict)})
        fields["rope_scaling"] = MID["rope_scaling"]
        fields["vision_config"] = dict(tiny["vision_config"], **MID["vision_config"])
        davit = dict(tiny["mm_vision_tower_aux_config"], **MID["mm_vision_tower_aux_config"])
        fields["mm_vision_tower_aux_config"] = davit
        fields["mm_region_hidden_size"] = (
            sum(davit["dim_embed"]) + 4 * MID["mm_simplefp_out_channels"]
        )
    else:
        raise ValueError(f"unknown profile {profile!r}")
    return FO1Config(**fields)


def make_random_checkpoint(folder: Path, profile: str, device: str = "cpu") -> Path:
    config = profile_config(profile)
    tokenizer = AutoTokenizer.from_pretrained(str(TINY), config=config)
    torch.manual_seed(0)
    with torch.device(device):
        model = FO1ForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    embeddings = model.model.language_model.embed_tokens.weight
    with torch.no_grad():
        embeddings[len(tokenizer) :] = 0
        embeddings[config.text_config.eos_token_id] = 0
    save_checkpoint(model, folder, copy_from=TINY)
    return folder


def checkpoint_dir(text: str) -> Path:
    """An argparse type: a checkpoint's folder (one with a config.json)."""
    folder = Path(text)
    if not (folder / "config.json").is_file():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a checkpoint folder (one with a config.json)"
        )
    return folder


def profile_or_folder(text: str) -> str:
    """An argparse type: one of `PROFILES` or a checkpoint folder, checked before any is built."""
    if text in PROFILES or (Path(text) / "config.json").is_file():
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither {', '.join(PROFILES)} nor a checkpoint folder "
        "(one with a config.json)"
    )


def checkpoint_folder(name: str, scratch: Path, device: str = "cpu") -> Path:
    """`tiny` (the fixture), `mid` or `3b` (built into `scratch`), or a checkpoint folder's path."""
    if name == "tiny":
        return TINY
    if name in RANDOM_PROFILES:
        return make_random_checkpoint(scratch / name, name, device)
    return Path(name)


def main() -> None:
    parser = benchmark_parser("bench.random_checkpoint", __doc__)
    parser.add_argument(
        "--profile", choices=RANDOM_PROFILES, default="mid", help="the model's sizes"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="a new or empty folder, or a checkpoint's folder to replace",
    )
    parser.add_argument("--device", type=device_name, default="cpu", help="where it is built")
    args = parser.parse_args()
    # The weights are written over whatever the folder holds: only a checkpoint is replaced.
    if args.out.is_dir() and any(args.out.iterdir()) and not (args.out / "config.json").is_file():
        parser.error(f"{args.out} holds files but no checkpoint: give a new or empty folder")
    try:  # before the model is built: a path that cannot be a folder ends the program at once
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"cannot make the folder {args.out}: {error.strerror}")
    make_random_checkpoint(args.out, args.profile, args.device)


if __name__ == "__main__":
    main()
