"""Admission control: how many new sagas a replica may start now, and when to stop fetching starts.

Pure. Past its capacity a coordinator that keeps starting sagas slows every
saga it holds (more states, larger batches, longer fetches) and its goodput
falls as the backlog grows. Kafka is the better place for that backlog: a
replica admits new sagas while fewer than ``high`` are in flight (running or
compensating) in its partitions, pauses the partitions of its trigger topics
(and of ``saga.starts``) at ``high``, and resumes them once in flight has fallen to ``low`` (hysteresis,
so that it does not pause and resume on every batch). Replies, timers and
operator commands keep flowing: only topics that carry nothing but starts are
paused, the engine's ``saga.starts`` (where `sagas.client.SagaClient` and ``sagas
start`` send theirs) among them. The control topic also carries operator commands and
timers, so it is never paused: a start read there past the bound is moved to
``saga.starts`` to wait with the others (`room_left`), and the HTTP API refuses a new
start while its replica is at the bound (`start_refusal`: 429 with Retry-After), so the
caller tries again later rather than queueing in Kafka.

The runtime (`sagas.admission_gate`) applies what these functions decide with
aiokafka's ``pause``/``resume`` and by holding what a batch could not admit
for a later one; it never decides itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from events.topics import Topics
from sagas.batch_values import DecisionSignal
from sagas.loader import DefinitionRegistry
from sagas.messages import Outcome
from sagas.state import SagaStatus
from sagas.table_codec import name_and_status

#: share of the bound at or below which paused starts are fetched again
RESUME_SHARE = 0.75
#: what counts against the bound: sagas that still send commands (a parked ``failed`` one
#: waits for an operator and costs nothing)
IN_FLIGHT_STATUSES = frozenset({SagaStatus.RUNNING.value, SagaStatus.COMPENSATING.value})


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The bound on sagas in flight in one replica; ``high == 0``: no bound."""

    high: int
    low: int

    def __post_init__(self) -> None:
        if self.high < 0 or self.low < 0 or (self.high and self.low >= self.high):
            raise ValueError(
                f"admission limits need 0 <= low < high (or high 0 for no bound), got "
                f"high={self.high} low={self.low}"
            )

    @classmethod
    def of(cls, max_in_flight: int) -> AdmissionLimits:
        """The bound ``max_in_flight`` (0: none), resuming at `RESUME_SHARE` of it."""
        if max_in_flight <= 0:
            return cls(0, 0)
        return cls(max_in_flight, min(max_in_flight - 1, int(max_in_flight * RESUME_SHARE)))

    @property
    def bounded(self) -> bool:
        return self.high > 0


class GateChange(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    KEEP = "keep"


def gate(limits: AdmissionLimits, in_flight: int, paused: bool) -> GateChange:
    """Pause the trigger partitions at the bound, resume them at the low-water mark."""
    if not limits.bounded:
        return GateChange.RESUME if paused else GateChange.KEEP
    if not paused and in_flight >= limits.high:
        return GateChange.PAUSE
    if paused and in_flight <= limits.low:
        return GateChange.RESUME
    return GateChange.KEEP


def admit(limits: AdmissionLimits, in_flight: int, offered: Sequence[int]) -> list[int]:
    """How many of each trigger partition's fetched records a batch may decide.

    ``offered[i]`` records were fetched from trigger partition ``i``; each may start a
    saga (a conservative count: a duplicate start changes nothing). The first ones are
    kept, partition by partition in the order given, until the room under the bound
    is used up; the rest wait for a later batch, so in flight never passes ``high``.
    """
    if not limits.bounded:
        return list(offered)
    room = max(0, limits.high - in_flight)
    kept = []
    for n in offered:
        take = min(n, room)
        kept.append(take)
        room -= take
    return kept


def room_left(limits: AdmissionLimits, in_flight: int, admitted: int, paused: bool) -> int | None:
    """New sagas a batch may still start from ``saga.control`` once ``admitted`` trigger
    records (each counted as a start, as `admit` counts them) are in it; None: no bound.

    The control topic is never paused, so a start read there past this room is not
    decided: the batch step moves it to ``saga.starts`` (`sagas.batch`), which is paused
    at the bound, and it waits there in order with the other starts. While the trigger
    partitions are paused there is no room at all: a start does not pass those waiting.
    """
    if not limits.bounded:
        return None
    if paused:
        return 0
    return max(0, limits.high - in_flight - admitted)


def start_refusal(limits: AdmissionLimits, in_flight: int) -> str | None:
    """Why a start asked through the HTTP API is refused now, or None to take it.

    API starts go through the control topic, which is never paused; at the bound the API
    answers 429 instead of publishing, so the backlog waits with the caller (who retries)
    rather than in the coordinator's memory.
    """
    if limits.bounded and in_flight >= limits.high:
        return (
            f"{in_flight} sagas in flight on this replica, at its bound "
            f"SAGAS_MAX_IN_FLIGHT={limits.high}"
        )
    return None


def start_only_topics(registry: DefinitionRegistry, engine: Topics) -> frozenset[str]:
    """``saga.starts`` and the trigger topics that carry no reply or observed event of
    any loaded saga.

    Only these can be paused: pausing a topic that also carries replies would hold
    back the very records that end the sagas in flight.
    """
    triggers = {d.trigger.topic for d in registry if d.trigger is not None} | {engine.starts}
    listened: set[str] = {engine.control}
    for definition in registry:
        for step in definition.steps:
            listened.add(step.listens_on)
            if step.compensation is not None:
                listened.add(step.compensation.reply_topic or step.listens_on)
    return frozenset(triggers - listened)


def shared_trigger_topics(registry: DefinitionRegistry, engine: Topics) -> frozenset[str]:
    """Trigger topics that also carry replies: starts on them are not held back."""
    triggers = {d.trigger.topic for d in registry if d.trigger is not None}
    return frozenset(triggers - start_only_topics(registry, engine))


def in_flight_change(decisions: Iterable[DecisionSignal]) -> int:
    """Sagas a batch's decisions took into flight minus those they ended (the same
    counting as ``saga_in_flight``: a start or an operator's reopening in, a terminal
    state out)."""
    change = 0
    for signal in decisions:
        if signal.decision.outcome is not Outcome.APPLIED:
            continue
        change += signal.started or signal.reopened
        change -= sum(1 for s in signal.decision.signals if s.kind == "finished")
    return change


def first_tries(decisions: Iterable[DecisionSignal]) -> int:
    """Commands a batch's decisions send as their first attempt (the retry budget's
    deposits); a retry, or a re-send of the same attempt, is none."""
    sent = 0
    for signal in decisions:
        decision = signal.decision
        if not decision.commands or decision.state is None:
            continue
        issued = decision.state.issued
        for command in decision.commands:
            what = issued.get(command.emitted.id)
            sent += what is not None and what[2] == 1
    return sent


def in_flight_in(values: Iterable[bytes]) -> int:
    """Sagas running or compensating among stored table values (recovery's recount)."""
    count = 0
    for raw in values:
        seen = name_and_status(raw)
        if seen is not None and seen[1] in IN_FLIGHT_STATUSES:
            count += 1
    return count
