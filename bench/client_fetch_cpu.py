"""The fetch side of `bench.client_cpu`: records arriving at a live rate, read by aiokafka
and by librdkafka, CPU per record on Apache Kafka.

    python -m bench.client_fetch_cpu                 # needs Java 17, Maven, confluent-kafka
    python -m bench.client_fetch_cpu --rate 5100 --seconds 20 --rounds 3

A feeder process (not counted) writes records of a reply's size to 5 topics of 8
partitions (a coordinator's inputs: its control topic and the bench saga's four reply
topics) at ``--rate`` records per second, in ticks of 5 ms: 5,100/s is what the
coordinator reads at 1,000 bench sagas/s (5.1 records per saga). The reader under test,
in this process, reads them as they come:

- aiokafka: `getmany` in a loop, as the coordinator's loop calls it (fetch wait 100 ms,
  fetch min bytes 1: the engine's defaults on Apache Kafka);
- librdkafka (confluent-kafka): ``consume`` in a loop in a thread of its own, the same
  fetch settings; its fetches run in librdkafka's threads. No event loop is involved,
  so this is its floor: a coordinator would still hand the records to asyncio.

The figure is this process's CPU (every thread) per record read, over the feeder's run.
Each reader spends ``--work-us`` of its own thread's CPU per record read, standing in for
the engine (so records gather between reads, as in a coordinator), and that time is taken
out of the figure: without it a reader that does nothing fetches one record at a time,
which no busy coordinator does.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.client_cpu import cpu_seconds, paired_lines
from events.records import OutRecord
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.producer_batches import batching_producer, send_grouped

#: a coordinator's inputs for the bench saga: its control topic and four reply topics
TOPIC_NAMES = ("control", "s1.replies", "s2.replies", "s3.replies", "s4.replies")
#: a reply's size in `bench.engine_cpu`'s stream (commands are 290 B, replies alike)
VALUE_BYTES = 300
TICK = 0.005


@dataclass(frozen=True)
class Feed:
    """What the feeder writes: ``rate`` records/s for ``seconds``, random saga ids as keys."""

    bootstrap: str
    rate: float
    seconds: float
    partitions: int
    prefix: str = "fetchcpu."
    #: seconds past ``seconds`` a reader may take before it is a failure
    grace: float = 60.0

    @property
    def records(self) -> int:
        return int(self.rate * self.seconds)

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self.prefix + name for name in TOPIC_NAMES)

    @property
    def deadline(self) -> float:
        """Seconds a reader may take, from the feeder's start, before it is a failure."""
        return self.seconds + self.grace


@dataclass(frozen=True)
class Read:
    """What a reader did: the records it read and the CPU it spent (stand-in work excluded)."""

    records: int
    cpu_seconds: float


class ReadFailed(RuntimeError):
    pass


class _Tally:
    """A reader's count against the plan, and its CPU from now, stand-in work excluded."""

    def __init__(self, plan: Feed, work_us: float) -> None:
        self.plan, self.work_us = plan, work_us
        self.read, self.worked = 0, 0.0
        self.start, self.until = cpu_seconds(), time.monotonic() + plan.deadline

    def wants_more(self) -> bool:
        """True until every record is read; past the deadline, `ReadFailed`."""
        if self.read >= self.plan.records:
            return False
        if time.monotonic() > self.until:
            raise ReadFailed(
                f"read {self.read:,} of the {self.plan.records:,} records the feeder writes "
                f"to {self.plan.prefix}* within {self.plan.deadline:g} s: records were lost, "
                f"or the feeder stalled"
            )
        return True

    def add(self, records: int) -> None:
        self.read += records
        self.worked += work(records, self.work_us)

    def result(self) -> Read:
        return Read(self.read, cpu_seconds() - self.start - self.worked)


async def feed(plan: Feed) -> None:
    """Write ``plan.records`` records evenly over ``plan.seconds`` (the feeder process)."""
    kafka = KafkaSettings(bootstrap_servers=plan.bootstrap)
    producer = batching_producer(kafka)
    await producer.start()
    value = b"x" * VALUE_BYTES
    rng = random.Random(7)
    topics = plan.topics
    try:
        ticks = max(1, int(plan.seconds / TICK))
        start = time.monotonic()
        sent = 0
        for tick in range(ticks):
            due = plan.records * (tick + 1) // ticks
            records = [
                OutRecord(rng.choice(topics), f"saga-{rng.randrange(10**7):07d}".encode(),
                          value, [])
                for _ in range(due - sent)
            ]  # fmt: skip
            sent = due
            await asyncio.gather(*await send_grouped(producer, records))
            await asyncio.sleep(max(0.0, start + (tick + 1) * TICK - time.monotonic()))
    finally:
        await producer.stop()


def work(records: int, us_per_record: float) -> float:
    """Stand in for the engine: keep this thread busy ``us_per_record`` of CPU per record
    read, so that records gather between reads as in a coordinator; the CPU spent here."""
    if not records or us_per_record <= 0:
        return 0.0
    start = time.thread_time()
    until = start + records * us_per_record / 1e6
    while (now := time.thread_time()) < until:
        pass
    return now - start


