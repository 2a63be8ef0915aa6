"""Per-image timing summary: how long proposals and FO1 took, image by image."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

STAGES = ("proposals_s", "fo1_s")


@dataclass(frozen=True)
class StageTiming:
    stage: str
    images: int
    mean_s: float
    median_s: float
    max_s: float


def summarize(timings: Iterable[dict[str, float]]) -> list[StageTiming]:
    """Mean, median and max seconds per image of each stage the records timed."""
    timings = list(timings)
    summary = []
    for stage in STAGES:
        values = [t[stage] for t in timings if stage in t]
        if values:
            summary.append(
                StageTiming(
                    stage,
                    len(values),
                    statistics.fmean(values),
                    statistics.median(values),
                    max(values),
                )
            )
    return summary


def format_table(summary: list[StageTiming]) -> str:
    lines = [f"{'seconds per image':<18}{'images':>8}{'mean':>9}{'median':>9}{'max':>9}"]
    for row in summary:
        name = row.stage.removesuffix("_s")
        lines.append(
            f"{name:<18}{row.images:>8}{row.mean_s:>9.3f}{row.median_s:>9.3f}{row.max_s:>9.3f}"
        )
    return "\n".join(lines)
