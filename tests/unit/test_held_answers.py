"""How far a participant commits while answers are held back (`sagas.participants.held_answers`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from hypothesis import given
from hypothesis import strategies as st

from events.envelope import new_event
from sagas.participants.held_answers import CommitFloor, HeldAnswer, HeldAnswers
from sagas.participants.participant_io import Record
from sagas.participants.participant_store import Outgoing

A = TopicPartition("payment.commands", 0)
B = TopicPartition("payment.commands", 1)


def test_a_held_answer_keeps_its_partition_at_its_input_and_no_other() -> None:
    floor = CommitFloor()
    floor.hold(A, 3)
    floor.handled(A, 10)
    floor.handled(B, 7)
    assert floor.due() == {A: 3, B: 7}
    assert floor.due() == {}  # handed out once
    floor.handled(A, 12)
    assert floor.due() == {}  # still held at 3
    floor.answered(A, 3)
    assert floor.due() == {A: 12}
    assert floor.holding() == 0


def test_the_lowest_held_input_rules_and_a_second_hold_of_one_input_counts() -> None:
    floor = CommitFloor()
    for offset in (5, 2, 2):  # 2 held twice: a redelivered input held again
        floor.hold(A, offset)
    floor.handled(A, 9)
    assert floor.due() == {A: 2}
    floor.answered(A, 2)
    assert floor.due() == {}  # its second hold is still pending
    floor.answered(A, 2)
    assert floor.due() == {A: 5}
    floor.answered(A, 7)  # never held: changes nothing
    floor.answered(A, 5)
    assert floor.due() == {A: 9}


@given(
    st.lists(
        st.tuples(st.sampled_from(["batch", "answer"]), st.integers(0, 30), st.booleans()),
        max_size=60,
    )
)
def test_never_commits_past_an_unanswered_input_nor_goes_back(
    steps: list[tuple[str, int, bool]],
) -> None:
    """Batches handle the next records (holding some of their answers); answers go out in
    any order; what is committed only grows and never passes an input still held."""
    floor = CommitFloor()
    held: list[int] = []
    handled = 0
    committed = -1
    for action, n, hold in steps:
        if action == "batch":  # records handled..handled+n, the first one's answer held
            if hold:
                held.append(handled)
                floor.hold(A, handled)
            handled += n + 1
            floor.handled(A, handled)
        elif held:
            offset = held.pop(n % len(held))
            floor.answered(A, offset)
        due = floor.due().get(A)
        if due is not None:
            assert due > committed
            committed = due
        assert committed <= min(held, default=handled) <= handled
        if not held and handled:
            assert committed == handled  # nothing held: everything handled is committed
    assert floor.holding() == len(held)


def held(offset: int) -> HeldAnswer:
    reply = new_event("thing.done", source="test", sagaid=f"saga-{offset}")
    return HeldAnswer((Outgoing("things.replies", reply),), A, offset)


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)  # polling the condition


async def test_a_late_answer_that_could_not_be_sent_is_tried_again_and_holds_its_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[bytes | None] = []
    broken = True

    async def send(records: Sequence[Record]) -> None:
        if broken:
            raise KafkaConnectionError("broker gone")
        sent.extend(r.key for r in records)

    answers = HeldAnswers("things", send)
    answers.hold(0.0, held(4))
    answers.floor.handled(A, 6)
    assert answers.floor.due() == {A: 4}
    answers.release()
    await until(lambda: "could not be sent" in caplog.text, "the failed send")
    assert "payment.commands[0]@4" in caplog.text and "trying again in 0.5s" in caplog.text
    assert [a.offset for a in answers.waiting] == [4] and answers.floor.due() == {}
    broken = False
    await until(lambda: sent, "the retry")
    assert sent == [b"saga-4"] and answers.floor.due() == {A: 6} and answers.waiting == []


async def test_flush_sends_what_waits_drops_what_was_never_durable_and_sends_nothing_twice() -> (
    None
):
    sent: list[bytes | None] = []
    inside = asyncio.Event()
    proceed = asyncio.Event()

    async def send(records: Sequence[Record]) -> None:
        sent.extend(r.key for r in records)  # with the producer now
        if any(r.key == b"saga-1" for r in records):
            inside.set()
            await proceed.wait()  # its acknowledgement is awaited when the process stops

    answers = HeldAnswers("things", send)
    answers.hold(0.0, held(1))
    answers.hold(60.0, held(2))
    answers.release()
    answers.hold(0.0, held(3))  # its batch never became durable (no `release`)
    answers.floor.handled(A, 4)
    await until(inside.is_set, "the first send")
    flushing = asyncio.create_task(answers.flush())
    await asyncio.sleep(0)  # let flush cancel the sleeping one and wait for the sending one
    proceed.set()
    assert await flushing is True
    assert sorted(sent) == [b"saga-1", b"saga-2"]  # once each; 3 was never released
    assert answers.floor.due() == {A: 3}  # input 3 stays uncommitted: a restart answers it


async def test_a_failed_flush_leaves_its_inputs_uncommitted() -> None:
    async def send(records: Sequence[Record]) -> None:
        raise KafkaConnectionError("broker gone")

    answers = HeldAnswers("things", send)
    answers.hold(60.0, held(5))
    answers.release()
    answers.floor.handled(A, 9)
    assert await answers.flush() is False
    assert answers.floor.due() == {A: 5}
