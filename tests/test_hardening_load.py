"""Twenty `gradio_client` sessions at once on loopback (`bench.load`): nothing lost or mixed up."""

from __future__ import annotations

import pytest

from bench.load import run

pytestmark = pytest.mark.slow

PEAK_RSS_LIMIT_MIB = 3000
"""The tiny model's server peaks near 1.4 GiB under this load; far more means a cache grows."""


def test_twenty_clients_are_each_answered_with_their_own_image() -> None:
    result = run(clients=20, questions=2, timeout_s=240)
    details = [o.detail for o in result.outcomes if o.kind != "answered"]
    assert result.count("answered") == 40, details
    assert result.lost == 0 and result.count("mixed") == 0
    assert result.peak_rss_mib < PEAK_RSS_LIMIT_MIB


def test_a_full_waiting_line_refuses_with_a_message_and_loses_nothing() -> None:
    result = run(clients=20, questions=1, timeout_s=240, queue_size=5)
    assert result.count("refused") > 0
    assert result.count("answered") + result.count("refused") == 20
    assert result.lost == 0 and result.count("mixed") == 0
    refusal = next(o.detail for o in result.outcomes if o.kind == "refused")
    assert "full" in refusal.lower() and "Traceback" not in refusal
