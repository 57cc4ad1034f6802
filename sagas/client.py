"""Start sagas and send operator commands from Python, through Kafka.

    async with SagaClient(KafkaSettings()) as client:
        saga_id = await client.start_saga("order", {"order_id": "o-1", ...})

Every request is a message keyed by the saga id, applied by whichever replica owns
the saga, and not lost if the caller dies right after: operator commands and
signals go to the control topic (``saga.control``), in order with the saga's
replies and timers; starts go to ``saga.starts``, which carries nothing else.

A start waits in ``saga.starts`` while the replica that owns it is at its bound on
sagas in flight (``SAGAS_MAX_IN_FLIGHT``; README "Overload"), so a burst of starts
cannot take the coordinator past what it finishes. ``start_saga`` returns once Kafka
has the start, not once the saga runs. The two topics are not ordered with each other:
an ``abort`` (or any command, or a signal) sent right after ``start_saga`` can reach the
coordinator first. It is held for the saga, applied right after its start, and
dead-lettered as ``unknown-saga`` only if no start comes within
``SAGAS_EARLY_EVENT_GRACE`` once no start waits unread on the saga's partition.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import CloudEvent
from events.topics import Topics
from sagas import control
from sagas.kafka.broker_watch import start_client
from sagas.kafka.kafka_settings import KafkaSettings


class SagaClient:
    def __init__(
        self, kafka: KafkaSettings, *, topics: Topics | None = None, connect_timeout: float = 30.0
    ) -> None:
        """``connect_timeout``: seconds to reach Kafka on entering, else
        ``aiokafka.errors.KafkaConnectionError``."""
        self.kafka = kafka
        self.topics = topics or Topics.from_settings(kafka)
        self.connect_timeout = connect_timeout
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> SagaClient:
        producer = AIOKafkaProducer(**self.kafka.producer_kwargs(), linger_ms=2)
        await start_client(producer, self.connect_timeout)
        self._producer = producer
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def start_saga(
        self,
        saga: str,
        data: dict[str, Any] | None = None,
        *,
        saga_id: str | None = None,
        version: int | None = None,
        wait: bool = True,
    ) -> str:
        """Ask the coordinator to start ``saga``; returns the saga id (new unless given)."""
        event = control.start_request(saga, dict(data or {}), saga_id=saga_id, version=version)
        await self._publish(event, topic=self.topics.starts, wait=wait)
        return event.sagaid

    async def abort(self, saga_id: str, reason: str = "aborted by operator") -> None:
        await self._publish(control.operator_command(control.ABORT, saga_id, reason=reason))

    async def retry(self, saga_id: str, reason: str = "retried by operator") -> None:
        await self._publish(control.operator_command(control.RETRY, saga_id, reason=reason))

    async def skip(self, saga_id: str, step: str, reason: str) -> None:
        await self._publish(
            control.operator_command(control.SKIP, saga_id, reason=reason, step=step)
        )

    async def resolve(self, saga_id: str, reason: str) -> None:
        await self._publish(control.operator_command(control.RESOLVE, saga_id, reason=reason))

    async def signal(self, saga_id: str, type_: str, data: dict[str, Any] | None = None) -> None:
        """Answer a step waiting for ``type_`` (``awaits:``); ``data`` joins the context. A
        signal the saga is not waiting for changes nothing (``ignored_signal``)."""
        await self._publish(control.signal(saga_id, type_, data, source="sagastream/client"))

    async def flush(self) -> None:
        assert self._producer is not None
        await self._producer.flush()

    async def _publish(
        self, event: CloudEvent, *, topic: str | None = None, wait: bool = True
    ) -> None:
        if self._producer is None:
            raise RuntimeError("use SagaClient inside 'async with'")
        value, headers = encode(event)
        future = await self._producer.send(
            topic or self.topics.control, value=value, key=event.sagaid.encode(), headers=headers
        )
        if wait:
            await future


async def start_saga(
    saga: str,
    data: dict[str, Any] | None = None,
    *,
    kafka: KafkaSettings | None = None,
    saga_id: str | None = None,
) -> str:
    """Start one saga and return its id (opens and closes a producer: use SagaClient for many)."""
    async with SagaClient(kafka or KafkaSettings()) as client:
        return await client.start_saga(saga, data, saga_id=saga_id)
