"""The Kafka client's share of the coordinator's CPU: one record stream produced through
aiokafka and through librdkafka, on Apache Kafka, CPU per saga from /proc.

    python -m bench.client_cpu              # needs Java 17, Maven and `pip install confluent-kafka`
    python -m bench.client_cpu --rounds 3 --sagas 20000

What it answers (issue 19): how much of the coordinator's CPU per saga is aiokafka's
pure-Python producer path, and what a producer in C (librdkafka, through confluent-kafka)
would leave. It does not change the engine; the coordinator still uses aiokafka.

The stream is the coordinator's own: `bench.engine_cpu` runs bench sagas through a real
`Coordinator` (no broker) in batches of ``--batch`` records in (55 is what the full
benchmark's coordinator saw per batch at 1,000 sagas/s on Apache Kafka), and each batch's
commands, lifecycle events and saga states are kept. Each client then writes them the way
the persister does: a batch's commands and lifecycle events, acknowledged (acks=all),
then its states on the changelog, acknowledged, one batch after the other. Both write the
same records to the same partitions (murmur2 of the key, Kafka's default).

The figure is the process's CPU (every thread: librdkafka's are threads of this process)
per saga while writing, rounds alternating between the clients. The fetch side (about a
third of the client's share in the coordinator's profile) is not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.engine_cpu import PREFIX, run_once
from bench.workload import write_bench_definition
from events.partitioning import partition_for
from events.records import OutRecord
from sagas.kafka.admin import ensure_compacted_topic, ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.producer_batches import BATCH_BYTES, batching_producer, send_grouped
from sagas.saga_table import GENERATION_HEADER

CHANGELOG = f"{PREFIX}bench-changelog"
#: seconds a group of records may take to be acknowledged before the round fails
SEND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Batch:
    """What one coordinator batch writes: first ``outgoing``, then ``states``."""

    outgoing: tuple[OutRecord, ...]
    states: tuple[OutRecord, ...]


@dataclass(frozen=True)
class Stream:
    sagas: int
    batches: tuple[Batch, ...]
    partitions: int

    @property
    def records(self) -> int:
        return sum(len(b.outgoing) + len(b.states) for b in self.batches)

    @property
    def topics(self) -> set[str]:
        return {r.topic for b in self.batches for r in b.outgoing}


def capture(sagas: int, batch: int, partitions: int) -> Stream:
    """The coordinator's writes for ``sagas`` bench sagas, batch by batch, with the
    partition each record goes to."""
    batches: list[Batch] = []
    header = [(GENERATION_HEADER, b"1")]

    def keep(outgoing: Sequence[OutRecord], writes: dict[bytes, bytes | None]) -> None:
        out = tuple(
            OutRecord(r.topic, r.key, r.value, r.headers,
                      r.partition if r.partition is not None or r.key is None
                      else partition_for(r.key, partitions))
            for r in outgoing
        )  # fmt: skip
        states = tuple(
            OutRecord(CHANGELOG, key, raw, header, partition_for(key, partitions))
            for key, raw in writes.items()
        )
        batches.append(Batch(out, states))

    with tempfile.TemporaryDirectory() as tmp:
        definitions = write_bench_definition(PREFIX, Path(tmp), timeout=900.0)
        run_once(definitions, sagas, batch, None, keep)
    return Stream(sagas, tuple(batches), partitions)


def cpu_seconds() -> float:
    """This process's CPU so far, every thread included (librdkafka's too)."""
    return time.process_time()


async def write_aiokafka(kafka: KafkaSettings, stream: Stream) -> float:
    """The persister's way: `send_grouped` on a batching aiokafka producer; CPU seconds."""
    producer = batching_producer(kafka)
    await producer.start()
    try:
        await _aiokafka_batches(producer, stream.batches[:20])  # connections and metadata
        start = cpu_seconds()
        await _aiokafka_batches(producer, stream.batches)
        return cpu_seconds() - start
    finally:
        await producer.stop()


async def _aiokafka_batches(producer: Any, batches: Sequence[Batch]) -> None:
    for batch in batches:
        await asyncio.gather(*await send_grouped(producer, batch.outgoing))
        await asyncio.gather(*await send_grouped(producer, batch.states))


