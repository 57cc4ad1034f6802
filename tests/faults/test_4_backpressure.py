"""Backpressure: a burst of sagas started at once finishes, with the coordinators' memory bounded.

Every order is placed as fast as one producer can (no pacing). Meanwhile the
resident memory of both coordinator replicas is sampled from
``/proc/PID/status``; the table reports the peak (``VmHWM``) and the growth
per saga. Growth is expected to be linear in the sagas kept in the table
(finished sagas stay queryable for ``SAGAS_RETENTION``), never a function of
the burst's size in flight: decoded running sagas are an LRU
(``SAGAS_LIVE_CACHE``) and at most ``SAGAS_PIPELINE`` fetched batches are in hand.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.faults.checker import judge
from tests.faults.plan import Plan
from tests.faults.system import COORDINATORS, FaultSystem
from tests.faults.test_1_crashes import assert_ok

pytestmark = pytest.mark.asyncio(loop_scope="package")

#: generous: the table keeps each finished saga (a few KiB); 10,000 sagas fit in far less
MAX_KIB_PER_SAGA = 64


async def test_a_burst_of_sagas_completes_with_bounded_memory(
    faults: FaultSystem, fault_plan: Plan
) -> None:
    before = {name: faults.memory(name).get("VmRSS", 0) for name in COORDINATORS}
    samples: dict[str, int] = dict.fromkeys(COORDINATORS, 0)

    async def sample() -> None:
        while True:
            for name in COORDINATORS:
                samples[name] = max(samples[name], faults.memory(name).get("VmRSS", 0))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    scenario = faults.scenario("burst", fault_plan.burst, rate=1_000_000.0)
    try:
        outcome = await faults.run(
            f"burst of {fault_plan.burst} sagas", scenario, settle=fault_plan.settle
        )
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    result = outcome.result
    took = result.settled_at - result.placed_from
    placed = result.placed_until - result.placed_from
    peaks = {name: faults.memory(name).get("VmHWM", 0) for name in COORDINATORS}
    growth = {name: samples[name] - before[name] for name in COORDINATORS}
    outcome.notes.append(
        f"placed in {placed:.1f}s, all ended after {took:.1f}s ({fault_plan.burst / took:.0f}/s)"
    )
    outcome.notes.append(
        "coordinator peak RSS (VmHWM) "
        + ", ".join(f"{n}: {peaks[n] / 1024:.0f} MiB" for n in COORDINATORS)
        + "; growth during the burst "
        + ", ".join(f"{n}: {growth[n] / 1024:.0f} MiB" for n in COORDINATORS)
    )
    verdict = await judge(faults, outcome)
    per_saga = sum(growth.values()) / fault_plan.burst
    if per_saga > MAX_KIB_PER_SAGA:
        verdict.violations.append(
            f"coordinators grew {per_saga:.1f} KiB per saga of the burst (> {MAX_KIB_PER_SAGA})"
        )
    assert_ok(verdict)
