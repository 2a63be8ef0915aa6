"""The README and `docs/` point at files and sections that exist: a reader who follows a link
lands where it says. The README's front matter, which makes the repository a Space, names the
models the app loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from detect_tools.base import ModelProposer
from detect_tools.registry import PROPOSERS
from fo1_core.cli import PUBLISHED_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def local_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+://", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_local_link_lands_on_a_file_and_section(page: Path) -> None:
    links = local_links(page)
    assert links or page.name != "README.md"  # the README points into docs/
    for link in links:
        path, _, section = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_file(), f"{page.name}: {link} names no file"
        if section:
            sections = {anchor(heading) for heading in HEADING.findall(target.read_text())}
            assert section in sections, f"{page.name}: {link} names no section of {target.name}"


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    linked = {(REPO / link.partition("#")[0]).resolve() for link in local_links(PAGES[0])}
    assert set(PAGES[1:]) <= linked


def test_the_space_names_and_preloads_the_models_the_app_loads() -> None:
    """The README's front matter makes the repository a Space: its `models` link the Space to
    every model the app loads, and `preload_from_hub` puts them into the Space's image, so that
    a restart downloads none (on ZeroGPU they all load as the app starts): all but SAM3's,
    gated, which a build without its owner's token could not download."""
    front = yaml.safe_load(PAGES[0].read_text().split("---")[1])
    models = [cls for cls in PROPOSERS.values() if issubclass(cls, ModelProposer)]
    assert set(front["models"]) == {
        PUBLISHED_CHECKPOINT,
        *(cls.default_checkpoint for cls in models),
    }
    shared = dict.fromkeys(cls.default_checkpoint for cls in models)
    del shared[PROPOSERS["sam3"].default_checkpoint]
    assert front["preload_from_hub"] == [PUBLISHED_CHECKPOINT, *shared]
