"""The coordinator's batch step (`sagas.batch.apply_batch`) with plain values, no broker.

Records go in as Kafka hands them over; what comes out is what the shell would
send (commands, lifecycle events, re-routed records, dead letters), the table
values it would write and the timers it would arm.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from events.codec import encode
from events.partitioning import partition_for
from events.records import InRecord
from events.topics import Topics
from sagas import batch as batch_module
from sagas import control
from sagas.batch import apply_batch
from sagas.batch_values import BatchContext, BatchLimits, BatchResult
from sagas.loader import DefinitionRegistry
from sagas.machine import decide
from sagas.messages import Observed
from sagas.run_output import command_id
from sagas.state import SagaState, SagaStatus
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN, EarlyEvents, TableValue
from tests.unit.saga_fixtures import CHARGED, RESERVE, RESERVED, SCHEDULED, three_step

NOW = 1_700_000_000.0
PARTITIONS = 8
GRACE = 30.0
RETENTION = 3600.0


class Table:
    """The table before each batch; `commit` keeps what a batch wrote, as the shell does."""

    def __init__(self) -> None:
        self.values: dict[str, TableValue] = {}
        self.ctx = BatchContext(
            DefinitionRegistry([three_step()]),
            Topics(),
            PARTITIONS,
            BatchLimits(max_record_bytes=100_000, retention=RETENTION, early_event_grace=GRACE),
            self.values.get,
        )

    def run(
        self, records: list[InRecord], now: float = NOW, start_room: int | None = None
    ) -> BatchResult:
        result = apply_batch(self.ctx, records, now, start_room)
        for sid, write in result.writes.items():
            if write.value is None:
                self.values.pop(sid, None)
            else:
                self.values[sid] = write.value
        return result


def rec(topic: str, doc: dict[str, Any], *, partition: int | None = None) -> InRecord:
    key = doc["sagaid"].encode()
    where = partition_for(key, PARTITIONS) if partition is None else partition
    value = orjson.dumps(doc)
    return InRecord(topic, where, 11, key, value, [("content-type", b"application/json")])


def event(type_: str, sid: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"{type_}-{sid}", "source": "test", "type": type_,
            "sagaid": sid, "time": "2026-01-01T00:00:00Z", "data": data, **extra}  # fmt: skip


def start(sid: str) -> InRecord:
    value, headers = encode(control.start_request("order", {"order_id": "o"}, saga_id=sid))
    return InRecord(Topics().control, partition_for(sid.encode(), PARTITIONS), 1, sid.encode(),
                    value, headers)  # fmt: skip


def fired(sid: str, token: str) -> InRecord:
    value, headers = encode(control.timer_fired(sid, token))
    return InRecord(Topics().control, partition_for(sid.encode(), PARTITIONS), 2, sid.encode(),
                    value, headers)  # fmt: skip


def abort(sid: str) -> InRecord:
    value, headers = encode(control.operator_command(control.ABORT, sid, reason="seen it"))
    return InRecord(Topics().control, partition_for(sid.encode(), PARTITIONS), 3, sid.encode(),
                    value, headers)  # fmt: skip


def reply(sid: str, step: str, topic: str, type_: str) -> InRecord:
    causation = command_id(sid, step, "do", 1)
    return rec(topic, event(type_, sid, {}, causationid=causation))


def reserved(sid: str) -> InRecord:
    return reply(sid, "reserve", "inventory.replies", RESERVED)


def sent(result: BatchResult, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(out.value or b"null") for out in result.outgoing if out.topic == topic]


def dead(result: BatchResult) -> list[dict[str, bytes]]:
    return [dict(out.headers) for out in result.outgoing if out.topic == Topics().deadletter]


def test_a_start_sends_the_first_command_writes_the_state_and_arms_its_deadline() -> None:
    table = Table()
    result = table.run([start("s-1")])
    (command,) = sent(result, "inventory.commands")
    assert command["type"] == RESERVE
    state = table.values["s-1"]
    assert isinstance(state, SagaState) and state.status is SagaStatus.RUNNING
    assert [t.saga_id for t in result.timers] == ["s-1"]
    assert result.consumed == {Topics().control: 1}
    assert [s.started for s in result.decisions] == [True]


def test_a_start_on_saga_starts_is_a_start_and_anything_else_there_a_dead_letter() -> None:
    table = Table()
    starts = Topics().starts
    on_starts = dataclasses.replace(start("s-1"), topic=starts)
    result = table.run([on_starts])
    assert [c["type"] for c in sent(result, "inventory.commands")] == [RESERVE]
    assert result.consumed == {starts: 1}
    assert [s.started for s in result.decisions] == [True]
    # an operator command there is refused (it would pass the saga's replies), and what is
    # not a control request at all is dead-lettered as on saga.control, never held back
    misplaced = table.run([
        dataclasses.replace(abort("s-1"), topic=starts),
        dataclasses.replace(reserved("s-9"), topic=starts),
    ])  # fmt: skip
    assert [d["x-dlq-reason"] for d in dead(misplaced)] == [b"invalid-start", b"invalid-control"]
    assert "s-9" not in table.values
    state = table.values["s-1"]
    assert isinstance(state, SagaState) and state.status is SagaStatus.RUNNING


def test_starts_on_saga_control_past_the_bound_wait_on_saga_starts_unchanged() -> None:
    """saga.control is never paused (it carries operator commands and timers), so at the
    admission bound a new saga's start read there moves to saga.starts, which is, and
    waits there with the other starts: nothing is decided, nothing is lost."""
    table = Table()
    first, second, third = start("s-1"), start("s-2"), start("s-3")
    result = table.run([first, second, abort("s-3"), third], start_room=1)
    assert [s.started for s in result.decisions] == [True]  # room for one
    moved = [out for out in result.outgoing if out.topic == Topics().starts]
    assert [(o.key, o.value, o.headers, o.partition) for o in moved] == [
        (r.key, r.value, r.headers, r.partition) for r in (second, third)
    ]
    assert result.deferred_starts == 2
    assert "s-2" not in table.values and not result.writes.keys() & {"s-2"}
    # what came for s-3 before its start waits for it, as for a start on saga.starts
    held = table.values["s-3"]
    assert isinstance(held, EarlyEvents) and len(held.records) == 1
    assert not dead(result)

    # read back from saga.starts (the gate admitted them): started, the held abort applied;
    # a start read there is never moved again, whatever room saga.control has left
    later = table.run(
        [
            InRecord(o.topic, o.partition or 0, 20 + i, o.key, o.value, o.headers)
            for i, o in enumerate(moved)
        ],
        start_room=0,
    )
    assert later.deferred_starts == 0
    assert [s.started for s in later.decisions] == [True, True, False]
    state = table.values["s-3"]
    assert isinstance(state, SagaState) and state.status is SagaStatus.COMPENSATING
    # a saga that exists is not a new one: its start is decided (a duplicate), not moved,
    # and so is every other control record; without a bound nothing moves
    again = table.run([start("s-1"), abort("s-2")], start_room=0)
    assert again.deferred_starts == 0 and len(again.decisions) == 2
    assert not [out for out in again.outgoing if out.topic == Topics().starts]
    unbounded = table.run([start("s-4"), start("s-5")])
    assert unbounded.deferred_starts == 0 and [s.started for s in unbounded.decisions] == [True] * 2


def test_what_is_held_for_a_saga_waits_for_the_start_its_batch_moved_to_saga_starts() -> None:
    """The moved start is not in Kafka yet when the batch's held records expire: a grace
    running out in that batch does not dead-letter them, it is armed again."""
    table = Table()
    table.run([abort("s-1")])
    due = NOW + GRACE
    result = table.run([fired("s-1", EARLY_TOKEN + "s-1"), start("s-1")], now=due, start_room=0)
    assert result.deferred_starts == 1 and not dead(result)
    held = table.values["s-1"]
    assert isinstance(held, EarlyEvents) and held.expires == due + GRACE
    assert [t.token for t in result.timers] == [EARLY_TOKEN + "s-1"]


def test_a_moved_start_is_keyed_by_its_saga_id_whatever_key_it_came_with() -> None:
    """Written by hand with no key (or another), on its saga's partition by chance: it is
    moved keyed by its saga id, on that partition, so it stays in the transaction that
    commits its offset (exactly_once splits a batch's records by partition)."""
    keyless = dataclasses.replace(start("s-1"), key=None)
    result = Table().run([keyless], start_room=0)
    (moved,) = [out for out in result.outgoing if out.topic == Topics().starts]
    assert (moved.key, moved.partition) == (b"s-1", keyless.partition)


def test_a_start_that_raises_gives_its_room_back() -> None:
    def buggy(definition: Any, state: Any, message: Any, now: float) -> Any:
        if getattr(message, "saga_id", None) == "s-bad":
            raise RuntimeError("a bug in the state machine")
        return decide(definition, state, message, now)

    table = Table()
    table.ctx = dataclasses.replace(table.ctx, decide=buggy)
    result = table.run([start("s-bad"), start("s-2")], start_room=1)
    assert [d["x-dlq-reason"] for d in dead(result)] == [b"processing-error"]
    assert result.deferred_starts == 0 and [s.started for s in result.decisions] == [True]


def test_a_reply_before_its_saga_is_held_and_applied_when_the_saga_starts() -> None:
    table = Table()
    held = table.run([reserved("s-1")])
    assert not dead(held) and not sent(held, "payment.commands")
    value = table.values["s-1"]
    assert isinstance(value, EarlyEvents) and len(value.records) == 1
    assert [(t.due, t.token) for t in held.timers] == [(NOW + GRACE, EARLY_TOKEN + "s-1")]

    started = table.run([start("s-1")])
    # the held reply counts: the saga goes straight on to the second step
    assert [c["type"] for c in sent(started, "payment.commands")] == ["payment.charge"]
    state = table.values["s-1"]
    assert isinstance(state, SagaState) and state.status is SagaStatus.RUNNING


def test_held_replies_whose_saga_never_starts_are_dead_lettered_when_they_expire() -> None:
    table = Table()
    table.run([reserved("s-1")])
    later = table.run([fired("s-1", EARLY_TOKEN + "s-1")], now=NOW + GRACE)
    (letter,) = dead(later)
    assert letter["x-dlq-reason"] == b"unknown-saga"
    assert letter["x-dlq-topic"] == b"inventory.replies"
    assert letter["x-dlq-offset"] == b"11"
    assert "s-1" not in table.values and later.writes["s-1"].raw is None


def test_a_command_sent_right_after_its_start_waits_for_it_though_the_start_comes_later() -> None:
    # SagaClient sends starts to saga.starts and commands to saga.control: an abort sent
    # once start_saga returned can still reach the coordinator first
    table = Table()
    on_starts = dataclasses.replace(start("s-1"), topic=Topics().starts)
    held = table.run([abort("s-1")])
    assert not dead(held) and not held.decisions
    value = table.values["s-1"]
    assert isinstance(value, EarlyEvents) and len(value.records) == 1
    assert [(t.due, t.token) for t in held.timers] == [(NOW + GRACE, EARLY_TOKEN + "s-1")]

    started = table.run([on_starts])
    # started, then aborted by the held command: what the start sent is undone at once
    state = table.values["s-1"]
    assert isinstance(state, SagaState) and state.status is SagaStatus.COMPENSATING
    commands = [c["type"] for c in sent(started, "inventory.commands")]
    assert commands == [RESERVE, "inventory.release"]
    assert [s.started for s in started.decisions] == [True, False]
    assert not dead(started)
    # and a signal or an operator command for a saga that never starts is dead-lettered
    # once the grace is over, as a reply is
    table.run([abort("s-2")])
    later = table.run([fired("s-2", EARLY_TOKEN + "s-2")], now=NOW + GRACE)
    (letter,) = dead(later)
    assert (letter["x-dlq-reason"], letter["x-dlq-topic"]) == (b"unknown-saga", b"saga.control")
    assert "s-2" not in table.values


def test_held_records_outwait_their_grace_while_starts_for_their_partition_wait_in_kafka() -> None:
    table = Table()
    waiting: set[int] = {partition_for(b"s-1", PARTITIONS)}
    table.ctx = dataclasses.replace(table.ctx, starts_waiting=lambda p: p in waiting)
    table.run([abort("s-1"), reserved("s-2")])  # s-2's partition has no start waiting
    due = NOW + GRACE
    expired = table.run(
        [fired("s-1", EARLY_TOKEN + "s-1"), fired("s-2", EARLY_TOKEN + "s-2")], now=due
    )
    (letter,) = dead(expired)
    assert letter["x-dlq-topic"] == b"inventory.replies"  # s-2's reply: nothing to wait for
    # s-1's abort waits on, one more grace, and is rearmed
    value = table.values["s-1"]
    assert isinstance(value, EarlyEvents) and value.expires == due + GRACE
    assert [(t.due, t.token) for t in expired.timers] == [(due + GRACE, EARLY_TOKEN + "s-1")]
    waiting.clear()  # the starts were read, and s-1's was not among them
    later = table.run([fired("s-1", EARLY_TOKEN + "s-1")], now=due + GRACE)
    (letter,) = dead(later)
    assert (letter["x-dlq-reason"], letter["x-dlq-topic"]) == (b"unknown-saga", b"saga.control")
    assert "s-1" not in table.values


def test_held_records_expire_after_the_rest_of_their_batch_and_never_before_their_time() -> None:
    table = Table()
    table.run([abort("s-1")])
    # the expiry and the start in one batch, the timer first (two partitions, two topics:
    # Kafka orders neither): the start still finds the abort held, and it is applied
    on_starts = dataclasses.replace(start("s-1"), topic=Topics().starts)
    both = table.run([fired("s-1", EARLY_TOKEN + "s-1"), on_starts], now=NOW + GRACE)
    assert not dead(both)
    state = table.values["s-1"]
    assert isinstance(state, SagaState) and state.status is SagaStatus.COMPENSATING
    assert both.consumed == {Topics().control: 1, Topics().starts: 1}
    # a copy of an earlier timer (re-armed from the table, or replayed after a crash)
    # does not cut a grace short: the held records expire at their own time
    waiting = {partition_for(b"s-2", PARTITIONS)}
    table.ctx = dataclasses.replace(table.ctx, starts_waiting=lambda p: p in waiting)
    table.run([abort("s-2")])
    table.run([fired("s-2", EARLY_TOKEN + "s-2")], now=NOW + GRACE)  # held GRACE more
    waiting.clear()
    early_copy = table.run([fired("s-2", EARLY_TOKEN + "s-2")], now=NOW + GRACE + 1)
    assert not dead(early_copy) and isinstance(table.values["s-2"], EarlyEvents)
    due = table.run([fired("s-2", EARLY_TOKEN + "s-2")], now=NOW + 2 * GRACE)
    assert [d["x-dlq-reason"] for d in dead(due)] == [b"unknown-saga"]


def test_records_held_for_one_saga_are_bounded_and_the_rest_dead_lettered() -> None:
    # held while a replica is paused at its bound, for as long as that lasts: what one
    # saga holds must stay one storable table record
    table = Table()
    result = table.run([reserved("s-1")] * (batch_module.MAX_HELD + 2))
    held = table.values["s-1"]
    assert isinstance(held, EarlyEvents) and len(held.records) == batch_module.MAX_HELD
    assert [d["x-dlq-reason"] for d in dead(result)] == [b"unknown-saga"] * 2
    big = rec("inventory.replies", event(RESERVED, "s-2", {"blob": "x" * 30_000}))
    table.run([big])
    bigger = table.run([big])  # 60 KB held would pass half of max_record_bytes
    assert [d["x-dlq-reason"] for d in dead(bigger)] == [b"unknown-saga"]
    only = table.values["s-2"]
    assert isinstance(only, EarlyEvents) and len(only.records) == 1


def test_a_record_in_the_wrong_partition_is_sent_to_its_sagas_partition_unchanged() -> None:
    right = partition_for(b"s-1", PARTITIONS)
    wrong = (right + 1) % PARTITIONS
    record = rec("orders", event("order.placed", "s-1", {"order_id": "o"}), partition=wrong)
    result = Table().run([record])
    (moved,) = result.outgoing
    assert (moved.topic, moved.partition, moved.value) == ("orders", right, record.value)
    assert not result.writes and not result.decisions


def test_a_finished_saga_is_purged_after_its_retention_not_before() -> None:
    table = Table()
    finished = table.run([
        start("s-1"),
        reserved("s-1"),
        reply("s-1", "charge", "payment.replies", CHARGED),
        reply("s-1", "ship", "shipping.replies", SCHEDULED),
    ])  # fmt: skip
    state = table.values["s-1"]
    assert isinstance(state, SagaState)
    assert state.status is SagaStatus.COMPLETED and state.finished_at is not None
    purge = [t for t in finished.timers if t.token == PURGE_TOKEN + "s-1"]
    assert [t.due for t in purge] == [state.finished_at + RETENTION]

    early = table.run([fired("s-1", PURGE_TOKEN + "s-1")], now=NOW + RETENTION / 2)
    assert not early.writes and "s-1" in table.values
    on_time = table.run([fired("s-1", PURGE_TOKEN + "s-1")], now=NOW + RETENTION)
    assert on_time.writes["s-1"].value is None and "s-1" not in table.values


def test_what_cannot_be_used_is_dead_lettered_with_its_reason_and_the_batch_goes_on() -> None:
    table = Table()
    huge = rec("orders", event("order.placed", "s-2", {"blob": "x" * 200_000}))
    result = table.run([
        InRecord("orders", 0, 3, b"k", b"{not json", []),
        rec("orders", event("order.shipped", "s-3", {})),
        rec("inventory.replies", event("inventory.unheard-of", "s-4", {})),
        huge,
        start("s-1"),
    ])  # fmt: skip
    reasons = [d["x-dlq-reason"] for d in dead(result)]
    assert reasons == [b"not-json", b"unknown-type", b"unknown-type", b"too-large"]
    assert dict(result.dead_letters) == {"not-json": 1, "unknown-type": 2, "too-large": 1}
    assert list(table.values) == ["s-1"]


def test_a_dead_letter_too_large_to_publish_goes_without_its_value() -> None:
    table = Table()
    object.__setattr__(table.ctx, "limits", BatchLimits(2_000_000, RETENTION, GRACE))
    big = rec("orders", event("order.shipped", "s-9", {"blob": "x" * 950_000}))
    (letter,) = table.run([big]).outgoing
    headers = dict(letter.headers)
    assert letter.value == b"" and int(headers["x-dlq-value-dropped"]) == len(big.value or b"")
    assert headers["x-dlq-reason"] == b"unknown-type"


def raising_on_replies(monkeypatch: pytest.MonkeyPatch, table: Table) -> None:
    """``table``'s state machine with a bug: any reply makes it raise (until ``undo``)."""

    def buggy(definition: Any, state: Any, message: Any, now: float) -> Any:
        if isinstance(message, Observed):
            raise KeyError("customer")
        return decide(definition, state, message, now)

    monkeypatch.setattr(table, "ctx", dataclasses.replace(table.ctx, decide=buggy))


def test_a_saga_a_record_raised_on_is_marked_for_an_operator_until_one_acts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17: the reply is dead-lettered (processing-error) and its saga, which would
    otherwise wait for it unseen, says so: ``attention`` and a history entry."""
    table = Table()
    table.run([start("s-1")])
    before = table.values["s-1"]
    assert isinstance(before, SagaState) and before.attention is None
    raising_on_replies(monkeypatch, table)

    result = table.run([reserved("s-1"), start("s-2")], now=NOW + 5)
    (letter,) = dead(result)
    assert letter["x-dlq-reason"] == b"processing-error"
    assert not sent(result, "payment.commands")  # the reply did nothing ...
    marked = table.values["s-1"]
    assert isinstance(marked, SagaState)
    assert marked.steps == before.steps and marked.status is SagaStatus.RUNNING
    assert marked.attention is not None  # ... but the saga is marked, with what and where
    assert marked.attention.startswith("processing-error: KeyError")
    assert "inventory.replies[" in marked.attention and "digest" in marked.attention
    assert (marked.history[-1].event, marked.history[-1].at) == ("processing-error", NOW + 5)
    assert marked.updated_at == NOW + 5
    assert result.writes["s-1"].raw is not None  # persisted like any other state
    assert isinstance(table.values["s-2"], SagaState)  # and the batch went on
    assert table.values["s-2"].attention is None  # type: ignore[union-attr]

    monkeypatch.undo()
    acted = table.run([abort("s-1")], now=NOW + 9)
    state = table.values["s-1"]
    assert isinstance(state, SagaState) and state.attention is None
    assert state.status is SagaStatus.COMPENSATING
    assert sent(acted, "inventory.commands")  # the abort undoes the reservation


def test_the_mark_falls_on_the_saga_as_the_batch_left_it_and_never_on_an_unreadable_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raising = Table()
    raising_on_replies(monkeypatch, raising)
    result = raising.run([start("s-1"), reserved("s-1")])  # started in the batch that raised
    assert [d["x-dlq-reason"] for d in dead(result)] == [b"processing-error"]
    state = result.writes["s-1"].value
    assert isinstance(state, SagaState) and state.attention is not None
    assert [t.saga_id for t in result.timers] == ["s-1"]  # the start's deadline stays armed

    def unreadable(sid: str) -> TableValue | None:
        raise ValueError(f"stored value of {sid} is not a saga state")

    table = Table()
    object.__setattr__(table.ctx, "read", unreadable)
    bad = table.run([reserved("s-3")])
    assert [d["x-dlq-reason"] for d in dead(bad)] == [b"processing-error"]
    assert not bad.writes
