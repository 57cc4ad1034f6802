"""Paths through a saga: conditional steps (``when:``), steps that wait for a signal from
outside (``awaits:``) and what happens at such a step's deadline.

A mixin of the saga run (`sagas.machine`), pure like the rest of it:

* A step whose condition is false when its stage begins is **skipped**: status
  ``skipped``, lifecycle ``saga.step.skipped``, never compensated (it did nothing).
* A waiting step is running from the start of its stage until a signal comes
  (lifecycle ``saga.step.waiting`` says for what and until when). Its success or
  failure type settles it like a reply. A signal that finds no step waiting for it
  (too early, after the deadline, a second one) changes nothing: outcome
  ``ignored_signal``, counted in ``saga_messages_ignored``.
* At the deadline the step fails (the saga compensates), or, with
  ``on_deadline: {continue_at: STEP}``, it **expires** (``saga.step.expired``) and
  the saga goes on at that step, skipping the ones in between.
"""

from __future__ import annotations

from typing import Any

from events.envelope import CloudEvent
from sagas.backward import Backward
from sagas.messages import Outcome
from sagas.state import StepStatus
from sagas.step_kinds import STEPS_KEY, holds

#: A step in one of these lets its stage end.
DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})


class Branching(Backward):
    """Conditions, waits for a signal, and deadline fallbacks."""

    def taken(self, i: int) -> bool:
        """Will step ``i`` run now? If not, it is recorded as skipped."""
        step = self.d.steps[i]
        if step.when is not None and not holds(step.when, self.condition_document(i)):
            self.skip_step(i, "condition is false", {"when": step.when})
            return False
        if step.awaits is not None:
            self.emit(
                "saga.step.waiting",
                step.name,
                {
                    "type": step.awaits.type,
                    "failure": list(step.awaits.failure),
                    "topic": step.awaits.topic,
                    "deadline": self.now + step.awaits.deadline,
                },
            )
        return True

    def condition_document(self, i: int) -> dict[str, Any]:
        doc = dict(self.s.context)
        doc[STEPS_KEY] = {
            step.name: {"status": st.status.value, "outcome": st.outcome}
            for step, st in zip(self.d.steps[:i], self.s.steps[:i], strict=True)
        }
        return doc

    def skip_step(self, i: int, reason: str, extra: dict[str, Any] | None = None) -> None:
        st = self.s.steps[i]
        st.status = StepStatus.SKIPPED
        st.finished_at = self.now
        st.outcome = "skipped"
        self.emit("saga.step.skipped", self.d.steps[i].name, {"reason": reason, **(extra or {})})

    def waiting_step(self, event: CloudEvent) -> int | Outcome | None:
        """The waiting step ``event`` settles; an ignored-signal outcome if some waiting
        step expects its type but is not waiting now; None if it is no signal."""
        expecting = [
            i
            for i, step in enumerate(self.d.steps)
            if step.awaits is not None and step.settled_by(event.type)
        ]
        if not expecting:
            return None
        for i in expecting:
            if self.s.steps[i].status is StepStatus.RUNNING:
                return i
        states = ", ".join(
            f"{self.d.steps[i].name!r} is {self.s.steps[i].status.value}" for i in expecting
        )
        return self.reject(
            f"signal {event.type!r} ignored: no step waits for it now ({states})",
            Outcome.IGNORED_SIGNAL,
        )

    def expired_to_fallback(self, i: int) -> bool:
        """At the deadline of waiting step ``i``: go on at its fallback step, if it has one."""
        step, st = self.d.steps[i], self.s.steps[i]
        target = step.awaits.fallback if step.awaits is not None else None
        if target is None:
            return False
        st.status = StepStatus.SKIPPED
        st.finished_at = self.now
        st.outcome = "expired"
        self.emit("saga.step.expired", step.name, {"continue_at": target})
        for j in range(i + 1, self.d.step_index(target)):
            if self.s.steps[j].status is StepStatus.PENDING:
                self.skip_step(j, f"{step.name!r} passed its deadline; going on at {target!r}")
        return True
