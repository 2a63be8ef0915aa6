"""The `graphed` decoder's recorded prefill: padded chunks answer exactly as an unpadded prefill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from fo1_core import recorded_step
from fo1_core.errors import FO1Error
from fo1_core.graphed_forward import PREFILL_CHUNK, padded_length
from fo1_core.session import FO1Pipeline, load
from tests.conftest import REFERENCE_DIR, TEST_DEVICE, golden_cases, spy, spy_on_graphed_calls
from tests.test_parity import _request

IMAGE = Image.new("RGB", (160, 120), (40, 90, 200))
BOXES = [[10, 10, 60, 60], [70, 20, 150, 100]]


def test_a_long_question_prefills_in_several_recorded_chunks_with_the_same_answer() -> None:
    graphed = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="graphed")
    dynamic = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="dynamic")
    recorded, calls = spy_on_graphed_calls(graphed)
    for question in (
        "Which of <region0> and <region1> is red? ",
        "Is <region1> left of <region0>? ",
    ):
        question *= 50  # the second one continues the first one's cached prefix
        answer = graphed.ask(IMAGE, BOXES, "free", question, max_new_tokens=12)
        assert answer.token_ids == dynamic.ask(IMAGE, BOXES, "free", question, 12).token_ids
    chunks = [call["input_ids"].shape[1] for call in calls if call["input_ids"].shape[1] > 1]
    assert chunks.count(PREFILL_CHUNK) >= 4  # two questions of more than two chunks each
    assert recorded.failed is None
    assert recorded.recordings == 1 + len({padded_length(tokens) for tokens in chunks})


@pytest.mark.parametrize("name", golden_cases())
def test_a_request_that_fills_the_fixed_size_cache_leaves_no_room_for_padding(
    pipeline: FO1Pipeline, name: str
) -> None:
    """The padding of a recorded prefill needs free slots after the question; without them the
    chunk is prefilled as it comes, and the answer is the same."""
    request, case, _ = _request(pipeline, name)
    new_tokens = case["generation"]["max_new_tokens"]
    slots = pipeline.model_inputs(request)["input_ids"].shape[1] + new_tokens
    graphed = load(
        REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="graphed", static_cache_tokens=slots
    )
    for _ in range(2):
        assert graphed.generate(request, new_tokens).token_ids == case["generated_ids"]


def test_once_recording_has_failed_chunks_run_unpadded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorded_step, "MAX_RECORDINGS", 0)  # no recording can be kept
    pipeline = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="graphed")
    dynamic = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="dynamic")
    graphed, calls = spy_on_graphed_calls(pipeline)
    pipeline.ask(IMAGE, BOXES, "free", "Is <region1> red?", 4)  # the first call fails to record
    assert graphed.failed is not None
    graphed.forward, ran = spy(graphed.forward)
    calls.clear()
    answer = pipeline.ask(IMAGE, BOXES, "free", "Which box is the largest one?", 4)
    assert (
        answer.token_ids
        == dynamic.ask(IMAGE, BOXES, "free", "Which box is the largest one?", 4).token_ids
    )
    assert [call["input_ids"].shape for call in calls] == [call["input_ids"].shape for call in ran]
    assert any(call["input_ids"].shape[1] > 1 for call in ran)  # a prefill chunk, not padded


@pytest.mark.parametrize(
    "masks",
    [{"full_attention": None}, torch.ones(1, 40, dtype=torch.bool)],
    ids=["no mask", "2-D mask"],
)
def test_a_chunk_without_a_mask_row_per_token_runs_unpadded(masks) -> None:
    """Padding extends 4-D masks only; attention given none or a 2-D one (flash-attention)
    gets its chunks as they come."""
    pipeline = load(REFERENCE_DIR, TEST_DEVICE, torch.float32, decode="graphed")
    graphed, calls = spy_on_graphed_calls(pipeline)
    pipeline.ask(IMAGE, BOXES, "free", "Is <region1> red?", 2)
    pipeline.ask(IMAGE, BOXES, "free", "Which box is the largest one?", 2)
    chunk = next(call for call in calls[1:] if call["input_ids"].shape[1] > 1)
    recordings, ran = graphed.recordings, []
    graphed.forward = lambda **inputs: ran.append(inputs)
    graphed(**chunk | {"attention_mask": masks})
    assert [inputs["input_ids"] for inputs in ran] == [chunk["input_ids"]]
    assert graphed.recordings == recordings


def test_a_checkpoint_with_sliding_window_layers_is_refused_by_the_graphed_decoder(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "sliding"
    shutil.copytree(REFERENCE_DIR, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config |= {"use_sliding_window": True, "sliding_window": 16, "max_window_layers": 0}
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(FO1Error, match="sliding windows"):
        load(checkpoint, TEST_DEVICE, torch.float32, decode="graphed")
    load(checkpoint, TEST_DEVICE, torch.float32, decode="static")
