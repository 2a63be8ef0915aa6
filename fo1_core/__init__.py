"""VLM-FO1 on transformers' Qwen2.5-VL: loading, prompting, generation, answers and drawing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fo1_core.errors import FO1Error

if TYPE_CHECKING:
    from fo1_core.session import Conversation, FO1Pipeline, load

__all__ = ["Conversation", "FO1Error", "FO1Pipeline", "load"]


def __getattr__(name: str):
    # Importing torch and transformers takes seconds; the light modules (templates, answers,
    # render) should not pay for it, so the pipeline is imported on first use.
    if name in ("Conversation", "FO1Pipeline", "load"):
        from fo1_core import session

        return getattr(session, name)
    raise AttributeError(f"module 'fo1_core' has no attribute {name!r}")
