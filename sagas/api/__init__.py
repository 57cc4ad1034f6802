"""The coordinator's HTTP API and ``/metrics`` (aiohttp).

==========================================  ===============================================
``GET  /sagas/{id}``                        one saga: status, context, every step (attempts,
                                            times, outcomes), timers and history
``GET  /sagas?status=&saga=&q=&since=&until=&limit=&cursor=``
                                            sagas of every replica, newest first; ``q``
                                            finds a saga id (or its start) or a context
                                            value; ``cursor`` (``next_cursor``) pages on
``GET  /overview?window=MINUTES``           in flight per definition, recent outcomes,
                                            failed sagas, the dead-letter count
``GET  /deadletters?limit=``                newest records of the dead-letter topic
``POST /deadletters/{p}/{offset}/redrive``  send one back to the topic it was read from
``GET  /ui/``, ``GET /openapi.json``        the saga explorer; the OpenAPI 3.1 document
``POST /sagas/{name}[?id=&version=&wait=]`` start a saga; body = initial data (JSON object)
``POST /sagas/{id}/retry|abort|resolve``    operator commands; body ``{"reason": ...}``
``POST /sagas/{id}/skip``                   body ``{"step": NAME, "reason": ...}``
``POST /sagas/{id}/signal``                 a signal for a waiting step; body ``{"type":
                                            TYPE, "data": {...}}`` (`sagas.api.signals`)
``GET  /healthz``, ``GET /readyz``          liveness (says why when Kafka does not
                                            answer); ready once partitions are assigned,
                                            the table is recovered and Kafka answers
``GET  /metrics``                           Prometheus text format
==========================================  ===============================================

Any replica answers any request: one keyed by saga id is forwarded to the
replica that owns the saga's partition; a listing asks every replica and
merges. Mutations need ``Authorization: Bearer <token>`` when ``SAGAS_API_TOKEN``
is set, are checked against the saga's state (409 with the reason when the
coordinator would refuse them), and travel as control messages through Kafka,
ordered with the saga's replies. ``wait=SECONDS`` waits for the effect and
returns the new state (200) instead of only accepting the request (202).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import ClientSession, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from events.dead_letters import error_digest
from events.topics import Topics
from sagas.api.collectors import CoordinatorCollector, TableCensus
from sagas.api.dead_letters import DeadLetters
from sagas.api.explorer import Explorer
from sagas.api.replica import Replica
from sagas.api.requests import ApiError
from sagas.api.server import SagaApi
from sagas.api.ui_routes import add_ui_routes
from sagas.kafka.broker_watch import BrokerWatch
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.topic_setup import coordinator_topics

__all__ = ["ApiError", "HttpApi", "Replica", "install_api"]

log = logging.getLogger("sagas.api")

#: How often the table census behind ``saga_states`` is refreshed (seconds): about 1 s of
#: CPU per million sagas in the table, so not on every scrape.
CENSUS_INTERVAL = 15.0


def install_api(
    replica: Replica,
    metrics_registry: CollectorRegistry,
    token: str | None = None,
    kafka: KafkaSettings | None = None,
) -> HttpApi:
    """The API of ``replica``, its ``/metrics`` (``metrics_registry``) with the scrape-time
    collectors registered there; ``token``: what mutations need (None: nothing); ``kafka``:
    the cluster whose reachability ``/readyz`` and ``/healthz`` report (None: not watched)."""
    census = TableCensus(replica)
    metrics_registry.register(CoordinatorCollector(replica, census))
    broker = BrokerWatch(kafka) if kafka is not None else None
    letters = None
    if kafka is not None:
        topics = Topics.from_settings(kafka)
        reads, _ = coordinator_topics(replica.registry, topics)
        letters = DeadLetters(kafka, topics.deadletter, reads)
    return HttpApi(replica, metrics_registry, census, token, broker, letters)


class HttpApi:
    """Routes of the coordinator's HTTP server onto `SagaApi`, and the census refresh."""

    def __init__(
        self,
        replica: Replica,
        metrics_registry: CollectorRegistry,
        census: TableCensus,
        token: str | None = None,
        broker: BrokerWatch | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.http: ClientSession | None = None
        self.saga_api = SagaApi(replica, metrics_registry, token, lambda: self.http, broker)
        self.explorer = Explorer(self.saga_api, dead_letters)
        self.cluster = self.saga_api.cluster
        self.census = census

    def application(self) -> web.Application:
        api = self.saga_api
        explorer = self.explorer
        app = web.Application(middlewares=[_json_errors])

        async def saga_action(request: web.Request) -> web.Response:
            key, action = request.match_info["key"], request.match_info["action"]
            return await _answer(lambda: api.operate(request, key, action))

        async def saga(request: web.Request) -> web.Response:
            key = request.match_info["key"]
            if request.method == "POST":
                return await _answer(lambda: api.start(request, key))
            return await _answer(lambda: api.status(request, key))

        async def sagas(request: web.Request) -> web.Response:
            return await _answer(lambda: api.listing(request))

        async def health(request: web.Request) -> web.Response:
            return await _answer(lambda: _sync(api.health()))

        async def ready(request: web.Request) -> web.Response:
            return await _answer(lambda: _sync(api.readiness()))

        async def overview(request: web.Request) -> web.Response:
            return await _answer(lambda: explorer.overview(request))

        async def letters(request: web.Request) -> web.Response:
            return await _answer(lambda: explorer.letters(request))

        async def redrive(request: web.Request) -> web.Response:
            info = request.match_info
            return await _answer(
                lambda: explorer.redrive(request, info["partition"], info["offset"])
            )

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=api.metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_post("/sagas/{key}/{action}", saga_action)
        app.router.add_get("/sagas/{key}", saga)
        app.router.add_post("/sagas/{key}", saga)
        app.router.add_get("/sagas", sagas)
        app.router.add_get("/sagas/", sagas)
        app.router.add_get("/healthz", health)
        app.router.add_get("/readyz", ready)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/overview", overview)
        app.router.add_get("/deadletters", letters)
        app.router.add_post("/deadletters/{partition}/{offset}/redrive", redrive)
        add_ui_routes(app)
        return app

    async def serve(self, host: str, port: int) -> web.AppRunner:
        """Listen on ``host:port``; the caller cleans the runner up, then calls `close`."""
        self.http = ClientSession()
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            await self.close()
            raise OSError(
                exc.errno,
                f"cannot serve the coordinator's HTTP API on {host}:{port} ({exc.strerror}); "
                f"is another replica using the port? Set SAGAS_WEB_PORT or --web-port",
            ) from None
        return runner

    async def close(self) -> None:
        """Close the session for requests to other replicas, and the dead letters' producer."""
        if self.explorer.dead_letters is not None:
            await self.explorer.dead_letters.close()
        if self.http is not None:
            await self.http.close()
            self.http = None

    def background_tasks(self) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(self._refresh_census(), name="sagas.api.census")]
        if self.saga_api.broker is not None:
            tasks.append(asyncio.create_task(self.saga_api.broker.run(), name="sagas.api.broker"))
        return tasks

    async def _refresh_census(self) -> None:
        while True:
            try:
                if self.cluster.not_ready() is None:
                    await self.census.scan(self.cluster.owned_partitions())
            except Exception:  # a scrape-time gauge must not take the replica down
                log.exception("counting the sagas in the table failed")
            await asyncio.sleep(CENSUS_INTERVAL)


