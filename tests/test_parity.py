"""Parity with the official implementation on every golden case of the reference fixture, and of
the variant fixtures in `tests/fixtures/fo1_variants/` (config options the published model
leaves at their defaults, run through the official code the same way).

Tolerances are those of the fixture README: ids, prompt and positions exact; pixels ≤ 1e-5;
features relative to the reference's magnitude; logits ≤ 1e-2; free-running greedy ids exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fo1_core.graphed_forward import padded_length
from fo1_core.session import FO1Pipeline, Request, load
from fo1_core.templates import FREE_PROMPT, REGION_REFERENCE, region_token
from tests.conftest import REFERENCE_DIR, TEST_DEVICE, golden_cases, spy_on_graphed_calls

CASES = golden_cases()
VARIANTS_DIR = Path(__file__).parent / "fixtures" / "fo1_variants"
FIXTURES = [REFERENCE_DIR, *sorted(p for p in VARIANTS_DIR.iterdir() if p.is_dir())]
EVERY_CASE = [
    pytest.param(root, name, id=f"{root.name}-{name}")
    for root in FIXTURES
    for name in golden_cases(root)
]
"""(fixture folder, case) for the reference fixture's cases and every variant's."""


Asked = tuple[FO1Pipeline, Request, dict, dict]


@pytest.fixture(scope="module")
def golden(pipeline: FO1Pipeline) -> Callable[[Path, str], Asked]:
    """A fixture folder's case asked of that folder's pipeline (each loaded once): the pipeline,
    the request, the case and its tensors."""
    loaded = {REFERENCE_DIR: pipeline}

    def asked(root: Path, name: str) -> Asked:
        if root not in loaded:
            loaded[root] = load(root, TEST_DEVICE, torch.float32, attn_implementation="eager")
        return loaded[root], *_request(loaded[root], name, root)

    return asked


def _case(name: str, root: Path = REFERENCE_DIR) -> tuple[dict, dict[str, torch.Tensor]]:
    folder = root / "golden" / name
    case = json.loads((folder / "case.json").read_text())
    return case, load_file(folder / "tensors.safetensors")


def question(name: str, case: dict, root: Path = REFERENCE_DIR) -> tuple[Path, str, str]:
    """The golden case's image, task and text, as `FO1Pipeline.prepare` takes them."""
    # A case either fills a task template or sends its user text as it is.
    task = case["task_template"] or FREE_PROMPT
    text = case["template_fill"] or "" if case["task_template"] else case["user_text"]
    return root / "golden" / name / case["image"], task, text


def _request(
    pipeline: FO1Pipeline, name: str, root: Path = REFERENCE_DIR
) -> tuple[Request, dict, dict]:
    case, tensors = _case(name, root)
    image, task, text = question(name, case, root)
    request = pipeline.prepare(image, case["boxes_xyxy_original"], task, text)
    return request, case, tensors


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    assert actual.shape == expected.shape
    diff = (actual.float().cpu() - expected.float()).abs().max().item()
    assert diff <= atol, f"max abs diff {diff:.3g} > {atol:.3g}"


def _relative(expected: torch.Tensor, factor: float) -> float:
    return factor * expected.abs().max().item()


@pytest.mark.parametrize(("root", "name"), EVERY_CASE)
def test_prompt_and_ids_exact(golden: Callable[[Path, str], Asked], root: Path, name: str) -> None:
    _, request, case, _ = golden(root, name)
    assert request.user_text == case["user_text"]
    assert request.prompt == case["prompt"]
    assert request.prompt_ids == case["input_ids"]


@pytest.mark.parametrize(("root", "name"), EVERY_CASE)
def test_preprocessing(golden: Callable[[Path, str], Asked], root: Path, name: str) -> None:
    pipeline, request, case, tensors = golden(root, name)
    vision = request.vision
    assert vision.image_grid_thw[0].tolist() == case["image_grid_thw"]
    assert list(vision.aux_pixel_values.shape[-2:]) == case["aux_input_hw"]
    _assert_close(vision.pixel_values, tensors["pixel_values"], 1e-5)
    if case["boxes_xyxy_original"]:
        _assert_close(vision.aux_boxes, tensors["aux_boxes"], 1e-4)
        _assert_close(vision.vt_boxes, tensors["vt_boxes"], 1e-4)
        model = pipeline.model.model
        with torch.inference_mode():
            image = model.encode_image(
                vision.pixel_values.to(TEST_DEVICE), vision.image_grid_thw.to(TEST_DEVICE)
            )
            aux_maps = model.encode_aux(vision.aux_pixel_values.to(TEST_DEVICE))
            normalized = model.region_encoder.position_boxes(
                aux_maps,
                model.region_pyramid(image),
                vision.aux_boxes.to(TEST_DEVICE),
                vision.vt_boxes.to(TEST_DEVICE),
            )
        _assert_close(normalized, tensors["pos_embed_boxes_cxcywh"], 1e-4)


