"""How far a participant commits while answers are held back (`sagas.participants.held_answers`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

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
        st.tuples(st.sampled_from(["handle", "hold", "answer"]), st.integers(0, 30)),
        max_size=60,
    )
)
def test_never_commits_past_an_unanswered_input_nor_goes_back(
    steps: list[tuple[str, int]],
) -> None:
    floor = CommitFloor()
    held: list[int] = []
    handled = 0
    last = -1
    for action, n in steps:
        if action == "handle":
            handled = max(handled, n)
            floor.handled(A, n)
        elif action == "hold" and n < handled:
            held.append(n)
            floor.hold(A, n)
        elif action == "answer" and n in held:
            held.remove(n)
            floor.answered(A, n)
        due = floor.due().get(A)
        if due is not None:
            assert due > last
            assert due <= handled and all(due <= h for h in held)
            last = due
    assert floor.holding() == len(held)


def held(offset: int) -> HeldAnswer:
    reply = new_event("thing.done", source="test", sagaid=f"saga-{offset}")
    return HeldAnswer((Outgoing("things.replies", reply),), A, offset)


async def test_an_answer_that_could_not_be_sent_keeps_its_input_uncommitted(
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
    deadline = time.monotonic() + 5
    while "could not be sent" not in caplog.text:
        assert time.monotonic() < deadline, "the failed send was not logged"
        await asyncio.sleep(0.01)  # polling the condition above
    assert "payment.commands[0]@4" in caplog.text
    assert [a.offset for a in answers.waiting] == [4]  # kept for `flush`
    assert answers.floor.due() == {A: 4}
    assert await answers.flush() is False  # still broken on stop
    broken = False
    answers.hold(60.0, held(5))
    answers.floor.handled(A, 7)
    assert await answers.flush() is True  # at once on stop, not after its delay
    assert sent == [b"saga-5"]
    assert answers.floor.due() == {}  # input 4 was never answered: a restart answers it
