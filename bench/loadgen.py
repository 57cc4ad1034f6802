"""The load generator: starts sagas open loop and times them to their terminal lifecycle event.

Run as its own process by the benchmark (so its CPU is not the coordinator's):

    python -m bench.loadgen '{"bootstrap": "...", "workload": "bench", "rate": 500, ...}'

Saga ``i`` is due at ``t0 + i / rate`` and is sent then, whether or not earlier
sagas have finished (open loop); its latency is measured from that due time,
not from when it was actually sent, so a generator that falls behind cannot
hide the system's slowness (no coordinated omission). The end is the moment
this process reads the saga's terminal lifecycle event (``saga.completed``,
``saga.compensated``, ``saga.failed``, ``saga.aborted``) from
``saga.lifecycle``; start and end are read on the same clock.

Progress goes to stdout as JSON lines (``{"progress": {...}}``) about ten
times a second, so the benchmark can act mid-run (pause a participant, kill
the coordinator); the last line is ``{"result": {...}}``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.stats import latency_summary_ms
from bench.workload import SOURCE, TRIGGER_TYPE
from events.codec import CONTENT_TYPE_HEADER
from events.envelope import derived_id
from events.partitioning import partition_for
from events.records import OutRecord
from sagas import control
from sagas.kafka.guarantee import guarantee_from_env, isolation_level
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.producer_batches import send_grouped

HEADERS = [CONTENT_TYPE_HEADER]
#: Seconds between two sends at least. The starts due meanwhile go out together, one
#: record batch per partition (`send_grouped`), for a fraction of what a
#: ``producer.send`` costs per record: at 4,500 starts/s the generator (sending and
#: reading) took a third of one of the two cores the system under test runs on. A start
#: waits up to one tick before it is sent, as it waited up to the producer's 5 ms linger
#: before (and, either way, for its partition's batch in flight: `PartitionSends`); its
#: latency still counts from its due time.
SEND_TICK = 0.005
_TERMINAL = {
    b'"type":"saga.completed"': "completed",
    b'"type":"saga.compensated"': "compensated",
    b'"type":"saga.failed"': "failed",
    b'"type":"saga.aborted"': "aborted",
}
_STARTED = b'"type":"saga.started"'


@dataclass
class Plan:
    bootstrap: str
    prefix: str
    workload: str  # "bench" or "order"
    start_topic: str
    lifecycle_topic: str
    rate: float  # sagas per second offered
    count: int  # sagas to start
    fail_every: int = 10  # bench: every n-th saga is refused at step 3 (0: none)
    warmup: float = 0.0  # seconds at the start not counted in the steady-state rate
    #: after the last send, wait for stragglers until none has ended for this long ...
    drain_timeout: float = 30.0
    #: ... or this long in all (`Drain`)
    drain_limit: float = 600.0
    label: str = "run"
    via_trigger: bool = False  # bench: start with the saga's trigger event, not saga.start

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**orjson.loads(text))


@dataclass
class Tracker:
    due: dict[bytes, float] = field(default_factory=dict)  # saga id -> due time
    ended: dict[bytes, float] = field(default_factory=dict)  # saga id -> end - due
    by_outcome: dict[str, list[float]] = field(default_factory=dict)  # outcome -> latencies
    outcomes: dict[str, int] = field(default_factory=dict)
    started: set[bytes] = field(default_factory=set)
    #: saga id -> when its saga.started event was read: the coordinator admitted it
    started_at: dict[bytes, float] = field(default_factory=dict)
    end_times: list[float] = field(default_factory=list)
    duplicate_ends: int = 0
    lifecycle_events: int = 0
    last_event_ms: int = 0  # Kafka timestamp of the newest lifecycle record read


@dataclass(frozen=True, slots=True)
class Drain:
    """When the wait for the sagas still running after the last send ends: once all have
    ended, once none has ended for ``stall`` seconds (what is left is lost or stuck), or
    after ``limit`` seconds in all. A backlog that is still draining is waited for: past
    capacity (the overload points) the starts wait in Kafka, and a fixed wait would
    count the sagas still queued there as missing."""

    count: int
    stall: float
    limit: float
    started: float

    def over(self, now: float, ended: int, last_end: float | None) -> bool:
        """``ended``: sagas ended so far; ``last_end``: when the newest ended (None: none)."""
        if ended >= self.count or now - self.started >= self.limit:
            return True
        return now - max(self.started, last_end or 0.0) >= self.stall


def start_record(plan: Plan, saga_id: str, i: int) -> bytes:
    """The record value that starts saga ``i`` (a CloudEvent, structured mode)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    fail = plan.fail_every > 0 and i % plan.fail_every == plan.fail_every // 2
    if plan.workload == "bench" and plan.via_trigger:
        doc = {
            "specversion": "1.0",
            "id": derived_id(TRIGGER_TYPE, saga_id),
            "source": SOURCE,
            "type": TRIGGER_TYPE,
            "time": now,
            "datacontenttype": "application/json",
            "sagaid": saga_id,
            "data": {"n": i, "fail": fail},
        }
    elif plan.workload == "bench":
        doc = {
            "specversion": "1.0",
            "id": derived_id(control.START, saga_id),
            "source": SOURCE,
            "type": control.START,
            "time": now,
            "datacontenttype": "application/json",
            "sagaid": saga_id,
            "data": {"saga": "bench", "data": {"n": i, "fail": fail}},
        }
    else:
        doc = {
            "specversion": "1.0",
            "id": derived_id("order.placed", saga_id),
            "source": SOURCE,
            "type": "order.placed",
            "time": now,
            "datacontenttype": "application/json",
            "sagaid": saga_id,
            "data": {
                "order_id": f"o-{saga_id}",
                "customer_id": f"c-{saga_id}",  # one customer each: no credit limit is reached
                "amount": 1_250,
                "lines": [{"sku": "SKU-001", "qty": 1}],
            },
        }
    return orjson.dumps(doc)


