"""After each fault: is everything as a user needs it? One `Verdict` per scenario.

The checker waits until the system is quiet (every saga that started has a
terminal event and the services' books stop moving), then checks, over
*every* order placed on the system so far (stock and money are cumulative):

* the demo's invariants (`services.demo.checks.run_all`): every saga terminal,
  orders match their sagas, stock conserved, money conserved, compensations
  last-first;
* exactly one terminal event per saga on ``saga.lifecycle`` (ids deduplicated;
  two different outcomes are reported as such), and no saga started twice;
* sagas started == sagas finished (every ``saga.started`` has its terminal
  event, the fuzzer's sagas included);
* no state of the coordinator's table went backwards (a zombie's write);
* no business effect twice in the participants' ledgers;
* every process of the system is running.

Time to recover: per fault, from its injection until the last saga that was
in flight at that moment ended (the worst fault of the scenario is shown).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.demo.checks import Check, run_all
from services.demo.observe import SagaTrace
from tests.faults.system import SERVICES, FaultLog, FaultSystem, Outcome, load_average

#: filled by the scenarios, printed as a table at the end of the pytest session
VERDICTS: list[Verdict] = []
#: where each system's run wrote the table (printed with it)
TABLE_FILES: list[Path] = []
#: per-saga findings already charged to an earlier scenario (the audits are cumulative)
_REPORTED: set[str] = set()


@dataclass
class Verdict:
    scenario: str
    sagas: int
    terminal: int
    violations: list[str] = field(default_factory=list)
    double_effects: list[str] = field(default_factory=list)
    recover: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: states written over newer ones (`tests.faults.audit.StateAudit`), also in violations
    regressions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.double_effects and self.terminal == self.sagas

    def explain(self, limit: int = 25) -> str:
        lines = [f"{self.scenario}: {self.terminal}/{self.sagas} terminal"]
        lines += [f"  violation: {v}" for v in self.violations[:limit]]
        lines += [f"  double effect: {d}" for d in self.double_effects[:limit]]
        return "\n".join(lines)


async def _views(system: FaultSystem) -> dict[str, Any]:
    return {name: await system.launcher.get_json(name, "/invariants") for name in SERVICES}


async def wait_quiet(system: FaultSystem, timeout: float) -> dict[str, Any]:
    """Until every started saga has ended and two reads of the services' books agree."""
    deadline = time.monotonic() + timeout
    previous: dict[str, Any] | None = None
    while True:
        await system.lifecycle.update()
        started, finished = system.lifecycle.started_and_finished()
        views = await _views(system)
        if started <= finished and views == previous and None not in views.values():
            return views
        if time.monotonic() > deadline:
            return views
        previous = views if started <= finished else None
        await asyncio.sleep(0.5)


def recovery(faults: list[FaultLog], traces: dict[str, SagaTrace]) -> float | None:
    worst: float | None = None
    for fault in faults:
        ends = [
            t.ended_at
            for t in traces.values()
            if t.started_at is not None
            and t.started_at < fault.at
            and (t.ended_at is None or t.ended_at > fault.at)
        ]
        if any(e is None for e in ends):
            return None  # something in flight never ended: no recovery
        took = max(ends) - fault.at if ends else (fault.back_at or fault.at) - fault.at
        worst = took if worst is None else max(worst, took)
    return worst


async def judge(system: FaultSystem, outcome: Outcome, *, quiet_timeout: float = 60.0) -> Verdict:
    views = await wait_quiet(system, quiet_timeout)
    await system.ledgers.update()
    await system.states.update()
    traces = outcome.result.traces
    checks: list[Check] = run_all(
        system.orders, traces, system.launcher.definitions, system.base.initial_stock(), views
    )
    ids = [o.saga_id for o in outcome.orders]
    terminal = sum(1 for s in ids if (t := traces.get(s)) is not None and t.outcome)
    # Stock and money are cumulative: a problem already charged to an earlier scenario
    # (the same order, the same words) is not counted again.
    violations = [
        f"{c.name}: {p}"
        for c in checks
        if not c.ok
        for p in (c.problems or [c.summary])
        if f"{c.name}: {p}" not in _REPORTED
    ]
    _REPORTED.update(violations)
    per_saga = system.lifecycle.problems([o.saga_id for o in system.orders])
    per_saga += system.lifecycle.problems(system.extra_sagas)
    started, finished = system.lifecycle.started_and_finished()
    per_saga += [f"saga {s} started and never finished" for s in sorted(started - finished)]
    regressions = [r for r in system.states.regressions if r not in _REPORTED]
    per_saga = [p for p in per_saga if p not in _REPORTED]
    _REPORTED.update(per_saga, regressions)
    violations += per_saga + regressions
    violations += [f"process {name} is not running" for name in system.dead()]
    doubles = [d for d in system.ledgers.double_effects() if d not in _REPORTED]
    _REPORTED.update(doubles)
    verdict = Verdict(
        outcome.name,
        sagas=len(ids),
        terminal=terminal,
        violations=violations,
        double_effects=doubles,
        recover=recovery(outcome.faults, traces),
        seconds=outcome.result.settled_at - outcome.result.placed_from,
        notes=[
            *outcome.notes,
            f"wall {time.time() - outcome.result.placed_from:.0f}s",
            f"load {load_average()}",
        ],
    )
    verdict.regressions = regressions
    VERDICTS.append(verdict)
    with open(system.run_dir / "fault-details.txt", "a") as details:
        details.write(
            verdict.explain(limit=500) + "\n  notes: " + "; ".join(verdict.notes) + "\n\n"
        )
    return verdict


def table(verdicts: list[Verdict]) -> str:
    """The scenario table `make test-faults` prints (and the README shows)."""
    head = ("scenario", "sagas", "terminal", "violations", "double effects", "recover (s)", "notes")
    rows = [
        (
            v.scenario,
            str(v.sagas),
            str(v.terminal),
            str(len(v.violations)),
            str(len(v.double_effects)),
            "-" if v.recover is None else f"{v.recover:.1f}",
            "; ".join(v.notes),
        )
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head) - 1)]
    lines = []
    for r in (head, *rows):
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " | " + r[-1]
        )
        if r is head:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|" + "-" * 7)
    return "\n".join(lines)
