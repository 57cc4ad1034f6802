"""The pure part of the bridge: what an HTTP outcome means for the saga.

The runner makes the call and records its outcome *with* the command (the
command's data becomes ``{"command": <data>, "http": <HttpOutcome>}``) in the
participant changelog; `handle` turns that recorded input into the reply.
Replaying the changelog therefore rebuilds every reply without calling the
endpoint again, and the handler stays a deterministic function of its input
like every participant handler (`sagas.participants.participant_store`).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from events.envelope import CloudEvent
from sagas.participants.bridge.config import BridgeConfig, Route
from sagas.participants.participant import Handler, Outgoing

#: Client errors that mean "try again later", not "no".
RETRIABLE_4XX = frozenset({408, 425, 429})


class HttpOutcome(BaseModel):
    """What the endpoint answered, or why there is no answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int | None = None
    body: Any = None  # parsed JSON, or the text when it is not JSON
    attempts: int = 1
    error: str | None = None  # the last retriable failure, when the bridge gave up

    @property
    def gave_up(self) -> bool:
        return self.error is not None


def is_retriable(status: int) -> bool:
    return status >= 500 or status in RETRIABLE_4XX or status < 200 or 300 <= status < 400


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def reply_for(route: Route, outcome: HttpOutcome) -> tuple[str, dict[str, Any]] | None:
    """(reply type, data) for an outcome, or None when nothing is to be published."""
    if outcome.gave_up:
        if route.on_exhausted == "silent":
            return None
        reason = (
            f"{route.url} gave no usable answer in {outcome.attempts} attempts: {outcome.error}"
        )
        return route.failure, {"reason": reason, "http_status": outcome.status}
    status = outcome.status or 0
    body = outcome.body
    if 200 <= status < 300:
        if body is None:
            return route.success, {}
        return route.success, body if isinstance(body, dict) else {"result": body}
    data = dict(body) if isinstance(body, dict) else {}
    if not isinstance(data.get("reason"), str):
        detail = f": {body}" if isinstance(body, str) and body else ""
        data["reason"] = f"{route.url} answered HTTP {status}{detail}"[:500]
    data["http_status"] = status
    return route.failure, data


def enrich(command: CloudEvent, outcome: HttpOutcome) -> CloudEvent:
    """The command as the changelog records it: its data plus the HTTP outcome."""
    data = {"command": command.data, "http": outcome.model_dump(mode="json")}
    return command.model_copy(update={"data": data})


def make_handler(config: BridgeConfig) -> Handler[dict[str, int]]:
    """state = replies published per type (a count for ``/stats``)."""
    source = f"sagastream/bridge/{config.name}"

    def handle(state: dict[str, int], event: CloudEvent) -> tuple[dict[str, int], list[Outgoing]]:
        route = config.route_for(event.type)
        if route is None or "http" not in event.data:
            return state, []
        answer = reply_for(route, HttpOutcome.model_validate(event.data["http"]))
        if answer is None:
            return state, []
        type_, data = answer
        reply = event.reply(type_, source, data)
        return {**state, type_: state.get(type_, 0) + 1}, [Outgoing(route.reply_topic, reply)]

    return handle
