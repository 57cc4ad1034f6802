"""What the topics say happened: terminal events, effects in the ledgers, saga state writes.

Each audit reads its topics incrementally (`tests.faults.tail`) and keeps
totals for the whole life of the system; a scenario asks for the figures
that concern its sagas.

* `LifecycleAudit` (``saga.lifecycle``): per saga, the distinct ``saga.started``
  and terminal event ids, and the id -> type of every terminal event. The
  coordinator re-sends a batch with the same ids after a crash, so ids are
  deduplicated; one id seen with two different types, or two terminal ids
  with different outcomes, is a violation.
* `LedgerAudit` (each service's ``<name>.changelog``): every input that took
  effect, replayed through the service's own handler from its initial state.
  An input id logged twice, a replay that answers differently, or a saga
  whose reservation / authorization / capture / refund / shipment happened
  more than once is a double effect.
* `StateAudit` (the coordinator's table changelog): per saga, the
  ``lifecycle_seq`` of every state written must never go down and a terminal
  state is never followed by a running one. A paused replica that wrote a
  stale state over the new owner's would show here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from events.codec import decode
from events.errors import DecodeError
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.participants.participant_store import ChangelogEntry, ParticipantCore
from sagas.saga_table import record_generation
from services.demo.observe import TERMINAL
from tests.faults.tail import TopicTail

SERVICES = ("inventory", "payment", "shipping", "order")


# -- lifecycle ---------------------------------------------------------------------------


@dataclass
class SagaEnds:
    started: set[str] = field(default_factory=set)
    terminal: dict[str, str] = field(default_factory=dict)  # event id -> type
    conflicts: list[str] = field(default_factory=list)


class LifecycleAudit:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.tail = TopicTail(kafka, [topic])
        self.sagas: dict[str, SagaEnds] = defaultdict(SagaEnds)
        self.undecodable = 0

    async def update(self) -> None:
        for record in await self.tail.read_new():
            try:
                event = decode(record.value, record.headers)
            except DecodeError:
                self.undecodable += 1  # the fuzzer writes garbage here too
                continue
            ends = self.sagas[event.sagaid]
            if event.type == "saga.started":
                ends.started.add(event.id)
            elif event.type in TERMINAL:
                seen = ends.terminal.setdefault(event.id, event.type)
                if seen != event.type:
                    ends.conflicts.append(f"event {event.id} is {seen} and {event.type}")

    def problems(self, saga_ids: Iterable[str]) -> list[str]:
        """Sagas of ``saga_ids`` without exactly one terminal event, or started twice."""
        out = []
        for sid in saga_ids:
            ends = self.sagas.get(sid)
            if ends is None:
                continue  # never started: `every_saga_terminal` reports it
            outcomes = sorted(set(ends.terminal.values()))
            if ends.conflicts:
                out.append(f"saga {sid}: same event id, different outcome: {ends.conflicts}")
            if len(outcomes) > 1:
                out.append(f"saga {sid}: two different outcomes {outcomes}")
            elif len(ends.terminal) > 1:
                out.append(f"saga {sid}: {len(ends.terminal)} terminal events ({outcomes[0]})")
            if len(ends.started) > 1:
                out.append(f"saga {sid}: started {len(ends.started)} times")
        return out

    def started_and_finished(self) -> tuple[set[str], set[str]]:
        """Saga ids with a ``saga.started``, and those with a terminal event, so far."""
        started = {s for s, e in self.sagas.items() if e.started}
        finished = {s for s, e in self.sagas.items() if e.terminal}
        return started, finished


# -- participants' ledgers ---------------------------------------------------------------


def _inventory_effects(before: Any, after: Any, saga: str) -> list[str]:
    old, new = before.reservations.get(saga), after.reservations.get(saga)
    if new is None or old == new:
        return []
    if new.status == "reserved":
        return ["reserve"]
    if new.status == "released" and new.lines:
        return ["release"]
    if new.status == "committed":
        return ["commit"]
    return []


def _payment_effects(before: Any, after: Any, saga: str) -> list[str]:
    return [e.kind for e in after.ledger[len(before.ledger) :]]


def _shipping_effects(before: Any, after: Any, saga: str) -> list[str]:
    old, new = before.shipments.get(saga), after.shipments.get(saga)
    if new is None or old == new:
        return []
    if new.status == "scheduled":
        return ["schedule"]
    return ["cancel"] if old is not None and old.status == "scheduled" else []


def _order_effects(before: Any, after: Any, saga: str) -> list[str]:
    old, new = before.orders.get(saga), after.orders.get(saga)
    if new is None or new.saga_outcome is None:
        return []
    if old is None or old.saga_outcome != new.saga_outcome:
        return ["settle"]
    return []


EFFECTS = {
    "inventory": _inventory_effects,
    "payment": _payment_effects,
    "shipping": _shipping_effects,
    "order": _order_effects,
}


class LedgerAudit:
    """Replays the four services' changelogs; counts effects per (service, saga, kind)."""

    def __init__(self, kafka: KafkaSettings, prefix: str, services_file: Path) -> None:
        from services.config import ServicesConfig
        from services.run import build_spec

        config = ServicesConfig.load(services_file)
        self.cores: dict[str, ParticipantCore[Any]] = {}
        self.topic_of: dict[str, str] = {}
        for name in SERVICES:
            spec = build_spec(name, config, kafka)
            self.cores[name] = ParticipantCore(spec.handler, spec.initial_state)
            self.topic_of[f"{prefix}{name}.changelog"] = name
        self.tail = TopicTail(kafka, list(self.topic_of))
        self.inputs: Counter[tuple[str, str]] = Counter()  # (service, input id) -> times logged
        self.effects: Counter[tuple[str, str, str]] = Counter()  # (service, saga, kind)

    async def update(self) -> None:
        for record in await self.tail.read_new():
            if record.value is None:
                continue
            name = self.topic_of[record.topic]
            entry = ChangelogEntry.decode(record.value)
            self.inputs[(name, entry.input.id)] += 1
            core = self.cores[name]
            before = core.state
            core.replay(entry)
            for kind in EFFECTS[name](before, core.state, entry.input.sagaid):
                self.effects[(name, entry.input.sagaid, kind)] += 1

    def double_effects(self, saga_ids: set[str] | None = None) -> list[str]:
        """Every effect that happened twice (for ``saga_ids``, or for any saga)."""
        out = [
            f"{service}: saga {saga}: {kind} x{n}"
            for (service, saga, kind), n in sorted(self.effects.items())
            if n > 1 and (saga_ids is None or saga in saga_ids)
        ]
        if saga_ids is None:
            out += [
                f"{s}: input {i} took effect {n} times"
                for (s, i), n in self.inputs.items()
                if n > 1
            ]
            out += [
                f"{name}: {core.mismatches} replayed inputs answered differently"
                for name, core in self.cores.items()
                if core.mismatches
            ]
        return out


