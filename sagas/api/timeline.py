"""A saga's timeline: every attempt of every step and compensation as a span of time.

Pure: computed from the state's history (``command.sent`` opens a span; the
reply, the retry after a failure or timeout, or an operator's skip closes it)
and, for choreographed steps that send no command, from the step's own times.
The explorer draws the spans to scale (`offset_seconds`, `duration_seconds`
from the saga's start); a span still open has no end.
"""

from __future__ import annotations

from typing import Any

from sagas.api.render import iso
from sagas.definition import SagaDefinition
from sagas.state import HistoryEntry, SagaState

#: history event -> (phase of the span it closes, what the span came to)
_CLOSES: dict[str, tuple[str, str]] = {
    "saga.step.succeeded": ("do", "succeeded"),
    "saga.step.failed": ("do", "failed"),
    "step.retry": ("do", "retried"),
    "step.compensated": ("undo", "compensated"),
    "compensation.retry": ("undo", "retried"),
    "saga.step.late_compensated": ("undo", "compensated"),
    "saga.step.late_succeeded": ("do", "succeeded late"),
}


def _phase_of(definition: SagaDefinition | None, step: str, command: str) -> str:
    if definition is None:
        return "do"
    for spec in definition.steps:
        if spec.name == step:
            undo = spec.compensation is not None and spec.compensation.type == command
            return "undo" if undo else "do"
    return "do"


def _sent(entry: HistoryEntry) -> tuple[str, int]:
    """(command type, attempt) from a ``command.sent`` detail: ``TYPE attempt N``."""
    command, _, attempt = (entry.detail or "").rpartition(" attempt ")
    try:
        return command, int(attempt)
    except ValueError:
        return entry.detail or "", 0


def spans(state: SagaState, definition: SagaDefinition | None) -> list[dict[str, Any]]:
    """Every attempt as {step, phase, attempt, command, start, end, result}, by start."""
    out: list[dict[str, Any]] = []
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in state.history:
        if entry.step is None:
            if entry.event == "abort":  # the steps in flight are cancelled
                for key in [k for k in open_ if k[1] == "do"]:
                    open_.pop(key).update(end=entry.at, result="cancelled")
            continue
        if entry.event == "command.sent":
            command, attempt = _sent(entry)
            phase = _phase_of(definition, entry.step, command)
            span: dict[str, Any] = {
                "step": entry.step,
                "phase": phase,
                "attempt": attempt,
                "command": command,
                "start": entry.at,
                "end": None,
                "result": None,
                "detail": None,
            }
            previous = open_.pop((entry.step, phase), None)
            if previous is not None:  # re-sent without a recorded reason
                previous.update(end=entry.at, result="resent")
            open_[(entry.step, phase)] = span
            out.append(span)
        elif entry.event in _CLOSES or entry.event == "operator.skip":
            phases = [_CLOSES[entry.event][0]] if entry.event in _CLOSES else ["undo", "do"]
            for phase in phases:
                closed = open_.pop((entry.step, phase), None)
                if closed is not None:
                    result = _CLOSES[entry.event][1] if entry.event in _CLOSES else "skipped"
                    closed.update(end=entry.at, result=result, detail=entry.detail)
                    break
    for span in open_.values():
        if state.finished_at is not None:  # the saga ended without an answer to it
            span.update(end=state.finished_at, result="no answer")
    covered = {s["step"] for s in out if s["phase"] == "do"}
    specs = definition.steps if definition is not None else ()
    for i, step in enumerate(state.steps):
        name = specs[i].name if i < len(specs) else f"step-{i}"
        if name in covered or step.started_at is None:
            continue
        out.append(
            {
                "step": name,
                "phase": "do",
                "attempt": max(step.attempt, 1),
                "command": None,
                "start": step.started_at,
                "end": step.finished_at,
                "result": step.outcome,
                "detail": None,
            }
        )
    out.sort(key=lambda s: (s["start"], s["phase"] == "undo"))
    return [_view(s, state.started_at) for s in out]


def _view(span: dict[str, Any], origin: float) -> dict[str, Any]:
    start, end = span["start"], span["end"]
    return {
        **span,
        "start": iso(start),
        "end": iso(end),
        "offset_seconds": round(max(0.0, start - origin), 6),
        "duration_seconds": None if end is None else round(max(0.0, end - start), 6),
    }
