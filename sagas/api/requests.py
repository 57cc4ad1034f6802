"""What the HTTP API accepts: parsing, validation and authorisation of requests.

Pure functions that either return a typed request or raise `ApiError` with the
HTTP status and a message saying what was wrong and what would be right.
Operator commands are checked with a dry run of the state machine itself, so
the API refuses exactly what the coordinator would refuse, with its reason.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from events.saga_ids import saga_id_problem
from sagas import control
from sagas.definition import SagaDefinition
from sagas.errors import SagaError
from sagas.machine import decide
from sagas.messages import Abort, Message, Outcome, Resolve, RetryFailed, Skip
from sagas.state import SagaState, SagaStatus

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_WAIT = 30.0
MAX_BODY = 256 * 1024
HOW_TO_AUTHENTICATE = (
    "send 'Authorization: Bearer <token>' with the coordinator's API token "
    "(SAGAS_API_TOKEN); with the CLI pass --token or set SAGAS_API_TOKEN"
)

#: action in the URL -> control message type
ACTIONS = {
    "retry": control.RETRY,
    "abort": control.ABORT,
    "skip": control.SKIP,
    "resolve": control.RESOLVE,
}


class ApiError(Exception):
    """An answer other than success: HTTP status, a short code and what to do about it."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


@dataclass(frozen=True)
class ListQuery:
    statuses: frozenset[str] | None
    saga: str | None
    limit: int
    #: a saga id, the start of one, or a top-level value of the context (an order id)
    find: str | None = None
    #: started at or after / before (epoch seconds)
    since: float | None = None
    until: float | None = None
    #: (started_at, saga id) of the last row of the previous page
    after: tuple[float, str] | None = None


@dataclass(frozen=True)
class StartRequest:
    saga: str
    data: dict[str, Any]
    saga_id: str | None
    version: int | None


@dataclass(frozen=True)
class OperatorRequest:
    action: str
    reason: str
    step: str | None = None

    @property
    def control_type(self) -> str:
        return ACTIONS[self.action]

    def message(self) -> Message:
        if self.action == "abort":
            return Abort(self.reason)
        if self.action == "retry":
            return RetryFailed(self.reason)
        if self.action == "skip":
            assert self.step is not None
            return Skip(self.step, self.reason)
        return Resolve(self.reason)


def check_auth(authorization: str | None, token: str | None) -> None:
    """Raise 401 unless no token is configured or the header carries it."""
    if not token:
        return
    if not authorization:
        raise ApiError(401, "unauthorized", f"this endpoint needs a token: {HOW_TO_AUTHENTICATE}")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401, "unauthorized", f"expected a Bearer token, got {scheme!r}: {HOW_TO_AUTHENTICATE}"
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", f"the token is not valid: {HOW_TO_AUTHENTICATE}")


def check_saga_id(saga_id: str) -> str:
    """The grammar of `events.saga_ids` (the one the coordinator enforces on starts)."""
    problem = saga_id_problem(saga_id)
    if problem is not None:
        raise ApiError(400, "bad-saga-id", problem)
    return saga_id


