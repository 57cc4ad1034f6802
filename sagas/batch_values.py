"""What the batch step (`sagas.batch.apply_batch`) is given and what it returns.

`BatchContext` is all it may know of the coordinator: the definitions, the
topics, the limits, and a reader of the table as it stood before the batch.
`BatchResult` is all it does: records to send, table values to write, timers to
arm, and metric signals; the coordinator shell persists and counts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from events.records import OutRecord
from events.topics import Topics
from sagas.definition import SagaDefinition
from sagas.loader import DefinitionRegistry
from sagas.machine import decide
from sagas.messages import Decision, Message
from sagas.state import SagaState
from sagas.table_codec import TableValue


@dataclass(frozen=True, slots=True)
class BatchLimits:
    #: records larger than this are dead-lettered as ``too-large``
    max_record_bytes: int
    #: seconds a finished saga stays in the table
    retention: float
    #: seconds a reply or a command may wait for the start of its saga
    early_event_grace: float


def _none_waiting(partition: int) -> bool:
    return False


#: applies one message to one saga (`sagas.machine.decide`)
Decide = Callable[[SagaDefinition, SagaState | None, Message, float], Decision]


@dataclass(frozen=True, slots=True)
class BatchContext:
    registry: DefinitionRegistry
    topics: Topics
    #: partitions of every topic the coordinator reads (and of its table)
    partitions: int
    limits: BatchLimits
    #: the table's value of a saga id before this batch (None: none)
    read: Callable[[str], TableValue | None]
    #: do starts for this partition wait unread in Kafka (``saga.starts``, start-only
    #: trigger topics)? Events held for a saga not started yet wait for them
    starts_waiting: Callable[[int], bool] = field(default=_none_waiting)
    #: the state machine; a parameter so that a test can give it a bug to isolate (a
    #: compiled build binds module-level calls, so patching `sagas.batch` would not reach it)
    decide: Decide = field(default=decide)
    triggers: dict[tuple[str, str], SagaDefinition] = field(init=False)
    known_types: frozenset[str] = field(init=False)
    #: the engine's own input topics (control requests, not events of a saga's steps)
    engine_inputs: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggers", self.registry.triggers())
        object.__setattr__(self, "known_types", known_types(self.registry))
        object.__setattr__(self, "engine_inputs", frozenset(self.topics.inputs()))


def known_types(registry: DefinitionRegistry) -> frozenset[str]:
    """Every event type a loaded definition expects on the topics the coordinator reads."""
    types: set[str] = set()
    for definition in registry:
        if definition.trigger is not None:
            types.add(definition.trigger.type)
        for step in definition.steps:
            types.update(step.success, step.failure)
            if step.compensation is not None:
                types.update(step.compensation.success, step.compensation.failure)
    return frozenset(types)


class Timer(NamedTuple):
    due: float
    saga_id: str
    token: str


@dataclass(slots=True)  # not frozen: built per record (see events.records)
class StateWrite:
    """A saga's new table value and its stored bytes (both None: removed)."""

    value: TableValue | None
    raw: bytes | None


@dataclass(slots=True)  # not frozen: built per record (see events.records)
class DecisionSignal:
    """One decision of the state machine, for `sagas.metrics.CoordinatorMetrics.observe`."""

    saga: str
    decision: Decision
    started: bool
    reopened: bool


@dataclass(slots=True)
class BatchResult:
    """In order: ``outgoing`` before ``writes`` are durable; ``timers`` once they are."""

    outgoing: list[OutRecord] = field(default_factory=list)
    writes: dict[str, StateWrite] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)
    #: records read, per topic
    consumed: Counter[str] = field(default_factory=Counter)
    decisions: list[DecisionSignal] = field(default_factory=list)
    #: dead letters, per reason
    dead_letters: Counter[str] = field(default_factory=Counter)
    #: new sagas' starts read on ``saga.control`` past the admission bound, moved to
    #: ``saga.starts`` (in ``outgoing``) to wait there
    deferred_starts: int = 0
