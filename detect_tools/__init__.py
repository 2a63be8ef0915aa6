"""Box proposers for images: one interface, one module per detector, a registry.

Knows nothing of the model that consumes the boxes; it only promises at most `MAX_PROPOSALS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detect_tools.base import MAX_PROPOSALS, ProposalOptions, Proposer, ProposerError
    from detect_tools.registry import available, get

__all__ = ["MAX_PROPOSALS", "ProposalOptions", "Proposer", "ProposerError", "available", "get"]

_HOMES = {"available": "registry", "get": "registry"}


def __getattr__(name: str):
    # torch, transformers and supervision take seconds to import: the light modules
    # (`detect_tools.images`, `outputs`, `box_rules`) should not pay for them, so these load on
    # first use.
    if name in __all__:
        return getattr(importlib.import_module(f"detect_tools.{_HOMES.get(name, 'base')}"), name)
    raise AttributeError(f"module 'detect_tools' has no attribute {name!r}")
