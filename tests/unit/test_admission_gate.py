"""The admission gate applies the pure decisions to a consumer and exports what it does."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from events.topics import Topics
from sagas.admission import AdmissionLimits
from sagas.admission_gate import AdmissionGate
from sagas.admission_metrics import AdmissionMetrics
from sagas.batch_values import DecisionSignal
from sagas.builder import saga
from sagas.kafka.consumer_lag import partition_lag
from sagas.loader import DefinitionRegistry
from sagas.machine import decide
from sagas.messages import StartSaga
from tests.unit.saga_fixtures import three_step

ORDERS = TopicPartition("orders", 0)
REPLIES = TopicPartition("inventory.replies", 0)


@dataclass
class Record:
    offset: int


@dataclass
class FakeConsumer:
    """What the gate uses of an AIOKafkaConsumer: assignment, pause, resume (which refuse
    a partition not assigned, as aiokafka's do)."""

    assigned: set[TopicPartition]
    paused: set[TopicPartition] = field(default_factory=set)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def pause(self, *tps: TopicPartition) -> None:
        assert set(tps) <= self.assigned, f"pausing {set(tps) - self.assigned}: not assigned"
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        assert set(tps) <= self.assigned, f"resuming {set(tps) - self.assigned}: not assigned"
        self.paused -= set(tps)


@dataclass
class LogEnds(FakeConsumer):
    """Also answers ``end_offsets`` (ListOffsets), and remembers what it was asked."""

    ends: dict[TopicPartition, int] = field(default_factory=dict)
    asked: list[set[TopicPartition]] = field(default_factory=list)
    hang: bool = False
    highwaters: dict[TopicPartition, int] = field(default_factory=dict)
    #: the group's committed offsets (OffsetFetch)
    group: dict[TopicPartition, int] = field(default_factory=dict)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked.append(set(tps))
        if self.hang:  # aiokafka may wait indefinitely (a partition that does not exist)
            await asyncio.Event().wait()
        return {tp: self.ends[tp] for tp in tps}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)

    async def committed(self, tp: TopicPartition) -> int | None:
        self.asked.append({tp})
        return self.group.get(tp)


def value(registry: CollectorRegistry, name: str) -> float:
    got = registry.get_sample_value(name)
    assert got is not None, name
    return got


def starts(n: int) -> list[DecisionSignal]:
    definition = three_step()
    return [
        DecisionSignal("order", decide(definition, None, StartSaga(f"s-{i}", {}), 0.0), True, False)
        for i in range(n)
    ]


def test_the_gate_admits_up_to_the_bound_pauses_and_resumes_with_its_metrics() -> None:
    registry = CollectorRegistry()
    gate = AdmissionGate(
        AdmissionLimits(10, 7),
        frozenset({"orders"}),
        AdmissionMetrics.create(registry, lambda: 42.0),
    )
    consumer = FakeConsumer({ORDERS, REPLIES})
    assert value(registry, "saga_admission_limit") == 10
    assert value(registry, "saga_start_backlog") == 42

    fetched = {ORDERS: [Record(o) for o in range(100, 115)], REPLIES: [Record(7)]}
    admitted = gate.admit(fetched)
    # ten starts fit; the other five are held for a later batch, not sought back to (a
    # seek makes aiokafka drop what it buffered); replies all pass
    assert [r.offset for r in admitted.records[ORDERS]] == list(range(100, 110))
    assert admitted.records[REPLIES] == fetched[REPLIES]
    assert admitted.offsets == {ORDERS: 110, REPLIES: 8}
    assert [r.offset for r in gate.held[ORDERS]] == list(range(110, 115))
    assert value(registry, "saga_starts_deferred_total") == 5
    assert admitted.start_room == 0  # the ten kept are the bound: no room on saga.control
    # starts a batch moved from saga.control to saga.starts count as deferred too
    gate.count_deferred(2)
    assert value(registry, "saga_starts_deferred_total") == 7

    gate.observe(starts(10))
    gate.apply(consumer)
    assert consumer.paused == {ORDERS}  # never the replies
    assert value(registry, "saga_admission_in_flight") == 10
    assert value(registry, "saga_admission_paused") == 1
    assert value(registry, "saga_admission_pauses_total") == 1

    # at the bound a batch of replies decides no held start, commits nothing of its
    # partition, and counts nothing again as deferred
    full = gate.admit({REPLIES: [Record(8)]})
    assert ORDERS not in full.records and full.offsets == {REPLIES: 9}
    assert full.start_room == 0 and len(gate.held[ORDERS]) == 5
    assert not gate.may_admit_held()
    assert value(registry, "saga_starts_deferred_total") == 7

    gate.in_flight = 8  # above the low-water mark: still paused, but two held fit now
    gate.apply(consumer)
    assert consumer.paused == {ORDERS}
    assert gate.may_admit_held()  # the loop decides them with nothing fetched
    room = gate.admit({})
    assert [r.offset for r in room.records[ORDERS]] == [110, 111]
    assert room.offsets == {ORDERS: 112}
    # paused: a start on saga.control does not pass those waiting
    assert room.start_room == 0
    gate.in_flight = 7
    gate.apply(consumer)
    assert not gate.paused and value(registry, "saga_admission_paused") == 0
    # resumed, but its partition keeps its held starts first: still not fetched
    assert consumer.paused == {ORDERS}
    # the next batch, replies only, decides the three held (room 3), before any start
    # of saga.control
    rest = gate.admit({REPLIES: [Record(9)]})
    assert [r.offset for r in rest.records[ORDERS]] == [112, 113, 114]
    assert rest.offsets == {ORDERS: 115, REPLIES: 10} and gate.held == {}
    assert rest.start_room == 0
    gate.apply(consumer)
    assert consumer.paused == set()  # nothing held: fetched again
    assert gate.admit({REPLIES: [Record(10)]}).start_room == 3


