"""Tiny random checkpoints in each proposer's real format, built offline for tests and benchmarks.

Each builder saves a model and its processor to a folder, so the proposer under test loads it
through the same ``from_pretrained`` path a user's real checkpoint takes. Weights are random:
the outputs are meaningless but have the real shapes, formats and post-processing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

_WORDS = "locate the objects with category name in image region proposals car person red cup dog"


def _byte_level_bpe(folder: Path, vocab_size: int, special: list[str]) -> tuple[dict, list]:
    """A small byte-level BPE vocabulary and merge list trained on a fixed phrase."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [_WORDS], vocab_size=vocab_size, min_frequency=1, special_tokens=special
    )
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text())
    lines = (folder / "merges.txt").read_text().splitlines()[1:]  # first line is a version header
    return vocab, [tuple(line.split()) for line in lines if line]


def build_florence2(folder: Path) -> Path:
    """Florence-2 with a 4-stage DaViT of width 8–32 and a one-layer BART, 64×64 input."""
    from transformers import (
        BartConfig,
        BartTokenizerFast,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        Florence2VisionConfig,
    )

    with tempfile.TemporaryDirectory() as scratch:
        vocab, merges = _byte_level_bpe(
            Path(scratch), 300, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        )
    tokenizer = BartTokenizerFast(
        vocab=vocab, merges=merges, extra_special_tokens={"image_token": "<image>"}
    )
    locations = [f"<loc_{k}>" for k in range(1000)]
    tokenizer.add_special_tokens({"additional_special_tokens": locations + ["<od>", "</od>"]})
    vision = Florence2VisionConfig(
        depths=[1, 1, 1, 1],
        embed_dim=[8, 16, 24, 32],
        num_heads=[1, 1, 1, 1],
        num_groups=[1, 1, 1, 1],
        window_size=2,
        projection_dim=16,
    )
    text = BartConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=1100,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(
        Florence2Config(
            vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id
        )
    )
    # A random decoder ends at once or repeats one token; these generation defaults make it
    # emit distinct location tokens and a few words, so there are boxes to check.
    allowed = set(tokenizer.convert_tokens_to_ids(locations))
    allowed |= set(tokenizer("car person", add_special_tokens=False).input_ids)
    allowed.add(tokenizer.eos_token_id)
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i not in allowed]
    model.generation_config.min_new_tokens = 40
    model.generation_config.no_repeat_ngram_size = 1
    # Image tokens = (64/32)² + 1 = 5.
    image_processor = CLIPImageProcessor(
        size={"height": 64, "width": 64}, do_center_crop=False, image_seq_length=5
    )
    processor = Florence2Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        post_processor_config={"bboxes": {}, "description_with_bboxes": {}},
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _clip_tokenizer():
    """A character-level CLIP tokenizer laid out as CLIP's: the byte alphabet (``!`` first, id 0),
    each again with ``</w>``, then the start and end tokens (OWLv2 reads a query whose first id
    is 0 as padding)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    pieces = alphabet + [char + "</w>" for char in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={piece: k for k, piece in enumerate(pieces)}, merges=[])


def _clip_token_ids(tokenizer) -> dict[str, int]:
    """The special ids a CLIP text config names, as `tokenizer` has them."""
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def build_omdet_turbo(folder: Path) -> Path:
    """OmDet-Turbo with the default timm Swin-T backbone (as the real checkpoint) and a tiny
    one-layer text model, encoder and decoder; 224×224 input, 30 queries."""
    from transformers import (
        CLIPTextConfig,
        DetrImageProcessor,
        OmDetTurboConfig,
        OmDetTurboForObjectDetection,
        OmDetTurboProcessor,
    )

    tokenizer = _clip_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,  # the processor pads prompts to 77 tokens
        projection_dim=16,
        **_clip_token_ids(tokenizer),
    )
    # class_embed_dim must differ from decoder_hidden_dim, or the task projection is never built.
    config = OmDetTurboConfig(
        text_config=text,
        image_size=224,
        disable_custom_kernels=True,
        text_projection_in_dim=16,
        text_projection_out_dim=16,
        task_encoder_hidden_dim=32,
        class_embed_dim=16,
        num_queries=30,
        encoder_hidden_dim=32,
        vision_features_channels=[32, 32, 32],
        encoder_attention_heads=2,
        encoder_dim_feedforward=32,
        decoder_hidden_dim=32,
        decoder_num_heads=2,
        decoder_num_layers=1,
        decoder_dim_feedforward=32,
        decoder_num_points=2,
    )
    torch.manual_seed(0)
    model = OmDetTurboForObjectDetection(config)
    image_processor = DetrImageProcessor(size={"height": 224, "width": 224}, do_pad=False)
    model.save_pretrained(folder)
    OmDetTurboProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        folder
    )
    return folder


def build_sam3(folder: Path) -> Path:
    """SAM3 with a 2-layer ViT of width 32 on 112×112 input and one-layer heads, 20 queries."""
    from transformers import (
        CLIPTextConfig,
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3ImageProcessor,
        Sam3MaskDecoderConfig,
        Sam3Model,
        Sam3Processor,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    tokenizer = _clip_tokenizer()
    hidden = 32
    layer = {"hidden_size": hidden, "num_attention_heads": 2}
    backbone = Sam3ViTConfig(
        **layer,
        intermediate_size=64,
        num_hidden_layers=2,
        image_size=112,
        patch_size=14,
        window_size=4,
        global_attn_indexes=[1],
        pretrain_image_size=112,
    )
    text = CLIPTextConfig(
        **layer,
        vocab_size=len(tokenizer),
        intermediate_size=64,
        num_hidden_layers=1,
        max_position_embeddings=32,  # the processor pads prompts to 32 tokens
        projection_dim=hidden,
        **_clip_token_ids(tokenizer),
    )
    config = Sam3Config(
        vision_config=Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=hidden),
        text_config=text,
        geometry_encoder_config=Sam3GeometryEncoderConfig(
            **layer, num_layers=1, intermediate_size=64
        ),
        detr_encoder_config=Sam3DETREncoderConfig(**layer, num_layers=1, intermediate_size=64),
        detr_decoder_config=Sam3DETRDecoderConfig(
            **layer, num_layers=1, num_queries=20, intermediate_size=64
        ),
        mask_decoder_config=Sam3MaskDecoderConfig(**layer),
    )
    torch.manual_seed(0)
    model = Sam3Model(config)
    image_processor = Sam3ImageProcessor(size={"height": 112, "width": 112})
    model.save_pretrained(folder)
    Sam3Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_owlv2(folder: Path) -> Path:
    """OWLv2 with a one-layer ViT of width 32 on 64×64 input (16 patches of 16 px) and a
    one-layer text model; queries of 16 tokens padded with ``!``, as the real tokenizer's."""
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    tokenizer = _clip_tokenizer()
    tokenizer.pad_token = "!"
    layer = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
    config = Owlv2Config(
        text_config={
            **layer,
            **_clip_token_ids(tokenizer),
            "vocab_size": len(tokenizer),
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
        },
        vision_config={**layer, "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(config)
    # Random heads saturate the sigmoid (zero-height boxes, objectness logits near -100); scaled
    # down, each patch's box sits on its patch, as a trained model's mostly do.
    with torch.no_grad():
        for head in (model.box_head, model.objectness_head):
            head.dense2.weight.mul_(0.01)
    image_processor = Owlv2ImageProcessor(size={"height": 64, "width": 64})
    tokenizer.model_max_length = config.text_config.max_position_embeddings
    model.save_pretrained(folder)
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_grounding_dino(folder: Path) -> Path:
    """Grounding DINO with a 4-stage Swin of width 8–64 and a one-layer BERT on input of at
    most 160 px (shortest side 96: its coarsest level, at 1/64, must be more than a pixel), one
    encoder and two decoder layers (the fewest it builds with), 30 queries; a word-level BERT
    vocabulary."""
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *sorted(set(_WORDS.split()))]
    tokenizer = BertTokenizerFast(vocab={word: k for k, word in enumerate(words)})
    backbone = SwinConfig(
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=2,
        out_indices=[2, 3, 4],
    )
    text = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=30,
        max_text_len=32,
        disable_custom_kernels=True,
    )
    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(config)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 96, "longest_edge": 160})
    model.save_pretrained(folder)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        folder
    )
    return folder