@pytest.mark.parametrize(("root", "name"), EVERY_CASE)
def test_vision_and_region_features(
    golden: Callable[[Path, str], Asked], root: Path, name: str
) -> None:
    pipeline, request, case, tensors = golden(root, name)
    model, vision = pipeline.model.model, request.vision
    pixels, grid = vision.pixel_values.to(TEST_DEVICE), vision.image_grid_thw.to(TEST_DEVICE)
    aux_boxes, vt_boxes = vision.aux_boxes.to(TEST_DEVICE), vision.vt_boxes.to(TEST_DEVICE)
    with torch.inference_mode():
        image = model.encode_image(pixels, grid)
        expected = tensors["image_features"]
        _assert_close(image.embeds, expected, _relative(expected, 1e-4))
        expected = tensors["vt_last_fullatt_map"]
        _assert_close(image.vit_maps[-1], expected, _relative(expected, 1e-4))
        if not case["boxes_xyxy_original"]:
            return
        aux_maps = model.encode_aux(vision.aux_pixel_values.to(TEST_DEVICE))
        vt_maps = model.region_pyramid(image)
        pre = model.region_encoder(aux_maps, vt_maps, aux_boxes, vt_boxes)
        expected = tensors["region_feat_pre_proj"]
        _assert_close(pre, expected, _relative(expected, 1e-3))
        regions = model.encode_regions(vt_maps, aux_maps, aux_boxes, vt_boxes)
        expected = tensors["region_feat"]
        _assert_close(regions, expected, _relative(expected, 1e-3))


def test_the_deepest_full_attention_block_is_tapped_whatever_the_listed_order(
    pipeline: FO1Pipeline,
) -> None:
    request, _, tensors = _request(pipeline, CASES[0])
    vision = pipeline.model.config.vision_config
    listed = list(vision.fullatt_block_indexes)
    vision.fullatt_block_indexes[:] = sorted(listed, reverse=True)
    try:
        with torch.inference_mode():
            image = pipeline.model.model.encode_image(
                request.vision.pixel_values.to(TEST_DEVICE),
                request.vision.image_grid_thw.to(TEST_DEVICE),
            )
    finally:
        vision.fullatt_block_indexes[:] = listed
    expected = tensors["vt_last_fullatt_map"]
    _assert_close(image.vit_maps[-1], expected, _relative(expected, 1e-4))


def _teacher_forced(pipeline: FO1Pipeline, request: Request, generated: list[int]):
    """One forward over prompt + generated ids, capturing the decoder's inputs."""
    inputs = pipeline.model_inputs(request)
    extra = torch.tensor([generated[:-1]], dtype=torch.long, device=TEST_DEVICE)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["mm_token_type_ids"] = torch.cat(
        [inputs["mm_token_type_ids"], torch.zeros_like(extra, dtype=torch.int32)], dim=1
    )
    seen = {}

    def capture(_module, _args, kwargs):
        seen.update(kwargs)

    decoder = pipeline.model.model.language_model
    hook = decoder.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.inference_mode():
            pipeline.model.model.rope_deltas = None
            logits = pipeline.model(**inputs, use_cache=False).logits[0]
    finally:
        hook.remove()
    return logits, seen["inputs_embeds"][0], seen["position_ids"]


@pytest.mark.parametrize(("root", "name"), EVERY_CASE)
def test_embeddings_positions_and_logits(
    golden: Callable[[Path, str], Asked], root: Path, name: str
) -> None:
    pipeline, request, case, tensors = golden(root, name)
    generated = case["generated_ids"]
    logits, embeds, positions = _teacher_forced(pipeline, request, generated)
    prompt_len = case["inputs_embeds_shape"][1]

    expected = tensors["inputs_embeds"]
    _assert_close(embeds[:prompt_len], expected, _relative(expected, 1e-3))
    assert positions.shape[0] == 3
    assert positions[:, 0, :prompt_len].tolist() == case["position_ids"]
    decode_first = positions[:, 0, prompt_len] if len(generated) > 1 else None
    if decode_first is not None:
        assert decode_first.tolist() == [case["decode_position_first"]] * 3
    assert int(positions.max()) + 1 - len(positions[0, 0]) == case["rope_delta"]

    _assert_close(logits[prompt_len - 1], tensors["prefill_last_logits"], 1e-2)
    steps = logits[prompt_len - 1 : prompt_len - 1 + len(generated)]
    _assert_close(steps, tensors["step_logits"], 1e-2)


