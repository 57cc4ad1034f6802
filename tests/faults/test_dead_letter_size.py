"""A bad record too large to dead-letter unchanged must not stop a participant.

Found by the fuzzer (`test_3_fuzz`): a record over the producer's
``max_request_size`` (1 MiB) -- accepted by a broker whose own limit is
higher, or just under the limit so that the dead-letter headers push the copy
over -- made the participant's batch loop raise ``MessageSizeTooLargeError``
while dead-lettering it, and the service process exited. Now the dead letter
goes without its value (``x-dlq-value-dropped``: its size; the original stays
at ``x-dlq-topic``/``-partition``/``-offset``) and the participant carries on.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from events.codec import DEFAULT_MAX_BYTES, encode
from events.envelope import CloudEvent, new_event
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.participants.participant import Outgoing, Participant
from tests.kafka_fixtures import eventually
from tests.support.kafka_peers import TopicRecorder

pytestmark = pytest.mark.integration


async def test_a_record_too_large_to_dead_letter_unchanged_does_not_stop_the_participant(
    kafka_bootstrap: str,
) -> None:
    prefix = f"big{uuid.uuid4().hex[:8]}."
    kafka = (
        KafkaSettings()
        .with_bootstrap(kafka_bootstrap)
        .model_copy(update={"topic_prefix": prefix, "partitions": 1})
    )
    commands, replies, dlq = (
        f"{prefix}things.commands",
        "things.replies",
        f"{prefix}saga.deadletter",
    )

    def handler(state: int, event: CloudEvent) -> tuple[int, list[Outgoing]]:
        return state + 1, [Outgoing(prefix + replies, event.reply("thing.done", "test", {}))]

    participant = Participant(
        "things",
        [commands],
        handler,
        0,
        kafka=kafka,
        output_topics=[prefix + replies],
        handles={"thing.do"},
        registry=CollectorRegistry(),
    )
    huge = b'{"specversion":"1.0","blob":"' + b"x" * (DEFAULT_MAX_BYTES + 10_000) + b'"}'
    good = new_event("thing.do", source="test", sagaid="saga-after-the-huge-one")
    producer = AIOKafkaProducer(max_request_size=4 * DEFAULT_MAX_BYTES, **kafka.aiokafka_kwargs())
    async with participant, TopicRecorder(kafka_bootstrap, dlq, prefix + replies) as seen:
        await producer.start()
        try:
            await producer.send_and_wait(commands, huge, key=None, headers=[("mark", b"1")])
            value, headers = encode(good)
            await producer.send_and_wait(commands, value, key=b"k", headers=headers)
        finally:
            await producer.stop()

        def answered() -> bool:
            assert participant._run_task is not None and not participant._run_task.done(), (
                "the participant's loop stopped"
            )
            return any(e.causationid == good.id for e in seen.of_type("thing.done"))

        await eventually(answered, timeout=20, what="the command after the huge record answered")
        # The dead letter and the reply are on different topics: either may be read first.
        await eventually(
            lambda: any(r.topic == dlq for r in seen.raw), timeout=20, what="the dead letter"
        )
        (letter,) = [r for r in seen.raw if r.topic == dlq]
        headers = dict(letter.headers)
        assert headers["x-dlq-reason"] == b"too-large"
        assert headers["x-dlq-topic"] == commands.encode()
        assert int(headers["x-dlq-value-dropped"]) == len(huge)
        assert headers["mark"] == b"1" and not letter.value and letter.key is None
