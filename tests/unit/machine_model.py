"""A model of one saga's world for hypothesis stateful testing of the pure `decide`.

Three participants (a -> b -> c, c the pivot; every step compensable, c only for late
effects), orchestrated or choreographed, each booking at most once per saga. Rules
deliver messages out of order, twice, late and early, let choreographed services act
whenever they like (before their turn, after the saga ended), fire timers, and abort.
At the end everything in flight is delivered and every timer fired, then the outcomes
are checked: what a participant booked is undone unless the saga completed, and each
success the engine saw is compensated exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from events.envelope import CloudEvent
from sagas.builder import saga
from sagas.definition import MAX_TIMEOUT, SagaDefinition
from sagas.machine import decide
from sagas.messages import Abort, Message, Observed, StartSaga, TimerFired
from sagas.state import SagaState, SagaStatus, StepStatus

STEPS = ("a", "b", "c")
TERMINAL = {"saga.completed", "saga.compensated", "saga.failed", "saga.aborted"}
SAGA = "s-1"


def definition(choreographed: bool) -> SagaDefinition:
    b = saga("model-chor" if choreographed else "model-orch")
    for name in STEPS:
        step = b.step(name)
        if choreographed:
            step.observes(f"{name}.events", success=f"{name}.done", failure=f"{name}.no")
        else:
            step.command(f"{name}.do", topic=f"{name}.commands").replies(
                f"{name}.replies", success=f"{name}.done", failure=f"{name}.no"
            )
        # every cancel is one round, answered in the end: its deadline (every compensation
        # has one) never fires in this world (`feed` does not arm it)
        step.compensate(
            f"{name}.undo", topic=f"{name}.commands", success=f"{name}.undone", timeout=MAX_TIMEOUT
        )
        step.timeout(5)
        if name == "a" and not choreographed:
            step.retry(2, initial=0.5)
        if name == "c":
            step.pivot()
    return b.build()


@dataclass
class Participant:
    booked: bool = False
    acted: str | None = None  # the one answer this service gives for this saga
    answered: set[str] = field(default_factory=set)


class SagaWorld(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.seq = 0
        self.now = 1000.0
        self.state: SagaState | None = None
        self.to_engine: list[CloudEvent] = []
        self.delivered: list[CloudEvent] = []
        self.to_services: list[CloudEvent] = []
        self.timers: dict[str, float] = {}
        self.services = [Participant() for _ in STEPS]
        self.lifecycle: list[CloudEvent] = []
        #: per step: when the engine first got its success, and when each cancel was sent
        self.success_seen: list[int | None] = [None] * len(STEPS)
        self.undos: list[list[int]] = [[] for _ in STEPS]
        self.in_doubt: list[bool] = [False] * len(STEPS)

    @initialize(choreographed=st.booleans())
    def setup(self, choreographed: bool) -> None:
        self.choreographed = choreographed
        self.d = definition(choreographed)

    # -- the engine ---------------------------------------------------------------------

    def step_of(self, type_: str) -> int:
        return STEPS.index(type_.split(".")[0])

    def feed(self, message: Message) -> None:
        self.seq += 1
        before = self.state
        decision = decide(self.d, before, message, self.now)
        self.state = decision.state
        if isinstance(message, Observed) and message.event.type.endswith(".done"):
            i = self.step_of(message.event.type)
            if before is not None and self.success_seen[i] is None:
                self.success_seen[i] = self.seq
        for out in decision.commands:
            cmd = out.event
            i = self.step_of(cmd.type)
            if cmd.type.endswith(".undo"):
                prior = None if before is None else before.steps[i].status
                justified = (
                    self.success_seen[i] is not None
                    or self.in_doubt[i]
                    or prior
                    in (
                        StepStatus.RUNNING,
                        StepStatus.WAITING_RETRY,
                        StepStatus.TIMED_OUT,
                        StepStatus.CANCELLED,
                    )
                )
                assert justified, f"cancel of {STEPS[i]!r}, which never succeeded nor was in doubt"
                self.undos[i].append(self.seq)
            self.to_services.append(cmd)
        self.lifecycle.extend(decision.lifecycle)
        for t in decision.timers:
            spec = self.state.timers.get(t.token) if self.state is not None else None
            if spec is not None and spec.kind == "deadline" and spec.phase == "undo":
                continue  # a cancel's deadline: never reached here (see `definition`)
            self.timers[t.token] = t.due
        if self.state is not None:
            for i, s in enumerate(self.state.steps):
                if s.status in (StepStatus.TIMED_OUT, StepStatus.CANCELLED):
                    self.in_doubt[i] = True

    def publish(self, i: int, type_: str, cause: CloudEvent | None = None) -> None:
        self.seq += 1
        self.to_engine.append(
            CloudEvent(
                id=f"e-{self.seq}",
                source=STEPS[i],
                type=type_,
                sagaid=SAGA,
                causationid=None if cause is None else cause.id,
                data={STEPS[i]: self.seq},
            )
        )

    # -- rules --------------------------------------------------------------------------

    @precondition(lambda self: self.state is None)
    @rule()
    def start(self) -> None:
        self.feed(StartSaga(SAGA, {}))

    @precondition(lambda self: self.state is not None and self.choreographed)
    @rule(i=st.integers(0, 2), ok=st.booleans())
    def service_acts(self, i: int, ok: bool) -> None:
        """A choreographed service books (or says no) whenever it likes, once."""
        svc = self.services[i]
        if svc.acted is None:
            svc.acted = f"{STEPS[i]}.{'done' if ok else 'no'}"
            svc.booked = ok
            self.publish(i, svc.acted)

    @precondition(lambda self: self.to_services)
    @rule(k=st.integers(0, 50), answer=st.sampled_from(["done", "no", "silent"]))
    def service_gets_command(self, k: int, answer: str) -> None:
        self.serve(self.to_services.pop(k % len(self.to_services)), answer)

    def serve(self, cmd: CloudEvent, answer: str) -> None:
        i = self.step_of(cmd.type)
        svc = self.services[i]
        if cmd.type.endswith(".undo"):
            svc.booked = False  # a cancel of nothing is a no-op success
            self.publish(i, f"{STEPS[i]}.undone", cause=cmd)
            return
        if svc.acted is None and answer != "silent":
            svc.acted = f"{STEPS[i]}.{answer}"
            svc.booked = answer == "done"
        if svc.acted is not None:  # one booking per saga: later attempts get the same answer
            self.publish(i, svc.acted, cause=cmd)

    @precondition(lambda self: self.to_engine)
    @rule(k=st.integers(0, 50))
    def engine_gets_event(self, k: int) -> None:
        event = self.to_engine.pop(k % len(self.to_engine))
        self.delivered.append(event)
        self.feed(Observed(event))

    @precondition(lambda self: self.delivered and self.state is not None)
    @rule(k=st.integers(0, 50))
    def engine_gets_a_duplicate(self, k: int) -> None:
        self.feed(Observed(self.delivered[k % len(self.delivered)]))

    @precondition(lambda self: self.timers)
    @rule()
    def time_passes(self) -> None:
        token, due = min(self.timers.items(), key=lambda t: t[1])
        del self.timers[token]
        self.now = max(self.now, due)
        self.feed(TimerFired(token))

    @precondition(lambda self: self.state is not None)
    @rule()
    def operator_aborts(self) -> None:
        self.feed(Abort("model"))

    # -- what must always hold ------------------------------------------------------------

    @invariant()
    def one_terminal_event_unless_parked(self) -> None:
        ends = [e.type for e in self.lifecycle if e.type in TERMINAL]
        assert all(t == "saga.failed" for t in ends[:-1]), f"terminal events {ends}"

    @invariant()
    def lifecycle_in_step_order(self) -> None:
        stages = [
            self.d.stage_of[self.d.step_index(e.data["step"])]
            for e in self.lifecycle
            if e.type in ("saga.step.succeeded", "saga.step.failed")
        ]
        assert stages == sorted(stages), f"step events out of order: {self.story()}"

    def story(self) -> list[str]:
        return [f"{e.type}:{e.data.get('step', '')}" for e in self.lifecycle]

    def teardown(self) -> None:
        if self.state is None:
            return
        for _ in range(500):  # deliver everything, then let time pass, until nothing is left
            if self.to_services:
                self.serve(self.to_services.pop(0), "done")
            elif self.to_engine:
                self.engine_gets_event(0)
            elif self.timers:
                self.time_passes()
            else:
                break
        else:
            raise AssertionError(f"the saga never settled: {self.story()}")
        self.one_terminal_event_unless_parked()
        self.lifecycle_in_step_order()
        status = self.state.status
        assert status.terminal, f"saga left {status.value}: {self.story()}"
        if status is SagaStatus.FAILED:
            return  # parked for an operator, who decides what stands
        for i, svc in enumerate(self.services):
            seen = self.success_seen[i]
            after = [n for n in self.undos[i] if seen is not None and n >= seen]
            if status is SagaStatus.COMPLETED:
                assert not self.undos[i], f"completed saga cancelled {STEPS[i]!r}"
                continue
            assert not svc.booked, f"{STEPS[i]!r} still booked, saga {status.value}: {self.story()}"
            if seen is not None:
                assert len(after) == 1, (
                    f"{STEPS[i]!r}: {len(after)} cancels after its success: {self.story()}"
                )
            else:
                assert len(self.undos[i]) <= 1, f"{STEPS[i]!r} cancelled twice, never booked"


def world(examples: int, steps: int = 40) -> type[RuleBasedStateMachine]:
    """The model with its own hypothesis settings: ``examples`` runs of up to ``steps`` rules."""
    model = type(f"SagaWorld{examples}", (SagaWorld,), {})
    model.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return model
