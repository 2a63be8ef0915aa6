"""A tiny FO1 checkpoint whose greedy decoding writes a chosen answer, for end-to-end tests.

It is the reference fixture with every decoder layer's output projections zeroed, so the final
hidden state at each step is the (normalised) embedding of the last token, and an untied output
head that maps each token of the answer to the next one. Everything else — both vision towers,
the region encoder, prompt, splice and generate() — runs exactly as for a real checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import AutoTokenizer

from fo1_core.checkpoint import load_model, save_checkpoint
from fo1_core.modeling import FO1ForConditionalGeneration
from fo1_core.templates import IM_END
from tests.conftest import REFERENCE_DIR


def _successors(tokenizer, answer: str, loop: str) -> dict[int, int]:
    last_prompt_token = tokenizer("assistant\n", add_special_tokens=False)["input_ids"][-1]
    chain = [last_prompt_token] + tokenizer(answer, add_special_tokens=False)["input_ids"]
    cycle = tokenizer(loop, add_special_tokens=False)["input_ids"] if loop else []
    steps = (
        chain + cycle + cycle[:1] if cycle else chain + [tokenizer.convert_tokens_to_ids(IM_END)]
    )
    successors: dict[int, int] = {}
    for token, following in zip(steps, steps[1:], strict=False):
        if successors.setdefault(token, following) != following:
            raise ValueError(f"Token {token} would need two successors; choose another answer")
    return successors


def _split_tags(tokenizer, text: str) -> list[str]:
    """The tags in `text` (`<region3>`, `<ground>`, …) this tokenizer spells in pieces (SPEC
    §6.2 allows FO1's strings not to be single tokens)."""
    tags = dict.fromkeys(re.findall(r"<[^<>]+>", text))
    return [tag for tag in tags if len(tokenizer(tag, add_special_tokens=False)["input_ids"]) > 1]


def _as_tokens(model: FO1ForConditionalGeneration, tokenizer, strings: list[str]) -> bool:
    """Adds `strings` as tokens of their own, with fresh embedding rows: one chain step each,
    whatever tokenizer the fixture has. True if it added any."""
    if not strings:
        return False
    tokenizer.add_tokens(strings)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    rows = model.get_input_embeddings().weight
    with torch.no_grad():
        for token in tokenizer.convert_tokens_to_ids(strings):
            rows[token] = torch.randn_like(rows[token]) * rows.std()
    return True


def make_rigged_checkpoint(folder: Path, answer: str, loop: str = "") -> Path:
    """Writes the checkpoint to `folder`. After `answer` it stops, or repeats `loop` forever."""
    model, source = load_model(REFERENCE_DIR, device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(source), config=model.config)
    torch.manual_seed(0)
    added = _as_tokens(model, tokenizer, _split_tags(tokenizer, answer + loop))
    try:
        successors = _successors(tokenizer, answer, loop)
    except ValueError:
        if not loop:
            raise
        # This tokenizer spells the loop with a token that comes back with another successor
        # (a lone space, say): the whole loop becomes one token following itself.
        added = _as_tokens(model, tokenizer, [loop]) or added
        successors = _successors(tokenizer, answer, loop)
    weights = model.state_dict()
    for key in weights:
        if key.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            weights[key] = torch.zeros_like(weights[key])
    decoder = model.model.language_model
    head = torch.zeros_like(decoder.embed_tokens.weight)
    with torch.no_grad():
        for token, following in successors.items():
            hidden = decoder.norm(decoder.embed_tokens.weight[token])
            head[following] += 10 * hidden / hidden.norm()
    weights["lm_head.weight"] = head

    config = model.config
    config.tie_word_embeddings = False
    rigged = FO1ForConditionalGeneration(config)
    rigged.load_state_dict(weights)
    save_checkpoint(rigged, folder, copy_from=source)
    if added:
        tokenizer.save_pretrained(folder)
    return folder
