"""`RecordedStep`: every call computes on its own inputs, through as few recordings as it can."""

from __future__ import annotations

import pytest
import torch

from fo1_core import recorded_step
from fo1_core.recorded_step import RecordedStep
from tests.conftest import TEST_DEVICE


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