def test_a_start_partition_holding_starts_is_paused_and_its_held_starts_go_first() -> None:
    """Below the bound, a partition whose fetch did not fit is paused until its held
    starts are decided, and what a fetch brings for it after them comes after them."""
    gate = AdmissionGate(
        AdmissionLimits(4, 2),
        frozenset({"orders"}),
        AdmissionMetrics.create(CollectorRegistry(), lambda: 0),
    )
    other = TopicPartition("orders", 1)
    consumer = FakeConsumer({ORDERS, other, REPLIES})
    first = gate.admit({ORDERS: [Record(o) for o in range(3)]})
    assert len(first.records[ORDERS]) == 3 and gate.held == {}
    gate.in_flight = 2  # two of them ended at once
    second = gate.admit({ORDERS: [Record(o) for o in range(3, 6)], other: [Record(50)]})
    assert [r.offset for r in second.records[ORDERS]] == [3, 4]
    assert second.records[other] == [] and other not in second.offsets
    assert [r.offset for r in gate.held[ORDERS]] == [5]
    assert [r.offset for r in gate.held[other]] == [50]
    gate.apply(consumer)  # 2 in flight: not at the bound, yet both wait
    assert not gate.paused and consumer.paused == {ORDERS, other}
    # the loop's getmany leaves them out, so aiokafka keeps what it fetched of them
    assert set(gate.fetch_from(consumer)) == {REPLIES}
    # defensive: were a record of a held partition fetched after all (aiokafka returns
    # nothing of a paused partition, and the loop does not ask for it), it would queue
    # behind the held one
    gate.in_flight = 1
    third = gate.admit({ORDERS: [Record(6)]})
    assert [r.offset for r in third.records[ORDERS]] == [5, 6]
    assert third.records[other] == [Record(50)]
    assert third.offsets == {ORDERS: 7, other: 51}
    gate.apply(consumer)
    assert consumer.paused == set()
    assert gate.fetch_from(consumer) == ()  # all of them

    # revoked: the held starts are forgotten (the next owner reads them from the commit)
    gate.in_flight = 4
    gate.admit({ORDERS: [Record(7)]})
    assert gate.held
    gate.drop_held({ORDERS})
    assert gate.held == {} and gate.paused_partitions == set()


