"""Claims and transfers under crashes (issue 20): a reviewer answers in time, late or never
while the insurer, the bank and a coordinator replica are SIGKILLed and restarted; every
saga ends once, and the books hold (no allowance overdrawn, every paid claim approved,
every unpaid claim released, money conserved)."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.demo.domains import DomainScenario, drive_domains
from tests.faults.checker import VERDICTS, Verdict
from tests.faults.plan import Plan
from tests.faults.system import COORDINATORS, FaultLog, FaultSystem

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_claims_and_transfers_survive_killed_services_and_a_killed_replica(
    faults: FaultSystem, fault_plan: Plan
) -> None:
    half = max(10, fault_plan.orders // 2)
    scenario = DomainScenario(claims=half, transfers=half, rate=10.0, seed=31)
    log: list[FaultLog] = []

    async def inject() -> None:
        await asyncio.sleep(1.5)
        await faults.crash_and_restart(log, "claims")
        await asyncio.sleep(1.0)
        await faults.crash_and_restart(log, COORDINATORS[0])
        await asyncio.sleep(1.0)
        await faults.crash_and_restart(log, "bank", "triage")

    began = time.time()
    injecting = asyncio.create_task(inject())
    results = await drive_domains(
        faults.launcher, scenario, ("claim", "transfer"), settle_timeout=fault_plan.settle
    )
    await injecting
    ids = [i for r in results for i in r.ids]
    faults.extra_sagas.update(ids)
    await faults.lifecycle.update()
    violations = faults.lifecycle.problems(ids)
    violations += [
        f"{r.saga}: {c.name}: {p}"
        for r in results
        for c in r.checks
        if not c.ok
        for p in (c.problems or [c.summary])
    ]
    violations += [f"process {name} is not running" for name in faults.dead()]
    reviewed = sum(len(r.answers) for r in results)
    late_won = sum(
        1
        for r in results
        for i, a in r.answers.items()
        if a == "late" and r.terminal.get(i) == "completed"
    )
    verdict = Verdict(
        "claims+transfers, reviewer; SIGKILL claims, a replica, bank+triage",
        sagas=len(ids),
        terminal=sum(len(r.terminal) for r in results),
        violations=violations,
        seconds=time.time() - began,
        notes=[
            f"{reviewed} waited for a person ({late_won} late answers beat the deadline)",
            *(f.what for f in log),
        ],
    )
    VERDICTS.append(verdict)
    assert reviewed > 0, "no saga waited for a person: the scenario tests nothing"
    assert verdict.ok, verdict.explain()
