"""The participant helper on a real broker: answers, dedupes, dead-letters, remembers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from events.codec import encode
from events.envelope import CloudEvent, new_event
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.participants.participant import Handler, Outgoing, Participant
from services.late_answers import LateAnswers
from tests.kafka_fixtures import eventually
from tests.support.kafka_peers import TopicRecorder

pytestmark = pytest.mark.integration


class Counter:
    """A handler with a visible effect: how many times each saga's command took effect."""

    def __init__(self, reply_topic: str) -> None:
        self.reply_topic = reply_topic
        self.calls = 0  # handler invocations, including replays

    def __call__(
        self, state: dict[str, int], event: CloudEvent
    ) -> tuple[dict[str, int], list[Outgoing]]:
        self.calls += 1
        n = state.get(event.sagaid, 0) + 1
        reply = event.reply("thing.done", "test", {"effects": n})
        return {**state, event.sagaid: n}, [Outgoing(self.reply_topic, reply)]


@pytest.fixture
async def kafka(kafka_bootstrap: str, unique_prefix: str) -> KafkaSettings:
    settings = (
        KafkaSettings()
        .with_bootstrap(kafka_bootstrap)
        .model_copy(update={"topic_prefix": unique_prefix, "partitions": 4})
    )
    # Up front, as a deployment does: a recorder that subscribes before the participant
    # starts would otherwise wait for topics that Apache Kafka does not auto-create.
    names = ("things.commands", "things.replies", "saga.deadletter")
    await ensure_topics(settings, [unique_prefix + name for name in names])
    return settings


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(**kafka.aiokafka_kwargs())
    await p.start()
    yield p
    await p.stop()


def participant(
    kafka: KafkaSettings,
    handler: Handler[dict[str, int]],
    kind: type[Participant[dict[str, int]]] = Participant,
    **options: Any,
) -> Participant[dict[str, int]]:
    p = kafka.topic_prefix
    return kind(
        "things",
        [p + "things.commands"],
        handler,
        {},
        kafka=kafka,
        output_topics=[p + "things.replies"],
        handles={"thing.do"},
        registry=CollectorRegistry(),
        **options,
    )


async def send(producer: AIOKafkaProducer, topic: str, event: CloudEvent) -> None:
    value, headers = encode(event)
    await producer.send_and_wait(topic, value, key=event.sagaid.encode(), headers=headers)


def replies(rec: TopicRecorder, command: CloudEvent) -> list[Any]:
    return [
        r
        for r in rec.raw
        if r.topic.endswith("things.replies")
        and b'"causationid":"' + command.id.encode() + b'"' in r.value
    ]


