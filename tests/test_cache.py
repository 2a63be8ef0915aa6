"""Follow-up questions reuse image features, region embeddings and the prompt prefix's KV cache,
and give exactly what the uncached path gives."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fo1_core import session
from fo1_core.answers import CLASS_NAME_KEY, REGION_INDEX_KEY
from fo1_core.cache import LRUCache
from fo1_core.encoding import Reused
from fo1_core.errors import FO1Error
from fo1_core.processing import num_image_tokens
from fo1_core.prompting import image_prefix_length
from fo1_core.session import Conversation, FO1Pipeline, load
from fo1_core.templates import DEFAULT_MAX_NEW_TOKENS, TASKS
from tests.conftest import REFERENCE_DIR, RIGGED_ANSWER, TEST_DEVICE
from tests.test_parity import CASES, _assert_close, _request, question

IMAGE = Image.new("RGB", (200, 150), (30, 160, 90))
BOXES = [[10, 10, 80, 70], [90, 20, 190, 140], [5, 80, 60, 145]]


@pytest.fixture
def fresh(pipeline: FO1Pipeline) -> FO1Pipeline:
    pipeline.encoder.clear()
    return pipeline


@pytest.mark.parametrize("after_other_boxes", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_cached_prefix_reproduces_the_golden_logits(
    fresh: FO1Pipeline, name: str, after_other_boxes: bool
) -> None:
    """Prefill only the question on top of the cached prefix, teacher-forced with golden ids.

    `after_other_boxes`: the image was asked about with another first box before, so the prefix
    is built on that question's KV up to the image's end."""
    request, case, tensors = _request(fresh, name)
    generated = case["generated_ids"]
    with torch.inference_mode():
        if after_other_boxes:
            if not request.vision.num_regions:
                pytest.skip("no region line: the prefix ends with the image")
            image, task, text = question(name, case)
            boxes = [[0, 0, *Image.open(image).size], *case["boxes_xyxy_original"][1:]]
            earlier = fresh.prepare(image, boxes, task, text)
            fresh.encoder.prefix(earlier.prompt_ids, earlier.vision)
        prefix, reused = fresh.encoder.prefix(request.prompt_ids, request.vision)
        assert (reused.tokens > 0) == after_other_boxes and not reused.prefix
        ids = fresh.encoder.model_ids(request.prompt_ids, request.vision).input_ids
        answer = torch.tensor([generated[:-1]], device=ids.device)
        tail = torch.cat([ids[:, prefix.length :], answer], dim=1)
        fresh.model.model.rope_deltas = prefix.rope_deltas
        kv = fresh.encoder.copy_kv(prefix.kv, prefix.length)
        logits = fresh.model(input_ids=tail, past_key_values=kv, use_cache=True).logits
    asked = ids.shape[1] - prefix.length
    _assert_close(logits[0, asked - 1], tensors["prefill_last_logits"], 1e-2)
    _assert_close(logits[0, asked - 1 :], tensors["step_logits"], 1e-2)


@pytest.mark.parametrize("name", CASES)
def test_encoding_ahead_answers_the_golden_ids_from_the_cache(
    fresh: FO1Pipeline, name: str
) -> None:
    request, case, _ = _request(fresh, name)
    image, *_ = question(name, case)
    assert fresh.encode_ahead(image, case["boxes_xyxy_original"]).wait(60)
    prefixes = fresh.encoder.prefixes.stats()
    result = fresh.generate(request, case["generation"]["max_new_tokens"])
    assert result.reused.prefix  # the question prefilled its own words only
    assert fresh.encoder.prefixes.stats().hits == prefixes.hits + 1
    assert result.token_ids == case["generated_ids"]


def test_followup_question_reuses_everything_before_its_words(fresh: FO1Pipeline) -> None:
    first = fresh.prepare(IMAGE, BOXES, "OD_template", "red circle")
    assert fresh.generate(first, 6).reused == Reused()
    encoder = fresh.encoder
    assert encoder.images.stats().misses == 1 and encoder.prefixes.stats().misses == 1

    followup = fresh.prepare(IMAGE, BOXES, "OD_Counting_template", "blue squares")
    cached = fresh.generate(followup, 6)
    assert encoder.images.stats().misses == 1  # no second vision pass
    reused = cached.reused
    assert (reused.image, reused.regions, reused.prefix) == (True, 3, True) and reused.tokens > 0
    uncached = fresh.generate(followup, 6, use_cache=False)
    assert cached.token_ids == uncached.token_ids
    assert uncached.reused == Reused()


def test_moving_one_box_re_encodes_only_that_box_and_the_prompt_after_the_image(
    fresh: FO1Pipeline,
) -> None:
    fresh.generate(fresh.prepare(IMAGE, BOXES, "OD_template", "cat"), 2)
    regions = fresh.encoder.regions
    assert regions.stats().misses == 3
    moved = fresh.prepare(IMAGE, [BOXES[0], [100, 30, 180, 120], BOXES[2]], "OD_template", "cat")
    cached = fresh.generate(moved, 6)
    assert regions.stats().misses == 4 and regions.stats().hits == 2
    assert fresh.encoder.images.stats().hits == 1
    pyramids = fresh.encoder.pyramids.stats()  # SimpleFP ran for the first boxes only
    assert (pyramids.misses, pyramids.hits) == (1, 1)
    image_part = moved.prompt_ids[: image_prefix_length(moved.prompt_ids)]
    image_tokens = fresh.encoder.model_ids(image_part, moved.vision).input_ids.shape[1]
    assert cached.reused == Reused(True, 2, prefix=False, tokens=image_tokens)
    uncached = fresh.generate(moved, 6, use_cache=False)
    assert cached.token_ids == uncached.token_ids


def test_davit_runs_once_a_box_needs_it(fresh: FO1Pipeline) -> None:
    # Upstream runs no DaViT for a question without boxes; a box later on the same image runs
    # it once, and a further box reuses its stages.
    fresh.generate(fresh.prepare(IMAGE, [], "Grounding_template", "a cat"), 2)
    aux_maps = fresh.encoder.aux_maps
    assert aux_maps.stats().entries == 0 and fresh.encoder.images.stats().misses == 1
    fresh.generate(fresh.prepare(IMAGE, BOXES[:1], "OD_template", "cat"), 2)
    fresh.generate(fresh.prepare(IMAGE, BOXES, "OD_template", "cat"), 2)
    assert (aux_maps.stats().misses, aux_maps.stats().hits) == (1, 1)
    assert fresh.encoder.images.stats().misses == 1


def test_another_image_with_the_same_size_is_not_confused(fresh: FO1Pipeline) -> None:
    other = Image.new("RGB", IMAGE.size, (200, 40, 40))
    fresh.generate(fresh.prepare(IMAGE, BOXES, "OD_template", "cat"), 2)
    cached = fresh.generate(fresh.prepare(other, BOXES, "OD_template", "cat"), 6)
    uncached = fresh.generate(fresh.prepare(other, BOXES, "OD_template", "cat"), 6, use_cache=False)
    assert fresh.encoder.images.stats().misses == 2
    assert cached.token_ids == uncached.token_ids


def test_another_question_about_an_image_is_not_preprocessed_again(
    fresh: FO1Pipeline, tmp_path: Path
) -> None:
    """Resizing and normalising a 12-megapixel photo took 0.3 s of every question about it."""
    kept = fresh.preprocessor.tower_pixels
    kept.clear()
    path = tmp_path / "photo.png"
    IMAGE.save(path)
    first = fresh.prepare(path, BOXES, "OD_template", "cat").vision
    # The same picture however it comes (a file, a PIL image), about other boxes.
    moved = [[12, 10, 80, 70], *BOXES[1:]]
    again = fresh.prepare(IMAGE.copy(), moved, "OD_Counting_template", "cats").vision
    assert again.pixel_values is first.pixel_values and again.image_key == first.image_key
    assert (kept.stats().misses, kept.stats().hits) == (1, 1)
    kept.clear()
    computed = fresh.prepare(IMAGE, moved, "OD_Counting_template", "cats").vision
    for name in ("pixel_values", "image_grid_thw", "aux_pixel_values", "aux_boxes", "vt_boxes"):
        assert torch.equal(getattr(again, name), getattr(computed, name)), name
    # One pixel changed is another image.
    touched = IMAGE.copy()
    touched.putpixel((199, 149), (31, 160, 90))
    assert fresh.prepare(touched, BOXES, "OD_template", "cat").vision.image_key != first.image_key
    assert kept.stats().misses == 2


def test_lru_cache_respects_entry_and_byte_limits() -> None:
    cache: LRUCache[torch.Tensor] = LRUCache(max_entries=3, max_bytes=1000)
    for key in range(5):
        cache.put(key, torch.zeros(25))  # 100 bytes each
    assert cache.stats().entries == 3 and cache.get(0) is None and cache.get(4) is not None
    stats = cache.stats()
    assert 2 in cache and 0 not in cache
    assert cache.stats() == stats  # looking is not a use: no hit, no miss, no reordering
    assert cache.keys() == [2, 3, 4]  # least recently used first
    cache.put(5, torch.zeros(25))
    assert 2 not in cache  # still the least recently used
    cache.put("big", torch.zeros(200))  # 800 bytes: evicts until it fits
    assert cache.stats().bytes <= 1000
    cache.put("huge", torch.zeros(1000))  # larger than the whole cache: not kept
    assert cache.get("huge") is None


def test_conversation_feeds_earlier_turns_back(answering_checkpoint: Path) -> None:
    pipeline = load(answering_checkpoint, device="cpu")
    chat = Conversation(pipeline, IMAGE, BOXES)
    first = chat.ask("OD_template", "red circle")
    second = chat.ask("free", "And what is <region1>?")
    assert first.text == second.text == RIGGED_ANSWER + "<|im_end|>"
    assert chat.history == [
        (
            "Please detect red circle in this image. Answer the question with object indexes.",
            RIGGED_ANSWER,
        ),
        ("And what is <region1>?", RIGGED_ANSWER),
    ]
    request = pipeline.request(chat.vision, "free", "Thanks!", chat.history)
    assert request.prompt.count("<|im_start|>assistant\n") == 3
    assert request.prompt.count("<image>") == 1 and request.prompt.count("<regionfeat>") == 3
    assert pipeline.encoder.turns.stats().hits >= 1


def test_a_conversation_asks_a_task_that_takes_no_text_without_any(
    answering_checkpoint: Path,
) -> None:
    """As `FO1Pipeline.ask` does: `chat.ask("Grounding_template")` was a TypeError."""
    chat = Conversation(load(answering_checkpoint, device="cpu"), IMAGE, BOXES)
    assert chat.ask("Grounding_template").answer == RIGGED_ANSWER
    assert chat.history[0][0] == TASKS["Grounding_template"].render()


def test_an_answers_detections_come_from_its_request(answering_checkpoint: Path) -> None:
    """From Python, the way from an answer to boxes to draw and export: it took parsing, the
    boxes as the model read them and the confidences, found in three modules."""
    pipeline = load(answering_checkpoint, device="cpu")
    request = pipeline.prepare(IMAGE, BOXES, "OD_template", "red circle")
    generation = pipeline.generate(request)
    detections = request.detections(generation)
    assert detections.data[REGION_INDEX_KEY].tolist() == [0, 2]
    assert detections.data[CLASS_NAME_KEY].tolist() == ["red circle"] * 2
    np.testing.assert_array_equal(detections.xyxy, request.boxes[[0, 2]])
    assert detections.confidence.tolist() == pytest.approx(
        [generation.region_confidence[0], generation.region_confidence[2]]
    )
    chat = Conversation(pipeline, IMAGE, BOXES)  # a turn's, as a single question's
    turn = chat.ask("OD_template", "red circle")
    assert chat.detections(turn).data[REGION_INDEX_KEY].tolist() == [0, 2]


def test_a_long_conversation_leaves_out_its_earliest_turns_with_a_notice(
    answering_checkpoint: Path,
) -> None:
    """Past the checkpoint's length the earliest turns go, not the question ("The prompt is too
    long" until a new conversation)."""
    pipeline = load(answering_checkpoint, device="cpu")
    chat = Conversation(pipeline, IMAGE, BOXES)
    for task, text in QUESTIONS[:3]:
        chat.ask(task, text)
    image_tokens = num_image_tokens(chat.vision.image_grid_thw, pipeline.preprocessor.merge_size)
    with_last_turn = pipeline.request(chat.vision, "free", "Count them.", chat.history[-1:])
    length = len(with_last_turn.prompt_ids) + image_tokens - 1
    limit = limit_keeping(length)  # room for one earlier turn, and the answer
    pipeline.model.config.tokenizer_model_max_length = limit
    request = pipeline.request(chat.vision, "free", "Count them.", chat.history)
    assert request.left_out_turns == 2 and request.prompt == with_last_turn.prompt
    assert request.room == limit - length
    answer = chat.ask("free", "Count them.")
    assert answer.stop_reason == "eos" and len(chat.history) == 4
    assert answer.notices[-1].startswith(
        "The model did not see the earliest 2 turns of this conversation: they would have left "
        "the answer too little of the length the model reads."
    )
    with pytest.raises(FO1Error, match=f"too long for this model \\({limit - 1} tokens at most"):
        pipeline.request(chat.vision, "free", "Count them. " * 200, chat.history)


