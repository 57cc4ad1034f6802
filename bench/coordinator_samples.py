"""Samples the bench reads off the coordinator's /metrics page, before and after a point."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from typing import Any

#: the coordinator's batch-size histogram (`saga_batch_records`), read around each point
BATCH_SAMPLES = {"saga_batch_records_count": "batches", "saga_batch_records_sum": "records"}


def samples(metrics_text: str, wanted: Mapping[str, str]) -> dict[str, float]:
    """``wanted`` maps a sample name (unlabelled) to the key it is returned under; 0 for
    one the page does not show."""
    found = dict.fromkeys(wanted.values(), 0.0)
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            found[wanted[name]] = float(value)
    return found


async def read_samples(url: str | None, wanted: Mapping[str, str]) -> dict[str, float]:
    """`samples` of the page at ``url`` (all 0 without one)."""
    if url is None:
        return samples("", wanted)

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    return samples(await asyncio.to_thread(fetch), wanted)


def batch_figures(
    before: Mapping[str, float] | None, after: Mapping[str, float] | None, terminal: int
) -> dict[str, Any]:
    """A point's coordinator batches per ended saga and records per batch (None when either
    read failed): how full its batches were (README, "Requests, not records")."""
    if before is None or after is None:
        return {"batches_per_saga": None, "records_per_batch": None}
    batches = after["batches"] - before["batches"]
    records = after["records"] - before["records"]
    return {
        "batches_per_saga": round(batches / max(terminal, 1), 2),
        "records_per_batch": round(records / max(batches, 1), 1),
    }
