"""The output half of one decision: the working state plus what to send, emit and arm.

`sagas.machine` (forward, timers, operator) and `sagas.backward` (compensation
and late effects) build on this; nothing here decides anything, it only
records what they decided, with ids derived from the saga id so that the same
input always yields the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from events.envelope import CloudEvent, derived_id
from sagas.definition import SagaDefinition
from sagas.messages import Decision, Emitted, Outcome, Outgoing, Signal, TimerRequest
from sagas.state import HistoryEntry, Phase, SagaState, SagaStatus, StepState, TimerSpec

SOURCE = "sagastream/coordinator"


def command_id(saga_id: str, step: str, phase: Phase, attempt: int) -> str:
    """The id of a command: the same for a re-send, different for a new attempt."""
    return derived_id(saga_id, step, phase, attempt)


class RunOutput:
    """One decision in the making: a working copy of the state plus what to emit."""

    def __init__(self, definition: SagaDefinition, state: SagaState, now: float) -> None:
        self.d = definition
        self.s = state
        self.now = now
        self.commands: list[Outgoing] = []
        self.lifecycle: list[Emitted] = []
        self.timers: list[TimerRequest] = []
        self.signals: list[Signal] = []
        self.note = ""

    def decision(self, outcome: Outcome) -> Decision:
        self.s.updated_at = self.now
        return Decision(
            self.s,
            outcome,
            tuple(self.commands),
            tuple(self.lifecycle),
            tuple(self.timers),
            tuple(self.signals),
            self.note,
        )

    def reject(self, note: str, outcome: Outcome = Outcome.REJECTED) -> Outcome:
        self.note = note
        return outcome

    def late(self, st: StepState, event_type: str | None = None) -> Outcome:
        if event_type is not None and any(
            _same_type(event_type, seen) for seen in (st.outcome, st.comp_outcome)
        ):
            return self.reject("already applied", Outcome.DUPLICATE)
        return self.reject("arrived after the step was settled", Outcome.LATE)

    def park(self, reason: str) -> None:
        if self.s.status is SagaStatus.FAILED:
            # Already parked for an operator: one saga.failed per parking, not one per cause.
            self.record("parked.again", None, reason)
            return
        self.s.status = SagaStatus.FAILED
        self.s.failure = reason
        self.s.finished_at = self.now
        self.emit("saga.failed", data={"reason": reason, "phase": self.s.phase})
        self.signals.append(Signal("finished", None, self.now - self.s.started_at, "failed"))

    def finish(self, status: SagaStatus, resolved: str | None = None) -> None:
        self.s.status = status
        self.s.finished_at = self.now
        self.s.timers.clear()
        data: dict[str, Any] = {"context": self.s.context}
        if self.s.failure:
            data["reason"] = self.s.failure
        if resolved is not None:
            data["resolved_by_operator"] = resolved
        self.emit(f"saga.{status.value}", data=data)
        self.signals.append(Signal("finished", None, self.now - self.s.started_at, status.value))

    def send(self, i: int, phase: Phase, attempt: int, type_: str, topic: str) -> None:
        step = self.d.steps[i]
        cid = command_id(self.s.saga_id, step.name, phase, attempt)
        self.s.issued[cid] = (i, phase, attempt)
        event = emitted(cid, type_, self.now, self.s.saga_id, dict(self.s.context))
        self.commands.append(Outgoing(topic, event))
        self.record("command.sent", step.name, f"{type_} attempt {attempt}")

    def set_timer(self, kind: str, i: int, phase: Phase, attempt: int, due: float) -> None:
        token = derived_id(self.s.saga_id, kind, i, phase, attempt)
        self.s.timers[token] = TimerSpec(kind=kind, step=i, phase=phase, attempt=attempt, due=due)  # type: ignore[arg-type]
        self.timers.append(TimerRequest(token, due))

    def retry_armed(self, i: int, phase: Phase) -> bool:
        return any(
            spec.kind == "retry" and spec.step == i and spec.phase == phase
            for spec in self.s.timers.values()
        )

    def clear_timers(self, i: int, phase: Phase) -> None:
        stale = [t for t, spec in self.s.timers.items() if spec.step == i and spec.phase == phase]
        for token in stale:
            del self.s.timers[token]

    def emit(self, type_: str, step: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.s.lifecycle_seq += 1
        payload = {"saga": self.d.name, "version": self.d.version, "status": self.s.status.value}
        if step is not None:
            payload["step"] = step
        payload.update(data or {})
        lifecycle_id = derived_id(self.s.saga_id, "lifecycle", self.s.lifecycle_seq)
        self.lifecycle.append(emitted(lifecycle_id, type_, self.now, self.s.saga_id, payload))
        self.record(type_, step, None)

    def record(self, event: str, step: str | None, detail: str | None) -> None:
        self.s.history.append(HistoryEntry(at=self.now, event=event, step=step, detail=detail))


def _same_type(event_type: str, recorded: str | None) -> bool:
    """True if ``recorded`` (an outcome, or a failure reason built by `reason_of`) is that type."""
    return recorded is not None and (
        recorded == event_type or recorded.startswith(f"{event_type}: ")
    )


def emitted(id_: str, type_: str, now: float, saga_id: str, data: dict[str, Any]) -> Emitted:
    """An event this decision sends (a command) or announces (lifecycle)."""
    return Emitted(id_, SOURCE, type_, datetime.fromtimestamp(now, UTC), saga_id, data)


def make_event(id_: str, type_: str, now: float, saga_id: str, data: dict[str, Any]) -> CloudEvent:
    # Validated by pydantic-core from a dict: three times cheaper than model_construct,
    # which loops over the fields in Python.
    return CloudEvent.model_validate(
        {
            "id": id_,
            "source": SOURCE,
            "type": type_,
            "time": datetime.fromtimestamp(now, UTC),
            "sagaid": saga_id,
            "data": data,
        }
    )


def reason_of(event: CloudEvent) -> str:
    detail = event.data.get("reason")
    return f"{event.type}: {detail}" if detail else event.type
