"""Crashes, pauses and slowness, while orders flow: nothing lost, nothing doubled.

Each test places a scenario's orders on the shared system (2 coordinator
replicas, 4 services) and injects its fault part-way through the placing;
`tests.faults.checker.judge` then checks every invariant over everything
placed so far.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from sagas.coordinator import partition_for
from tests.faults.checker import Verdict, judge
from tests.faults.plan import Plan
from tests.faults.system import COORDINATORS, SERVICES, FaultLog, FaultSystem

pytestmark = pytest.mark.asyncio(loop_scope="package")


def assert_ok(verdict: Verdict) -> None:
    assert verdict.ok, verdict.explain()


async def owned(system: FaultSystem, name: str) -> set[int]:
    doc = await system.launcher.get_json(name, "/readyz")
    return set(doc.get("partitions", [])) if isinstance(doc, dict) else set()


async def until(what: str, predicate, timeout: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    """Wait for ``predicate()`` (async) to hold; returns the seconds it took."""
    began = time.monotonic()
    while not await predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - began


async def test_killed_replica_hands_its_partitions_and_sagas_to_the_other(
    faults: FaultSystem, fault_plan: Plan
) -> None:
    """Scale-out: coordinator-1 is SIGKILLed and stays down; coordinator-2 takes its
    partitions, recovers their sagas from the changelog and finishes them."""
    first, second = COORDINATORS
    notes: list[str] = []
    partitions = faults.launcher.kafka.partitions

    async def kill_first(log: list[FaultLog]) -> None:
        mine = await owned(faults, first)
        await faults.lifecycle.update()
        started, finished = faults.lifecycle.started_and_finished()
        fault = FaultLog(f"SIGKILL {first}, kept down", time.time())
        log.append(fault)
        faults.kill(first)
        moved = await until(
            f"{second} owns every partition",
            lambda: _owns_all(faults, second, partitions),
        )
        ours = {s for s in started - finished if partition_for(s.encode(), partitions) in mine}

        async def finished_by_second() -> bool:
            await faults.lifecycle.update()
            return ours <= faults.lifecycle.started_and_finished()[1]

        await until("the killed replica's sagas finished", finished_by_second, timeout=90)
        notes.append(
            f"{first} owned {sorted(mine)}; {second} had all {partitions} after {moved:.1f}s "
            f"and finished the {len(ours)} sagas in flight there"
        )
        await faults.start_again(first)
        fault.back_at = time.time()

    scenario = faults.scenario("scale-out", fault_plan.orders, fault_plan.rate)
    outcome = await faults.run(
        "kill 1 coordinator (scale-out)",
        scenario,
        faults={fault_plan.orders // 3: kill_first},
        settle=fault_plan.settle,
    )
    outcome.notes += notes
    assert_ok(await judge(faults, outcome))


async def _owns_all(system: FaultSystem, name: str, partitions: int) -> bool:
    return await owned(system, name) == set(range(partitions))


async def test_each_service_killed_and_restarted(faults: FaultSystem, fault_plan: Plan) -> None:
    async def kill_services(log: list[FaultLog]) -> None:
        for service in SERVICES:
            await faults.crash_and_restart(log, service)
            await asyncio.sleep(fault_plan.orders / fault_plan.rate / 8)  # sagas flow in between

    scenario = faults.scenario("services", fault_plan.orders, fault_plan.rate)
    outcome = await faults.run(
        "kill+restart each service",
        scenario,
        faults={fault_plan.orders // 5: kill_services},
        settle=fault_plan.settle,
    )
    assert_ok(await judge(faults, outcome))


async def test_both_coordinators_killed_at_once(faults: FaultSystem, fault_plan: Plan) -> None:
    async def kill_both(log: list[FaultLog]) -> None:
        await faults.crash_and_restart(log, *COORDINATORS)

    scenario = faults.scenario("both", fault_plan.orders, fault_plan.rate)
    outcome = await faults.run(
        "kill both coordinators",
        scenario,
        faults={fault_plan.orders // 2: kill_both},
        settle=fault_plan.settle,
    )
    assert_ok(await judge(faults, outcome))


async def test_paused_replica_does_not_act_on_partitions_it_lost(
    faults: FaultSystem, fault_plan: Plan
) -> None:
    """SIGSTOP coordinator-1 longer than its session timeout: coordinator-2 takes over.
    On SIGCONT the zombie must not overwrite the new owner's states (StateAudit), nor
    end a saga differently (LifecycleAudit)."""
    first = COORDINATORS[0]

    async def freeze(log: list[FaultLog]) -> None:
        await faults.pause(log, first, fault_plan.pause)

    scenario = faults.scenario("zombie", fault_plan.orders, fault_plan.rate)
    outcome = await faults.run(
        f"SIGSTOP coordinator {fault_plan.pause:g}s",
        scenario,
        faults={fault_plan.orders // 3: freeze},
        settle=fault_plan.settle,
    )
    verdict = await judge(faults, outcome)
    fenced = faults.states.fenced
    verdict.notes.append(f"{fenced} changelog writes of the paused replica fenced off")
    assert_ok(verdict)


async def test_slow_consumer(faults: FaultSystem, fault_plan: Plan) -> None:
    """Payment runs at ~8% speed for a while: its commands pile up past their deadlines,
    are retried, answered late; the books still balance."""

    async def slow(log: list[FaultLog]) -> None:
        await faults.throttle(log, "payment", fault_plan.slow_for)

    scenario = faults.scenario("slow", fault_plan.orders, fault_plan.rate)
    outcome = await faults.run(
        "slow consumer (payment)",
        scenario,
        faults={fault_plan.orders // 4: slow},
        settle=fault_plan.settle,
    )
    assert_ok(await judge(faults, outcome))
