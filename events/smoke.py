"""One event through a real broker, end to end: ``python -m events.smoke``.

Starts the embedded broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``), creates a
topic, publishes one command through the codec, consumes it back, checks it is
the same event, and says what it did. Exit code 0 means the Kafka plumbing of
this machine works.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from types import FrameType

from events.admin import ensure_topics
from events.broker_choice import broker_for
from events.codec import decode, encode
from events.envelope import derived_id, new_event
from events.kafka_settings import KafkaSettings

RECEIVE_TIMEOUT = 30.0


async def smoke(settings: KafkaSettings) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async with broker_for(settings) as bootstrap:
        where = "KAFKA_BOOTSTRAP_SERVERS" if settings.bootstrap_servers else "embedded broker"
        print(f"broker: {bootstrap} ({where})")
        kafka = settings.with_bootstrap(bootstrap)
        run = uuid.uuid4().hex[:8]
        topic = f"{kafka.topic_prefix}smoke.{run}.inventory.commands"
        counts = await ensure_topics(kafka, [topic])
        print(f"topic:  {topic} ({counts[topic]} partitions)")

        saga_id = f"smoke-{run}"
        command = new_event(
            "inventory.reserve",
            source="sagastream/smoke",
            sagaid=saga_id,
            id=derived_id(saga_id, "reserve", "command", 1),
            data={"sku": "A-1", "qty": 2},
        )
        value, headers = encode(command)
        producer = AIOKafkaProducer(**kafka.aiokafka_kwargs())
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, value, key=saga_id.encode(), headers=headers)
        finally:
            await producer.stop()
        print(
            f"sent:   {command.type} id={command.id} key={saga_id} "
            f"-> partition {sent.partition} offset {sent.offset} ({len(value)} bytes)"
        )

        consumer = AIOKafkaConsumer(
            topic, group_id=None, auto_offset_reset="earliest", **kafka.aiokafka_kwargs()
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), RECEIVE_TIMEOUT)
        finally:
            await consumer.stop()
        received = decode(
            record.value,
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        if received != command:
            raise SystemExit(f"FAILED: read back a different event:\n{received!r}")
        print(
            f"read:   {received.type} id={received.id} sagaid={received.sagaid} "
            f"from partition {record.partition} offset {record.offset}: identical"
        )
    print("ok: the broker, topic admin and codec work together")


def main() -> None:
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # so the embedded broker is stopped on the way out

    signal.signal(signal.SIGTERM, terminate)
    try:
        asyncio.run(smoke(KafkaSettings()))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