@pytest.mark.parametrize("use_cache", [False, True], ids=["uncached", "cached"])
@pytest.mark.parametrize(("root", "name"), EVERY_CASE)
def test_free_running_greedy_ids_exact(
    golden: Callable[[Path, str], Asked], root: Path, name: str, use_cache: bool
) -> None:
    pipeline, request, case, _ = golden(root, name)
    max_new_tokens = case["generation"]["max_new_tokens"]
    result = pipeline.generate(request, max_new_tokens, use_cache=use_cache)
    assert result.token_ids == case["generated_ids"]
    # The fixture names the end-of-turn stop in its own words; ours is "eos".
    expected_reason = "max_new_tokens" if case["stop_reason"] == "max_new_tokens" else "eos"
    assert result.stop_reason == expected_reason
    assert result.text == case["generated_text"].strip()


@pytest.mark.parametrize(("root", "name"), EVERY_CASE)
def test_each_region_named_has_the_probability_the_official_model_gave_it(
    golden: Callable[[Path, str], Asked], root: Path, name: str
) -> None:
    """The confidence of a region is the product of the official step probabilities of the
    tokens that spell its first reference (one token, or several where the tokenizer splits
    region tags)."""
    pipeline, request, case, tensors = golden(root, name)
    result = pipeline.generate(request, case["generation"]["max_new_tokens"])
    generated = case["generated_ids"]
    chosen = tensors["step_logits"].float().softmax(-1)[range(len(generated)), generated]
    expected = {}
    for match in REGION_REFERENCE.finditer(case["generated_text"]):
        index = int(match["index"])
        spelt = pipeline.tokenizer.encode(region_token(index), add_special_tokens=False)
        at = next(at for at in range(len(generated)) if generated[at : at + len(spelt)] == spelt)
        expected.setdefault(index, math.prod(chosen[at : at + len(spelt)].tolist()))
    assert result.region_confidence.keys() == expected.keys()
    for index, probability in expected.items():
        assert math.isclose(result.region_confidence[index], probability, rel_tol=2e-2)


@pytest.fixture(scope="module", params=["static", "compiled", "graphed"])
def static_pipeline(request: pytest.FixtureRequest) -> FO1Pipeline:
    """Decoding with a fixed-size KV cache: plain, `torch.compile`d (forced on the CPU) and
    recorded as a CUDA graph (on a GPU; through the same recorded inputs on the CPU), with the
    attention these modes get by default (SDPA, grouped single-token decode steps)."""
    return load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode=request.param)


@pytest.mark.parametrize("use_cache", [False, True], ids=["uncached", "cached"])
@pytest.mark.parametrize("name", CASES)
def test_static_cache_decoding_gives_the_golden_ids(
    static_pipeline: FO1Pipeline, name: str, use_cache: bool
) -> None:
    request, case, _ = _request(static_pipeline, name)
    for _ in range(2):  # the second question reuses the refilled static cache
        result = static_pipeline.generate(
            request, case["generation"]["max_new_tokens"], use_cache=use_cache
        )
        assert result.token_ids == case["generated_ids"]


def _compiled_graphs_answering_every_case(pipeline: FO1Pipeline) -> dict:
    """Dynamo's counters after `pipeline` gave every golden case its golden ids."""
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    for name in CASES:
        request, case, _ = _request(pipeline, name)
        result = pipeline.generate(request, case["generation"]["max_new_tokens"])
        assert result.token_ids == case["generated_ids"]
    return counters


def test_compiled_decoding_compiles_once_for_every_question() -> None:
    """Questions of different lengths reuse one compiled decode step: no recompilation."""
    pipeline = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="compiled")
    counters = _compiled_graphs_answering_every_case(pipeline)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]


def test_recorded_decoding_records_each_step_shape_once() -> None:
    """Questions of different lengths replay one recorded decode step, and prefill their tokens
    through one recording per padded length. The uncached path prefills unrecorded and passes
    decode positions of another shape, so it gets one more recording. None is made twice."""
    pipeline = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="graphed")
    graphed, calls = spy_on_graphed_calls(pipeline)
    buckets: set[int | None] = set()
    for use_cache, decode_shapes in ((True, 1), (False, 2), (True, 2)):
        for name in CASES:
            request, case, _ = _request(pipeline, name)
            result = pipeline.generate(request, case["generation"]["max_new_tokens"], use_cache)
            assert result.token_ids == case["generated_ids"]
        lengths = (call["input_ids"].shape[1] for call in calls)
        buckets |= {padded_length(tokens) for tokens in lengths if tokens > 1}
        calls.clear()
        assert (graphed.recordings, graphed.failed) == (decode_shapes + len(buckets), None)
    assert buckets and None not in buckets  # every question's tokens went through a recording


@pytest.mark.parametrize("decode", ["compiled", "graphed"])
def test_requests_longer_than_the_static_cache_decode_with_a_growing_one(decode: str) -> None:
    """Neither compiled nor recorded: those steps work on the fixed-size cache only."""
    pipeline = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode=decode, static_cache_tokens=8)
    counters = _compiled_graphs_answering_every_case(pipeline)
    assert counters["stats"]["unique_graphs"] == 0  # nothing was compiled for them
    if decode == "graphed":
        assert pipeline.model.graphed_forward.recordings == 0  # nor recorded
