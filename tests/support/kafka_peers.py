"""Tiny Kafka peers for tests, on plain aiokafka: a scripted participant and a topic recorder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from events.codec import decode, encode
from events.envelope import CloudEvent


def group_timing() -> dict[str, int]:
    """Consumer-group timeouts: short on the embedded broker (joins take half the session
    timeout there), the client defaults on a real cluster (which refuses short ones)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return {}
    return {"session_timeout_ms": 1000, "heartbeat_interval_ms": 200}


FETCH = {"fetch_max_wait_ms": 10}


#: handler(command) -> (reply type, data) to answer, or None to stay silent
Handler = Callable[[CloudEvent], tuple[str, dict[str, Any]] | None]


TERMINAL = ("saga.completed", "saga.compensated", "saga.failed", "saga.aborted")


class TopicRecorder:
    """Reads topics from the beginning and keeps every decoded event (and raw records).

    Reaches the broker at ``bootstrap`` in plain text; a subclass brings other client
    settings by overriding :meth:`client_kwargs`.
    """

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.events: list[tuple[str, CloudEvent]] = []
        self.raw: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """How the consumer reaches the broker (and how long it waits on a fetch)."""
        return {"bootstrap_servers": self.bootstrap, **FETCH}

    async def __aenter__(self) -> Self:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **self.client_kwargs(),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None and self._consumer is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            self.raw.append(record)
            with contextlib.suppress(Exception):
                self.events.append((record.topic, decode(record.value, record.headers)))

    def of_type(self, prefix: str) -> list[CloudEvent]:
        """Events whose type starts with ``prefix``, on any topic."""
        return [e for _, e in self.events if e.type.startswith(prefix)]

    def on(self, topic: str) -> list[CloudEvent]:
        """Events read from ``topic``."""
        return [e for t, e in self.events if t == topic]

    def terminal(self) -> dict[str, str]:
        """saga id -> terminal lifecycle state (the last seen), from the lifecycle events."""
        return {
            e.sagaid: e.type.removeprefix("saga.") for _, e in self.events if e.type in TERMINAL
        }


class ScriptedParticipant:
    """Consumes one command topic in a consumer group and answers on a reply topic.

    Keeps what a real participant must: each distinct command id takes effect at
    most once (a duplicate is answered with the original reply), and counts
    every delivery so tests can see duplicates arriving.
    """

    def __init__(
        self,
        bootstrap: str,
        command_topic: str,
        reply_topic: str,
        handler: Handler,
        *,
        group: str | None = None,
        name: str = "participant",
        delay: float = 0.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.command_topic = command_topic
        self.reply_topic = reply_topic
        self.handler = handler
        self.group = group or f"{name}-{uuid.uuid4().hex[:8]}"
        self.name = name
        self.delay = delay  # simulated work per command, so tests can catch sagas mid-flight
        self.effects: dict[str, CloudEvent] = {}
        self.deliveries: defaultdict[str, int] = defaultdict(int)
        self.replies: dict[str, CloudEvent | None] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ScriptedParticipant:
        self._consumer = AIOKafkaConsumer(
            self.command_topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            auto_commit_interval_ms=200,
            **group_timing(),
            **FETCH,
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=1)
        await self._consumer.start()
        await self._producer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()
        await self._producer.stop()

    async def _run(self) -> None:
        async for record in self._consumer:
            command = decode(record.value, record.headers)
            self.deliveries[command.id] += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if command.id in self.replies:
                reply = self.replies[command.id]
            else:
                answer = self.handler(command)
                self.effects[command.id] = command
                reply = None if answer is None else command.reply(answer[0], self.name, answer[1])
                self.replies[command.id] = reply
            if reply is not None:
                value, headers = encode(reply)
                await self._producer.send_and_wait(
                    self.reply_topic, value, key=command.sagaid.encode(), headers=headers
                )

    def effects_of_type(self, type_: str) -> list[CloudEvent]:
        return [c for c in self.effects.values() if c.type == type_]


async def eventually(
    predicate: Callable[[], Any],
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.05,
    alive: Callable[[], bool] | None = None,
) -> Any:
    """Await until ``predicate()`` is truthy, or fail naming what was awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and not alive():
            raise AssertionError(f"a process died while waiting for {_text(what)}")
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_text(what)}")
        await asyncio.sleep(interval)


def _text(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()
