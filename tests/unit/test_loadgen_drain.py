"""How long the load generator waits for the sagas still running after its last start."""

from __future__ import annotations

from bench.loadgen import Drain
from bench.system_run import DrainProgress


def drain(count: int = 100) -> Drain:
    return Drain(count, stall=60.0, limit=600.0, started=1000.0)


def test_ends_once_every_saga_has_ended() -> None:
    assert drain().over(1000.1, ended=100, last_end=1000.1)
    assert not drain().over(1000.1, ended=99, last_end=1000.1)


def test_a_backlog_that_still_drains_is_waited_for_past_the_stall_time() -> None:
    # sagas keep ending 200 s after the last start (a backlog queued in Kafka): not over
    assert not drain().over(1200.0, ended=50, last_end=1199.0)


def test_ends_when_no_saga_has_ended_for_the_stall_time() -> None:
    assert not drain().over(1059.0, ended=50, last_end=None)
    assert drain().over(1060.0, ended=50, last_end=None)
    # the last end counts from then on, not from the drain's start
    assert not drain().over(1100.0, ended=50, last_end=1050.0)
    assert drain().over(1110.0, ended=50, last_end=1050.0)


def test_ends_at_the_limit_even_while_sagas_still_end() -> None:
    assert not drain().over(1599.0, ended=50, last_end=1598.9)
    assert drain().over(1600.0, ended=50, last_end=1599.9)


def test_drain_progress_says_a_line_every_interval_after_the_sends() -> None:
    lines: list[str] = []
    progress = DrainProgress(lines.append, count=1000, every=10.0)
    for t in range(0, 15):  # still sending: nothing
        progress({"t": float(t), "sending": True, "terminal": t})
    for t in range(15, 50):
        progress({"t": float(t), "sending": False, "terminal": 10 * t})
    assert lines == [
        "    draining: 250 of 1,000 ended 10 s after the last start",
        "    draining: 350 of 1,000 ended 20 s after the last start",
        "    draining: 450 of 1,000 ended 30 s after the last start",
    ]
