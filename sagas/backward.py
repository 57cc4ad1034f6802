"""Going backward: compensations in order, their replies and retries, and late effects.

A mixin of the saga run (`sagas.machine`); see there for the rules it keeps.
"""

from __future__ import annotations

from events.envelope import CloudEvent
from sagas.messages import Outcome, Signal
from sagas.run_output import RunOutput, reason_of
from sagas.state import IN_DOUBT, UNDONE, SagaStatus, StepStatus


class Backward(RunOutput):
    """Compensation of a saga that failed or was aborted, and of effects that came late."""

    def begin_compensation(self, reason: str) -> None:
        for i in self.d.stages[self.s.stage]:
            st = self.s.steps[i]
            if st.status in (StepStatus.RUNNING, StepStatus.WAITING_RETRY):
                st.status = StepStatus.CANCELLED
                st.finished_at = self.now
                self.clear_timers(i, "do")
        self.s.status = SagaStatus.COMPENSATING
        self.s.phase = "backward"
        self.s.compensation_plan = [
            i
            for i in reversed(range(len(self.d.steps)))
            if self.d.steps[i].compensation is not None and self.needs_compensation(i)
        ]
        self.emit("saga.compensating", data={"reason": reason})
        self.continue_compensation()

    def needs_compensation(self, i: int) -> bool:
        status = self.s.steps[i].status
        if status is StepStatus.SUCCEEDED:
            return True
        return status in IN_DOUBT and self.d.steps[i].compensate_in_doubt

    def continue_compensation(self) -> None:
        if self.s.status is not SagaStatus.COMPENSATING:
            return
        plan = self.s.compensation_plan
        todo = [i for i in plan if self.s.steps[i].status not in UNDONE]
        if not todo:
            self.finish(SagaStatus.ABORTED if self.s.abort_reason else SagaStatus.COMPENSATED)
            return
        batch = todo if self.d.compensation == "parallel" else todo[:1]
        for i in batch:
            if self.s.steps[i].status is not StepStatus.COMPENSATING:
                self.issue_compensation(i, self.s.steps[i].comp_attempt + 1)

    def issue_compensation(self, i: int, attempt: int) -> None:
        step, st = self.d.steps[i], self.s.steps[i]
        comp = step.compensation
        assert comp is not None
        st.status = StepStatus.COMPENSATING
        st.comp_attempt = attempt
        self.send(i, "undo", attempt, comp.type, comp.topic)
        if comp.timeout is not None:
            self.set_timer("deadline", i, "undo", attempt, self.now + comp.timeout)

    def on_compensation_reply(self, i: int, event: CloudEvent, attempt: int) -> Outcome:
        step, st = self.d.steps[i], self.s.steps[i]
        comp = step.compensation
        assert comp is not None
        if st.status is not StepStatus.COMPENSATING:
            return self.late(st, event.type)
        if event.type in comp.failure and (
            attempt < st.comp_attempt or self.retry_armed(i, "undo")
        ):
            # A newer attempt is in flight, or one is already scheduled: this "no" is stale.
            return self.late(st, event.type)
        if event.type in comp.success:
            self.clear_timers(i, "undo")
            st.status = StepStatus.COMPENSATED
            st.comp_outcome = event.type
            self.s.context.update(event.data)
            self.signals.append(Signal("compensation", step.name, label="ok"))
            self.record("step.compensated", step.name, event.type)
            self.continue_compensation()
            return Outcome.APPLIED
        if event.type in comp.failure:
            self.clear_timers(i, "undo")
            self.compensation_failed(i, reason_of(event))
            return Outcome.APPLIED
        expected = ", ".join((*comp.success, *comp.failure))
        return self.reject(
            f"compensation of {step.name!r} got {event.type!r}, expected one of: {expected}",
            Outcome.UNKNOWN,
        )

    def compensation_failed(self, i: int, reason: str) -> None:
        step, st = self.d.steps[i], self.s.steps[i]
        comp = step.compensation
        assert comp is not None
        if comp.retry.allows_another(st.comp_attempt - st.budget_base):
            self.signals.append(Signal("retry", step.name))
            due = self.now + comp.retry.backoff(st.comp_attempt - st.budget_base)
            self.set_timer("retry", i, "undo", st.comp_attempt, due)
            self.record("compensation.retry", step.name, reason)
            return
        st.status = StepStatus.COMPENSATION_FAILED
        st.comp_outcome = reason
        self.signals.append(Signal("compensation", step.name, label="gave_up"))
        self.park(f"compensation of {step.name!r} gave up: {reason}")

    def on_success_while_backward(self, i: int, event: CloudEvent) -> Outcome:
        step, st = self.d.steps[i], self.s.steps[i]
        covered = st.status in UNDONE or st.status in (
            StepStatus.COMPENSATING,
            StepStatus.COMPENSATION_FAILED,
        )
        planned = i in self.s.compensation_plan
        if planned and st.status in IN_DOUBT and st.outcome != event.type and event.data:
            # Compensated in its turn anyway; what the reply says (a payment id, say) is
            # what that compensation needs to undo the right thing.
            st.outcome = event.type
            self.s.context.update(event.data)
            self.record("step.late_success", step.name, event.type)
            return Outcome.APPLIED
        if step.compensation is None or covered or planned:
            # Planned steps are compensated in their turn, whatever their outcome was.
            return self.late(st, event.type)
        # The step took effect after we gave up on it: undo it now, whatever the saga's state.
        st.outcome = event.type
        self.s.context.update(event.data)
        self.record("step.late_success", step.name, event.type)
        if i not in self.s.compensation_plan:
            self.s.compensation_plan.append(i)
        self.issue_compensation(i, st.comp_attempt + 1)
        return Outcome.APPLIED
