"""Watch sagas from the outside: their lifecycle events and the compensations sent for them.

`SagaObserver` reads, from the beginning and without a consumer group (so it
changes nothing), ``saga.lifecycle``, the compensation command topics and the
topics where participants announce each step's outcome, and keeps per saga a
`SagaTrace`: when it started and ended and how (lifecycle), which steps took
effect and when (the participants' success events), and which compensations
were sent when. Commands are recognised by their ids, which the engine
derives from saga id, step, phase and attempt (`sagas.machine.command_id`).

Times are the events' own ``time``: the coordinator's clock for lifecycle
events and commands, the participant's for its answers (one machine, one
clock). A compensation is only sent after the previous one was answered, so
their times order them. Lifecycle events of one saga are in record order
(one key, one partition); note that the coordinator may see two
choreographed successes in either order, as they arrive on different topics,
which is why "took effect" comes from the participants.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from aiokafka import AIOKafkaConsumer

from events.codec import decode
from events.envelope import CloudEvent
from events.errors import DecodeError
from events.topics import Topics
from sagas.definition import SagaDefinition
from sagas.kafka.guarantee import reader_isolation
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.machine import command_id

TERMINAL = ("saga.completed", "saga.compensated", "saga.failed", "saga.aborted")


@dataclass
class CompensationSent:
    step: str
    attempt: int
    type: str
    at: float  # epoch seconds (the command's time)


@dataclass
class SagaTrace:
    saga_id: str
    saga: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None  # completed / compensated / failed / aborted
    succeeded: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (step, reason)
    compensating_at: float | None = None
    compensations: list[CompensationSent] = field(default_factory=list)
    #: step -> time of the participant's success event (first seen): the step took effect
    effects: dict[str, float] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set, repr=False)

    def took_effect(self) -> list[str]:
        """Steps whose participant announced success, in the order of those announcements."""
        return sorted(self.effects, key=lambda step: self.effects[step])

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def compensated_steps(self) -> list[str]:
        """Each compensated step once, in the order its first command was sent."""
        out: list[str] = []
        for c in sorted(self.compensations, key=lambda c: (c.at, c.attempt)):
            if c.step not in out:
                out.append(c.step)
        return out


class SagaObserver:
    """Async context manager that follows sagas until it is closed."""

    def __init__(
        self,
        kafka: KafkaSettings,
        definitions: Sequence[SagaDefinition],
        topics: Topics | None = None,
    ) -> None:
        self.kafka = kafka
        self.definitions = {d.name: d for d in definitions}
        self.lifecycle_topic = (topics or Topics.from_settings(kafka)).lifecycle
        self._compensation_types = {
            s.compensation.type: s.compensation.topic
            for d in definitions
            for s in d.steps
            if s.compensation is not None
        }
        self._step_topics = {s.listens_on for d in definitions for s in d.steps}
        self.traces: dict[str, SagaTrace] = {}
        self.undecodable = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    # -- reading ------------------------------------------------------------------------

    async def __aenter__(self) -> SagaObserver:
        topics = {self.lifecycle_topic, *self._compensation_types.values(), *self._step_topics}
        self._consumer = AIOKafkaConsumer(
            *sorted(topics),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level=reader_isolation(),
            **self.kafka.consumer_kwargs(),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="saga observer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    try:
                        event = decode(record.value, record.headers)
                    except DecodeError:
                        self.undecodable += 1
                        continue
                    self.feed(record.topic, event)

    def feed(self, topic: str, event: CloudEvent) -> None:
        """Take one event (exposed so traces can be built from any source)."""
        trace = self.traces.get(event.sagaid)
        if trace is None:
            trace = self.traces[event.sagaid] = SagaTrace(event.sagaid)
        if event.id in trace._seen:  # re-sent after a crash: the same message again
            return
        trace._seen.add(event.id)
        at = event.time.timestamp() if event.time is not None else 0.0
        if topic == self.lifecycle_topic:
            _lifecycle(trace, event, at)
        elif event.type in self._compensation_types:
            self._compensation(trace, event, at)
        elif topic in self._step_topics:
            self._success(trace, topic, event, at)

    def _success(self, trace: SagaTrace, topic: str, event: CloudEvent, at: float) -> None:
        for definition in self._candidates(trace):
            for step in definition.steps:
                if step.listens_on != topic or event.type not in step.success:
                    continue
                if step.command is not None and not any(
                    command_id(trace.saga_id, step.name, "do", n) == event.causationid
                    for n in range(1, 3 * step.retry.attempts + 3)
                ):
                    continue  # a reply to another step's command
                trace.effects.setdefault(step.name, at)
                return

    def _compensation(self, trace: SagaTrace, event: CloudEvent, at: float) -> None:
        for definition in self._candidates(trace):
            for step in definition.steps:
                comp = step.compensation
                if comp is None or comp.type != event.type:
                    continue
                # An operator's retry extends the budget: look a little past it.
                for attempt in range(1, 3 * comp.retry.attempts + 3):
                    if command_id(trace.saga_id, step.name, "undo", attempt) == event.id:
                        trace.compensations.append(
                            CompensationSent(step.name, attempt, event.type, at)
                        )
                        return

    def _candidates(self, trace: SagaTrace) -> Iterable[SagaDefinition]:
        if trace.saga in self.definitions:
            return [self.definitions[trace.saga]]
        return self.definitions.values()

    # -- questions ----------------------------------------------------------------------

    def terminal(self, saga_ids: Iterable[str]) -> int:
        """How many of ``saga_ids`` have reached a terminal state."""
        traces = self.traces
        return sum(1 for s in saga_ids if (t := traces.get(s)) is not None and t.outcome)

    def trace(self, saga_id: str) -> SagaTrace:
        return self.traces.get(saga_id) or SagaTrace(saga_id)


def _lifecycle(trace: SagaTrace, event: CloudEvent, at: float) -> None:
    data = event.data
    trace.saga = data.get("saga", trace.saga)
    step = data.get("step")
    if event.type == "saga.started":
        trace.started_at = at
    elif event.type == "saga.step.succeeded" and step:
        trace.succeeded.append(step)
    elif event.type == "saga.step.failed" and step:
        trace.failed.append((step, str(data.get("reason", ""))))
    elif event.type == "saga.compensating":
        trace.compensating_at = at
    elif event.type in TERMINAL:
        trace.outcome = event.type.removeprefix("saga.")
        trace.ended_at = at
