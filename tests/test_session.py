"""Streaming, cancelling and limits of generation, on checkpoints rigged to give known answers."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch
from PIL import Image

from fo1_core import checkpoint, decode_attention, model_thread, recorded_step
from fo1_core.errors import FO1Error
from fo1_core.session import FO1Pipeline, Generation, load
from tests.conftest import RIGGED_ANSWER as ANSWER
from tests.conftest import TEST_DEVICE

IMAGE = Image.new("RGB", (160, 120), (40, 90, 200))
BOXES = [[10, 10, 60, 60], [70, 20, 150, 100], [5, 70, 50, 115]]


@pytest.fixture(scope="module")
def answering(answering_checkpoint: Path) -> FO1Pipeline:
    return load(answering_checkpoint, device=TEST_DEVICE)


@pytest.fixture(scope="module", params=["dynamic", "compiled"])
def endless(endless_checkpoint: Path, request: pytest.FixtureRequest) -> FO1Pipeline:
    return load(endless_checkpoint, device=TEST_DEVICE, decode=request.param)


def test_rigged_answer_is_generated_and_ends_at_im_end(answering: FO1Pipeline) -> None:
    result = answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    assert result.text == ANSWER + "<|im_end|>"
    assert result.stop_reason == "eos"
    assert result.timings["first_token_s"] > 0


def test_stream_yields_pieces_that_add_up_to_the_answer(answering: FO1Pipeline) -> None:
    request = answering.prepare(IMAGE, BOXES, "OD_template", "red circle")
    *pieces, result = answering.stream(request)
    assert isinstance(result, Generation)
    assert len(pieces) >= 5  # token by token, not one block at the end
    assert "".join(pieces).strip() == result.text
    assert "<region2>" in "".join(pieces)  # region tokens are kept in the stream


def test_max_new_tokens_bounds_the_answer(endless: FO1Pipeline) -> None:
    result = endless.ask(IMAGE, BOXES, "OD_template", "red circle", max_new_tokens=40)
    assert len(result.token_ids) == 40
    assert result.stop_reason == "max_new_tokens"
    assert result.text.startswith(ANSWER + " many regions many")


def test_cancel_stops_generation_between_tokens(endless: FO1Pipeline) -> None:
    request = endless.prepare(IMAGE, BOXES, "OD_template", "red circle")
    cancel = threading.Event()
    received = []
    for event in endless.stream(request, max_new_tokens=5000, cancel=cancel):
        if isinstance(event, Generation):
            result = event
        else:
            received.append(event)
            if len(received) == 20:
                cancel.set()
    assert result.stop_reason == "cancelled"
    # The model thread runs ahead of this reader by however many tokens a busy machine lets
    # it: far fewer than the 5000 allowed all the same.
    assert len(result.token_ids) < 200
    again = endless.ask(IMAGE, BOXES, "OD_template", "red circle", max_new_tokens=40)
    assert again.stop_reason == "max_new_tokens"
    assert again.text.startswith(ANSWER + " many regions many")


def test_stop_with_the_last_allowed_token_reads_as_the_token_limit(endless: FO1Pipeline) -> None:
    request = endless.prepare(IMAGE, BOXES, "OD_template", "red circle")
    cancel = threading.Event()
    for event in endless.stream(request, max_new_tokens=1, cancel=cancel):
        cancel.set()  # with the one token allowed
        result = event
    assert len(result.token_ids) == 1 and result.stop_reason == "max_new_tokens"


def test_a_question_stopped_before_its_turn_encodes_nothing(endless: FO1Pipeline) -> None:
    """Stop (or a new image) while the question waits behind another: no image encoding, no
    prefill, no token."""
    endless.encoder.clear()
    request = endless.prepare(IMAGE, BOXES, "OD_template", "red circle")
    cancel = threading.Event()
    cancel.set()
    *pieces, result = endless.stream(request, max_new_tokens=50, cancel=cancel)
    assert pieces == [] and result.token_ids == [] and result.stop_reason == "cancelled"
    assert endless.encoder.images.stats().entries == 0


def test_decode_speed_runs_from_first_to_last_token(
    endless: FO1Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeping the turn for a follow-up comes after the last token: it is not decoding time."""
    endless.ask(IMAGE, BOXES, "OD_template", "red circle", max_new_tokens=20)  # compiled: warm
    keep_turn = endless.encoder.keep_turn

    def slow_keep_turn(*args, **kwargs):
        time.sleep(0.5)
        return keep_turn(*args, **kwargs)

    monkeypatch.setattr(endless.encoder, "keep_turn", slow_keep_turn)
    result = endless.ask(IMAGE, BOXES, "OD_template", "red circle", max_new_tokens=20)
    timings = result.timings
    assert len(result.token_ids) == 20 and timings["total_s"] > 0.5
    # The 19 gaps between tokens fit in what is left of the total without the slow step; with it
    # counted they would not (a busy machine slows decoding, not this comparison).
    decoding_s = 19 / timings["decode_tokens_per_s"]
    assert decoding_s < timings["total_s"] - timings["first_token_s"] - 0.5


