"""A decode step recorded once as a CUDA graph and replayed for every later token, no compiler.

Uncompiled decoding of the 3B model on a GPU waits on the CPU, which launches about 1 500 small
kernels per token (10 to 21 tok/s on an H100). `torch.compile` removes that wait but takes about a
minute, longer than a ZeroGPU slot, and its graphs are lost with the worker that recorded them.
Recording the kernels of one step as a CUDA graph takes about one step; every later step launches
them all at once.

A replay reads nothing but the tensors it was recorded with. So whatever changes from step to
step must reach the step as a tensor: generate() passes the token, its positions and its masks as
tensors, copied into the recorded inputs before each replay, and the fixed-size KV cache keeps its
fill level on the GPU, so the replayed step writes each token where that level says. A change in
anything else (the cache object, a flag, a shape) records the step again.

On a CPU there is nothing to record: the step runs on the recorded inputs each time, so the
bookkeeping is the same code, tested there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

logger = logging.getLogger(__name__)


def _layout(inputs: dict[str, Any]) -> tuple[Hashable, ...]:
    """What must stay the same between two calls for one recording to serve both."""
    leaves, spec = tree_flatten(inputs)
    return (
        str(spec),
        *(
            (leaf.shape, leaf.dtype, leaf.device)
            if isinstance(leaf, torch.Tensor)
            else leaf
            if isinstance(leaf, (bool, int, float, str, type(None)))
            else id(leaf)  # the cache: the recording wrote into this very object
            for leaf in leaves
        ),
    )


def _tensors(inputs: dict[str, Any]) -> list[torch.Tensor]:
    return [leaf for leaf in tree_flatten(inputs)[0] if isinstance(leaf, torch.Tensor)]


MAX_RECORDINGS = 4
"""Input layouts kept recorded: the cached and the uncached path pass positions of two shapes.
More would mean that something changes at every step, which no recording can serve."""


@dataclass
class _Recording:
    inputs: dict[str, Any]  # the recording's own copies of the input tensors
    graph: torch.cuda.CUDAGraph | None  # None on a CPU
    output: Any = None


class RecordedStep:
    """Calls `step(**inputs)`, on CUDA through a recorded graph, one per layout of the inputs.

    A recording that fails (a step that reads a GPU value on the CPU, say) is logged and the step
    runs unrecorded from then on: `failed` says why.
    """

    def __init__(self, step: Callable[..., Any]) -> None:
        self.step = step
        self.failed: str | None = None
        self._recordings: dict[tuple[Hashable, ...], _Recording] = {}

    @property
    def recordings(self) -> int:
        return len(self._recordings)

    def __call__(self, **inputs: Any) -> Any:
        if self.failed is not None:
            return self.step(**inputs)
        layout = _layout(inputs)
        if (recording := self._recordings.get(layout)) is None:
            if len(self._recordings) < MAX_RECORDINGS:
                return self._record(inputs, layout)
            self._fail("the decode step's inputs change layout from step to step")
            return self.step(**inputs)
        for recorded, new in zip(_tensors(recording.inputs), _tensors(inputs), strict=True):
            recorded.copy_(new)
        if recording.graph is None:
            return self.step(**recording.inputs)
        recording.graph.replay()
        return recording.output

    def _record(self, inputs: dict[str, Any], layout: tuple[Hashable, ...]) -> Any:
        """Runs this token's step on fresh copies of `inputs`, then records it on a GPU.

        Recording only enqueues the kernels, it runs none, so the cache is written once."""
        copies = tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, inputs)
        tensors = _tensors(copies)
        if not tensors or tensors[0].device.type != "cuda":
            self._recordings[layout] = _Recording(copies, graph=None)
            return self.step(**copies)
        # As PyTorch asks: the warm-up run (this token's real step) on a side stream.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            output = self.step(**copies)
        torch.cuda.current_stream().wait_stream(side)
        recording = _Recording(copies, torch.cuda.CUDAGraph())
        try:
            # thread_local: other threads (a proposer, say) may use the GPU meanwhile.
            with torch.cuda.graph(recording.graph, capture_error_mode="thread_local"):
                recording.output = self.step(**copies)
        except Exception as error:  # noqa: BLE001 (any failure means: do not replay)
            self._fail(f"{type(error).__name__}: {error}")
        else:
            self._recordings[layout] = recording
        return output

    def _fail(self, reason: str) -> None:
        self.failed = reason
        self._recordings.clear()
        logger.warning("Recording the decode step failed, decoding unrecorded: %s", reason)