def _int(params: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> Any:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad-query", f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, "bad-query", f"{name}={value} is out of range {low}..{high}")
    return value


def parse_wait(params: Mapping[str, str]) -> float:
    """``wait=SECONDS``: how long a mutation may wait to see its effect (0: do not wait)."""
    raw = params.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "bad-query", f"wait={raw!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_WAIT:
        raise ApiError(400, "bad-query", f"wait={value} is out of range 0..{MAX_WAIT:g} seconds")
    return value


_NUMBER = re.compile(r"[0-9]{1,12}(\.[0-9]{0,9})?")
LIST_PARAMS = ("status", "saga", "limit", "q", "since", "until", "cursor", "scope")
MAX_FIND = 200


def parse_list_query(params: Mapping[str, str], known_sagas: Iterable[str]) -> ListQuery:
    """``GET /sagas?status=failed,running&saga=order&q=ord-00042&since=&until=&limit=20
    &cursor=``."""
    unknown_params = set(params) - set(LIST_PARAMS)
    if unknown_params:
        raise ApiError(
            400,
            "bad-query",
            f"unknown query parameter(s) {sorted(unknown_params)}; use "
            f"{', '.join(LIST_PARAMS[:-1])}",
        )
    statuses = None
    if params.get("status"):
        wanted = {s.strip() for s in params["status"].split(",") if s.strip()}
        valid = {s.value for s in SagaStatus}
        bad = wanted - valid
        if bad:
            raise ApiError(
                400,
                "bad-query",
                f"unknown status {sorted(bad)}; choose from {', '.join(s.value for s in SagaStatus)}",
            )
        statuses = frozenset(wanted)
    saga = params.get("saga") or None
    known = sorted(set(known_sagas))
    if saga is not None and saga not in known:
        raise ApiError(
            400, "bad-query", f"no saga definition {saga!r} is loaded; loaded: {', '.join(known)}"
        )
    limit = _int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    find = (params.get("q") or "").strip() or None
    if find is not None and len(find) > MAX_FIND:
        raise ApiError(400, "bad-query", f"q is {len(find)} characters; at most {MAX_FIND}")
    since, until = parse_time(params, "since"), parse_time(params, "until")
    if since is not None and until is not None and until < since:
        raise ApiError(400, "bad-query", "until is before since: swap them")
    after = parse_cursor(params.get("cursor"))
    return ListQuery(statuses, saga, limit, find, since, until, after)


def parse_time(params: Mapping[str, str], name: str) -> float | None:
    """An RFC 3339 time (``2026-12-04T17:00:00Z``) or epoch seconds, as epoch seconds."""
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    if _NUMBER.fullmatch(raw):
        return float(raw)
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ApiError(
                400, "bad-query", f"{name}={raw!r} has no time zone: add Z (UTC) or an offset"
            )
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise ApiError(
            400,
            "bad-query",
            f"{name}={raw!r} is not a time: use RFC 3339 (2026-12-04T17:00:00Z) or epoch seconds",
        ) from None


def make_cursor(started: float, saga_id: str) -> str:
    """The opaque ``cursor`` of the page after the row (started, saga_id)."""
    return base64.urlsafe_b64encode(orjson.dumps([started, saga_id])).decode().rstrip("=")


def parse_cursor(raw: str | None) -> tuple[float, str] | None:
    if not raw:
        return None
    try:
        started, saga_id = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return float(started), str(saga_id)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise ApiError(
            400,
            "bad-query",
            "cursor is not one this API gave: pass the next_cursor of the previous page as is",
        ) from None


def wanted(query: ListQuery, status: Any, name: Any) -> bool:
    """Does a saga with this status and name pass the query's filters?"""
    if query.statuses is not None and status not in query.statuses:
        return False
    return query.saga is None or name == query.saga


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty)."""
    if len(body) > MAX_BODY:
        raise ApiError(413, "too-large", f"{what} is {len(body)} bytes; the limit is {MAX_BODY}")
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad-json", f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad-json", f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def parse_start(
    name: str, body: bytes, params: Mapping[str, str], definitions: Mapping[str, list[int]]
) -> StartRequest:
    """``POST /sagas/{name}?id=&version=`` with the initial context as the JSON body."""
    if name not in definitions:
        known = ", ".join(sorted(definitions)) or "none"
        raise ApiError(
            404, "unknown-saga-definition", f"no saga definition {name!r}; loaded: {known}"
        )
    version = _int(params, "version", None, 1, 1_000_000)
    if version is not None and version not in definitions[name]:
        raise ApiError(
            404,
            "unknown-saga-definition",
            f"saga {name!r} has no version {version}; loaded versions: {definitions[name]}",
        )
    saga_id = params.get("id") or None
    if saga_id is not None:
        check_saga_id(saga_id)
    data = json_object(body, "the body (the saga's initial data)")
    return StartRequest(name, data, saga_id, version)


def same_start(start: StartRequest, existing: Mapping[str, Any]) -> None:
    """Raise 409 unless the saga ``existing`` (its ``GET /sagas/{id}`` view) is what
    ``start`` asks for: the same definition (and version, if asked) and a context that
    still holds every field of the request's data with the same value. Replies add to a
    saga's context, so the context may hold more; a retried request is then idempotent."""
    differs = []
    if existing.get("saga") != start.saga:
        differs.append(f"it runs {existing.get('saga')!r}, not {start.saga!r}")
    elif start.version is not None and existing.get("version") != start.version:
        differs.append(f"it runs version {existing.get('version')}, not {start.version}")
    context = existing.get("context") or {}
    changed = sorted(k for k, v in start.data.items() if k not in context or context[k] != v)
    if changed:
        shown = ", ".join(repr(k) for k in changed[:5]) + (", ..." if len(changed) > 5 else "")
        differs.append(f"its data differs in {shown}")
    if differs:
        raise ApiError(
            409,
            "saga-id-taken",
            f"saga {existing.get('id')!r} already exists and {'; '.join(differs)}: choose "
            f"another id, or leave the id out to get a new one",
            saga_status=existing.get("status"),
        )


def parse_operator(action: str, body: bytes, params: Mapping[str, str]) -> OperatorRequest:
    """``POST /sagas/{id}/{action}`` with optional body ``{"reason": ..., "step": ...}``."""
    if action not in ACTIONS:
        raise ApiError(
            404, "unknown-action", f"no action {action!r}; choose one of {', '.join(ACTIONS)}"
        )
    payload = json_object(body, "the body")
    reason = payload.get("reason", params.get("reason"))
    step = payload.get("step", params.get("step"))
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise ApiError(400, "bad-request", "'reason' must be a string of at most 1000 characters")
    if step is not None and not isinstance(step, str):
        raise ApiError(400, "bad-request", "'step' must be a step name (a string)")
    if action == "skip" and not step:
        raise ApiError(400, "bad-request", 'skip needs the step to skip: {"step": NAME}')
    if action in ("skip", "resolve") and not reason:
        raise ApiError(
            400, "bad-request", f'{action} needs a reason for the history: {{"reason": TEXT}}'
        )
    return OperatorRequest(action, reason or f"{action} by operator (API)", step)


def dry_run(
    definition: SagaDefinition, state: SagaState, request: OperatorRequest, now: float
) -> None:
    """Raise 409 with the state machine's reason if it would refuse ``request`` now."""
    if request.step is not None:
        try:
            definition.step_index(request.step)
        except SagaError as exc:
            raise ApiError(400, "unknown-step", str(exc)) from None
    decision = decide(definition, state, request.message(), now)
    if decision.outcome is not Outcome.APPLIED:
        raise ApiError(
            409,
            "not-applicable",
            f"cannot {request.action} saga {state.saga_id!r}: {decision.note or decision.outcome}",
            saga_status=state.status.value,
        )
