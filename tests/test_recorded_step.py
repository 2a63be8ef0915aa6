"""`RecordedStep`: every call computes on its own inputs, through as few recordings as it can."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from transformers import StaticCache

from fo1_core import recorded_step
from fo1_core.graphed_forward import pad_prompt, padded_length
from fo1_core.recorded_step import RecordedStep
from fo1_core.session import load
from tests.conftest import REFERENCE_DIR, TEST_DEVICE, spy_on_graphed_calls

IMAGE = Image.new("RGB", (160, 120), (40, 90, 200))
BOXES = [[10, 10, 60, 60], [70, 20, 150, 100]]


class Counter:
    """A step that adds its input into a running total, the way a decode step fills its cache."""

    def __init__(self, device: str) -> None:
        self.total = torch.zeros((), device=device)

    def __call__(self, x: torch.Tensor, masks: dict[str, torch.Tensor], scale: int) -> torch.Tensor:
        self.total.add_(x.sum() * masks["full"].mean())
        return self.total * scale


def test_each_call_computes_on_its_own_inputs_through_one_recording() -> None:
    counter = Counter(TEST_DEVICE)
    step = RecordedStep(counter)
    outputs = []
    for value in (1.0, 2.0, 5.0):
        x = torch.full((3,), value, device=TEST_DEVICE)
        outputs.append(step(x=x, masks={"full": torch.ones(3, device=TEST_DEVICE)}, scale=2).item())
    assert outputs == [6.0, 18.0, 48.0]
    assert counter.total.item() == 24.0  # each step ran once, the recorded first one too
    assert (step.recordings, step.failed) == (1, None)


@pytest.mark.parametrize(
    "changed",
    [
        {"scale": 3},  # a number the recording was made with
        {"x": torch.ones(4)},  # another shape
        {"masks": {"full": torch.ones(3), "sliding": torch.ones(3)}},  # another structure
    ],
)
def test_a_change_beyond_tensor_values_records_again(changed: dict) -> None:
    step = RecordedStep(Counter("cpu"))
    inputs = {"x": torch.ones(3), "masks": {"full": torch.ones(3)}, "scale": 2}
    assert step(**inputs).item() == 6.0
    assert step(**(inputs | changed)).item() > 6.0
    assert step.recordings == 2


def test_inputs_that_change_layout_at_every_step_run_unrecorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorded_step, "MAX_RECORDINGS", 2)
    counter = Counter("cpu")
    step = RecordedStep(counter)
    outputs = [step(x=torch.ones(3), masks={"full": torch.ones(3)}, scale=s) for s in range(1, 5)]
    assert [o.item() for o in outputs] == [3.0, 12.0, 27.0, 48.0]
    assert "change layout" in step.failed
    assert step.recordings == 0


@pytest.mark.skipif(TEST_DEVICE != "cuda", reason="recording needs CUDA (FO1_TEST_DEVICE=cuda)")
def test_a_step_that_cannot_be_recorded_runs_unrecorded_on_the_threads_stream() -> None:
    counter = Counter(TEST_DEVICE)

    def reads_back(**inputs) -> torch.Tensor:
        total = counter(**inputs)
        return total * (total.item() > 0)  # a host read, which a recording cannot hold

    step = RecordedStep(reads_back)
    stream = torch.cuda.current_stream()
    inputs = {"masks": {"full": torch.ones(3, device=TEST_DEVICE)}, "scale": 2}
    outputs = [step(x=torch.full((3,), v, device=TEST_DEVICE), **inputs).item() for v in (1, 2)]
    assert step.failed is not None and step.recordings == 0
    assert torch.cuda.current_stream() == stream
    assert outputs == [6.0, 18.0]


class HostTensors(TorchDispatchMode):
    """Names every operation that meets a tensor with values, on a run meant to be all `meta`."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        leaves = tree_flatten((args, kwargs, output))[0]
        if any(isinstance(x, torch.Tensor) and x.device.type != "meta" for x in leaves):
            self.found.append(str(func))
        return output


def _meta_like(x: object) -> object:
    return torch.empty_like(x, device="meta") if isinstance(x, torch.Tensor) else x


def _on_meta(step: Callable[[], torch.Tensor]) -> list[str]:
    with HostTensors() as mode:
        step()
    return mode.found


@pytest.mark.parametrize(
    "step, host_tensor",
    [
        (lambda: torch.ones(2, device="meta") * 2, False),
        (lambda: torch.ones(2, device="meta") + torch.tensor(1.0), True),  # a host scalar goes in
    ],
)
def test_a_run_on_meta_finds_host_tensors(step: Callable, host_tensor: bool) -> None:
    assert bool(_on_meta(step)) is host_tensor


@pytest.mark.parametrize("prefill", [False, True], ids=["decode step", "prefill chunk"])
def test_the_models_steps_can_be_recorded(prefill: bool) -> None:
    """What a recording needs of a step: run on the meta device (tensors without values), it
    reads no value back to the host (which fails on meta) and takes no host tensor in (which a
    recording would keep as it was). Every input then comes from the recorded tensors. A prefill
    chunk is recorded padded, with the cache wound back over the padding in the same recording."""
    pipeline = load(REFERENCE_DIR, "cpu", torch.float32, decode="graphed")
    model = pipeline.model
    graphed, seen = spy_on_graphed_calls(pipeline)
    pipeline.ask(IMAGE, BOXES, "OD_template", "red circle", max_new_tokens=3)
    inputs = seen[-1]
    if prefill:
        inputs = next(chunk for chunk in seen if chunk["input_ids"].shape[1] > 1)
        inputs = pad_prompt(inputs, padded_length(inputs["input_ids"].shape[1]))
    live_cache = inputs["past_key_values"]
    model.to("meta")
    cache = StaticCache(config=model.config.text_config, max_cache_len=pipeline.static_cache_tokens)
    for index, layer in enumerate(live_cache.layers):
        cache.update(_meta_like(layer.keys[:, :, :1]), _meta_like(layer.values[:, :, :1]), index)
    inputs = tree_map(_meta_like, inputs | {"past_key_values": None})
    step = graphed.recorded.step
    assert _on_meta(lambda: step(**inputs | {"past_key_values": cache})) == []
