"""Samples the bench reads off the coordinator's /metrics page, before and after a point."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping


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
