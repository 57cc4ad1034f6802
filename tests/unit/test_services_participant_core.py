"""The participant helper's pure core: once per input id, original answers to duplicates,
a changelog that rebuilds the same state, deterministic late answers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from events.envelope import CloudEvent, new_event
from sagas.participants.participant import Outgoing, unit_interval
from sagas.participants.participant_store import ChangelogEntry, ParticipantCore
from services.late_answers import LateAnswers


def counter(state: dict[str, int], event: CloudEvent) -> tuple[dict[str, int], list[Outgoing]]:
    """Counts effects per saga and answers with the running count."""
    n = state.get(event.sagaid, 0) + 1
    reply = event.reply("thing.done", "test", {"count": n})
    return {**state, event.sagaid: n}, [Outgoing("replies", reply)]


def command(id: str, saga: str = "s1") -> CloudEvent:
    return new_event("thing.do", source="test", sagaid=saga, id=id, data={"x": 1})


def test_a_duplicate_gets_the_original_outputs_and_no_second_effect() -> None:
    core = ParticipantCore(counter, {})
    first = core.apply("commands", command("c1"))
    again = core.apply("commands", command("c1"))
    assert not first.duplicate and again.duplicate and again.entry is None
    assert again.outputs == first.outputs  # the very same events, time included
    assert core.state == {"s1": 1}
    other = core.apply("commands", command("c2"))
    assert other.outputs[0].event.data == {"count": 2}


def test_replies_carry_sagaid_and_causation() -> None:
    core = ParticipantCore(counter, {})
    (out,) = core.apply("commands", command("c1", saga="order-7")).outputs
    assert out.event.sagaid == "order-7" and out.event.causationid == "c1"


def test_the_changelog_round_trips_and_replays_to_the_same_state() -> None:
    live = ParticipantCore(counter, {})
    log = []
    for i, saga in zip(range(6), itertools.cycle(["a", "b"]), strict=False):
        applied = live.apply("commands", command(f"c{i}", saga))
        assert applied.entry is not None
        log.append(applied.entry.encode())
    live.apply("commands", command("c0", "a"))  # a duplicate writes nothing
    restarted = ParticipantCore(counter, {})
    for raw in log:
        restarted.replay(ChangelogEntry.decode(raw))
    assert restarted.state == live.state == {"a": 3, "b": 3}
    assert restarted.mismatches == 0
    again = restarted.apply("commands", command("c4", "a"))
    assert again.duplicate
    assert again.outputs == live.seen["c4"]  # answered from the log, byte for byte
    assert restarted.apply("commands", command("c9", "a")).outputs[0].event.data == {"count": 4}


def test_a_nondeterministic_handler_is_noticed_on_replay() -> None:
    clock = itertools.count()

    def flaky(state: int, event: CloudEvent) -> tuple[int, list[Outgoing]]:
        return state + 1, [Outgoing("r", event.reply("t", "s", {"tick": next(clock)}))]

    live = ParticipantCore(flaky, 0)
    entry = live.apply("commands", command("c1")).entry
    assert entry is not None
    restarted = ParticipantCore(flaky, 0)
    restarted.replay(entry)
    assert restarted.mismatches == 1


def test_changelog_entries_of_another_version_are_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        ChangelogEntry.decode(b'{"v":99,"topic":"t","input":{},"outputs":[]}')


def test_late_answers_are_decided_by_the_command_id() -> None:
    late = LateAnswers(probability=0.3, delay=2.0)
    ids = [f"cmd-{n}" for n in range(3000)]
    delays = [late.delay_for(i) for i in ids]
    assert set(delays) == {0.0, 2.0}
    assert 0.25 < delays.count(2.0) / len(ids) < 0.35
    assert delays == [late.delay_for(i) for i in ids]
    assert LateAnswers().delay_for("x") == 0.0


def test_unit_interval_is_stable_and_in_range() -> None:
    values: list[Any] = [unit_interval("saga", n) for n in range(1000)]
    assert all(0 <= v < 1 for v in values)
    assert unit_interval("a", 1) == unit_interval("a", 1) != unit_interval("a", 2)