def _reply(status: int, body: Any) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"WWW-Authenticate": 'Bearer realm="sagas"'} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "2"}
    elif status == 429:  # a start past admission control's bound
        headers = {"Retry-After": "1"}
    return web.Response(body=data, content_type=JSON, status=status, headers=headers)


async def _answer(handler: Callable[[], Awaitable[tuple[int, Any]]]) -> web.Response:
    try:
        status, body = await handler()
    except ApiError as exc:
        status, body = exc.status, exc.body()
    except web.HTTPRequestEntityTooLarge as exc:  # over aiohttp's client_max_size (1 MiB)
        limit = exc.text or "the limit"
        status, body = 413, {"error": "too-large", "detail": f"the body is too large: {limit}"}
    except Exception as exc:  # a bug: the log has the traceback, the client its digest
        log.exception("API request failed")
        detail = (
            f"internal error ({type(exc).__name__}, digest {error_digest(exc)}); the "
            f"coordinator's log has the details"
        )
        status, body = 500, {"error": "internal", "detail": detail}
    return _reply(status, body)


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own answers (no such route, method not allowed) as JSON errors too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == JSON:
            raise
        detail = (
            f"{request.method} {request.path}: {exc.reason}; the API is described at /openapi.json"
        )
        body = orjson.dumps({"error": exc.reason.lower().replace(" ", "-"), "detail": detail})
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.Response(body=body, status=exc.status, content_type=JSON, headers=headers)


async def _sync(result: tuple[int, Any]) -> tuple[int, Any]:
    return result


JSON = "application/json"
