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