class _Deliveries:
    """Waits for librdkafka's delivery reports of one group of records: a thread polls
    the producer and wakes the event loop once per group, not once per record."""

    def __init__(self, producer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.producer, self.loop = producer, loop
        self.outstanding = 0
        self.lock = threading.Lock()
        self.failed: list[str] = []
        self.done: asyncio.Future[None] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def report(self, err: Any, msg: Any) -> None:  # librdkafka's on_delivery, poll thread
        if err is not None:
            self.failed.append(str(err))
        with self.lock:
            self.outstanding -= 1
            done = self.done if self.outstanding == 0 else None
            if done is not None:
                self.done = None
        if done is not None:
            self.loop.call_soon_threadsafe(done.set_result, None)

    def _poll(self) -> None:
        while not self.stopping.is_set():
            self.producer.poll(0.1)

    async def send(self, records: Sequence[OutRecord]) -> None:
        """Produce ``records`` and wait until Kafka has every one of them."""
        if not records:
            return
        done = self.loop.create_future()
        with self.lock:
            self.done = done
            self.outstanding += len(records)  # before any report can come
        produce, produced = self.producer.produce, 0
        try:
            for r in records:
                partition = -1 if r.partition is None else r.partition  # -1: the partitioner's
                produce(r.topic, r.value, r.key, partition, headers=r.headers)  # type: ignore[arg-type]
                produced += 1
        finally:
            if produced < len(records):  # no report will come for those
                with self.lock:
                    self.outstanding -= len(records) - produced
        try:
            await asyncio.wait_for(done, SEND_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(
                f"librdkafka: {self.outstanding} of {len(records)} records not acknowledged "
                f"within {SEND_TIMEOUT:g} s"
            ) from None
        if self.failed:
            raise RuntimeError(f"librdkafka could not deliver: {self.failed[:3]}")

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()


def _librdkafka_config(kafka: KafkaSettings, linger_ms: float) -> dict[str, Any]:
    """As the persister's producer: acks=all, idempotence as ``KAFKA_ENABLE_IDEMPOTENCE``
    says (off by default), batches as large as its."""
    return {
        "bootstrap.servers": kafka.require_bootstrap(),
        "acks": "all",
        "enable.idempotence": kafka.enable_idempotence,
        "linger.ms": linger_ms,
        "batch.size": BATCH_BYTES,
    }


async def write_librdkafka(kafka: KafkaSettings, stream: Stream, linger_ms: float) -> float:
    """The same writes through confluent-kafka's producer, awaited on the event loop (a
    thread polls for delivery reports, as an asyncio coordinator would); CPU seconds."""
    from confluent_kafka import Producer

    deliveries: _Deliveries | None = None

    def report(err: Any, msg: Any) -> None:
        assert deliveries is not None
        deliveries.report(err, msg)

    producer = Producer({**_librdkafka_config(kafka, linger_ms), "on_delivery": report})
    deliveries = _Deliveries(producer, asyncio.get_running_loop())
    poller = deliveries
    try:
        for batches in (stream.batches[:20], stream.batches):  # warm-up, then measured
            start = cpu_seconds()
            for batch in batches:
                await deliveries.send(batch.outgoing)
                await deliveries.send(batch.states)
        return cpu_seconds() - start
    finally:
        poller.close()
        producer.flush(10)
        # producer -> report -> deliveries -> producer: broken here, so the producer and
        # its threads are freed at return and do not run (and count) into the next round
        deliveries = None


async def write_librdkafka_flush(kafka: KafkaSettings, stream: Stream, linger_ms: float) -> float:
    """librdkafka's floor: the same writes with a blocking ``flush()`` after each group, in
    a thread of its own (no event loop, no poll thread), and delivery reports for errors
    only (no call into Python per record); CPU seconds."""
    from confluent_kafka import Producer

    failed: list[str] = []

    def report(err: Any, msg: Any) -> None:
        failed.append(str(err))

    config = _librdkafka_config(kafka, linger_ms)
    producer = Producer({**config, "on_delivery": report, "delivery.report.only.error": True})

    def write(batches: Sequence[Batch]) -> float:
        start = cpu_seconds()
        for batch in batches:
            for group in (batch.outgoing, batch.states):
                for r in group:
                    partition = -1 if r.partition is None else r.partition
                    producer.produce(r.topic, r.value, r.key, partition, headers=r.headers)  # type: ignore[arg-type]
                if (left := producer.flush(SEND_TIMEOUT)) > 0:
                    raise RuntimeError(
                        f"librdkafka: {left} records not acknowledged within {SEND_TIMEOUT:g} s"
                    )
        if failed:
            raise RuntimeError(f"librdkafka could not deliver: {failed[:3]}")
        return cpu_seconds() - start

    await asyncio.to_thread(write, stream.batches[:20])
    return await asyncio.to_thread(write, stream.batches)


Writer = Callable[[KafkaSettings, Stream], Awaitable[float]]


def writers(linger_ms: float) -> dict[str, Writer]:
    """The clients compared, by name; ``linger_ms`` is librdkafka's ``linger.ms``."""
    return {
        "aiokafka": write_aiokafka,
        "librdkafka": partial(write_librdkafka, linger_ms=linger_ms),
        "librdkafka, blocking flush": partial(write_librdkafka_flush, linger_ms=linger_ms),
    }


async def measure(
    kafka: KafkaSettings, stream: Stream, rounds: int, linger_ms: float
) -> dict[str, list[float]]:
    """µs of CPU per saga for each client, ``rounds`` rounds alternating."""
    await ensure_topics(kafka.model_copy(update={"partitions": stream.partitions}),
                        sorted(stream.topics))  # fmt: skip
    await ensure_compacted_topic(kafka, CHANGELOG, partitions=stream.partitions)
    chosen = writers(linger_ms)
    per: dict[str, list[float]] = {name: [] for name in chosen}
    for n in range(rounds):
        for name, write in chosen.items():
            seconds = await write(kafka, stream)
            gc.collect()  # the round's client and its threads are gone before the next
            per[name].append(1e6 * seconds / stream.sagas)
            print(f"  round {n + 1}/{rounds} {name:>26}: {per[name][-1]:,.0f} us per saga",
                  flush=True)  # fmt: skip
    return per


async def main_async(args: argparse.Namespace, stream: Stream) -> None:
    import confluent_kafka

    from sagas.kafka.apache_kafka import ApacheKafka

    print(f"  {stream.records / stream.sagas:.1f} records per saga in {len(stream.batches):,} "
          f"batches; starting Apache Kafka ...", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        async with ApacheKafka(work_dir=Path(tmp) / "kafka") as cluster:
            per = await measure(
                cluster.settings(KafkaSettings()), stream, args.rounds, args.linger_ms
            )
    idempotence = "on" if KafkaSettings().enable_idempotence else "off"
    print(f"producer CPU per saga, Apache Kafka {cluster.version}, {args.partitions} partitions, "
          f"idempotence {idempotence}, "
          f"{args.batch} records in per batch, {args.rounds} rounds (aiokafka "
          f"{_version('aiokafka')}, confluent-kafka {confluent_kafka.version()}, "
          f"librdkafka {confluent_kafka.libversion()[0]}):")  # fmt: skip
    for line in paired_lines(per, "us per saga"):
        print(line)


def paired_lines(per: dict[str, list[float]], unit: str, digits: int = 0) -> list[str]:
    """Per client: median, range, and the range of its ratios to aiokafka's figure of the
    same round (rounds alternate, so a ratio compares runs minutes apart, not hours)."""
    base = per["aiokafka"]
    width = max(len(name) for name in per)
    lines = []
    for name, values in per.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        lines.append(
            f"  {name:>{width}}: median {statistics.median(values):,.{digits}f} {unit}, "
            f"range {min(values):,.{digits}f}-{max(values):,.{digits}f}; paired ratio to "
            f"aiokafka {min(ratios):.2f}-{max(ratios):.2f}"
        )
    return lines


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sagas", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=55, help="records in per coordinator batch")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--linger-ms", type=float, default=0.0,
        help="librdkafka's linger.ms (aiokafka's path never lingers: it queues whole batches)",
    )  # fmt: skip
    args = parser.parse_args()
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise SystemExit(
            "bench.client_cpu needs confluent-kafka: pip install confluent-kafka"
        ) from None
    print(f"capturing the coordinator's writes for {args.sagas:,} bench sagas ...", flush=True)
    stream = capture(args.sagas, args.batch, args.partitions)  # runs a loop of its own
    asyncio.run(main_async(args, stream))


if __name__ == "__main__":
    main()
