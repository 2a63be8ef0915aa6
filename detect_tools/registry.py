"""Proposer names → classes, and one shared instance per (name, checkpoint, device, dtype).

Instances are shared because each holds a loaded model: the app's users and the CLI ask for a
proposer by name, and a second request must not load a second copy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import torch

from detect_tools.base import ModelProposer, Proposer, ProposerError
from detect_tools.florence2 import Florence2DetectionProposer, Florence2Proposer
from detect_tools.grounding_dino import GroundingDinoProposer
from detect_tools.offline import OfflineProposer
from detect_tools.omdet_turbo import OmDetTurboProposer
from detect_tools.owlv2 import Owlv2LikeProposer, Owlv2ObjectnessProposer, Owlv2Proposer
from detect_tools.sam3 import Sam3LikeProposer, Sam3Proposer

PROPOSERS: dict[str, type[Proposer]] = {
    cls.name: cls
    for cls in (
        Florence2Proposer,
        Florence2DetectionProposer,
        OmDetTurboProposer,
        GroundingDinoProposer,
        Owlv2Proposer,
        Owlv2ObjectnessProposer,
        Owlv2LikeProposer,
        Sam3Proposer,
        Sam3LikeProposer,
        OfflineProposer,
    )
}

_instances: dict[tuple, Proposer] = {}
_lock = threading.Lock()


def available() -> dict[str, str]:
    """Name → label of every proposer, for UI lists and ``--help``."""
    return {name: cls.label for name, cls in PROPOSERS.items()}


def within_reach(checkpoints: Mapping[str, str]) -> dict[str, str]:
    """Name → label of the proposers that can run here: those without a model, and those whose
    weights are given as a folder (`checkpoints`), cached, or downloadable (see
    `ModelProposer.within_reach`)."""
    return {
        name: cls.label
        for name, cls in PROPOSERS.items()
        if not issubclass(cls, ModelProposer) or cls.within_reach(checkpoints.get(name))
    }


def on_their_own() -> list[str]:
    """Names of the proposers that need no example boxes: those a benchmark's images, or a
    request without boxes, can be given to."""
    return [name for name, cls in PROPOSERS.items() if not cls.needs_examples]


def with_examples() -> list[str]:
    """Names of the proposers that find more objects like example boxes."""
    return [name for name, cls in PROPOSERS.items() if cls.needs_examples]


def with_models() -> list[str]:
    """Names of the proposers that load a checkpoint."""
    return list(_model_proposers())


def with_shared_models(checkpoints: Mapping[str, str]) -> dict[str, str]:
    """`checkpoints` (proposer name → folder or id) given also to each proposer that loads the
    same model by default as one named there: Florence-2's region and detection proposers share
    one folder."""
    models = {name: cls.default_checkpoint for name, cls in _model_proposers().items()}
    shared = dict(checkpoints)
    for name, checkpoint in checkpoints.items():
        for other, default in models.items():
            if default == models.get(name):
                shared.setdefault(other, checkpoint)
    return shared


def _model_proposers() -> dict[str, type[ModelProposer]]:
    return {name: cls for name, cls in PROPOSERS.items() if issubclass(cls, ModelProposer)}


def get(
    name: str,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Proposer:
    """The proposer called ``name``; its model (if any) loads on first ``propose``."""
    cls = PROPOSERS.get(name)
    if cls is None:
        raise ProposerError(
            f"Unknown proposer {name!r}: choose one of {', '.join(sorted(PROPOSERS))}."
        )
    if issubclass(cls, ModelProposer):
        key: tuple = (name, str(checkpoint), str(device), str(dtype))
        arguments: tuple = (checkpoint, device, dtype)
    elif checkpoint is not None:
        raise ProposerError(f"The {cls.label} proposer uses no model: drop the checkpoint.")
    else:
        key, arguments = (name,), ()
    with _lock:
        if key not in _instances:
            _instances[key] = cls(*arguments)
        return _instances[key]
