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

The `graphed` decoder records its question prefills the same way (`graphed_forward.py`).

On a CPU there is nothing to record: the step runs on the recorded inputs each time, so the
bookkeeping is the same code, tested there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

logger = logging.getLogger(__name__)


def _layout(leaves: list[Any], spec: TreeSpec) -> tuple[Hashable, ...]:
    """What must stay the same between two calls for one recording to serve both."""
    return (
        spec,
        *(
            (leaf.shape, leaf.dtype, leaf.device)
            if isinstance(leaf, torch.Tensor)
            else leaf
            if isinstance(leaf, (bool, int, float, str, type(None)))
            else id(leaf)  # the cache: the recording wrote into this very object
            for leaf in leaves
        ),
    )


MAX_RECORDINGS = 8
"""Input layouts kept recorded: decode steps pass positions of two shapes (the cached and the
uncached path), and prefill chunks come in a few padded lengths. More would mean that something
changes at every step, which no recording can serve."""


@dataclass
class _Recording:
    inputs: dict[str, Any]  # the recording's own copies of the input tensors
    tensors: list[torch.Tensor]  # those copies, in the order the inputs flatten to
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
        leaves, spec = tree_flatten(inputs)
        layout = _layout(leaves, spec)
        if (recording := self._recordings.get(layout)) is None:
            if len(self._recordings) < MAX_RECORDINGS:
                return self._record(leaves, spec, layout)
            self._fail("the decode step's inputs change layout from step to step")
            return self.step(**inputs)
        new = (leaf for leaf in leaves if isinstance(leaf, torch.Tensor))
        for recorded, value in zip(recording.tensors, new, strict=True):
            recorded.copy_(value)
        if recording.graph is None:
            return self.step(**recording.inputs)
        recording.graph.replay()
        return recording.output

    def _record(self, leaves: list[Any], spec: TreeSpec, layout: tuple[Hashable, ...]) -> Any:
        """Runs this token's step on fresh copies of the inputs, then records it on a GPU.

        Recording only enqueues the kernels, it runs none, so the cache is written once."""
        copies = [leaf.clone() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
        tensors = [leaf for leaf in copies if isinstance(leaf, torch.Tensor)]
        inputs = tree_unflatten(copies, spec)
        if not tensors or tensors[0].device.type != "cuda":
            self._recordings[layout] = _Recording(inputs, tensors, graph=None)
            return self.step(**inputs)
        # As PyTorch asks: the warm-up run (this token's real step) on a side stream.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            output = self.step(**inputs)
        torch.cuda.current_stream().wait_stream(side)
        recording = _Recording(inputs, tensors, torch.cuda.CUDAGraph())
        stream = torch.cuda.current_stream()
        try:
            # thread_local: other threads (a proposer, say) may use the GPU meanwhile.
            with torch.cuda.graph(recording.graph, capture_error_mode="thread_local"):
                recording.output = self.step(**inputs)
        except Exception as error:  # noqa: BLE001 (any failure means: do not replay)
            # A failed capture can raise before `torch.cuda.graph` gives back the stream it
            # captured on, and every later step of this thread would run there.
            torch.cuda.set_stream(stream)
            self._fail(f"{type(error).__name__}: {error}")
        else:
            self._recordings[layout] = recording
        return output

    def _fail(self, reason: str) -> None:
        self.failed = reason
        self._recordings.clear()
        logger.warning("Recording a model call failed, decoding unrecorded: %s", reason)
