"""Three adjustments to the aiokafka consumer faust builds, for the brokers we run on.

faust creates its consumer itself, with no setting for these, so the class its
driver instantiates is replaced by a subclass (once per process, keeping the
original as the base):

* ``fetch_max_wait_ms``: faust hard-codes 1500 ms. The embedded broker holds a
  fetch over several partitions for the whole wait even when data arrives, a
  650 ms pause per hop (see `KafkaSettings.fetch_max_wait_ms`).
* prefetch backoff: records of one partition not yet taken by faust hold the
  next fetch from the broker back for 100 ms (aiokafka's default); we use the
  fetch wait.
* ``end_offsets``: the embedded broker under-reports the end of a log, which
  would stop faust's table recovery early and lose the newest saga states
  (see `events.end_offsets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.end_offsets import true_end_offsets
from events.kafka_settings import KafkaSettings

_ORIGINAL: dict[str, type] = {}


def adjust_faust_consumer(kafka: KafkaSettings) -> None:
    from faust.transport.drivers import aiokafka as driver

    base = _ORIGINAL.setdefault("consumer", driver.aiokafka.AIOKafkaConsumer)
    fetch_wait = kafka.fetch_max_wait_ms
    probe_kwargs = kafka.consumer_kwargs()

    class Consumer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *topics: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = fetch_wait
            super().__init__(*topics, **kwargs)

        async def start(self) -> None:
            await super().start()
            self._fetcher._prefetch_backoff = fetch_wait / 1000

        async def end_offsets(self, partitions: Any) -> Mapping[Any, int]:
            reported = await super().end_offsets(partitions)
            return await true_end_offsets(probe_kwargs, reported)

    driver.aiokafka.AIOKafkaConsumer = Consumer


def keep_skipped_records_unacked() -> None:
    """Do not let faust drop records it skipped: leave them unacked and read them again.

    A faust stream skips a record fetched under an earlier consumer-group
    generation, or while flow is paused for a rebalance or recovery, and then
    *acks* it ("otherwise the lag would increase"). An acked offset is
    committed, so the record is never seen again: after a coordinator restart,
    replies waiting in the input topics vanished and their sagas timed out (the
    100-saga SIGKILL test failed about one run in three). Here a skipped record
    stays unacked, so no commit passes it, and if its partition is still ours
    the consumer seeks back to it so that it is processed now.
    """
    import asyncio

    from faust.events import Event

    if getattr(Event.ack, "_sagas_guarded", False):
        return
    original = Event.ack

    def ack(self: Event) -> bool:
        app = self.app
        message = self.message
        stale = message.generation_id != app.consumer_generation_id
        if not stale and app.flow_control.is_active():
            return original(self)
        if app.flow_control.is_active() and message.tp in app.consumer.assignment():
            # Rebalanced onto the same partition: what was skipped is still ours to do.
            asyncio.ensure_future(app.consumer.seek(message.tp, message.offset))
        return False

    ack._sagas_guarded = True  # type: ignore[attr-defined]
    Event.ack = ack  # type: ignore[method-assign]