# -- the coordinator's saga states -------------------------------------------------------


class StateAudit:
    def __init__(self, kafka: KafkaSettings, changelog: str) -> None:
        self.tail = TopicTail(kafka, [changelog])
        self.last: dict[str, tuple[int, bool]] = {}  # saga -> (lifecycle_seq, terminal)
        #: saga -> [(partition@offset, lifecycle_seq, status, updated_at)] of every write
        self.trail: dict[str, list[tuple[str, int, str, float]]] = defaultdict(list)
        self.regressions: list[str] = []
        self.writes = 0
        #: saga -> highest consumer-group generation that wrote it
        self.generation: dict[str, int] = {}
        #: writes from an older generation than one already seen: a zombie's, fenced off
        #: by the rule every recovering replica applies (`sagas.saga_table`)
        self.fenced = 0

    async def update(self) -> None:
        for record in await self.tail.read_new():
            value = record.value
            if record.key is None:
                continue
            generation = record_generation(record.headers)
            key = record.key.decode()
            if generation < self.generation.get(key, -1):
                self.fenced += 1
                continue
            self.generation[key] = generation
            if value is None or value[:1] == b"E":
                continue  # a tombstone, or events held for a saga not started yet
            self.writes += 1
            doc = orjson.loads(value)
            sid = record.key.decode()
            seq = int(doc.get("lifecycle_seq", 0))
            terminal = doc.get("status") in ("completed", "compensated", "failed", "aborted")
            previous = self.last.get(sid)
            where = f"{record.partition}@{record.offset}"
            self.trail[sid].append((where, seq, str(doc.get("status")), doc.get("updated_at", 0.0)))
            if previous is not None and (seq < previous[0] or (previous[1] and not terminal)):
                self.regressions.append(
                    f"saga {sid}: state with lifecycle_seq {seq} ({doc.get('status')}) written "
                    f"after lifecycle_seq {previous[0]} (offset {where}); writes so far: "
                    + ", ".join(f"{w} seq {q} {st} at {t:.3f}" for w, q, st, t in self.trail[sid])
                )
            self.last[sid] = (max(seq, previous[0]) if previous else seq, terminal)
