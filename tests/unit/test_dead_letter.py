"""`events.dead_letters.dead_letter`: the one way a consumed record becomes a dead letter
(coordinator, participants, the HTTP bridge)."""

from __future__ import annotations

from events.dead_letters import DEAD_LETTER_VALUE_LIMIT, dead_letter
from events.records import InRecord


def test_a_dead_letter_is_the_record_unchanged_with_why_and_where() -> None:
    record = InRecord("orders", 3, 41, b"s-1", b"{}", [("traceparent", b"00-x"),
                      ("x-dlq-reason", b"from an earlier trip")])  # fmt: skip
    letter = dead_letter(record, "saga.deadletter", "unknown-type", "d" * 5000)
    assert (letter.topic, letter.key, letter.value) == ("saga.deadletter", b"s-1", b"{}")
    assert letter.headers[:5] == [
        ("traceparent", b"00-x"),
        ("x-dlq-reason", b"unknown-type"),
        ("x-dlq-topic", b"orders"),
        ("x-dlq-partition", b"3"),
        ("x-dlq-offset", b"41"),
    ]
    assert dict(letter.headers)["x-dlq-detail"] == b"d" * 1000


def test_a_dead_letter_too_large_to_publish_keeps_the_evidence_not_the_bulk() -> None:
    value = b"x" * DEAD_LETTER_VALUE_LIMIT
    letter = dead_letter(InRecord("orders", 0, 1, b"k", value, []), "dlq", "too-large")
    headers = dict(letter.headers)
    assert letter.value == b"" and headers["x-dlq-value-dropped"] == str(len(value)).encode()
    assert headers["x-dlq-reason"] == b"too-large" and "x-dlq-detail" not in headers
