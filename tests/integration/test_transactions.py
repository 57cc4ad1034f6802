"""Exactly-once persistence on Apache Kafka (`sagas.kafka.transactions`), and its refusal
on the embedded broker.

The fencing test plays two replicas of one coordinator group in one process: each a
`PartitionTransactions` with real transactional producers; the first (the zombie) is
held just before committing while the second takes the partition over.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from events.codec import encode
from events.envelope import CloudEvent, new_event
from events.records import OutRecord
from sagas.kafka.admin import ensure_topics
from sagas.kafka.embedded_broker import EmbeddedBroker
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.log_reader import read_to_end
from sagas.kafka.producer_batches import batching_producer
from sagas.kafka.transaction_failures import ReplicaFenced
from sagas.kafka.transactions import PartitionTransactions
from sagas.participants.participant import Outgoing, Participant
from tests.integration.api_system import definitions_file
from tests.kafka_fixtures import eventually
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BRIDGE_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "http-bridge"
NO_TRANSACTIONS = (
    "the embedded Tansu broker has no Kafka transactions (InitProducerId fails): "
    "runs on Apache Kafka (make test-kafka)"
)


@pytest.fixture
def transactional_kafka(
    kafka_settings: KafkaSettings, embedded_broker: EmbeddedBroker | None
) -> KafkaSettings:
    if embedded_broker is not None:
        pytest.skip(NO_TRANSACTIONS)
    return kafka_settings


class _GatedProducer:
    """A real transactional producer whose commit waits for ``gate``: a replica paused
    between writing its batch and committing it."""

    def __init__(self, producer: AIOKafkaProducer, gate: asyncio.Event) -> None:
        self._producer = producer
        self._gate = gate
        self._acks: list[asyncio.Future[Any]] = []
        self.sent = asyncio.Event()

    async def send_batch(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        ack = await self._producer.send_batch(*args, **kwargs)
        self._acks.append(ack)
        return ack

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        ack = await self._producer.send(*args, **kwargs)
        self._acks.append(ack)
        return ack

    async def commit_transaction(self) -> None:
        await asyncio.gather(*self._acks)  # the batch is in the log, not yet committed
        self.sent.set()
        await self._gate.wait()
        await self._producer.commit_transaction()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


async def _values(kafka: KafkaSettings, tp: TopicPartition, isolation: str) -> list[bytes]:
    out: list[bytes] = []
    async for batch in read_to_end(kafka, [tp], isolation=isolation):
        out += [r.value for r in batch if r.value is not None]
    return out


async def _committed(kafka: KafkaSettings, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **kafka.consumer_kwargs())
    await consumer.start()
    try:
        return await consumer.committed(tp)  # type: ignore[no-any-return]
    finally:
        await consumer.stop()


async def test_a_zombie_replica_is_fenced_and_its_open_transaction_is_never_read(
    transactional_kafka: KafkaSettings, topic_factory: Any
) -> None:
    kafka = transactional_kafka
    out_topic, in_topic = topic_factory("lifecycle"), topic_factory("inputs")
    await ensure_topics(kafka, {out_topic: 2, in_topic: 2})
    group = f"g-{uuid.uuid4().hex[:8]}"
    out_tp, in_tp = TopicPartition(out_topic, 0), TopicPartition(in_topic, 0)
    gate = asyncio.Event()
    gated: list[_GatedProducer] = []

    def zombie_producer(tx_id: str) -> Any:
        gated.append(_GatedProducer(batching_producer(kafka, transactional_id=tx_id), gate))
        return gated[-1]

    def record(value: bytes) -> OutRecord:
        return OutRecord(out_topic, None, value, [], 0)

    zombie = PartitionTransactions(zombie_producer, group, 2)
    heir = PartitionTransactions(lambda i: batching_producer(kafka, transactional_id=i), group, 2)
    try:
        await zombie.own({0})
        gate.set()
        await zombie.persist([record(b"before")], {in_tp: 5})
        gate.clear()
        gated[0].sent.clear()
        held = zombie.persist([record(b"zombie-1"), record(b"zombie-2")], {in_tp: 9})
        await asyncio.wait_for(gated[0].sent.wait(), 30)  # written, not committed

        await heir.own({0})  # the rebalance gave partition 0 to the heir: same id, new epoch
        await heir.persist([record(b"heir")], {in_tp: 7})
        gate.set()
        with pytest.raises(ReplicaFenced, match=r"eos-0.*input partition 0"):
            await asyncio.wait_for(held, 30)
        with pytest.raises(ReplicaFenced):  # and it stays fenced: a later batch fails too
            await asyncio.wait_for(zombie.persist([record(b"zombie-3")], {in_tp: 10}), 30)
    finally:
        gate.set()
        await zombie.stop()
        await heir.stop()

    committed = await _values(kafka, out_tp, "read_committed")
    assert committed == [b"before", b"heir"], committed
    # the zombie did write: its records are in the log, only read_committed hides them
    assert b"zombie-1" in await _values(kafka, out_tp, "read_uncommitted")
    assert await _committed(kafka, group, in_tp) == 7


@pytest.mark.embedded_only
async def test_exactly_once_is_refused_on_the_embedded_broker_with_one_line_and_exit_2(
    embedded_broker: EmbeddedBroker | None, tmp_path: Path
) -> None:
    if embedded_broker is None:
        pytest.skip("about the embedded broker: KAFKA_BOOTSTRAP_SERVERS names another cluster")
    prefix = f"x{uuid.uuid4().hex[:6]}."
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SAGAS_", "KAFKA_"))},
        "KAFKA_BOOTSTRAP_SERVERS": embedded_broker.bootstrap_servers,
        "SAGAS_TOPIC_PREFIX": prefix,
        "SAGAS_APP_ID": f"{prefix}coordinator",
        "SAGAS_PROCESSING_GUARANTEE": "exactly_once",
    }
    bridge = tmp_path / "bridge.yaml"
    bridge.write_text((BRIDGE_EXAMPLE / "bridge.yaml").read_text())
    commands = {
        "worker": [
            "worker",
            "-d",
            str(definitions_file(tmp_path, prefix)),
            "--web-port",
            str(free_port()),
        ],
        "service": ["service", "inventory", "--log-level", "warning"],
        "bridge": ["bridge", "--config", str(bridge), "--log-level", "warning"],
    }
    for what, args in commands.items():
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "sagas", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (what, done.returncode, done.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, done.stderr)
        assert "SAGAS_PROCESSING_GUARANTEE=exactly_once needs Kafka transactions" in lines[0]
        assert "SAGAS_PROCESSING_GUARANTEE=at_least_once" in lines[0], lines[0]


class _HeldParticipant(Participant[dict[str, int]]):
    """Writes its batch (changelog, replies) in its transaction, then waits for ``gate``
    before the runner commits it: a participant paused mid-batch."""

    gate: asyncio.Event
    written: asyncio.Event

    async def process(self, records: Any, failures: Any = None) -> None:
        await super().process(records, failures)
        self.written.set()
        await self.gate.wait()


def _counter(reply_topic: str) -> Any:
    def handle(state: dict[str, int], event: CloudEvent) -> tuple[dict[str, int], list[Outgoing]]:
        n = state.get(event.sagaid, 0) + 1
        return {**state, event.sagaid: n}, [
            Outgoing(reply_topic, event.reply("thing.done", "test", {"effects": n}))
        ]

    return handle


async def _things_topics(
    base: KafkaSettings, prefix: str, partitions: int
) -> tuple[KafkaSettings, str, str]:
    """Settings with ``prefix`` and ``partitions``, and the things' command and reply topics
    (created, with the dead-letter topic)."""
    kafka = base.model_copy(update={"topic_prefix": prefix, "partitions": partitions})
    commands, replies = prefix + "things.commands", prefix + "things.replies"
    await ensure_topics(kafka, [commands, replies, prefix + "saga.deadletter"])
    return kafka, commands, replies


async def test_a_second_participant_of_the_same_name_fences_the_first_whose_batch_is_never_read(
    transactional_kafka: KafkaSettings, unique_prefix: str
) -> None:
    kafka, commands, replies = await _things_topics(transactional_kafka, unique_prefix, 2)

    def make(kind: type[Participant[dict[str, int]]]) -> Participant[dict[str, int]]:
        return kind(
            "things", [commands], _counter(replies), {}, kafka=kafka, output_topics=[replies],
            handles={"thing.do"}, registry=CollectorRegistry(), guarantee="exactly_once",
        )  # fmt: skip

    first = make(_HeldParticipant)
    assert isinstance(first, _HeldParticipant)
    first.gate, first.written = asyncio.Event(), asyncio.Event()
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(first.serve(stop_first))
    second_serving: asyncio.Task[None] | None = None
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs())
    await producer.start()
    try:
        await asyncio.wait_for(first.ready.wait(), 60)
        command = new_event("thing.do", source="test", sagaid="saga-1", data={})
        value, headers = encode(command)
        await producer.send_and_wait(commands, value, key=b"saga-1", headers=headers)
        await asyncio.wait_for(first.written.wait(), 60)  # its reply is written, uncommitted

        second = make(Participant)
        second_serving = asyncio.create_task(second.serve(stop_second))
        await asyncio.wait_for(second.ready.wait(), 60)  # took the transactional id over
        await eventually(lambda: second.state.get("saga-1") == 1, 60, what="the heir's effect")
        first.gate.set()
        with pytest.raises(ReplicaFenced, match="things-eos"):
            await asyncio.wait_for(serving, 60)
    finally:
        first.gate.set()
        stop_first.set()
        stop_second.set()
        await producer.stop()
        await asyncio.gather(serving, return_exceptions=True)
        if second_serving is not None:
            await asyncio.wait_for(second_serving, 60)

    tps = [TopicPartition(replies, n) for n in range(2)]
    committed = [
        r async for batch in read_to_end(kafka, tps, isolation="read_committed") for r in batch
    ]
    everything = [r async for batch in read_to_end(kafka, tps) for r in batch]
    assert len(committed) == 1, committed  # one reply: the heir's
    assert len(everything) == 2, everything  # the fenced one wrote its own, aborted


class _DiesHoldingAnswers(Participant[dict[str, int]]):
    """Its held-back answers die with it, as with a SIGKILL during their delay."""

    async def _flush_held(self) -> None:
        pass


class _FailsMidBatch(Participant[dict[str, int]]):
    """A batch with saga ``boom`` fails once its changelog entry is in the open transaction."""

    async def _send_all(self, records: Any, *, late: bool = False) -> None:
        if not late and any(r.key == b"boom" and "replies" in r.topic for r in records):
            raise RuntimeError("the replies could not be sent")
        await super()._send_all(records, late=late)


async def test_held_back_answers_in_exactly_once_survive_a_death_and_a_failed_batch(
    transactional_kafka: KafkaSettings, unique_prefix: str
) -> None:
    p = unique_prefix
    kafka, commands, replies = await _things_topics(transactional_kafka, p, 1)
    tp = TopicPartition(commands, 0)
    late = new_event("thing.do", source="test", sagaid="saga-1", data={})
    after = new_event("thing.do", source="test", sagaid="saga-1", data={})
    held = new_event("thing.do", source="test", sagaid="saga-2", data={})
    boom = new_event("thing.do", source="test", sagaid="boom", data={})

    def make(
        kind: type[Participant[dict[str, int]]], *late_ids: str
    ) -> Participant[dict[str, int]]:
        return kind(
            "things", [commands], _counter(replies), {}, kafka=kafka, output_topics=[replies],
            handles={"thing.do"}, registry=CollectorRegistry(), guarantee="exactly_once",
            answer_delay=lambda event_id: 60.0 if event_id in late_ids else 0.0,
        )  # fmt: skip

    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs())
    await producer.start()

    async def send(event: CloudEvent) -> None:
        value, headers = encode(event)
        await producer.send_and_wait(commands, value, key=event.sagaid.encode(), headers=headers)

    async def read(topic: str) -> list[Any]:
        tps = [TopicPartition(topic, 0)]
        return [
            r async for batch in read_to_end(kafka, tps, isolation="read_committed") for r in batch
        ]

    stop = asyncio.Event()
    serving: asyncio.Task[None] | None = None
    try:
        # 1. Dies holding an answer: both inputs took effect, neither is committed.
        first = make(_DiesHoldingAnswers, late.id)
        async with first:
            await send(late)
            await send(after)
            await eventually(lambda: first.state.get("saga-1") == 2, 60, what="both effects")
            await eventually(lambda: len(first.held.waiting) == 1, 60, what="the held answer")
        assert first.committed.get(tp, 0) == 0
        # 2. The next one answers both from its changelog and commits them. It holds
        # another answer, then fails inside a later batch; stopping sends the held answer
        # but does not commit the half-written transaction of the failed batch.
        second = make(_FailsMidBatch, held.id)
        serving = asyncio.create_task(second.serve(stop))
        await asyncio.wait_for(second.ready.wait(), 60)
        assert second.state == {"saga-1": 2}
        await eventually(lambda: second.committed.get(tp) == 2, 60, what="both inputs committed")
        await send(held)
        await eventually(lambda: len(second.held.waiting) == 1, 60, what="the second hold")
        await send(boom)
        with pytest.raises(RuntimeError, match="replies could not be sent"):
            await asyncio.wait_for(serving, 60)
    finally:
        stop.set()
        await producer.stop()
        if serving is not None:
            await asyncio.gather(serving, return_exceptions=True)
    assert second.committed.get(tp) == 2  # neither the held input nor the failed one
    answers = await read(replies)
    assert sum(late.id.encode() in r.value for r in answers) == 1  # lost, then sent once
    assert sum(held.id.encode() in r.value for r in answers) == 1  # flushed on stop
    assert not any(r.key == b"boom" for r in answers)
    changelog = await read(p + "things.changelog")
    assert len(changelog) == 3, "the failed batch's changelog entry was committed on stop"