def test_answer_does_not_depend_on_a_prior_request(answering: FO1Pipeline) -> None:
    first = answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    second = answering.ask(Image.new("RGB", (64, 300)), [], "Grounding_template")
    third = answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    assert first.token_ids == third.token_ids
    assert second.text == ANSWER + "<|im_end|>"


def generation_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "fo1-generate"}


def test_every_question_of_every_pipeline_runs_on_one_generation_thread(
    answering_checkpoint: Path,
) -> None:
    """CUDA graphs recorded by a compiled decode step belong to the thread that recorded them."""
    pipelines = [load(answering_checkpoint, device=TEST_DEVICE) for _ in range(2)]
    request = pipelines[0].prepare(IMAGE, BOXES, "OD_template", "red circle")
    for pipeline in pipelines * 2:
        assert pipeline.generate(request).text == ANSWER + "<|im_end|>"
    for _ in pipelines[0].stream(request):
        break  # a reader that leaves early stops the job, not the thread
    assert pipelines[1].generate(request).text == ANSWER + "<|im_end|>"
    assert len(generation_threads()) == 1


def test_a_failing_job_does_not_strand_the_jobs_queued_behind_it(answering: FO1Pipeline) -> None:
    def failing() -> None:
        raise RuntimeError("a job that reports nothing")

    release = threading.Event()
    model_thread.submit(release.wait)
    model_thread.submit(failing)
    behind = model_thread.submit(lambda: None)
    release.set()
    assert behind.wait(10)
    assert answering.idle()


def test_warm_up_compiles_before_the_first_user_and_leaves_no_cached_image(
    answering_checkpoint: Path,
) -> None:
    pipeline = load(answering_checkpoint, device=TEST_DEVICE, decode="compiled")
    warm = pipeline.warm_up()
    assert (warm.decode, warm.error) == ("compiled", None)
    assert pipeline.encoder.images.stats().entries == 0
    assert pipeline.ask(IMAGE, BOXES, "OD_template", "red circle").text == ANSWER + "<|im_end|>"


