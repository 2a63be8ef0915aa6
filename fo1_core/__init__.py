"""VLM-FO1 on transformers' Qwen2.5-VL: loading, prompting, generation, answers and drawing."""

from fo1_core.errors import FO1Error

__all__ = ["FO1Error"]
