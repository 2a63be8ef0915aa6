"""The example gallery: images shipped in `examples/` with a task, text and preset boxes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ui.boxes import Box

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
MANIFEST = EXAMPLES_DIR / "examples.json"


@dataclass(frozen=True)
class Example:
    image: Path
    title: str
    task: str
    text: str = ""
    regions: tuple[int, ...] = ()
    boxes: list[Box] = field(default_factory=list)


def load_examples(manifest: Path = MANIFEST) -> list[Example]:
    entries = json.loads(manifest.read_text())
    return [
        Example(
            image=manifest.parent / entry["image"],
            title=entry["title"],
            task=entry["task"],
            text=entry.get("text", ""),
            regions=tuple(entry.get("regions", ())),
            boxes=[[float(v) for v in box] for box in entry.get("boxes", [])],
        )
        for entry in entries
    ]