def test_warm_up_empties_the_caches_only_between_questions(
    answering_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load(answering_checkpoint, device=TEST_DEVICE)
    clear, cleared_holding_the_lock = pipeline.encoder.clear, []

    def recorded_clear() -> None:
        cleared_holding_the_lock.append(pipeline._model_lock.locked())
        clear()

    monkeypatch.setattr(pipeline.encoder, "clear", recorded_clear)
    pipeline.warm_up()
    assert cleared_holding_the_lock == [True]


def test_warm_up_falls_back_to_plain_decoding_when_compiling_fails(
    answering_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    pipeline = load(answering_checkpoint, device=TEST_DEVICE, decode="compiled")
    warm = pipeline.warm_up()
    assert warm.decode == pipeline.decode == "dynamic"
    assert "no C compiler found" in warm.error
    assert pipeline.ask(IMAGE, BOXES, "OD_template", "red circle").text == ANSWER + "<|im_end|>"


def test_warm_up_records_the_steps_or_falls_back_to_unrecorded_ones(
    answering_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load(answering_checkpoint, device=TEST_DEVICE, decode="graphed")
    warm, graphed = pipeline.warm_up(), pipeline.model.graphed_forward
    assert (warm.decode, graphed.recordings) == ("graphed", 2)  # a decode step, a prefill chunk
    monkeypatch.setattr(recorded_step, "MAX_RECORDINGS", 0)  # no recording can be kept
    pipeline = load(answering_checkpoint, device=TEST_DEVICE, decode="graphed")
    warm = pipeline.warm_up()
    assert warm.decode == pipeline.decode == "static"
    assert "change layout" in warm.error
    assert pipeline.model.graphed_forward is None
    assert pipeline.ask(IMAGE, BOXES, "OD_template", "red circle").text == ANSWER + "<|im_end|>"


def test_fixed_size_cache_decoding_uses_sdpa_where_flash_attention_would_be_the_default(
    answering_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU with flash-attn installed, dynamic decoding gets flash-attention; the static
    and compiled decoders get SDPA, which compiles into one graph, with grouped decode steps."""
    monkeypatch.setattr(checkpoint, "default_attention", lambda *_: "flash_attention_2")
    for decode in ("static", "compiled", "graphed"):
        pipeline = load(answering_checkpoint, device=TEST_DEVICE, decode=decode)
        assert pipeline.model.config._attn_implementation == "sdpa"
        assert pipeline.model.config.text_config._attn_implementation == decode_attention.NAME
    explicit = load(answering_checkpoint, TEST_DEVICE, attn_implementation="eager", decode="static")
    assert explicit.model.config._attn_implementation == "eager"


def test_a_pipeline_on_a_gpu_answers_without_cudnn_attention(answering: FO1Pipeline) -> None:
    """cuDNN would build an attention plan for every new prompt length and cache length; on the
    CPU, where there is no cuDNN, loading leaves PyTorch's process-wide switch as it was."""
    on_gpu = answering.model.device.type == "cuda"
    assert answering.ask(IMAGE, BOXES, "OD_template", "red circle").stop_reason == "eos"
    assert torch.backends.cuda.cudnn_sdp_enabled() is not on_gpu


def test_unknown_decode_mode_is_refused_by_name(answering_checkpoint: Path) -> None:
    with pytest.raises(FO1Error, match="'fast'.*dynamic, static, compiled, graphed"):
        load(answering_checkpoint, device=TEST_DEVICE, decode="fast")


def test_a_dropped_pipeline_frees_its_model(answering_checkpoint: Path) -> None:
    """The generation thread outlives the pipelines it served, but holds none of them."""
    pipeline = load(answering_checkpoint, device=TEST_DEVICE)
    assert pipeline.ask(IMAGE, BOXES, "OD_template", "red circle").stop_reason == "eos"
    model = weakref.ref(pipeline.model)
    del pipeline
    gc.collect()
    assert model() is None
    assert len(generation_threads()) == 1


OUT_OF_MEMORY = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class _Fails:
    """Wraps a model method: the listed calls (1-based) raise `error` (CUDA's out-of-memory)."""

    def __init__(self, method, failing: set[int], error: Exception = OUT_OF_MEMORY) -> None:
        self.method, self.failing, self.error, self.calls = method, failing, error, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls in self.failing:
            raise self.error
        return self.method(*args, **kwargs)


def test_out_of_memory_before_the_answer_empties_the_caches_and_answers(
    answering: FO1Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    answering.ask(Image.new("RGB", (90, 90), (200, 30, 30)), BOXES[:1], "OD_template", "cup")
    assert answering.encoder.images.stats().entries >= 1
    vision = answering.model.model
    monkeypatch.setattr(vision, "encode_image", _Fails(vision.encode_image, {1}))
    new_image = Image.new("RGB", (120, 100), (10, 200, 120))  # not in the caches yet
    result = answering.ask(new_image, BOXES, "OD_template", "red circle")
    assert vision.encode_image.calls == 2
    assert result.text == ANSWER + "<|im_end|>"
    assert answering.encoder.images.stats().entries == 1  # the earlier image was dropped
    assert "Out of GPU memory; emptied the caches and retrying" in caplog.text


def test_out_of_memory_twice_says_what_to_try_and_the_next_question_is_answered(
    answering: FO1Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering.encoder.clear()
    vision = answering.model.model
    monkeypatch.setattr(vision, "encode_image", _Fails(vision.encode_image, {1, 2}))
    with pytest.raises(FO1Error, match="ran out of memory.*smaller image, fewer boxes"):
        answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    assert answering.ask(IMAGE, BOXES, "OD_template", "red circle").text == ANSWER + "<|im_end|>"


def test_out_of_memory_mid_answer_is_not_retried(
    answering: FO1Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = answering.model.lm_head
    monkeypatch.setattr(head, "forward", _Fails(head.forward, {4}))
    request = answering.prepare(IMAGE, BOXES, "OD_template", "red circle")
    pieces = []
    with pytest.raises(FO1Error, match="ran out of memory"):
        for piece in answering.stream(request):
            pieces.append(piece)
    assert 1 <= len(pieces) <= 3  # what was streamed stays; nothing is streamed twice
    assert head.forward.calls == 4


def test_out_of_memory_in_the_questions_prefill_answers_from_the_prompt_again(
    answering: FO1Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    # The first forward pass of generate(), which has already handed the prompt to the streamer.
    head = answering.model.lm_head
    monkeypatch.setattr(head, "forward", _Fails(head.forward, {1}))
    pieces = list(answering.stream(answering.prepare(IMAGE, BOXES, "OD_template", "red circle")))
    assert "".join(pieces[:-1]) == pieces[-1].text == ANSWER + "<|im_end|>"


def test_out_of_memory_inside_a_layer_frees_the_caches_for_the_next_question(
    answering: FO1Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    # The first layer's keys of a decode step are cached by then, the later layers' not: a kept
    # prompt written to halfway must not be reused.
    mlp = answering.model.model.language_model.layers[0].mlp
    monkeypatch.setattr(mlp, "forward", _Fails(mlp.forward, {4}))
    with pytest.raises(FO1Error, match="ran out of memory.*were dropped"):
        answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    monkeypatch.undo()
    for cache in (answering.encoder.images, answering.encoder.prefixes, answering.encoder.turns):
        assert cache.stats().entries == 0
    assert answering.ask(IMAGE, BOXES, "OD_template", "red circle").text == ANSWER + "<|im_end|>"


def test_a_failure_inside_a_layer_leaves_the_kept_prompts_intact(
    answering: FO1Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other failures than memory keep the caches: what a failed step wrote halfway must not
    be in the prompts kept for the next question."""
    answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    # The first layer's keys of a decode step are cached by then, the later layers' not.
    mlp = answering.model.model.language_model.layers[0].mlp
    monkeypatch.setattr(mlp, "forward", _Fails(mlp.forward, {4}, RuntimeError("a kernel failed")))
    with pytest.raises(Exception, match="a kernel failed"):
        answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    monkeypatch.undo()
    assert answering.encoder.prefixes.stats().entries > 0
    for cache in (answering.encoder.prefixes, answering.encoder.turns):
        for key in cache.keys():
            kept = cache.get(key)
            assert {layer.keys.shape[-2] for layer in kept.kv.layers} == {kept.length}
    assert answering.ask(IMAGE, BOXES, "OD_template", "red circle").text == ANSWER + "<|im_end|>"


def test_kept_prompts_hold_only_the_memory_they_are_counted_for(answering: FO1Pipeline) -> None:
    answering.encoder.clear()
    answering.ask(IMAGE, BOXES, "OD_template", "red circle")
    answering.ask(IMAGE, BOXES, "OD_template", "red circle")  # continues the kept turn
    for cache in (answering.encoder.prefixes, answering.encoder.turns):
        for key in cache.keys():
            for layer in cache.get(key).kv.layers:
                assert layer.keys.untyped_storage().nbytes() == layer.keys.nbytes


def test_loading_limits_the_kernels_kept_for_each_shape_unless_told_otherwise(
    answering_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI, an evaluation and a Python program load through here, not only the app: each
    # would otherwise keep oneDNN's 1 024 kernels per process, growing with every image size.
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "4")  # a user's own setting stays
    load(answering_checkpoint, "cpu", torch.float32)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "128"
    assert os.environ["LRU_CACHE_CAPACITY"] == "4"