@settings(max_examples=200, deadline=None)
@given(
    logs=st.lists(st.integers(0, 30), min_size=1, max_size=3),
    steps=st.lists(
        st.tuples(st.integers(1, 12), st.integers(0, 6), st.booleans() | st.just(False)),
        max_size=40,
    ),
    high=st.integers(1, 8),
)
def test_every_start_is_decided_once_in_order_and_never_past_the_bound(
    logs: list[int], steps: list[tuple[int, int, bool]], high: int
) -> None:
    """A consumer that hands out each unpaused start partition's log from its position,
    at most ``fetch`` records a time, sagas that end ``ended`` at a time, and rebalances
    (the same partitions assigned again, read from their commits): every start is decided
    exactly once, in log order, a commit never passes a start not decided, in flight
    never passes the bound, and a partition holding starts is not fetched."""
    gate = AdmissionGate(
        AdmissionLimits.of(high),
        frozenset({"orders"}),
        AdmissionMetrics.create(CollectorRegistry(), lambda: 0),
    )
    tps = [TopicPartition("orders", p) for p in range(len(logs))]
    consumer = FakeConsumer(set(tps))
    position = dict.fromkeys(tps, 0)
    decided: dict[TopicPartition, list[int]] = {tp: [] for tp in tps}

    def batch(fetch: int, ended: int) -> None:
        fetched = {}
        for tp, end in zip(tps, logs, strict=True):
            if tp not in consumer.paused and position[tp] < end:
                upto = min(end, position[tp] + fetch)
                fetched[tp] = [Record(o) for o in range(position[tp], upto)]
                position[tp] = upto
        if fetched or gate.may_admit_held():
            admitted = gate.admit(fetched)
            for tp, records in admitted.records.items():
                decided[tp] += [r.offset for r in records]
                gate.in_flight += len(records)
            for tp, offset in admitted.offsets.items():
                assert offset == len(decided[tp])  # the commit: what was decided, no more
            assert gate.in_flight <= high
        gate.in_flight = max(0, gate.in_flight - ended)
        gate.apply(consumer)
        assert set(gate.held) <= consumer.paused
        assert gate.paused_partitions == consumer.paused

    def rebalance() -> None:
        in_flight = gate.in_flight
        gate.drop_held(tps)  # on_revoked, after the commits in hand
        consumer.paused = set()  # a new assignment: nothing paused, read from the commits
        for tp in tps:
            position[tp] = len(decided[tp])
        gate.recount(())
        gate.in_flight = in_flight  # what recovery counts in the table
        gate.apply(consumer)

    for fetch, ended, rebalanced in steps:
        batch(fetch, ended)
        if rebalanced:
            rebalance()
    for _ in range(sum(logs) + 2):  # then every saga ends as soon as it starts
        batch(1, high)
    assert [decided[tp] for tp in tps] == [list(range(end)) for end in logs]
    assert gate.held == {} and consumer.paused == set()


def test_no_bound_passes_everything_through() -> None:
    registry = CollectorRegistry()
    gate = AdmissionGate(
        AdmissionLimits.of(0), frozenset({"orders"}), AdmissionMetrics.create(registry, lambda: 0)
    )
    consumer = FakeConsumer({ORDERS})
    fetched = {ORDERS: [Record(o) for o in range(50)]}
    assert gate.admit(fetched).offsets == {ORDERS: 50}
    assert gate.admit(fetched).start_room is None
    assert gate.held == {} and not gate.may_admit_held()
    gate.observe(starts(50))
    gate.apply(consumer)
    assert consumer.paused == set()
    assert value(registry, "saga_admission_limit") == 0


def test_a_rebalance_recounts_from_the_table_and_starts_unpaused() -> None:
    from sagas.state_codec import dump_state

    registry = CollectorRegistry()
    gate = AdmissionGate(
        AdmissionLimits(2, 1), frozenset({"orders"}), AdmissionMetrics.create(registry, lambda: 0)
    )
    gate.paused = True
    gate.admit({ORDERS: [Record(0), Record(1), Record(2)]})
    assert gate.held  # one held at the bound of 2
    states = [s.decision.state for s in starts(3)]
    gate.recount(dump_state(s) for s in states if s is not None)
    assert gate.in_flight == 3 and not gate.paused
    # the new assignment reads from its committed offsets: nothing held carries over
    assert gate.held == {} and gate.paused_partitions == set()
    consumer = FakeConsumer({ORDERS})
    gate.apply(consumer)
    assert consumer.paused == {ORDERS}


def test_a_trigger_topic_that_carries_replies_is_named_and_never_paused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = (
        saga("shared")
        .triggered_by("job.requested", topic="jobs")
        .step("run")
        .command("job.run", topic="job.commands")
        .replies("jobs", success="job.done", failure="job.failed")
        .build()
    )
    registry = DefinitionRegistry([three_step(), shared])
    with caplog.at_level(logging.WARNING, logger="sagas.admission"):
        gate = AdmissionGate.for_registry(
            registry, Topics(), 10, AdmissionMetrics.create(CollectorRegistry(), lambda: 0)
        )
    assert gate.start_topics == frozenset({"orders", "saga.starts"})
    assert "does not hold back starts on jobs" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sagas.admission"):
        AdmissionGate.for_registry(
            registry, Topics(), 0, AdmissionMetrics.create(CollectorRegistry(), lambda: 0)
        )
    assert caplog.text == ""  # no bound, nothing to warn about


