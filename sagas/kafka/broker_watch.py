"""Is Kafka still answering? A metadata request every few seconds, and why not when not.

aiokafka clients retry a lost broker for ever and only log it, so a process that
must tell the truth about Kafka (the coordinator's ``/readyz``, `sagas tail`) asks
for itself: every ``interval`` a fresh client asks for metadata with the same
settings (TLS, SASL) as the process uses; a failure is explained in one line by
`sagas.kafka.connection_failure`. ``problem`` is None while Kafka answers, else that
line; ``down_for()`` says for how long it has been so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sagas.kafka.broker_probe import metadata_refused
from sagas.kafka.connection_failure import explain_connection_failure
from sagas.kafka.kafka_settings import KafkaSettings

__all__ = ["BrokerWatch", "KafkaUnreachableError", "start_client"]

log = logging.getLogger("sagas.kafka.broker_watch")

INTERVAL = 2.0


class KafkaUnreachableError(ConnectionError):
    """Kafka did not answer for longer than a process may wait; the message says why."""


class BrokerWatch:
    def __init__(self, kafka: KafkaSettings, *, interval: float = INTERVAL) -> None:
        self.kafka = kafka
        self.interval = interval
        #: one line saying why Kafka is not answering, or None while it answers
        self.problem: str | None = None
        self._down_since: float | None = None

    def down_for(self) -> float:
        """Seconds since Kafka last answered (0 while it answers)."""
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    async def check(self) -> str | None:
        """Ask once; update and return ``problem``."""
        asked = time.monotonic()
        refused = await metadata_refused(self.kafka.aiokafka_kwargs())
        if refused is None:
            if self.problem is not None:
                log.warning("Kafka answers again after %.0fs", self.down_for())
            self.problem, self._down_since = None, None
            return None
        # The explanation connects again (blocking): off the event loop.
        why = str(await asyncio.to_thread(explain_connection_failure, refused, self.kafka))
        if self.problem is None:
            self._down_since = asked
            log.warning("Kafka does not answer: %s", why)
        self.problem = why
        return why

    async def run(self) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.check()
            except Exception:  # a health check must not take its process down
                log.exception("checking whether Kafka answers failed")
            await _sleep(self.interval)

    async def fail_after(self, deadline: float) -> None:
        """Return never; raise `KafkaUnreachableError` once Kafka has not answered for
        ``deadline`` seconds (checking every ``interval``)."""
        while True:
            why = await self.check()
            if why is not None and self.down_for() >= deadline:
                raise KafkaUnreachableError(f"{why} (no answer for {self.down_for():.0f}s)")
            await _sleep(self.interval)


async def _sleep(seconds: float) -> None:
    """Sleep, unless this task was asked to stop: aiokafka's clients (or ``wait_for``
    racing a result) can swallow a cancellation, and the loop must still end."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    await asyncio.sleep(seconds)


async def start_client(client: Any, timeout: float) -> None:
    """``await client.start()`` of an aiokafka producer, consumer or admin client, given
    at most ``timeout`` seconds: aiokafka waits its request timeout (40 s) per attempt on
    a broker that accepts connections but does not answer. On failure the client is
    stopped (no "Unclosed" warning) and a timeout raises ``KafkaConnectionError``, which
    `sagas.kafka.connection_failure` explains like any other connection failure."""
    from aiokafka.errors import KafkaConnectionError

    try:
        await asyncio.wait_for(client.start(), timeout)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await client.stop()
        if isinstance(exc, TimeoutError):
            raise KafkaConnectionError(f"Kafka did not answer within {timeout:g}s") from None
        raise
