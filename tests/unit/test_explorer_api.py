"""What the saga explorer's API answers, from states made by the real state machine:
the timeline, the list's filters, search and pages, the overview, dead-letter views,
and an OpenAPI document that names every route the server has."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from prometheus_client import CollectorRegistry

from sagas.api import HttpApi, listing, timeline
from sagas.api.collectors import TableCensus
from sagas.api.dead_letters import letter_view
from sagas.api.requests import ApiError, make_cursor, parse_list_query
from sagas.api.ui_routes import UI_DIR, openapi_document
from sagas.state import SagaState
from sagas.state_codec import dump_state
from sagas.testing import SagaTestKit
from tests.unit.saga_fixtures import (
    CHARGE,
    CHARGED,
    REFUND,
    REFUNDED,
    RELEASE,
    RELEASED,
    RESERVE,
    RESERVED,
    SHIP,
    SHIP_FAILED,
    three_step,
)

T0 = 1_700_000_000.0


def kit() -> SagaTestKit:
    k = SagaTestKit(three_step(), start_time=T0)
    k.on(RESERVE).reply(RESERVED)
    k.on(CHARGE).reply(CHARGED)
    k.on(RELEASE).reply(RELEASED)
    k.on(REFUND).reply(REFUNDED)
    return k


def test_timeline_shows_compensations_after_the_failure_last_step_first() -> None:
    k = kit()
    k.on(SHIP).reply(SHIP_FAILED)
    state = k.start("t-1", {"order_id": "o-1"}).expect_status("compensated").state
    spans = timeline.spans(state, k.definition)

    assert [(s["step"], s["phase"], s["result"]) for s in spans] == [
        ("reserve", "do", "succeeded"),
        ("charge", "do", "succeeded"),
        ("ship", "do", "failed"),
        ("charge", "undo", "compensated"),
        ("reserve", "undo", "compensated"),
    ]
    assert spans[3]["command"] == REFUND and spans[4]["command"] == RELEASE
    assert all(s["duration_seconds"] is not None and s["offset_seconds"] >= 0 for s in spans)
    orjson.dumps(spans)


def test_timeline_leaves_the_step_waiting_for_a_reply_open() -> None:
    k = kit()
    k.on(SHIP).silence()
    state = k.start("t-2").state
    last = timeline.spans(state, k.definition)[-1]
    assert (last["step"], last["end"], last["result"], last["duration_seconds"]) == (
        "ship",
        None,
        None,
        None,
    )


def table(*states: SagaState) -> dict[bytes, bytes]:
    return {s.saga_id.encode(): dump_state(s) for s in states}


def sagas_started_one_second_apart(n: int) -> dict[bytes, bytes]:
    values = {}
    for i in range(n):
        k = SagaTestKit(three_step(), start_time=T0 + i)
        k.on(RESERVE).reply(RESERVED)
        k.on(CHARGE).reply(CHARGED)
        k.on(SHIP).reply(SHIP_FAILED if i % 3 == 0 else "shipping.scheduled")
        k.on(RELEASE).reply(RELEASED)
        k.on(REFUND).reply(REFUNDED)
        state = k.start(f"s-{i:03d}", {"order_id": f"ord-{i:05d}", "n": i}).state
        values[state.saga_id.encode()] = dump_state(state)
    return values


def rows(values: dict[bytes, bytes], **params: str) -> list[str]:
    query = parse_list_query(params, ["order"])
    return [r["id"] for r in listing.local_rows(values, query, lambda n, v: None)]


def test_search_finds_a_saga_by_a_context_value_or_its_id() -> None:
    values = sagas_started_one_second_apart(30)
    assert rows(values, q="ord-00007") == ["s-007"]
    assert rows(values, q="s-007") == ["s-007"]
    assert rows(values, q="s-01", limit="3") == ["s-019", "s-018", "s-017"]
    assert rows(values, q="12") == ["s-012"], "a number in the context matches its text"
    assert rows(values, q="no-such-order") == []


def test_list_filters_by_status_and_start_time_newest_first() -> None:
    values = sagas_started_one_second_apart(30)
    assert rows(values, status="compensated", limit="3") == ["s-027", "s-024", "s-021"]
    since, until = str(T0 + 10), "2023-11-14T22:13:33Z"  # T0 + 13
    assert rows(values, since=since, until=until) == ["s-012", "s-011", "s-010"]


def test_pages_follow_each_other_without_gaps_or_repeats() -> None:
    values = sagas_started_one_second_apart(30)
    seen: list[str] = []
    cursor = ""
    while True:
        query = parse_list_query({"limit": "7", "cursor": cursor}, ["order"])
        page = listing.local_rows(values, query, lambda n, v: None)
        seen += [r["id"] for r in page]
        if len(page) < 7:
            break
        cursor = make_cursor(page[-1]["_started"], page[-1]["id"])
    assert seen == [f"s-{i:03d}" for i in reversed(range(30))]


def test_bad_list_queries_say_what_would_be_right() -> None:
    with pytest.raises(ApiError, match="no time zone"):
        parse_list_query({"since": "2026-01-01T00:00:00"}, [])
    with pytest.raises(ApiError, match="next_cursor"):
        parse_list_query({"cursor": "garbage!"}, [])
    with pytest.raises(ApiError, match="until is before since"):
        parse_list_query({"since": "20", "until": "10"}, [])


def test_overview_counts_in_flight_and_recent_outcomes_and_lists_parked_sagas() -> None:
    k = kit()
    k.on(SHIP).silence()
    running = k.start("o-run").state
    k2 = kit()
    k2.on(SHIP).reply(SHIP_FAILED)
    undone = k2.start("o-undone").state
    part = listing.local_overview(table(running, undone), T0 + 60, 600.0, lambda n, v: None)
    merged = listing.merge_overviews([part, part], 600.0)
    assert merged["definitions"] == [
        {"saga": "order", "in_flight": 2, "by_status": {"compensated": 2, "running": 2}}
    ]
    assert merged["recent"]["outcomes"] == {"order": {"compensated": 2}}
    assert merged["attention"] == []


def test_a_dead_letter_says_why_where_it_was_read_and_shows_its_value() -> None:
    record = SimpleNamespace(
        partition=3,
        offset=17,
        timestamp=1_700_000_000_000,
        key=b"saga-1",
        value=b'{"type": "x"}',
        headers=[
            ("x-dlq-reason", b"unknown-saga"),
            ("x-dlq-topic", b"inventory.replies"),
            ("x-dlq-partition", b"5"),
            ("x-dlq-offset", b"42"),
            ("traceparent", b"00-abc"),
        ],
    )
    view = letter_view(record)
    assert view["reason"] == "unknown-saga"
    assert view["original"] == {"topic": "inventory.replies", "partition": 5, "offset": 42}
    assert view["value_json"] == {"type": "x"} and view["headers"] == {"traceparent": "00-abc"}


class _NoReplica:
    registry: list[object] = []
    url = "http://127.0.0.1:1"
    partitions = 8


def test_the_openapi_document_names_every_route_the_server_has() -> None:
    api = HttpApi(_NoReplica(), CollectorRegistry(), TableCensus(_NoReplica()))  # type: ignore[arg-type]
    app = api.application()
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method != "HEAD" and not path.startswith("/ui") and path not in ("/", "/sagas/"):
            served.add((route.method.lower(), path))
    doc = orjson.loads(openapi_document())
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert doc["openapi"].startswith("3.1")
    assert served == documented


def test_the_pages_ship_with_the_package_and_load_nothing_from_outside() -> None:
    names = {p.name for p in UI_DIR.iterdir() if p.is_file()}
    assert {"index.html", "app.js", "core.js", "style.css"} <= names
    for path in UI_DIR.glob("*.*"):
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, path.name


def test_timeline_of_an_aborted_saga_shows_the_step_in_flight_cancelled() -> None:
    k = kit()
    k.on(SHIP).silence()
    probe = k.start("t-3")
    probe.abort("customer cancelled")
    state = probe.expect_status("aborted").state
    spans = timeline.spans(state, k.definition)
    assert [(s["step"], s["phase"], s["result"]) for s in spans] == [
        ("reserve", "do", "succeeded"),
        ("charge", "do", "succeeded"),
        ("ship", "do", "cancelled"),
        ("charge", "undo", "compensated"),
        ("reserve", "undo", "compensated"),
    ]
    assert all(s["end"] is not None for s in spans), "nothing is left running in an ended saga"
