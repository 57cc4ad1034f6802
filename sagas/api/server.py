"""The HTTP endpoints of the coordinator (aiohttp): a thin layer of I/O.

Parsing and validation live in `sagas.api.requests`, the answers in
`sagas.api.render`; this module reads the table, asks other replicas, and
publishes control messages to Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout
from prometheus_client import CollectorRegistry, generate_latest

from events.partitioning import partition_for
from sagas import control
from sagas.api import render, timeline
from sagas.api.cluster import FORWARDED, Cluster
from sagas.api.listing import Summaries
from sagas.api.listing import local_rows as select_rows
from sagas.api.replica import Replica
from sagas.api.requests import (
    ApiError,
    ListQuery,
    OperatorRequest,
    check_auth,
    check_saga_id,
    dry_run,
    make_cursor,
    parse_list_query,
    parse_operator,
    parse_start,
    parse_wait,
    same_start,
)
from sagas.api.signals import signal_saga
from sagas.errors import SagaError
from sagas.kafka.broker_watch import BrokerWatch
from sagas.logs import saga_fields

log = logging.getLogger("sagas.api")

PEER_TIMEOUT = 5.0
JSON = "application/json"


class SagaApi:
    """What each endpoint does; views call these with the aiohttp request."""

    def __init__(
        self,
        replica: Replica,
        metrics_registry: CollectorRegistry,
        token: str | None,
        http: Callable[[], ClientSession | None],
        broker: BrokerWatch | None = None,
    ) -> None:
        self.replica = replica
        self.metrics_registry = metrics_registry
        self.cluster = Cluster(replica)
        self.token = token
        #: the session for requests to other replicas (open while the API serves)
        self.http = http
        #: whether Kafka answers: the consumer and producer only log a lost broker
        self.broker = broker
        self.versions: dict[str, list[int]] = {}
        #: what listings and the overview read of each stored saga, kept until it changes
        self.summaries = Summaries()
        for definition in replica.registry:
            self.versions.setdefault(definition.name, []).append(definition.version)

    # -- plumbing -----------------------------------------------------------------------

    def definition(self, name: str, version: int | None) -> Any:
        try:
            return self.replica.registry.get(name, version)
        except SagaError:
            return None

    async def _peer(
        self, method: str, url: str, path_qs: str, *, body: bytes = b"", auth: str | None = None
    ) -> tuple[int, bytes]:
        headers = {FORWARDED: "1", "Content-Type": JSON}
        if auth:
            headers["Authorization"] = auth
        target = url.rstrip("/") + path_qs
        try:
            session = self.http()
            assert session is not None, "the API is not serving"
            async with session.request(
                method,
                target,
                data=body or None,
                headers=headers,
                timeout=ClientTimeout(total=PEER_TIMEOUT),
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, OSError) as exc:
            raise ApiError(
                502,
                "replica-unreachable",
                f"replica {url} holds this saga but did not answer ({exc!r}); it may be "
                f"restarting: try again in a few seconds",
            ) from None

    async def forward(self, request: Any, saga_id: str, body: bytes) -> tuple[int, bytes] | None:
        """The owner's answer to this POST when another replica holds ``saga_id``; None
        when this one answers it."""
        owner = self._owner(saga_id, request)
        if owner is None:
            return None
        return await self._peer(
            "POST", owner, request.path_qs, body=body, auth=request.headers.get("Authorization")
        )

    def held(self, saga_id: str) -> tuple[Any, Any]:
        """(state, definition) of a saga this replica holds; 404/503 when it holds none,
        409 when it runs a definition version this replica has not loaded."""
        state = self.cluster.local_state(saga_id)
        if state is None:
            self.local_detail(saga_id)  # raises the right 404/503
            raise AssertionError("unreachable")
        definition = self.definition(state.name, state.version)
        if definition is None:
            raise ApiError(
                409,
                "definition-not-loaded",
                f"saga {saga_id!r} runs {state.name!r} version {state.version}, which this "
                f"coordinator has not loaded",
            )
        return state, definition

    def _owner(self, saga_id: str, request: Any) -> str | None:
        """URL of the other replica to forward to, or None to answer here."""
        owner = self.cluster.owner_of(saga_id)
        moving = ApiError(
            503,
            "rebalancing",
            f"saga {saga_id!r} is moving between replicas (the group is rebalancing); "
            f"try again in a few seconds",
        )
        if owner is None:
            raise moving
        if request.headers.get(FORWARDED):
            # Sent here by a replica that thinks we hold it: never pass it on again, and
            # do not answer "no such saga" for a partition we no longer hold.
            if not self.cluster.is_self(owner):
                raise moving
            return None
        return None if self.cluster.is_self(owner) else owner

    # -- reads --------------------------------------------------------------------------

    async def status(self, request: Any, saga_id: str) -> tuple[int, Any]:
        check_saga_id(saga_id)
        owner = self._owner(saga_id, request)
        if owner is not None:
            return await self._peer("GET", owner, request.path_qs)
        return 200, self.local_detail(saga_id)

    def local_detail(self, saga_id: str) -> dict[str, Any]:
        state = self.cluster.local_state(saga_id)
        if state is None:
            why = self.cluster.not_ready()
            if why is not None:
                raise ApiError(503, "not-ready", f"cannot tell about saga {saga_id!r}: {why}")
            raise ApiError(
                404,
                "unknown-saga",
                f"no saga {saga_id!r}: it was never started, its start is still in flight, "
                f"or it finished long enough ago to have been removed",
            )
        definition = self.definition(state.name, state.version)
        detail = render.saga_detail(state, definition, owner=self.cluster.self_url)
        detail["timeline"] = timeline.spans(state, definition)
        return detail

    async def listing(self, request: Any) -> tuple[int, Any]:
        params = dict(request.query)
        query = parse_list_query(params, self.versions)
        why = self.cluster.not_ready()
        if why is not None:
            raise ApiError(503, "not-ready", f"cannot list sagas: {why}")
        local = self.local_rows(query)
        if params.get("scope") == "local" or request.headers.get(FORWARDED):
            return 200, {"sagas": [render.wire_row(r) for r in local]}
        peers = self.cluster.peers()
        path_qs = request.path_qs + ("&" if request.query else "?") + "scope=local"
        answers = await asyncio.gather(
            *(self._peer("GET", url, path_qs) for url in peers), return_exceptions=True
        )
        parts, missing = [local], []
        for url, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException) or answer[0] != 200:
                missing.append(url)
                continue
            parts.append([render.from_wire(r) for r in orjson.loads(answer[1])["sagas"]])
        rows = render.newest_first(render.merge_rows(*parts), query.limit)
        last = rows[-1] if len(rows) == query.limit else None
        return 200, {
            "sagas": [render.public(r) for r in rows],
            "count": len(rows),
            "limit": query.limit,
            "next_cursor": make_cursor(last["_started"], last["id"]) if last else None,
            "replicas": [self.cluster.self_url, *(u for u in peers if u not in missing)],
            "missing_replicas": missing,
            "complete": not missing,
        }

    def local_rows(self, query: ListQuery) -> list[dict[str, Any]]:
        values = self.replica.stored_values()
        return select_rows(values, query, self.definition, self.owned_test(), self.summaries)

    def owned_test(self) -> Callable[[bytes], bool] | None:
        """Whether a table key is in a partition this replica owns; None when it owns them
        all (one replica): murmur2 is pure Python, too slow to run on every key for nothing."""
        owned = self.cluster.owned_partitions()
        partitions = self.replica.partitions
        if owned.issuperset(range(partitions)):
            return None
        return lambda key: partition_for(key, partitions) in owned

    # -- mutations ----------------------------------------------------------------------

    async def start(self, request: Any, name: str) -> tuple[int, Any]:
        check_auth(request.headers.get("Authorization"), self.token)
        params = dict(request.query)
        wait = parse_wait(params)
        start = parse_start(name, await request.read(), params, self.versions)
        if start.saga_id is not None and (found := await self._found(start.saga_id)):
            same_start(start, found)  # a different saga under this id is a 409
            return 200, {
                "id": start.saga_id,
                "action": "start",
                "accepted": True,
                "applied": True,
                "existing": True,
                "state": found,
                "status_url": f"/sagas/{start.saga_id}",
            }
        if (why := self.cluster.check_start()) is not None:
            # the control topic cannot be paused (it carries operator commands): past the
            # bound the backlog waits with the caller, not in this replica (issue 19)
            raise ApiError(
                429,
                "overloaded",
                f"saga {start.saga!r} not started, nothing was published: {why}; "
                f"try again after Retry-After seconds",
            )
        event = control.start_request(
            start.saga, start.data, saga_id=start.saga_id, version=start.version
        )
        await self.publish(event)
        log.info("start requested through the API", extra=saga_fields(event.sagaid, saga=name))
        state = await self._await_start(event.sagaid, wait) if wait else None
        return (200 if state else 202), {
            "id": event.sagaid,
            "action": "start",
            "accepted": True,
            "applied": state is not None,
            "state": state,
            "status_url": f"/sagas/{event.sagaid}",
        }

    async def _found(self, saga_id: str) -> dict[str, Any] | None:
        """The view of saga ``saga_id`` from whichever replica holds it, or None if there
        is no such saga (or nobody holds its partition right now: the start then goes
        ahead, and the coordinator drops it as a duplicate if the saga exists)."""
        owner = self.cluster.owner_of(saga_id)
        if owner is None:
            return None
        if self.cluster.is_self(owner):
            return self.local_detail(saga_id) if self.cluster.local_state(saga_id) else None
        code, body = await self._peer("GET", owner, f"/sagas/{saga_id}")
        return dict(orjson.loads(body)) if code == 200 else None

    async def _await_start(self, saga_id: str, wait: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            owner = self.cluster.owner_of(saga_id)
            if owner is not None and not self.cluster.is_self(owner):
                try:
                    code, body = await self._peer("GET", owner, f"/sagas/{saga_id}")
                except ApiError:
                    code, body = 0, b""
                if code == 200:
                    return dict(orjson.loads(body))
            elif owner is not None and self.cluster.local_state(saga_id) is not None:
                return self.local_detail(saga_id)
            await asyncio.sleep(0.05)
        return None

    async def operate(self, request: Any, saga_id: str, action: str) -> tuple[int, Any]:
        if action == "signal":
            return await signal_saga(self, request, saga_id)
        check_auth(request.headers.get("Authorization"), self.token)
        check_saga_id(saga_id)
        params = dict(request.query)
        wait = parse_wait(params)
        body = await request.read()
        op = parse_operator(action, body, params)
        if (forwarded := await self.forward(request, saga_id, body)) is not None:
            return forwarded
        state, definition = self.held(saga_id)
        dry_run(definition, state, op, time.time())
        before = (state.updated_at, len(state.history))
        await self.publish(self.command(op, saga_id))
        log.info(
            "operator %s requested through the API: %s",
            op.action,
            op.reason,
            extra=saga_fields(saga_id, op.step, saga=state.name),
        )
        detail = await self._await_change(saga_id, before, wait) if wait else None
        return (200 if detail else 202), {
            "id": saga_id,
            "action": op.action,
            "accepted": True,
            "applied": detail is not None,
            "state": detail,
            "status_url": f"/sagas/{saga_id}",
        }

    @staticmethod
    def command(op: OperatorRequest, saga_id: str) -> Any:
        return control.operator_command(op.control_type, saga_id, reason=op.reason, step=op.step)

    async def _await_change(
        self, saga_id: str, before: tuple[float, int], wait: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            state = self.cluster.local_state(saga_id)
            if state is not None and (state.updated_at, len(state.history)) != before:
                return self.local_detail(saga_id)
        return None

    async def publish(self, event: Any) -> None:
        await self.replica.publish_control(event)

    # -- health and metrics ---------------------------------------------------------------

    def kafka_problem(self) -> str | None:
        if self.broker is None:
            return None
        problem = self.broker.problem
        return None if problem is None else f"Kafka does not answer: {problem}"

    def health(self) -> tuple[int, Any]:
        # Alive while Kafka is down (restarting would not bring it back), but says so.
        body = {"status": "ok", "replica": self.cluster.self_url}
        if (why := self.kafka_problem()) is not None:
            body.update(status="degraded", reason=why)
        return 200, body

    def readiness(self) -> tuple[int, Any]:
        why = self.kafka_problem() or self.cluster.not_ready()
        body = {
            "ready": why is None,
            "replica": self.cluster.self_url,
            "partitions": sorted(self.cluster.owned_partitions()),
        }
        if why is not None:
            body["reason"] = why
        return (200 if why is None else 503), body

    def metrics(self) -> bytes:
        return generate_latest(self.metrics_registry)
