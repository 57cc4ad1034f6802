"""A misbehaving participant: replies twice, replies late, replies for another saga.

`ReplyInjector` follows the reply topics the coordinator reads and, for a
share of the real replies it sees, publishes one of:

* ``twice``: the same record again (a participant that re-sends after a crash);
* ``twice-new-id``: the same answer under a fresh event id (a participant that
  does not deduplicate and answered a redelivered command a second time);
* ``late``: the same record again ``late_delay`` seconds later, after the
  step's deadline has passed and the saga has moved on or ended;
* ``other-saga``: the answer with the ``sagaid`` (and key) of another saga that
  is running, fresh id, same ``causationid`` (a participant mixing up sagas).

Every injected record carries the header ``x-injected: <kind>`` so the
injector never feeds on its own output. Nothing here invents an outcome a
participant did not produce: each injected record repeats a real answer,
so the books must balance exactly as without the injector.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter, deque
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sagas.kafka.kafka_settings import KafkaSettings

KINDS = ("twice", "twice-new-id", "late", "other-saga")


class ReplyInjector:
    def __init__(
        self,
        kafka: KafkaSettings,
        topics: list[str],
        *,
        share: float = 0.3,
        late_delay: float = 6.0,
        seed: int = 7,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.share = share
        self.late_delay = late_delay
        self.rng = random.Random(seed)
        self.sent: Counter[str] = Counter()
        self._recent: deque[str] = deque(maxlen=200)  # saga ids seen lately
        self._tasks: set[asyncio.Task[Any]] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._loop: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReplyInjector:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            **self.kafka.consumer_kwargs(),
        )
        await self._consumer.start()
        self._producer = AIOKafkaProducer(linger_ms=2, **self.kafka.aiokafka_kwargs())
        await self._producer.start()
        self._loop = asyncio.create_task(self._run(), name="reply injector")
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop following replies; late copies already scheduled are still sent."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if any(k == "x-injected" for k, _ in record.headers or ()):
                        continue
                    await self._maybe_inject(record)

    async def _maybe_inject(self, record: Any) -> None:
        try:
            doc = orjson.loads(record.value)
            saga = doc["sagaid"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        others = [s for s in self._recent if s != saga]
        self._recent.append(saga)
        if self.rng.random() >= self.share:
            return
        kind = self.rng.choice(KINDS)
        headers = [*(record.headers or ()), ("x-injected", kind.encode())]
        if kind == "twice":
            await self._send(record.topic, record.key, record.value, headers, kind)
        elif kind == "twice-new-id":
            value = orjson.dumps({**doc, "id": str(uuid.uuid4())})
            await self._send(record.topic, record.key, value, headers, kind)
        elif kind == "late":
            task = asyncio.create_task(self._later(record.topic, record.key, record.value, headers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif others:
            other = self.rng.choice(others)
            value = orjson.dumps({**doc, "id": str(uuid.uuid4()), "sagaid": other})
            await self._send(record.topic, other.encode(), value, headers, kind)

    async def _later(self, topic: str, key: Any, value: Any, headers: list[Any]) -> None:
        await asyncio.sleep(self.late_delay)
        await self._send(topic, key, value, headers, "late")

    async def _send(self, topic: str, key: Any, value: Any, headers: list[Any], kind: str) -> None:
        assert self._producer is not None
        await (await self._producer.send(topic, value, key=key, headers=headers))
        self.sent[kind] += 1