def limit_keeping(length: int) -> int:
    """The shortest model length that keeps a prompt of `length` positions whole, turns and
    all: the answer's room (`FO1Pipeline._fitted_prompt`) comes on top."""
    return next(
        n for n in itertools.count(length) if n - min(DEFAULT_MAX_NEW_TOKENS, n // 4) >= length
    )


def test_a_question_past_the_models_positions_is_refused_without_a_length_setting(
    answering_checkpoint: Path,
) -> None:
    """A checkpoint without `tokenizer_model_max_length` is bounded by its positions: such a
    question went on to the model, past what it was built to read."""
    pipeline = load(answering_checkpoint, device="cpu")
    config = pipeline.model.config
    assert config.tokenizer_model_max_length is None
    vision = pipeline.preprocessor(IMAGE, BOXES)
    short = pipeline.request(vision, "free", "Count them.")
    image_tokens = num_image_tokens(vision.image_grid_thw, pipeline.preprocessor.merge_size)
    positions = len(short.prompt_ids) + image_tokens  # one left for the answer
    config.text_config.max_position_embeddings = positions
    assert pipeline.request(vision, "free", "Count them.").prompt == short.prompt
    with pytest.raises(FO1Error, match=f"too long for this model \\({positions - 1} tokens at"):
        pipeline.request(vision, "free", "Count them all.")


def test_an_answer_stops_where_the_model_reads_no_further(endless_checkpoint: Path) -> None:
    """A question that fills all but a few of the model's positions: its answer ends there,
    saying why (it went on past them, where the model was never trained to read)."""
    pipeline = load(endless_checkpoint, device="cpu")
    vision = pipeline.preprocessor(IMAGE, BOXES)
    short = pipeline.request(vision, "free", "Count them.")
    length = (
        len(short.prompt_ids)
        + num_image_tokens(vision.image_grid_thw, pipeline.preprocessor.merge_size)
        - 1
    )
    pipeline.model.config.text_config.max_position_embeddings = length + 5
    request = pipeline.request(vision, "free", "Count them.")
    assert request.room == 5
    answer = pipeline.generate(request, max_new_tokens=64)
    assert len(answer.token_ids) == 5 and answer.stop_reason == "model_length"
    assert answer.notices[-1] == (
        "The answer was cut at 5 tokens: with the prompt, that is all the model reads (a "
        "shorter question leaves the answer more room)."
    )
    # Asked for fewer, it stops at those, as always.
    assert pipeline.generate(request, max_new_tokens=3).stop_reason == "max_new_tokens"
    # In a conversation, whose turns are kept while they leave the answer some room, a longer
    # answer is told that a new conversation has more.
    config = pipeline.model.config.text_config
    config.max_position_embeddings = 10**6
    turn = [("Hi.", "Hello.")]
    kept = pipeline.request(vision, "free", "Count them.", turn)
    config.max_position_embeddings = limit_keeping(10**6 - kept.room)
    request = pipeline.request(vision, "free", "Count them.", turn)
    assert request.kept_turns == 1
    answer = pipeline.generate(request, request.room + 1)
    assert len(answer.token_ids) == request.room and answer.notices[-1].endswith(
        "(a shorter question or a new conversation leaves the answer more room)."
    )


def test_fitting_a_long_conversation_tokenizes_it_a_few_times_only(
    answering_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One tokenization per turn left out took minutes per question after hundreds of turns.
    pipeline = load(answering_checkpoint, device="cpu")
    vision = pipeline.preprocessor(IMAGE, BOXES)
    history = [(f"What is <region{i % 2}>?", f"A red circle, number {i}.") for i in range(512)]
    with_last_turns = pipeline.request(vision, "free", "Count them.", history[-7:])
    image_tokens = num_image_tokens(vision.image_grid_thw, pipeline.preprocessor.merge_size)
    limit = limit_keeping(len(with_last_turns.prompt_ids) + image_tokens - 1)
    pipeline.model.config.tokenizer_model_max_length = limit
    tokenized = []
    tokenize = session.tokenize_prompt
    monkeypatch.setattr(
        session, "tokenize_prompt", lambda *args: tokenized.append(1) or tokenize(*args)
    )
    request = pipeline.request(vision, "free", "Count them.", history)
    assert request.left_out_turns == 512 - 7 and request.prompt == with_last_turns.prompt
    assert len(tokenized) <= 12  # log2(512) + the question alone, not 505


def test_a_stopped_turn_is_not_kept_in_the_conversation(answering_checkpoint: Path) -> None:
    pipeline = load(answering_checkpoint, device="cpu")
    chat = Conversation(pipeline, IMAGE, BOXES)
    chat.ask("OD_template", "red circle")
    cancel = threading.Event()
    events = []
    for event in chat.stream("free", "And what is <region1>?", cancel=cancel):
        events.append(event)
        cancel.set()  # Stop as the first words come in
    assert events[-1].stop_reason == "cancelled" and events[-1].answer != RIGGED_ANSWER
    assert [question for question, _ in chat.history] == [
        "Please detect red circle in this image. Answer the question with object indexes."
    ]


QUESTIONS = [
    ("OD_template", "red circle"),
    ("free", "And what is <region1>?"),
    ("free", "Why?"),
    ("free", "Count them."),
]


def _conversation_against_uncached(pipeline: FO1Pipeline, max_new_tokens: int) -> list:
    """Asks `QUESTIONS` as one conversation; each turn must give what the uncached path gives."""
    chat = Conversation(pipeline, IMAGE, BOXES)
    reused = []
    for task, text in QUESTIONS:
        request = pipeline.request(chat.vision, task, text, chat.history)
        expected = pipeline.generate(request, max_new_tokens, use_cache=False).token_ids
        answer = chat.ask(task, text, max_new_tokens)
        assert answer.token_ids == expected
        reused.append(answer.reused)
    return reused


@pytest.mark.parametrize("decode", ["dynamic", "static", "compiled", "graphed"])
def test_each_turn_starts_from_the_previous_one(answering_checkpoint: Path, decode: str) -> None:
    """The rigged answer reads back as the same tokens, so every turn after the first reuses all
    of the previous turn (its question and answer): the reused part grows turn by turn."""
    pipeline = load(answering_checkpoint, device="cpu", decode=decode)
    reused = _conversation_against_uncached(pipeline, 40)
    assert reused[0] == Reused()
    assert all(turn.prefix for turn in reused[1:])
    tokens = [turn.tokens for turn in reused]
    assert tokens[1] < tokens[2] < tokens[3]
    assert pipeline.encoder.turns.stats().hits == 3


def test_answers_read_back_as_other_tokens_still_reuse_what_they_share(
    fresh: FO1Pipeline,
) -> None:
    """A random model's answers are no tokenizer's own spelling, so the text written back into
    the prompt tokenises otherwise; the turn is reused up to where the tokens part."""
    reused = _conversation_against_uncached(fresh, 12)
    assert all(turn.prefix for turn in reused[1:])
    assert reused[1].tokens < reused[2].tokens < reused[3].tokens


@pytest.mark.parametrize("decode", ["dynamic", "static"])
def test_concurrent_questions_get_the_answers_they_get_alone(decode: str) -> None:
    """Visitors asking at once about the same and other images and boxes share the caches: each
    still gets the answer its question gets alone, uncached, whether it fills a cache entry or
    finds one another request is filling."""
    pipeline = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode=decode)
    images = [IMAGE, Image.new("RGB", (160, 200), (200, 40, 90))]
    questions = [
        (image, boxes, task, text)
        for image in images
        for boxes in (BOXES, BOXES[:2])
        for task, text in (("OD_template", "red circle"), ("free", "What is <region1>?"))
    ]
    alone = [
        pipeline.generate(pipeline.prepare(*question), 6, use_cache=False).token_ids
        for question in questions
    ]
    pipeline.encoder.clear()
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(2):  # the second round finds everything encoded
            answers = list(pool.map(lambda question: pipeline.ask(*question, 6), questions))
            assert [answer.token_ids for answer in answers] == alone
    assert all(answer.reused.image and answer.reused.tokens > 0 for answer in answers)


def test_a_conversation_keeps_one_turn_entry_per_turn() -> None:
    # The random model's answers read back as other tokens: the part of a turn that still holds
    # was kept as an entry of its own too, and the turn cache served half as many conversations.
    pipeline = load(REFERENCE_DIR, device="cpu")
    chat = Conversation(pipeline, IMAGE, BOXES)
    questions = ("What is <region0>?", "And <region1>?", "Which is larger?", "Why?")
    for turn, asked in enumerate(questions, start=1):
        request = pipeline.request(chat.vision, "free", asked, chat.history)
        *_, expected = pipeline.stream(request, 8, use_cache=False)
        assert chat.ask("free", asked, max_new_tokens=8).token_ids == expected.token_ids
        assert len(pipeline.encoder.turns.keys()) == turn
    assert pipeline.encoder.turns.stats().hits == len(questions) - 1
