"""What the HTTP API answers about sagas, computed from their recorded state.

Pure functions: a `SagaState` (or the plain JSON of one, for listings) and its
definition in, a JSON-ready dict out. No I/O, no clock, so they are tested with
plain values. Times are RFC 3339 strings in UTC; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sagas.definition import SagaDefinition, Step
from sagas.state import SagaState, StepState, StepStatus

#: Steps in these states are what a saga is doing (or stuck on) right now.
_ACTIVE = frozenset(
    {
        StepStatus.RUNNING,
        StepStatus.WAITING_RETRY,
        StepStatus.COMPENSATING,
        StepStatus.FAILED,
        StepStatus.TIMED_OUT,
        StepStatus.COMPENSATION_FAILED,
    }
)


def iso(ts: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC with milliseconds, or None."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _seconds(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 6)


def _step_name(definition: SagaDefinition | None, index: int) -> str:
    if definition is not None and index < len(definition.steps):
        return definition.steps[index].name
    return f"step-{index}"


def step_view(index: int, step: StepState, spec: Step | None) -> dict[str, Any]:
    """One step: what it is, how far it got, how many attempts each way, how it ended."""
    view: dict[str, Any] = {
        "index": index,
        "name": spec.name if spec is not None else f"step-{index}",
        "status": step.status.value,
        "attempts": step.attempt,
        "compensation_attempts": step.comp_attempt,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "duration_seconds": _seconds(step.started_at, step.finished_at),
        "outcome": step.outcome,
        "compensation_outcome": step.comp_outcome,
        "late_effects": step.late,
        "late_effects_undone": step.late_undone,
    }
    if spec is not None:
        if spec.awaits is not None:  # waits for a person's signal (issue 20)
            view["kind"], view["action"] = "awaits", spec.awaits.type
        else:
            view["kind"] = "orchestrated" if spec.command is not None else "choreographed"
            view["action"] = spec.command.type if spec.command is not None else spec.observes
        view["when"] = spec.when
        view["compensation"] = spec.compensation.type if spec.compensation is not None else None
        view["pivot"] = spec.pivot
        view["timeout_seconds"] = spec.timeout
        view["max_attempts"] = spec.retry.attempts
    return view


def current_steps(state: SagaState, definition: SagaDefinition | None) -> list[str]:
    """Names of the steps the saga is working on or stuck on."""
    return [_step_name(definition, i) for i, st in enumerate(state.steps) if st.status in _ACTIVE]


def saga_detail(
    state: SagaState, definition: SagaDefinition | None, *, owner: str | None = None
) -> dict[str, Any]:
    """Everything an operator asks about one saga: ``GET /sagas/{id}``."""
    specs = definition.steps if definition is not None else ()
    timers = sorted(state.timers.values(), key=lambda t: t.due)
    return {
        "id": state.saga_id,
        "saga": state.name,
        "version": state.version,
        "status": state.status.value,
        "terminal": state.terminal,
        "needs_operator": state.attention,
        "phase": state.phase,
        "current_steps": current_steps(state, definition),
        "failure": state.failure,
        "abort_reason": state.abort_reason,
        "started_at": iso(state.started_at),
        "updated_at": iso(state.updated_at),
        "finished_at": iso(state.finished_at),
        "duration_seconds": _seconds(state.started_at, state.finished_at),
        "context": state.context,
        "steps": [
            step_view(i, st, specs[i] if i < len(specs) else None)
            for i, st in enumerate(state.steps)
        ],
        "compensation_plan": [_step_name(definition, i) for i in state.compensation_plan],
        "timers": [
            {
                "kind": t.kind,
                "step": _step_name(definition, t.step),
                "phase": t.phase,
                "attempt": t.attempt,
                "due": iso(t.due),
            }
            for t in timers
        ],
        "history": [
            {"at": iso(h.at), "event": h.event, "step": h.step, "detail": h.detail}
            for h in state.history
        ],
        "served_by": owner,
    }


def saga_row(doc: Mapping[str, Any], definition: SagaDefinition | None) -> dict[str, Any]:
    """One line of ``GET /sagas``, from the stored JSON of a state (not validated: cheap)."""
    steps = doc.get("steps") or []
    active = [
        _step_name(definition, i)
        for i, st in enumerate(steps)
        if isinstance(st, Mapping) and st.get("status") in _ACTIVE
    ]
    return {
        "id": doc.get("saga_id"),
        "saga": doc.get("name"),
        "version": doc.get("version"),
        "status": doc.get("status"),
        "needs_operator": doc.get("attention"),
        "phase": doc.get("phase"),
        "current_steps": active,
        "failure": doc.get("failure"),
        "started_at": iso(doc.get("started_at")),
        "updated_at": iso(doc.get("updated_at")),
        "finished_at": iso(doc.get("finished_at")),
        "_started": doc.get("started_at") or 0.0,
        "_updated": doc.get("updated_at") or 0.0,
    }


def merge_rows(*parts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows from several replicas, one per saga id (the most recently updated wins)."""
    best: dict[str, dict[str, Any]] = {}
    for rows in parts:
        for row in rows:
            seen = best.get(row["id"])
            if seen is None or row.get("_updated", 0) > seen.get("_updated", 0):
                best[row["id"]] = row
    return list(best.values())


def newest_first(rows: Iterable[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recently started rows, newest first (ties broken by id)."""
    ordered = sorted(rows, key=lambda r: (-float(r.get("_started", 0)), str(r["id"])))
    return ordered[:limit]


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without its internal sort keys."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def wire_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as one replica sends it to another: sort keys kept, renamed to plain fields."""
    out = public(row)
    out["started_ts"], out["updated_ts"] = row.get("_started", 0.0), row.get("_updated", 0.0)
    return out


def from_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("started_ts", "updated_ts")}
    out["_started"], out["_updated"] = row.get("started_ts", 0.0), row.get("updated_ts", 0.0)
    return out
