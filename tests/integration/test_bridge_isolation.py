"""One command never stops the HTTP bridge: what it raises on is dead-lettered, the rest answered.

A command id with a line break is valid JSON and a valid CloudEvent, but the
bridge sends the id as the ``Idempotency-Key`` header, which aiohttp refuses
(ValueError): the exception escaped the batch and ended the bridge, and on
restart the same record ended it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from events.codec import encode
from events.envelope import CloudEvent, new_event
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.participants.bridge import BridgeConfig, HttpBridge
from tests.kafka_fixtures import eventually
from tests.support.kafka_peers import TopicRecorder
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka(kafka_bootstrap: str, unique_prefix: str) -> KafkaSettings:
    return (
        KafkaSettings()
        .with_bootstrap(kafka_bootstrap)
        .model_copy(update={"topic_prefix": unique_prefix, "partitions": 2})
    )


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    async def authorize(request: web.Request) -> web.Response:
        return web.json_response({"authorization": "a-1"})

    app = web.Application()
    app.router.add_post("/authorize", authorize)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/authorize"
    await runner.cleanup()


async def send(producer: AIOKafkaProducer, topic: str, event: CloudEvent) -> None:
    value, headers = encode(event)
    await producer.send_and_wait(topic, value, key=event.sagaid.encode(), headers=headers)


async def test_a_command_id_with_a_line_break_is_dead_lettered_and_the_bridge_goes_on(
    kafka: KafkaSettings, endpoint: str
) -> None:
    p = kafka.topic_prefix
    config = BridgeConfig.from_dict(
        {
            "name": f"{p}bridge",
            "topic_prefix": p,
            "defaults": {"timeout": 2, "retry": {"attempts": 1}},
            "routes": [
                {
                    "command": "payment.authorize",
                    "topic": "payment.commands",
                    "url": endpoint,
                    "reply_topic": "payment.replies",
                    "success": "payment.authorized",
                    "failure": "payment.declined",
                }
            ],
        },
        env={},
    )
    # Up front, as a deployment does: Apache Kafka does not auto-create the topics the
    # recorder subscribes to before the bridge starts.
    names = ("payment.commands", "payment.replies", "saga.deadletter")
    await ensure_topics(kafka, [p + name for name in names])
    bad = new_event("payment.authorize", source="t", sagaid="s-bad", id="id\r\nX-Injected: 1")
    good = new_event("payment.authorize", source="t", sagaid="s-good")
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs())
    await producer.start()
    try:
        async with (
            TopicRecorder(
                kafka.bootstrap_servers or "", p + "payment.replies", p + "saga.deadletter"
            ) as rec,
            HttpBridge(config, kafka, registry=CollectorRegistry()) as bridge,
        ):
            await send(producer, p + "payment.commands", bad)
            await send(producer, p + "payment.commands", good)
            answered = await eventually(
                lambda: [r for r in rec.raw if r.topic.endswith("payment.replies")],
                what="the good command's reply",
            )
            dead = await eventually(
                lambda: [r for r in rec.raw if r.topic.endswith("deadletter")],
                what="the bad command on the dead-letter topic",
            )
            assert bridge._run_task is not None and not bridge._run_task.done()
    finally:
        await producer.stop()
    assert b"s-good" in answered[0].value
    headers = dict(dead[0].headers)
    assert headers["x-dlq-reason"] == b"processing-error"
    assert headers["x-dlq-exception"] == b"ValueError"
    assert dead[0].value == encode(bad)[0]
