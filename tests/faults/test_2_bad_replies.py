"""A participant that replies twice, late after its deadline, or for another saga.

`tests.faults.injector.ReplyInjector` repeats a share of the real replies
(same id, fresh id, a few seconds later, under another saga's id) while the
inventory service is also frozen longer than the step deadline, so its
answers to the first attempts arrive after the coordinator gave up on them
and retried. Every saga must still end once, with the books balanced and no
effect twice; the coordinator counts what it ignored.
"""

from __future__ import annotations

import pytest

from tests.faults.checker import judge
from tests.faults.injector import ReplyInjector
from tests.faults.plan import Plan
from tests.faults.system import FaultLog, FaultSystem
from tests.faults.test_1_crashes import assert_ok

pytestmark = pytest.mark.asyncio(loop_scope="package")

IGNORED, TIMEOUTS = "saga_messages_ignored_total", "saga_timeouts_total"
STEP_DEADLINE = 5.0  # the order saga's step timeout (services/definitions)


async def metric_total(system: FaultSystem, metric: str) -> float:
    """``metric`` summed over both replicas and every label (since their last start)."""
    total = 0.0
    for name in ("coordinator-1", "coordinator-2"):
        url = system.launcher[name].url("/metrics")
        assert url is not None
        _, body = await system.launcher.http.get(url)
        for line in body.decode().splitlines():
            if line.startswith(metric + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def test_duplicate_late_and_misaddressed_replies_change_nothing(
    faults: FaultSystem, fault_plan: Plan
) -> None:
    prefix = faults.launcher.prefix
    replies = [f"{prefix}{s}.replies" for s in ("inventory", "payment", "shipping")]
    ignored_before = await metric_total(faults, IGNORED)
    timeouts_before = await metric_total(faults, TIMEOUTS)

    async def late_inventory(log: list[FaultLog]) -> None:
        await faults.pause(log, "inventory", STEP_DEADLINE + 2)

    scenario = faults.scenario("replies", fault_plan.orders, fault_plan.rate)
    async with ReplyInjector(faults.launcher.kafka, replies, late_delay=STEP_DEADLINE + 1) as bad:
        outcome = await faults.run(
            "bad replies (twice/late/other saga)",
            scenario,
            faults={fault_plan.orders // 3: late_inventory},
            settle=fault_plan.settle,
        )
    ignored = await metric_total(faults, IGNORED) - ignored_before
    timeouts = await metric_total(faults, TIMEOUTS) - timeouts_before
    outcome.notes.append(
        "injected "
        + ", ".join(f"{k} {n}" for k, n in sorted(bad.sent.items()))
        + f"; coordinator ignored {ignored:.0f}, deadlines passed {timeouts:.0f}"
    )
    verdict = await judge(faults, outcome)
    assert_ok(verdict)
    assert sum(bad.sent.values()) > 0, "the injector sent nothing: the test proves nothing"
    assert ignored >= bad.sent["twice-new-id"], "the coordinator did not count the duplicates"
    assert timeouts > 0, "no step deadline passed while inventory was frozen: no late reply"
