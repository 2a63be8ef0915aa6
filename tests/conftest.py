"""Shared fixtures: the FO1 reference fixture folder and a pipeline loaded from it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from fo1_core.graphed_forward import GraphedForward
from fo1_core.session import FO1Pipeline, load

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE_DIR = Path(
    os.environ.get("FO1_REFERENCE_DIR", SHARED / "fo1-reference" / "tiny")
).resolve()
SPEC_DIR = SHARED / "fo1-reference"
TEST_DEVICE = os.environ.get("FO1_TEST_DEVICE", "cpu")
"""Where the parity and generation tests run their models: the CPU in CI, `FO1_TEST_DEVICE=cuda`
on a GPU machine (see docs/speed.md, "Measuring on a GPU")."""
# The app's options are the tests' own, not those a developer's environment holds for it
# (`app.OPTIONS_VARIABLE`), in this process and the app servers it starts.
os.environ.pop("FO1_APP_OPTIONS", None)
if TEST_DEVICE.startswith("cuda"):
    # The golden tolerances are fp32's; TF32 convolutions (cuDNN's default) would exceed them.
    torch.backends.cudnn.allow_tf32 = False


def spy(function: Callable[..., Any]) -> tuple[Callable[..., Any], list[dict]]:
    """`function` wrapped to put the keyword inputs of each call in a list first, and that list."""
    calls = []
    return lambda **inputs: (calls.append(inputs), function(**inputs))[1], calls


def spy_on_graphed_calls(pipeline: FO1Pipeline) -> tuple[GraphedForward, list[dict]]:
    """The pipeline's `graphed` forward, and a list that gets the inputs of each call to it."""
    graphed = pipeline.model.graphed_forward
    pipeline.model.graphed_forward, calls = spy(graphed)
    return graphed, calls


def golden_cases(root: Path = REFERENCE_DIR) -> list[str]:
    manifest = json.loads((root / "golden" / "manifest.json").read_text())
    return [case["name"] for case in manifest["cases"]]


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def pipeline() -> FO1Pipeline:
    """The tiny reference checkpoint, loaded through the same `load()` users call, in fp32."""
    return load(REFERENCE_DIR, TEST_DEVICE, torch.float32, attn_implementation="eager")


RIGGED_ANSWER = "<ground>red circle</ground><objects><region0><region2></objects>"
"""What the rigged checkpoints write, whatever the question (see tests/rigged.py)."""


@pytest.fixture(scope="session")
def answering_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.rigged import make_rigged_checkpoint

    return make_rigged_checkpoint(tmp_path_factory.mktemp("answering"), RIGGED_ANSWER)


@pytest.fixture(scope="session")
def endless_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.rigged import make_rigged_checkpoint

    folder = tmp_path_factory.mktemp("endless")
    return make_rigged_checkpoint(folder, RIGGED_ANSWER, loop=" many regions")


@pytest.fixture(scope="session")
def owlv2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random OWLv2 (`detect_tools.tiny`): proposers in the app and its API, and tested
    on their own."""
    from detect_tools import tiny

    return tiny.build_owlv2(tmp_path_factory.mktemp("owlv2"))