async def test_answers_dedupes_and_dead_letters(
    kafka: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    p = kafka.topic_prefix
    handler = Counter(p + "things.replies")
    command = new_event("thing.do", source="test", sagaid="saga-1", data={"x": 1})
    async with (
        TopicRecorder(
            kafka.bootstrap_servers or "", p + "things.replies", p + "saga.deadletter"
        ) as rec,
        participant(kafka, handler) as part,
    ):
        await send(producer, p + "things.commands", command)
        await send(producer, p + "things.commands", command)  # redelivered
        await producer.send_and_wait(p + "things.commands", b"\xffnot json", key=b"saga-1")
        both = await eventually(
            lambda: len(replies(rec, command)) == 2 and replies(rec, command),
            what="two replies to the command",
        )
        assert both[0].value == both[1].value  # the original reply, byte for byte
        assert both[0].key == b"saga-1"
        reply = next(e for t, e in rec.events if t.endswith("things.replies"))
        assert reply.causationid == command.id and reply.sagaid == "saga-1"
        assert reply.data == {"effects": 1}
        assert part.state == {"saga-1": 1} and handler.calls == 1
        dead = await eventually(
            lambda: [r for r in rec.raw if r.topic.endswith("deadletter")],
            what="the dead-lettered record",
        )
        assert dead[0].value == b"\xffnot json"
        headers = dict(dead[0].headers)
        assert headers["x-dlq-reason"] == b"not-json"
        assert headers["x-dlq-topic"] == (p + "things.commands").encode()
        assert {"x-dlq-partition", "x-dlq-offset"} <= headers.keys()
        metrics = part.registry.get_sample_value(
            "participant_commands_total",
            {"service": "things", "type": "thing.do", "result": "duplicate"},
        )
        assert metrics == 1


async def test_a_new_process_remembers_earlier_commands(
    kafka: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    p = kafka.topic_prefix
    first_cmd = new_event("thing.do", source="test", sagaid="saga-1")
    async with TopicRecorder(kafka.bootstrap_servers or "", p + "things.replies") as rec:
        async with participant(kafka, Counter(p + "things.replies")):
            await send(producer, p + "things.commands", first_cmd)
            await eventually(lambda: replies(rec, first_cmd), what="the first reply")
        handler = Counter(p + "things.replies")
        async with participant(kafka, handler) as restarted:
            assert restarted.state == {"saga-1": 1}  # rebuilt from the changelog
            await send(producer, p + "things.commands", first_cmd)
            second_cmd = new_event("thing.do", source="test", sagaid="saga-1")
            await send(producer, p + "things.commands", second_cmd)
            await eventually(lambda: replies(rec, second_cmd), what="the reply to a new command")
            await eventually(lambda: len(replies(rec, first_cmd)) == 2, what="the re-answer")
            again = replies(rec, first_cmd)
            assert again[0].value == again[1].value
            assert restarted.state == {"saga-1": 2}
            assert handler.calls == 2  # one replay + the new command; the duplicate ran nothing
    # Offsets are committed per batch: a third process has nothing to redo.
    consumer = AIOKafkaConsumer(group_id=p + "things", **kafka.aiokafka_kwargs())
    await consumer.start()
    try:
        tps = [TopicPartition(p + "things.commands", n) for n in range(4)]
        committed = [await consumer.committed(tp) or 0 for tp in tps]
        ends = await consumer.end_offsets(tps)
        assert sum(committed) == sum(ends.values()) == 3
    finally:
        await consumer.stop()


async def test_late_answers_come_late_and_are_flushed_on_stop(
    kafka: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    p = kafka.topic_prefix
    late = LateAnswers(probability=1.0, delay=30.0)
    command = new_event("thing.do", source="test", sagaid="saga-1")
    async with TopicRecorder(kafka.bootstrap_servers or "", p + "things.replies") as rec:
        part = participant(kafka, Counter(p + "things.replies"), answer_delay=late.delay_for)
        async with part:
            await send(producer, p + "things.commands", command)
            await eventually(lambda: part.state == {"saga-1": 1}, what="the effect")
            await asyncio.sleep(0.3)  # not synchronisation: a window in which nothing may appear
            assert replies(rec, command) == []
            assert set(part.committed.values()) <= {0}  # its answer is held: not committed
            assert held_answers(part) == [1.0]
        await eventually(lambda: replies(rec, command), what="the held-back reply after stop")
        assert sum(part.committed.values()) == 1  # sent on stop, then committed
        assert held_answers(part) == []  # a stopped participant leaves no series behind


def held_answers(part: Participant[Any]) -> list[float]:
    """``participant_held_answers`` of ``part``, as a scrape of ``/metrics`` shows it."""
    return [
        s.value
        for family in part.registry.collect()
        if family.name == "participant_held_answers"
        for s in family.samples
        if s.labels["service"] == part.name
    ]


class DiesHoldingAnswers(Participant[dict[str, int]]):
    """Its held-back answers die with it, as with a SIGKILL during their delay."""

    async def _flush_held(self) -> None:
        pass


async def test_an_answer_held_back_when_the_process_dies_comes_from_the_next_one(
    kafka: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    p = kafka.topic_prefix
    late = new_event("thing.do", source="test", sagaid="saga-1")
    after = new_event("thing.do", source="test", sagaid="saga-1")  # same key: same partition

    def delay(event_id: str) -> float:
        return 60.0 if event_id == late.id else 0.0

    async with TopicRecorder(kafka.bootstrap_servers or "", p + "things.replies") as rec:
        first = participant(
            kafka, Counter(p + "things.replies"), DiesHoldingAnswers, answer_delay=delay
        )
        async with first:
            for event in (late, after):
                await send(producer, p + "things.commands", event)
            await eventually(lambda: replies(rec, after), what="the answer after the held one")
            (held,) = first.held.waiting
            assert replies(rec, late) == []
            assert held_answers(first) == [1.0]  # only the late one: the other went out
        # Stopping committed what was due: the partition stays at the held input, though
        # the input after it was answered.
        assert first.committed[held.tp] == held.offset
        restarted = participant(kafka, Counter(p + "things.replies"))
        async with restarted:
            assert restarted.state == {"saga-1": 2}  # both effects, from the changelog
            answer = await eventually(lambda: replies(rec, late), what="the lost answer")
            assert b'"effects":1' in answer[0].value  # the original answer
            await eventually(
                lambda: restarted.committed.get(held.tp) == held.offset + 2,
                what="both inputs committed once answered",
            )
            assert restarted.state == {"saga-1": 2}  # redelivered, not run again


async def test_a_handler_bug_parks_the_input_and_the_rest_goes_on(
    kafka: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    p = kafka.topic_prefix
    counter = Counter(p + "things.replies")

    def handler(state: dict[str, int], event: CloudEvent) -> tuple[dict[str, int], list[Outgoing]]:
        if event.sagaid == "poison":
            raise KeyError("customer")
        return counter(state, event)

    bad = new_event("thing.do", source="test", sagaid="poison")
    good = new_event("thing.do", source="test", sagaid="fine")
    async with (
        TopicRecorder(
            kafka.bootstrap_servers or "", p + "things.replies", p + "saga.deadletter"
        ) as rec,
        participant(kafka, handler) as part,
    ):
        await send(producer, p + "things.commands", bad)
        await send(producer, p + "things.commands", good)
        await eventually(lambda: replies(rec, good), what="the good command's reply")
        dead = await eventually(
            lambda: [r for r in rec.raw if r.topic.endswith("deadletter")], what="the parked input"
        )
        headers = dict(dead[0].headers)
        assert headers["x-dlq-reason"] == b"processing-error"
        assert headers["x-dlq-exception"] == b"KeyError"
        assert b"customer" in headers["x-dlq-error"] and len(headers["x-dlq-digest"]) == 12
        assert encode(bad)[0] == dead[0].value
        assert part.state == {"fine": 1}


class HeldBack(Participant[dict[str, int]]):
    """Holds every batch it consumed until ``go`` is set: a participant falling behind (a slow
    handler, a stalled producer), without blocking its event loop or its metrics."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.go = asyncio.Event()

    async def process(self, records: Any) -> None:
        await self.go.wait()
        await super().process(records)

    async def stop(self) -> None:
        self.go.set()  # a failing test must not leave the batch loop waiting forever
        await super().stop()


def consumer_lag(part: Participant[Any]) -> dict[int, float]:
    """``participant_consumer_lag`` by partition, as a scrape of ``/metrics`` shows it."""
    return {
        int(s.labels["partition"]): s.value
        for family in part.registry.collect()
        if family.name == "participant_consumer_lag"
        for s in family.samples
        if s.labels["service"] == part.name and s.labels["topic"] == part.input_topics[0]
    }


async def test_consumer_lag_counts_the_records_behind_and_drops_to_zero(
    kafka: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    p = kafka.topic_prefix
    commands = [new_event("thing.do", source="test", sagaid=f"saga-{n}") for n in range(6)]
    part = participant(kafka, Counter(p + "things.replies"), kind=HeldBack)
    assert isinstance(part, HeldBack)
    async with TopicRecorder(kafka.bootstrap_servers or "", p + "things.replies") as rec:
        # On the topic before the participant's first fetch: the lag is read from the
        # highwater of its last fetch, and a partition whose records it holds is not fetched
        # again, so a command sent after that fetch would not show (Apache Kafka answers the
        # first fetch before all six are sent, and the sum stayed at 5).
        for command in commands:
            await send(producer, p + "things.commands", command)
        async with part:
            # Behind: every command is on the topic and none is handled and committed.
            await eventually(
                lambda: sum(consumer_lag(part).values()) == len(commands),
                what=f"a lag of {len(commands)} records",
            )
            assert not any(replies(rec, c) for c in commands)

            part.go.set()
            await eventually(
                lambda: all(replies(rec, c) for c in commands), what="a reply to every command"
            )
            # Caught up: every input partition is exported, each at zero.
            await eventually(
                lambda: consumer_lag(part) == {n: 0.0 for n in range(4)},
                what="zero lag on all 4 partitions",
            )
    assert consumer_lag(part) == {}, "a stopped participant exports no lag"
