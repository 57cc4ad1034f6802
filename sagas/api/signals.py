"""``POST /sagas/{id}/signal``: a person's answer to a waiting step (``awaits:``).

Body ``{"type": "claim.approved", "data": {...}}``; the token of every mutation is
required. The signal travels as a control record (`sagas.control.SIGNAL`), ordered
with the saga's replies. It is checked first with a dry run of the state machine:
a type no step of the saga waits for is a 400, a signal the saga would ignore now
(not waiting yet, past the deadline, answered already) a 409 saying why.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from events.envelope import CloudEvent
from sagas import control
from sagas.api.requests import ApiError, check_auth, check_saga_id, json_object, parse_wait
from sagas.definition import SagaDefinition
from sagas.machine import decide
from sagas.messages import Outcome
from sagas.state import SagaState

SOURCE = "sagastream/api"


class SagaApi(Protocol):
    """What of `sagas.api.server.SagaApi` a signal uses (named, not imported: no circle)."""

    token: str | None
    cluster: Any

    async def forward(
        self, request: Any, saga_id: str, body: bytes
    ) -> tuple[int, bytes] | None: ...
    def held(self, saga_id: str) -> tuple[Any, Any]: ...
    async def publish(self, event: Any) -> None: ...
    async def _await_change(
        self, saga_id: str, before: tuple[float, int], wait: float
    ) -> dict[str, Any] | None: ...


def parse_signal(saga_id: str, body: bytes) -> CloudEvent:
    payload = json_object(body, "the body")
    type_, data = payload.get("type"), payload.get("data", {})
    if not isinstance(type_, str) or not type_ or len(type_) > control.MAX_NAME:
        raise ApiError(400, "bad-request", 'a signal needs its type: {"type": "claim.approved"}')
    if not isinstance(data, dict):
        raise ApiError(400, "bad-request", "'data' must be a JSON object (it joins the context)")
    return control.signal(saga_id, type_, data, source=SOURCE)


def check_signal(
    definition: SagaDefinition, state: SagaState, request: CloudEvent, now: float
) -> None:
    """Raise 400 for a type no step awaits, 409 if the saga would ignore it now."""
    type_ = str(request.data["type"])
    expected = [t for s in definition.steps if s.awaits for t in (*s.success, *s.failure)]
    if type_ not in expected:
        raise ApiError(
            400,
            "unknown-signal",
            f"saga {state.saga_id!r} ({definition.name} v{definition.version}) waits for no "
            f"signal {type_!r}; its signals: {', '.join(expected) or 'none'}",
        )
    decision = decide(definition, state, control.to_message(request), now)
    if decision.outcome is not Outcome.APPLIED:
        raise ApiError(
            409,
            "not-waiting",
            f"signal {type_!r} for saga {state.saga_id!r} would change nothing: "
            f"{decision.note or decision.outcome}",
            saga_status=state.status.value,
        )


async def signal_saga(api: SagaApi, request: Any, saga_id: str) -> tuple[int, Any]:
    check_auth(request.headers.get("Authorization"), api.token)
    check_saga_id(saga_id)
    wait = parse_wait(dict(request.query))
    body = await request.read()
    event = parse_signal(saga_id, body)
    if (forwarded := await api.forward(request, saga_id, body)) is not None:
        return forwarded
    state, definition = api.held(saga_id)
    check_signal(definition, state, event, time.time())
    before = (state.updated_at, len(state.history))
    await api.publish(event)
    detail = await api._await_change(saga_id, before, wait) if wait else None
    return (200 if detail else 202), {
        "id": saga_id,
        "action": "signal",
        "type": event.data["type"],
        "accepted": True,
        "applied": detail is not None,
        "state": detail,
        "status_url": f"/sagas/{saga_id}",
    }
