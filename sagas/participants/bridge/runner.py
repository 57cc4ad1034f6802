"""`HttpBridge`: a participant whose runner calls HTTP endpoints and records the outcomes.

Why a participant (`sagas.participants.participant.Participant`) and not a runner of its
own: the participant already gives the bridge everything a saga participant
needs -- dead letters for undecodable records, dedupe by command id, a
changelog written before replies are published, replay after a restart,
offsets committed after publishing, ``/metrics`` and ``/health``. What the
bridge adds is one step before the pure handler: for each new command it
routes, the runner POSTs the command data and waits for a usable answer
(retrying 5xx, 408/425/429, connection errors and timeouts with the route's
backoff), then hands the handler the command *with the outcome in it*
(`sagas.participants.bridge.outcome.enrich`). The changelog thus records the outcome, the
handler stays pure, and a restarted bridge answers a redelivered command from
the changelog without calling the endpoint again.

A command whose retries ran out with ``on_exhausted: silent`` is not handed
on: nothing is recorded or published, and the saga's step deadline decides.

Calls for the commands of one batch run concurrently (at most
``concurrency``); replies are published in input order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

from events.codec import STRUCTURED_HEADERS, decode, encode
from events.envelope import CloudEvent
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.participants.bridge.config import BridgeConfig, Route
from sagas.participants.bridge.outcome import (
    HttpOutcome,
    enrich,
    is_retriable,
    make_handler,
    parse_body,
)
from sagas.participants.participant import Participant

log = logging.getLogger("sagas.participants.bridge")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class HttpBridge(Participant[dict[str, int]]):
    def __init__(
        self,
        config: BridgeConfig,
        kafka: KafkaSettings,
        *,
        registry: CollectorRegistry | None = None,
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
        create_topics: bool = True,
        concurrency: int = 32,
    ) -> None:
        super().__init__(
            config.name,
            config.input_topics,
            make_handler(config),
            {},
            kafka=kafka,
            handles={r.command for r in config.routes},
            output_topics=config.output_topics,
            registry=registry,
            http_port=http_port,
            http_host=http_host,
            views={"/stats": lambda state, _: state},
            create_topics=create_topics,
        )
        self.config = config
        self.concurrency = concurrency
        self.requests = Counter(
            "bridge_http_requests",
            "HTTP attempts made by the bridge, by command type and result (2xx, 4xx, 5xx, error).",
            ["bridge", "type", "result"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "bridge_http_request_duration_seconds",
            "One HTTP attempt, request sent to response read.",
            ["bridge", "type"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(concurrency)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            json_serialize=lambda o: orjson.dumps(o).decode(),
            raise_for_status=False,
        )
        await super().start()

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    # -- one batch -------------------------------------------------------------------

    async def process(
        self, records: Iterable[Any], failures: Mapping[int, Exception] | None = None
    ) -> None:
        batch = list(records)
        events: list[CloudEvent | None] = []
        calls: dict[str, tuple[Route, CloudEvent]] = {}
        for record in batch:
            event = self._routable(record)
            events.append(event)
            if event is not None and event.id not in self.core.seen:
                route = self.config.route_for(event.type)
                assert route is not None
                calls.setdefault(event.id, (route, event))
        results = await asyncio.gather(
            *(self.call(r, e) for r, e in calls.values()), return_exceptions=True
        )
        outcomes = dict(zip(calls, results, strict=True))
        prepared = []
        failed: dict[int, Exception] = dict(failures or {})
        for record, event in zip(batch, events, strict=True):
            outcome = outcomes.get(event.id) if event is not None else None
            if outcome is None:
                prepared.append(record)  # not ours, undecodable, or a known id: as it came
                continue
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                assert event is not None
                route = self.config.route_for(event.type)
                assert route is not None
                if outcome.gave_up and route.on_exhausted == "silent":
                    log.error(
                        "%s: %s %s (saga %s): %s gave no usable answer in %d attempts (%s); "
                        "nothing published, the saga's step deadline decides",
                        self.name, event.type, event.id, event.sagaid, route.url,
                        outcome.attempts, outcome.error,
                    )  # fmt: skip
                    self.metrics.commands.labels(self.name, event.type, "gave_up").inc()
                    continue
                value = encode(enrich(event, outcome))[0]
            except Exception as exc:  # noqa: BLE001 - the participant dead-letters it
                failed[len(prepared)] = exc
                prepared.append(record)
                continue
            prepared.append(dataclasses.replace(record, value=value, headers=STRUCTURED_HEADERS))
        await super().process(prepared, failed)

    def _routable(self, record: Any) -> CloudEvent | None:
        """The command in ``record`` when a route serves it, else None."""
        try:
            event = decode(record.value, record.headers)
            return event if self.config.route_for(event.type) is not None else None
        except Exception:  # noqa: BLE001 - the participant dead-letters it, with the reason
            return None

    # -- the HTTP call ---------------------------------------------------------------

    async def call(self, route: Route, command: CloudEvent) -> HttpOutcome:
        """POST the command data until a usable answer or the retry budget is spent."""
        assert self._session is not None, "start() the bridge first"
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": command.id,
            # CloudEvents HTTP binding (binary mode) attributes, for services that want them
            "ce-specversion": command.specversion,
            "ce-id": command.id,
            "ce-type": command.type,
            "ce-source": command.source,
            "ce-sagaid": command.sagaid,
            **route.headers,
        }
        if command.traceparent:
            headers["traceparent"] = command.traceparent
        body = orjson.dumps(command.data)
        timeout = aiohttp.ClientTimeout(total=route.timeout)
        attempt, status, error = 0, None, ""
        while True:
            attempt += 1
            started = time.perf_counter()
            async with self._limit:
                try:
                    async with self._session.post(
                        route.url, data=body, headers=headers, timeout=timeout,
                        allow_redirects=False,
                    ) as response:  # fmt: skip
                        status, raw = response.status, await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, raw = None, b""
                    error = f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
            self.request_duration.labels(self.name, command.type).observe(
                time.perf_counter() - started
            )
            result = "error" if status is None else f"{status // 100}xx"
            self.requests.labels(self.name, command.type, result).inc()
            if status is not None and not is_retriable(status):
                return HttpOutcome(status=status, body=parse_body(raw), attempts=attempt)
            if status is not None:
                error = f"HTTP {status}"
            if not route.retry.allows_another(attempt):
                return HttpOutcome(status=status, attempts=attempt, error=error)
            delay = route.retry.backoff(attempt)
            log.warning(
                "%s: %s %s -> %s (attempt %d of %d), again in %.2fs",
                self.name, command.type, route.url, error, attempt, route.retry.attempts, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
