"""Which deadlines a stored table holds, and whether a due one still needs to be sent."""

from __future__ import annotations

from sagas.state_codec import load_state
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN, EarlyEvents, encode_value
from sagas.timers import deadlines_in_table, still_armed
from tests.unit.saga_fixtures import ok_except, scripted, three_step


def parked_and_done() -> tuple[bytes, bytes]:
    parked = scripted(three_step(), ok_except(charge=None)).start("s-parked", {}).state
    done = scripted(three_step(), ok_except()).start("s-done", {}).state
    return encode_value(parked), encode_value(done)


def test_the_table_yields_armed_timers_early_expiries_and_purges() -> None:
    parked, done = parked_and_done()
    early = encode_value(EarlyEvents(expires=42.0))
    entries = deadlines_in_table(
        [(b"s-parked", parked), (b"s-done", done), (b"s-early", early)], retention=100.0
    )
    timers = load_state(parked).timers
    assert (
        sorted(e for e in entries if e[1] == "s-parked")
        == sorted((spec.due, "s-parked", token) for token, spec in timers.items())
        and timers
    )
    finished = load_state(done).finished_at
    assert finished is not None
    assert (finished + 100.0, "s-done", PURGE_TOKEN + "s-done") in entries
    assert (42.0, "s-early", EARLY_TOKEN + "s-early") in entries


def test_a_disarmed_deadline_is_not_sent_an_armed_one_is() -> None:
    parked, done = parked_and_done()
    (token,) = load_state(parked).timers
    assert still_armed(token, parked, None)
    assert still_armed(token, parked, load_state(parked))
    assert not still_armed(token, done, None), "the saga moved on: the token is stale"
    assert not still_armed(token, None, None), "the saga is gone"
    assert still_armed(PURGE_TOKEN + "s-done", done, None)
    assert not still_armed(EARLY_TOKEN + "x", None, None)
    assert not still_armed(token, encode_value(EarlyEvents(expires=42.0)), None)