async def test_while_paused_the_waiting_starts_are_counted_from_the_log_ends() -> None:
    gate = AdmissionGate(
        AdmissionLimits(2, 1),
        frozenset({"orders"}),
        AdmissionMetrics.create(CollectorRegistry(), lambda: 0),
    )
    # fetched up to offset 10 before the pause: aiokafka's highwater stays there
    consumer = LogEnds({ORDERS, REPLIES}, ends={ORDERS: 25, REPLIES: 4}, highwaters={ORDERS: 10})
    committed = {ORDERS: 8}
    assert partition_lag(consumer, {"orders"}, committed, gate.log_ends) == [("orders", 0, 2)]
    await gate.refresh_log_ends(consumer, committed)
    assert consumer.asked == []  # not paused: nothing to read, the fetches keep it current

    gate.observe(starts(2))
    gate.apply(consumer)
    assert gate.paused
    await gate.refresh_log_ends(consumer, committed)
    assert consumer.asked == [{ORDERS}]  # the paused start partitions only
    assert partition_lag(consumer, {"orders"}, committed, gate.log_ends) == [("orders", 0, 17)]

    # a read that does not answer leaves the last ends, and does not raise
    consumer.hang, consumer.ends[ORDERS] = True, 40
    await gate.refresh_log_ends(consumer, committed, timeout=0.05)
    assert gate.log_ends == {ORDERS: 25}
    # resumed: the fetches know the end again, the read ends are dropped
    gate.in_flight = 0
    gate.apply(consumer)
    await gate.refresh_log_ends(consumer, committed)
    assert gate.log_ends == {}


async def test_paused_right_after_an_assignment_the_lag_counts_from_the_groups_commit() -> None:
    """A replica that takes partitions at its bound pauses them before it fetches or
    commits any: their lag counts from the group's committed offset, not from 0."""
    gate = AdmissionGate(
        AdmissionLimits(2, 1),
        frozenset({"orders"}),
        AdmissionMetrics.create(CollectorRegistry(), lambda: 0),
    )
    consumer = LogEnds({ORDERS, REPLIES}, ends={ORDERS: 2_000_001}, group={ORDERS: 2_000_000})
    gate.observe(starts(2))
    gate.apply(consumer)
    mine: dict[TopicPartition, int] = {}  # this replica has committed nothing yet
    await gate.refresh_log_ends(consumer, mine)
    assert gate.lag(consumer, {"orders"}, mine) == [("orders", 0, 1)]
    # read once: the next refresh asks only for the log end
    consumer.asked.clear()
    await gate.refresh_log_ends(consumer, mine)
    assert consumer.asked == [{ORDERS}]
    # its own commit, once there is one, wins
    assert gate.lag(consumer, {"orders"}, {ORDERS: 2_000_001}) == [("orders", 0, 0)]


class Unstarted(AIOKafkaConsumer):  # type: ignore[misc]
    """A consumer never started: its partition states are aiokafka's own; a seek moves
    the position as the fetcher's ``seek_to`` does."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._subscription.subscription.assignment.state_value(partition).seek(offset)


async def test_starts_wait_on_a_partition_past_the_consumers_position() -> None:
    """What `sagas.batch` asks before it dead-letters records held for a saga not
    started yet: may starts still wait unread on that saga's partition? Read from a real
    (unstarted) aiokafka consumer's partition states, which its fetcher moves."""
    gate = AdmissionGate(
        AdmissionLimits(5, 1),
        frozenset({"orders"}),
        AdmissionMetrics.create(CollectorRegistry(), lambda: 0),
    )
    other = TopicPartition("orders", 1)
    consumer = Unstarted(bootstrap_servers="127.0.0.1:1")
    consumer.assign([ORDERS, other, REPLIES])
    states = consumer._subscription.subscription.assignment

    def fetched(tp: TopicPartition, position: int, highwater: int) -> None:
        states.state_value(tp).seek(position)
        states.state_value(tp).highwater = highwater

    # just assigned: no position, no end yet (a restart): nothing known to wait
    assert not gate.starts_waiting(consumer, 0)
    fetched(ORDERS, 10, 14)  # four starts not handed out yet
    fetched(other, 5, 5)  # read to the end
    assert gate.starts_waiting(consumer, 0)
    assert not gate.starts_waiting(consumer, 1)
    # handed out up to the end, transaction markers included (the commit may trail)
    states.state_value(ORDERS).consumed_to(14)
    assert not gate.starts_waiting(consumer, 0)
    # starts `admit` holds at the bound wait in memory, read to the end though they are
    gate.observe(starts(4))
    states.state_value(ORDERS).highwater = 19
    states.state_value(ORDERS).consumed_to(19)
    admitted = gate.admit({ORDERS: [Record(o) for o in range(14, 19)]})
    assert [r.offset for r in admitted.records[ORDERS]] == [14]
    assert gate.starts_waiting(consumer, 0)
    assert not gate.starts_waiting(consumer, 1)
    # paused, starts may arrive on any start partition held here unfetched, unseen
    gate.observe(starts(1))
    gate.apply(consumer)
    assert gate.paused
    assert gate.starts_waiting(consumer, 1)
    assert not gate.starts_waiting(consumer, 2)  # not held here
    await consumer.stop()
