"""Overload (issue 19): a burst far past the bound waits in Kafka, and nothing is lost.

A coordinator with ``SAGAS_MAX_IN_FLIGHT=20`` is offered 400 starts at once, on its
trigger topic or as ``saga.start`` requests on saga.control (never paused: the starts
that find no room are moved to saga.starts), with sagas of its own already in flight
and a participant slower than the offer. It must never hold more than 20 sagas in flight (read back from the
lifecycle topic: every decision of one batch carries the batch's time), keep the
replies of the sagas it admitted flowing while starts wait (the sagas started before
the burst complete before the burst is all admitted), and end every saga completed,
each started once, with nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.request
import uuid
from collections import Counter
from datetime import datetime

import pytest
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import CloudEvent, new_event
from events.topics import Topics
from sagas import control
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from tests.support.kafka_peers import TERMINAL, ScriptedParticipant, TopicRecorder, eventually
from tests.support.processes import free_port, sagas_process

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BOUND = 20
EARLY = 5
BURST = 400

DEFINITION = """
name: job
version: 1
trigger: {{topic: {p}jobs, type: job.requested}}
steps:
  - name: prepare
    command: {{type: job.prepare, topic: {p}work.commands}}
    reply_topic: {p}work.replies
    success: [job.prepared]
    failure: [job.refused]
    timeout: 120
  - name: run
    command: {{type: job.run, topic: {p}work.commands}}
    reply_topic: {p}work.replies
    success: [job.ran]
    failure: [job.refused]
    timeout: 120
"""

GROUP = {}
if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
    # the embedded broker completes a group join after about half the session timeout
    GROUP = {
        "SAGAS_SESSION_TIMEOUT": "3",
        "SAGAS_HEARTBEAT_INTERVAL": "0.5",
        "SAGAS_REBALANCE_TIMEOUT": "2",
    }


def work(command: CloudEvent) -> tuple[str, dict[str, str]]:
    return ("job.prepared" if command.type == "job.prepare" else "job.ran", {})


def most_in_flight(lifecycle: list[CloudEvent]) -> int:
    """The most sagas in flight after any batch: a batch's decisions share its time."""
    change: Counter[datetime] = Counter()
    for event in lifecycle:
        assert event.time is not None
        if event.type == "saga.started":
            change[event.time] += 1
        elif event.type in TERMINAL:
            change[event.time] -= 1
    in_flight = most = 0
    for at in sorted(change):
        in_flight += change[at]
        most = max(most, in_flight)
    return most


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith(("saga_admission", "saga_starts_deferred", "saga_retry_budget")):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize("via", ["trigger", "control"])
async def test_a_burst_past_the_bound_waits_in_kafka_and_every_saga_completes(
    kafka_bootstrap: str, tmp_path: pytest.TempPathFactory, via: str
) -> None:
    """``via``: the burst's starts are trigger events, or ``saga.start`` requests written
    straight to saga.control (never paused: the replica moves those past the bound to
    saga.starts, where they wait)."""
    p = f"o{uuid.uuid4().hex[:8]}."
    path = tmp_path / "job.yaml"  # type: ignore[operator]
    path.write_text(DEFINITION.format(p=p))
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=p)
    names = ["jobs", "work.commands", "work.replies", "saga.lifecycle", "saga.deadletter"]
    await ensure_topics(kafka, [f"{p}{n}" for n in [*names, *Topics().inputs()]])
    port = free_port()
    worker = sagas_process(
        ["worker", "-d", str(path), "--web-port", str(port)],
        bootstrap=kafka_bootstrap,
        log_dir=tmp_path,  # type: ignore[arg-type]
        name="coordinator",
        extra_env={
            "SAGAS_TOPIC_PREFIX": p,
            "SAGAS_APP_ID": f"{p}coordinator",
            "SAGAS_MAX_IN_FLIGHT": str(BOUND),
            **GROUP,
        },
    ).start()
    b = kafka_bootstrap
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(worker.stop)
        seen = await stack.enter_async_context(
            TopicRecorder(b, f"{p}saga.lifecycle", f"{p}saga.deadletter")
        )
        # slower than the offer: about 4 ms a command, so admitted sagas take a while
        await stack.enter_async_context(
            ScriptedParticipant(
                b, f"{p}work.commands", f"{p}work.replies", work, name="work", delay=0.004
            )
        )
        producer = AIOKafkaProducer(bootstrap_servers=b, linger_ms=5)
        await producer.start()
        stack.push_async_callback(producer.stop)

        def lifecycle() -> list[CloudEvent]:
            return [e for t, e in seen.events if t == f"{p}saga.lifecycle"]

        def of_type(kind: str, ids: list[str]) -> dict[str, datetime]:
            wanted = set(ids)
            return {e.sagaid: e.time for e in lifecycle() if e.type == kind and e.sagaid in wanted}  # type: ignore[misc]

        async def offer(ids: list[str], via: str = "trigger") -> None:
            sends = []
            for sid in ids:
                if via == "control":
                    value, headers = encode(control.start_request("job", {}, saga_id=sid))
                    topic = f"{p}saga.control"
                else:
                    value, headers = encode(new_event("job.requested", source="test", sagaid=sid))
                    topic = f"{p}jobs"
                sends.append(await producer.send(topic, value, key=sid.encode(), headers=headers))
            await asyncio.gather(*sends)

        early = [f"early-{i}-{uuid.uuid4().hex[:6]}" for i in range(EARLY)]
        await offer(early)
        await eventually(
            lambda: len(of_type("saga.started", early)) == EARLY,
            60,
            lambda: f"the early sagas to start; worker log:\n{worker.log_tail()}",
            alive=worker.alive,
        )
        burst = [f"burst-{i}-{uuid.uuid4().hex[:6]}" for i in range(BURST)]
        await offer(burst, via)
        everyone = early + burst
        await eventually(
            lambda: len(of_type("saga.completed", everyone)) == len(everyone),
            180,
            lambda: (
                f"{len(everyone)} sagas completed, got "
                f"{len(of_type('saga.completed', everyone))}; worker log:\n{worker.log_tail()}"
            ),
            alive=worker.alive,
        )
        events = lifecycle()
        assert most_in_flight(events) <= BOUND
        starts = Counter(e.sagaid for e in events if e.type == "saga.started")
        assert set(starts) == set(everyone) and set(starts.values()) == {1}
        assert [e for t, e in seen.events if t == f"{p}saga.deadletter"] == []
        # the early sagas' replies got through while the burst waited for room
        last_early_done = max(of_type("saga.completed", early).values())
        last_burst_start = max(of_type("saga.started", burst).values())
        assert last_early_done < last_burst_start
        metrics = await asyncio.to_thread(scrape, port)
        assert metrics["saga_admission_limit"] == BOUND
        assert metrics["saga_admission_pauses_total"] >= 1
        if via == "control":  # moved to saga.starts, past the bound
            assert metrics["saga_starts_deferred_total"] >= BURST - BOUND
        assert metrics["saga_admission_in_flight"] == 0
        assert metrics["saga_admission_paused"] == 0


