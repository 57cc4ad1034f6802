"""The coordinator's HTTP API and ``/metrics``, served by its faust web server.

==========================================  ===============================================
``GET  /sagas/{id}``                        one saga: status, context, every step (attempts,
                                            times, outcomes), timers and history
``GET  /sagas?status=&saga=&limit=``        sagas of every replica, newest first
``POST /sagas/{name}[?id=&version=&wait=]`` start a saga; body = initial data (JSON object)
``POST /sagas/{id}/retry|abort|resolve``    operator commands; body ``{"reason": ...}``
``POST /sagas/{id}/skip``                   body ``{"step": NAME, "reason": ...}``
``GET  /healthz``, ``GET /readyz``          liveness; ready once partitions are assigned
                                            and the table is recovered
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

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from sagas.api.requests import ApiError

if TYPE_CHECKING:
    from sagas.api.server import SagaApi
    from sagas.coordinator import Coordinator

__all__ = ["ApiError", "install_api"]

log = logging.getLogger("sagas.api")

#: How often the table census behind ``saga_states`` is refreshed (seconds): about 1 s of
#: CPU per million sagas in the table, so not on every scrape.
CENSUS_INTERVAL = 15.0


def install_api(coordinator: Coordinator) -> SagaApi:
    """Add the API, ``/metrics`` and the scrape-time collectors to the coordinator's app."""
    from faust import web

    from sagas.api.collectors import CoordinatorCollector, TableCensus
    from sagas.api.server import JSON, SagaApi

    api = SagaApi(coordinator)
    app = coordinator.app
    census = TableCensus(coordinator)
    coordinator.metrics_registry.register(CoordinatorCollector(coordinator, census))

    async def refresh_census() -> None:
        if api.cluster.not_ready() is None:
            await census.scan(api.cluster.owned_partitions())

    app.timer(CENSUS_INTERVAL, name="sagas.api.census")(refresh_census)

    def reply(view: web.View, status: int, body: Any) -> web.Response:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = {"WWW-Authenticate": 'Bearer realm="sagas"'} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "2"}
        return view.bytes(data, content_type=JSON, status=status, headers=headers)

    async def answer(
        view: web.View, handler: Callable[[], Awaitable[tuple[int, Any]]]
    ) -> web.Response:
        try:
            status, body = await handler()
        except ApiError as exc:
            status, body = exc.status, exc.body()
        except Exception as exc:  # a bug: say so in the response and in the log
            log.exception("API request failed")
            status, body = 500, {"error": "internal", "detail": repr(exc)}
        return reply(view, status, body)

    @app.page("/sagas/{key}/{action}")
    class SagaAction(web.View):
        async def post(self, request: web.Request, key: str, action: str) -> web.Response:
            return await answer(self, lambda: api.operate(request, key, action))

    @app.page("/sagas/{key}")
    class Saga(web.View):
        async def get(self, request: web.Request, key: str) -> web.Response:
            return await answer(self, lambda: api.status(request, key))

        async def post(self, request: web.Request, key: str) -> web.Response:
            return await answer(self, lambda: api.start(request, key))

    class Sagas(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return await answer(self, lambda: api.listing(request))

    app.page("/sagas", name="sagas-list")(Sagas)
    app.page("/sagas/", name="sagas-list-slash")(type("SagasSlash", (Sagas,), {}))

    async def _sync(result: tuple[int, Any]) -> tuple[int, Any]:
        return result

    @app.page("/healthz")
    class Health(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return await answer(self, lambda: _sync(api.health()))

    @app.page("/readyz")
    class Ready(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return await answer(self, lambda: _sync(api.readiness()))

    @app.page("/metrics")
    class Metrics(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return self.bytes(api.metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return api