async def read_aiokafka(
    kafka: KafkaSettings, plan: Feed, started: asyncio.Event, work_us: float
) -> Read:
    """Read the feeder's records with aiokafka's `getmany`, from the log's end as it was
    before the feeder started (``started`` is set then)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**kafka.consumer_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in plan.topics for p in range(plan.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolved now, not on the first fetch
        started.set()
        tally = _Tally(plan, work_us)
        while tally.wants_more():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            tally.add(sum(len(rs) for rs in batches.values()))
        return tally.result()
    finally:
        await consumer.stop()


async def read_librdkafka(
    kafka: KafkaSettings, plan: Feed, started: asyncio.Event, work_us: float
) -> Read:
    """Read the feeder's records with librdkafka's ``consume`` in a thread of its own,
    with aiokafka's fetch settings (wait, min bytes, CRC checks, read_uncommitted)."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as RdTopicPartition

    consumer = Consumer({
        "bootstrap.servers": kafka.require_bootstrap(),
        "group.id": f"{plan.prefix}reader",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": kafka.fetch_max_wait_ms,
        "fetch.min.bytes": kafka.fetch_min_bytes,
        "check.crcs": True,  # aiokafka's default; librdkafka's is off
        "isolation.level": "read_uncommitted",  # the engine's default; librdkafka's is not
    })  # fmt: skip
    ready = threading.Event()

    def read() -> Read:
        tps = [RdTopicPartition(t, p) for t in plan.topics for p in range(plan.partitions)]
        for tp in tps:  # from the log's end, resolved before the feeder starts
            tp.offset = consumer.get_watermark_offsets(tp, timeout=10)[1]
        consumer.assign(tps)
        ready.set()
        tally = _Tally(plan, work_us)
        while tally.wants_more():
            tally.add(len(consumer.consume(num_messages=2000, timeout=0.1)))
        return tally.result()

    try:
        reading = asyncio.ensure_future(asyncio.to_thread(read))
        waiting = asyncio.ensure_future(asyncio.to_thread(ready.wait, 30))
        await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if reading.done():
            waiting.cancel()
            return reading.result()  # it failed before it was ready: raises why
        if not waiting.result():
            raise ReadFailed("librdkafka's reader was not assigned its partitions within 30 s")
        started.set()
        return await reading
    finally:
        consumer.close()


Reader = Callable[[KafkaSettings, Feed, asyncio.Event, float], Coroutine[Any, Any, Read]]
READERS: dict[str, Reader] = {"aiokafka": read_aiokafka, "librdkafka": read_librdkafka}


async def one_round(kafka: KafkaSettings, plan: Feed, reader: Reader, work_us: float) -> float:
    """µs of CPU per record for ``reader`` while the feeder writes ``plan`` (the stand-in
    engine work excluded); fails if the reader or the feeder does, or if the reader read
    other than exactly what the feeder wrote."""
    started = asyncio.Event()
    reading = asyncio.create_task(reader(kafka, plan, started, work_us))
    ready = asyncio.create_task(started.wait())
    await asyncio.wait({reading, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        if reading.done():
            reading.result()  # raises why it failed
        reading.cancel()
        raise ReadFailed("the reader was not ready to read within 60 s")
    feeder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.client_fetch_cpu", "--feed",
        orjson.dumps(asdict(plan)).decode(),
    )  # fmt: skip
    fed = asyncio.create_task(feeder.wait())
    try:
        await asyncio.wait({reading, fed}, return_when=asyncio.FIRST_COMPLETED)
        if fed.done() and fed.result() != 0:
            raise ReadFailed(f"the feeder failed (exit {fed.result()}); see its output above")
        read = await reading  # raises `ReadFailed` past the deadline
        await fed
    finally:
        for task in (reading, fed):
            task.cancel()
        if feeder.returncode is None:
            feeder.kill()
            await feeder.wait()
    if read.records != plan.records:
        raise ReadFailed(f"read {read.records:,} records, the feeder wrote {plan.records:,}: "
                         f"another writer shares the topics {plan.prefix}*")  # fmt: skip
    return 1e6 * read.cpu_seconds / plan.records


async def main_async(args: argparse.Namespace) -> None:
    import confluent_kafka

    from sagas.kafka.apache_kafka import ApacheKafka

    with tempfile.TemporaryDirectory() as tmp:
        async with ApacheKafka(work_dir=Path(tmp) / "kafka") as cluster:
            kafka = cluster.settings(KafkaSettings()).model_copy(
                update={"partitions": args.partitions}
            )
            plan = Feed(kafka.require_bootstrap(), args.rate, args.seconds, args.partitions)
            await ensure_topics(kafka, list(plan.topics))
            per: dict[str, list[float]] = {name: [] for name in READERS}
            for n in range(args.rounds):
                for name, reader in READERS.items():
                    per[name].append(await one_round(kafka, plan, reader, args.work_us))
                    print(f"  round {n + 1}/{args.rounds} {name:>10}: {per[name][-1]:,.1f} us "
                          f"per record", flush=True)  # fmt: skip
    print(f"reader CPU per record, Apache Kafka {cluster.version}, {len(TOPIC_NAMES)} topics of "
          f"{args.partitions} partitions, {args.rate:,.0f} records/s for {args.seconds:g} s, "
          f"{args.work_us:g} us of stand-in work per record, {args.rounds} rounds "
          f"(confluent-kafka {confluent_kafka.version()}, "
          f"librdkafka {confluent_kafka.libversion()[0]}; x 5.1 for a bench saga):")  # fmt: skip
    for line in paired_lines(per, "us per record", digits=1):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5100.0, help="records per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--work-us", type=float, default=78.0,
        help="CPU the reader spends per record read, standing in for the engine "
        "(bench.engine_cpu: ~400 us per saga of 5.1 records); excluded from the figure",
    )  # fmt: skip
    parser.add_argument("--feed", help=argparse.SUPPRESS)  # the feeder process's plan
    args = parser.parse_args()
    if args.feed:
        asyncio.run(feed(Feed(**orjson.loads(args.feed))))
        return
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise SystemExit(
            "bench.client_fetch_cpu needs confluent-kafka: pip install confluent-kafka"
        ) from None
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
