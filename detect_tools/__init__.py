"""Box proposers for images: one interface, one module per detector, a registry.

Knows nothing of the model that consumes the boxes; it only promises at most `MAX_PROPOSALS`.
"""

from detect_tools.base import MAX_PROPOSALS, ProposalOptions, Proposer, ProposerError
from detect_tools.registry import available, get

__all__ = ["MAX_PROPOSALS", "ProposalOptions", "Proposer", "ProposerError", "available", "get"]