SILENT = """
name: quiet
version: 1
trigger: {{topic: {p}quiet, type: quiet.requested}}
steps:
  - name: ask
    command: {{type: quiet.ask, topic: {p}void.commands}}
    reply_topic: {p}void.replies
    success: [quiet.answered]
    timeout: 1
    retry: {{attempts: 2, initial: 0.1}}
"""
#: sagas whose only participant never answers; the budget fires 20 deadlines at once
#: (ten seconds of its floor), then 2 a second
SILENT_SAGAS = 30


async def test_deadlines_past_the_retry_budget_wait_and_every_saga_still_ends(
    kafka_bootstrap: str, tmp_path: pytest.TempPathFactory
) -> None:
    p = f"q{uuid.uuid4().hex[:8]}."
    path = tmp_path / "quiet.yaml"  # type: ignore[operator]
    path.write_text(SILENT.format(p=p))
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=p)
    names = ["quiet", "void.commands", "void.replies", "saga.lifecycle", "saga.deadletter"]
    await ensure_topics(kafka, [f"{p}{n}" for n in [*names, *Topics().inputs()]])
    port = free_port()
    worker = sagas_process(
        ["worker", "-d", str(path), "--web-port", str(port)],
        bootstrap=kafka_bootstrap,
        log_dir=tmp_path,  # type: ignore[arg-type]
        name="coordinator",
        extra_env={
            "SAGAS_TOPIC_PREFIX": p,
            "SAGAS_APP_ID": f"{p}coordinator",
            "SAGAS_RETRY_BUDGET_RATIO": "0",
            "SAGAS_RETRY_BUDGET_PER_SECOND": "2",
            **GROUP,
        },
    ).start()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(worker.stop)
        seen = await stack.enter_async_context(TopicRecorder(kafka_bootstrap, f"{p}saga.lifecycle"))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
        await producer.start()
        stack.push_async_callback(producer.stop)
        ids = [f"quiet-{i}-{uuid.uuid4().hex[:6]}" for i in range(SILENT_SAGAS)]
        for sid in ids:
            value, _ = encode(new_event("quiet.requested", source="test", sagaid=sid))
            await producer.send(f"{p}quiet", value, key=sid.encode())
        await producer.flush()
        await eventually(
            lambda: len(seen.terminal()) == SILENT_SAGAS,
            90,
            lambda: (
                f"{SILENT_SAGAS} sagas to end, got {len(seen.terminal())}; "
                f"worker log:\n{worker.log_tail()}"
            ),
            alive=worker.alive,
        )
        events = [e for _, e in seen.events]
        # every saga timed out twice (a retry, then the end) and ended: none is lost
        assert set(seen.terminal()) == set(ids)
        failed = [e for e in events if e.type == "saga.step.failed"]
        assert Counter(e.sagaid for e in failed) == Counter(set(ids))
        # 2 x 30 deadlines: 20 at once, the other 40 at 2 a second, not all within a tick
        started = min(e.time for e in events if e.type == "saga.started")  # type: ignore[type-var]
        last = max(e.time for e in failed)  # type: ignore[type-var]
        assert (last - started).total_seconds() >= 15  # type: ignore[operator]
        metrics = await asyncio.to_thread(scrape, port)
        assert metrics["saga_retry_budget_refused_total"] >= 40