async def run(plan: Plan, emit: Any) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap_servers=plan.bootstrap)
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="latest",
        max_partition_fetch_bytes=4 * 1048576,
        # exactly_once: a saga ends when its terminal event is committed, not written
        isolation_level=isolation_level(guarantee_from_env()), **kafka.consumer_kwargs(),
    )  # fmt: skip
    # No linger: `SEND_TICK` gathers the starts, and a record batch queued by
    # ``send_batch`` would otherwise wait out the linger on top of it. The tick keeps
    # what the earlier 5 ms linger (Kafka's own default since 4.0, KIP-1030) was for on the
    # embedded broker: every producer request adds a batch to the trigger partition, and
    # Tansu lists them all on each fetch; with 2 ms, 850 starts/s for 40 s slowed the
    # coordinator's fetches to 800 ms (p50 hop), with 5 ms to 350 ms, with 10 ms to 120 ms.
    producer = AIOKafkaProducer(linger_ms=0, **kafka.aiokafka_kwargs())
    await consumer.start()
    await producer.start()
    tracker = Tracker()
    try:
        parts = consumer.partitions_for_topic(plan.lifecycle_topic)
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka API gap
            parts = consumer.partitions_for_topic(plan.lifecycle_topic) or set()
        tps = [TopicPartition(plan.lifecycle_topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        reader = asyncio.create_task(_read(consumer, tracker, plan.count))
        sending = asyncio.create_task(_send(plan, producer, tracker))
        reporter = asyncio.create_task(_report(plan, tracker, sending, emit))
        first, last = await sending
        drain = Drain(plan.count, plan.drain_timeout, plan.drain_limit, started=time.time())
        while not reader.done():
            last_end = tracker.end_times[-1] if tracker.end_times else None
            if drain.over(time.time(), len(tracker.ended), last_end):
                break
            await asyncio.sleep(0.05)
        reporter.cancel()
        reader.cancel()
        await asyncio.gather(reporter, reader, return_exceptions=True)
    finally:
        await producer.stop()
        await consumer.stop()
    return _result(plan, tracker, first, last)


@dataclass
class PartitionSends:
    """The starts due and not sent yet, by partition, and each partition's last record
    batch in flight. A partition's next batch goes out only once Kafka has its last one:
    aiokafka keeps one batch in flight per partition, and ``send_batch`` would make the
    generator wait for it, which would hold back the starts of every partition."""

    waiting: dict[int, list[OutRecord]] = field(default_factory=dict)
    in_flight: dict[int, asyncio.Future[Any]] = field(default_factory=dict)

    def add(self, record: OutRecord, partition: int) -> None:
        self.waiting.setdefault(partition, []).append(record)

    def take_ready(self) -> dict[int, list[OutRecord]]:
        """The waiting starts of each partition with no batch in flight (removed)."""
        ready = [
            p for p in self.waiting if (f := self.in_flight.get(p)) is None or f.done()
        ]  # fmt: skip
        return {p: self.waiting.pop(p) for p in ready}


async def _send(plan: Plan, producer: AIOKafkaProducer, tracker: Tracker) -> tuple[float, float]:
    label = plan.label
    partitions = len(await producer.partitions_for(plan.start_topic))
    t0 = time.time() + 0.05
    first = t0
    i = 0
    sends = PartitionSends()
    sent: list[asyncio.Future[Any]] = []  # every batch's future, to surface a failed send
    while i < plan.count or sends.waiting:
        now = time.time()
        while i < plan.count and t0 + i / plan.rate <= now:
            sid = f"{label}-{i}"
            key = sid.encode()
            tracker.due[key] = t0 + i / plan.rate
            partition = partition_for(key, partitions)
            value = start_record(plan, sid, i)
            sends.add(OutRecord(plan.start_topic, key, value, HEADERS, partition), partition)
            i += 1
        for partition, records in sends.take_ready().items():
            futures = await send_grouped(producer, records)
            sends.in_flight[partition] = futures[-1]  # a partition's batches go in order
            sent += futures
        if len(sent) > 5000:  # batches
            await asyncio.gather(*sent)
            sent.clear()
        next_due = t0 + i / plan.rate - time.time() if i < plan.count else 0.0
        await asyncio.sleep(max(SEND_TICK, next_due))
    await asyncio.gather(*sent)
    return first, time.time()


async def _read(consumer: AIOKafkaConsumer, tracker: Tracker, count: int) -> None:
    due, ended = tracker.due, tracker.ended
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=20_000)
        now = time.time()
        for records in batches.values():
            for record in records:
                tracker.lifecycle_events += 1
                if record.timestamp > tracker.last_event_ms:
                    tracker.last_event_ms = record.timestamp
                key, value = record.key, record.value
                if key not in due or value is None:
                    continue
                if _STARTED in value:
                    tracker.started.add(key)
                    tracker.started_at.setdefault(key, now)
                    continue
                for marker, outcome in _TERMINAL.items():
                    if marker in value:
                        if key in ended:
                            tracker.duplicate_ends += 1
                        else:
                            ended[key] = latency = now - due[key]
                            tracker.end_times.append(now)
                            tracker.outcomes[outcome] = tracker.outcomes.get(outcome, 0) + 1
                            tracker.by_outcome.setdefault(outcome, []).append(latency)
                        break


async def _report(plan: Plan, tracker: Tracker, sending: asyncio.Task[Any], emit: Any) -> None:
    while True:
        emit(
            {
                "progress": {
                    "t": time.time(),
                    "sent": len(tracker.due),
                    "started": len(tracker.started),
                    "terminal": len(tracker.ended),
                    "lifecycle_events": tracker.lifecycle_events,
                    "last_event_ms": tracker.last_event_ms,
                    "sending": not sending.done(),
                }
            }
        )
        await asyncio.sleep(0.1)


def _result(plan: Plan, tracker: Tracker, first: float, last: float) -> dict[str, Any]:
    latencies = list(tracker.ended.values())
    window_start = first + plan.warmup
    in_window = sum(1 for t in tracker.end_times if window_start <= t <= last)
    span = last - window_start
    finished_at = max(tracker.end_times) if tracker.end_times else last
    return {
        "label": plan.label,
        "offered_per_s": plan.rate,
        "sagas": plan.count,
        "sent_per_s": round(plan.count / max(last - first, 1e-9), 1),
        "send_start": first,
        "send_end": last,
        "window_start": window_start,
        "finished_at": finished_at,
        "terminal": len(tracker.ended),
        "missing": plan.count - len(tracker.ended),
        "missing_sample": [k.decode() for k in tracker.due if k not in tracker.ended][:20],
        "outcomes": tracker.outcomes,
        "duplicate_terminal_events": tracker.duplicate_ends,
        # terminal sagas per second while load was offered (after the warm-up)
        "achieved_per_s": round(in_window / span, 1) if span > 0 else 0.0,
        # all sagas of the point over first send -> last terminal event
        "overall_per_s": round(len(tracker.ended) / max(finished_at - first, 1e-9), 1),
        "latency": latency_summary_ms(latencies),
        **admission_summary(tracker),
        # the same, by how the sagas ended: compensating ones take more hops
        "latency_by_outcome": {
            outcome: latency_summary_ms(values) for outcome, values in tracker.by_outcome.items()
        },
    }


def admission_summary(tracker: Tracker) -> dict[str, Any]:
    """How long the admitted sagas took from their admission (``saga.started`` read) to
    their end, and how long starts waited to be admitted (due -> ``saga.started`` read):
    under overload the first is what a saga costs the system, the second the backlog."""
    admitted = [
        tracker.ended[key] - (at - tracker.due[key])
        for key, at in tracker.started_at.items()
        if key in tracker.ended
    ]
    waits = [at - tracker.due[key] for key, at in tracker.started_at.items()]
    return {
        "admitted_latency": latency_summary_ms(admitted),
        "start_wait": latency_summary_ms(waits),
    }


def main() -> None:
    plan = Plan.from_json(sys.argv[1])

    def emit(doc: dict[str, Any]) -> None:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        sys.stdout.flush()

    result = asyncio.run(run(plan, emit))
    emit({"result": result})


if __name__ == "__main__":
    main()
