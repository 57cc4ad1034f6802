"""Bad input, counted and survived: malformed records on every topic read, good sagas between.

Hypothesis draws the malformed records (`tests.faults.fuzz.bad_record`); they
are published while the scenario's good orders are placed, together with
replays of commands that were already handled. Hypothesis only generates
here: the system under test is one long-running set of processes, so a
failing record is identified by its ``x-fuzz-id`` in the report rather than
shrunk. Afterwards:

* every process is still running and every good saga ended (the checker);
* every record that must be dead-lettered is on ``saga.deadletter``
  unchanged, with ``x-dlq-reason`` and its original topic in ``x-dlq-topic``;
* records of unknown types on topics only participants read were skipped and
  counted (``participant_commands_total{result="ignored"}``);
* the replays changed nothing (no double effect in the ledgers);
* the orders with malformed lines started sagas that ended too (compensated).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.faults import fuzz
from tests.faults.checker import judge
from tests.faults.plan import Plan
from tests.faults.system import EARLY_GRACE, FaultLog, FaultSystem
from tests.faults.tail import TopicTail
from tests.faults.test_1_crashes import assert_ok

pytestmark = pytest.mark.asyncio(loop_scope="package")

#: services that read only their command topic (in orchestrated mode): nothing else to skip
COMMANDED = ("inventory", "payment", "shipping")
#: seconds to wait for the last dead letters: the early-event grace, its timer, margin
DEADLETTER_WAIT = EARLY_GRACE + 15.0


def topics_of(system: FaultSystem) -> fuzz.Topics:
    p = system.launcher.prefix
    return fuzz.Topics(
        orders=f"{p}orders",
        replies={
            f"{p}inventory.replies": "inventory.reserved",
            f"{p}payment.replies": "payment.authorized",
            f"{p}shipping.replies": "shipping.scheduled",
        },
        control=system.launcher.topics.control,
        commands={
            f"{p}inventory.commands": "inventory.reserve",
            f"{p}payment.commands": "payment.authorize",
            f"{p}shipping.commands": "shipping.schedule",
        },
        lifecycle=system.launcher.topics.lifecycle,
    )


def draw_records(topics: fuzz.Topics, examples: int) -> list[fuzz.BadRecord]:
    drawn: list[fuzz.BadRecord] = []

    @seed(20260107)
    @settings(
        max_examples=examples,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz.bad_record(topics))
    def collect(record: fuzz.BadRecord) -> None:
        drawn.append(record)

    collect()
    return drawn


def _same_value(record: Any, headers: dict[str, bytes], bad: fuzz.BadRecord) -> bool:
    """Unchanged; or, too large to publish again, without its value but with its size."""
    if record.value == bad.value or (not record.value and not bad.value):
        return True
    dropped = headers.get("x-dlq-value-dropped")
    return dropped is not None and int(dropped) == len(bad.value or b"")


async def participants_ignored(system: FaultSystem) -> float:
    total = 0.0
    for name in COMMANDED:
        url = system.launcher[name].url("/metrics")
        assert url is not None
        _, body = await system.launcher.http.get(url)
        for line in body.decode().splitlines():
            if line.startswith("participant_commands_total{") and 'result="ignored"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


async def old_commands(system: FaultSystem, topics: fuzz.Topics, n: int) -> list[fuzz.BadRecord]:
    tail = await TopicTail(system.launcher.kafka, list(topics.commands)).start()
    try:
        records = await tail.read_new()
    finally:
        await tail.stop()
    step = max(1, len(records) // max(1, n))
    return [fuzz.replay_record(r) for r in records[::step][:n]]


async def test_malformed_records_are_dead_lettered_and_good_sagas_finish(
    faults: FaultSystem, fault_plan: Plan
) -> None:
    topics = topics_of(faults)
    bad = draw_records(topics, fault_plan.fuzz_examples)
    bad += await old_commands(faults, topics, max(5, fault_plan.fuzz_examples // 10))
    faults.extra_sagas |= {r.saga_id for r in bad if r.saga_id}
    ignored_before = await participants_ignored(faults)
    dlq = await TopicTail(faults.launcher.kafka, [faults.launcher.topics.deadletter]).start()
    await dlq.read_new()  # what earlier scenarios dead-lettered is not ours
    spread = fault_plan.fuzz_orders / fault_plan.rate

    async def publish(log: list[FaultLog]) -> None:
        log.append(FaultLog(f"{len(bad)} malformed records", 0.0))
        producer = AIOKafkaProducer(
            max_request_size=4 * 1024 * 1024, **faults.launcher.kafka.aiokafka_kwargs()
        )
        await producer.start()
        try:
            for record in bad:
                await producer.send_and_wait(
                    record.topic, record.value, key=record.key, headers=record.headers
                )
                await asyncio.sleep(spread / len(bad))
        finally:
            await producer.stop()

    scenario = faults.scenario("fuzz", fault_plan.fuzz_orders, fault_plan.rate)
    try:
        outcome = await faults.run(
            "fuzz: malformed records", scenario, faults={1: publish}, settle=fault_plan.settle
        )
        outcome.faults.clear()  # publishing is not an outage: no recovery time
        kinds = Counter(r.kind for r in bad)
        outcome.notes.append(
            f"{len(bad)} bad records: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        )
        verdict = await judge(faults, outcome, quiet_timeout=90.0)
        dead = defaultdict(list)
        expected = {r.marker for r in bad if r.expect == "deadletter"}
        # Sagas may all have ended before the last records held as early events expire
        # (SAGAS_EARLY_EVENT_GRACE): poll the dead-letter topic until all are there.
        deadline = time.monotonic() + DEADLETTER_WAIT
        while True:
            for record in await dlq.read_new():
                headers = {k: bytes(v) for k, v in record.headers or ()}
                if fuzz.MARKER in headers:
                    dead[headers[fuzz.MARKER].decode()].append((record, headers))
            if expected <= set(dead) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await dlq.stop()

    count_before = len(verdict.violations)
    missing, changed = [], []
    for r in bad:
        if r.expect != "deadletter":
            continue
        found = [
            (rec, h)
            for rec, h in dead.get(r.marker, [])
            if h.get("x-dlq-reason") and h.get("x-dlq-topic") == r.topic.encode()
        ]
        if not found:
            missing.append(f"{r.kind} on {r.topic} ({r.marker}): not on the dead-letter topic")
        elif not any(_same_value(rec, h, r) for rec, h in found):
            changed.append(f"{r.kind} on {r.topic} ({r.marker}): dead-lettered with another value")
    reasons = Counter(h["x-dlq-reason"].decode() for entries in dead.values() for _, h in entries)
    verdict.notes.append(
        "dead letters by reason: " + ", ".join(f"{k} {n}" for k, n in sorted(reasons.items()))
    )
    verdict.violations += missing + changed
    ignored = await participants_ignored(faults) - ignored_before
    expected_ignored = sum(1 for r in bad if r.expect == "ignored" and r.topic in topics.commands)
    if ignored < expected_ignored:
        verdict.violations.append(
            f"participants counted {ignored:.0f} ignored records, {expected_ignored} were sent"
        )
    if len(verdict.violations) > count_before:
        with open(faults.run_dir / "fault-details.txt", "a") as details:
            details.write("".join(f"  violation: {v}\n" for v in verdict.violations[count_before:]))
    assert_ok(verdict)
