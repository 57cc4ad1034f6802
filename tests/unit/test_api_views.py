"""What the HTTP API answers and accepts, from saga states made by the real state machine
(`sagas.testing`): pure functions, no coordinator, no Kafka."""

from __future__ import annotations

import io

import orjson
import pytest
from rich.console import Console

from sagas import table_codec
from sagas.api import render
from sagas.api.requests import (
    ApiError,
    OperatorRequest,
    check_auth,
    dry_run,
    parse_list_query,
    parse_operator,
    parse_start,
    parse_wait,
    wanted,
)
from sagas.cli.ops_render import saga_list, saga_status
from sagas.state_codec import dump_state
from sagas.testing import SagaTestKit
from tests.unit.saga_fixtures import (
    CHARGE,
    CHARGED,
    DECLINED,
    RELEASE,
    RELEASE_FAILED,
    RELEASED,
    RESERVE,
    RESERVED,
    SCHEDULED,
    SHIP,
    three_step,
)
from tests.unit.test_batch_step import Table, raising_on_replies, reserved, start

T0 = 1_700_000_000.0


def kit() -> SagaTestKit:
    k = SagaTestKit(three_step(comp_retries=2), start_time=T0)
    k.on(RESERVE).reply(RESERVED, {"reservation": "r1"})
    k.on(RELEASE).reply(RELEASED)
    k.on(SHIP).reply(SCHEDULED)
    return k


def test_detail_of_a_completed_saga_has_every_step_with_attempts_times_and_outcomes() -> None:
    k = kit()
    k.on(CHARGE).reply(CHARGED, {"payment_id": "p1"})
    state = k.start("s-1", {"amount": 30}).expect_status("completed").state
    detail = render.saga_detail(state, k.definition, owner="http://a:1")

    assert detail["id"] == "s-1" and detail["saga"] == "order" and detail["status"] == "completed"
    assert detail["terminal"] and detail["current_steps"] == []
    assert detail["context"] == {"amount": 30, "reservation": "r1", "payment_id": "p1"}
    assert [(s["name"], s["status"], s["attempts"], s["outcome"]) for s in detail["steps"]] == [
        ("reserve", "succeeded", 1, RESERVED),
        ("charge", "succeeded", 1, CHARGED),
        ("ship", "succeeded", 1, SCHEDULED),
    ]
    assert (
        detail["steps"][0]["compensation"] == RELEASE and detail["steps"][2]["compensation"] is None
    )
    assert detail["started_at"] == "2023-11-14T22:13:20.000Z"
    assert detail["history"][0]["event"] == "saga.started"
    assert detail["history"][-1]["event"] == "saga.completed"
    assert detail["served_by"] == "http://a:1"
    orjson.dumps(detail)  # JSON all the way down


def test_detail_of_a_compensated_and_of_an_in_flight_saga() -> None:
    k = kit()
    k.on(CHARGE).reply(DECLINED, {"reason": "card"})
    undone = render.saga_detail(k.start("s-2").expect_status("compensated").state, k.definition)
    reserve, charge, ship = undone["steps"]
    assert reserve["status"] == "compensated" and reserve["compensation_outcome"] == RELEASED
    assert reserve["compensation_attempts"] == 1
    assert charge["status"] == "failed" and charge["outcome"].startswith(DECLINED)
    assert ship["status"] == "pending" and ship["started_at"] is None

    k2 = kit()
    k2.on(CHARGE).silence()
    running = render.saga_detail(k2.start("s-3").state, k2.definition)
    assert running["status"] == "running" and running["current_steps"] == ["charge"]
    assert running["finished_at"] is None and running["duration_seconds"] is None
    assert [t["step"] for t in running["timers"]] == ["charge"]


def test_list_rows_come_from_raw_states_without_the_model() -> None:
    k = kit()
    k.on(CHARGE).silence()
    state = k.start("s-4").state
    raw = dump_state(state)
    row = render.saga_row(orjson.loads(raw), k.definition)
    assert row["id"] == "s-4" and row["status"] == "running" and row["current_steps"] == ["charge"]
    seen = table_codec.summary(raw)
    assert seen is not None
    assert (seen.name, seen.status, seen.started_at) == ("order", "running", T0)


def test_peek_is_not_fooled_by_context_that_looks_like_state() -> None:
    k = kit()
    k.on(CHARGE).silence()
    tricky = {"name": "x", "status": "failed", "stage": 9, "started_at": 1.0, "updated_at": 2.0}
    state = k.start('id"with\\quotes', {"nested": tricky, "s": ',"stage":1,"started_at":5'}).state
    seen = table_codec.summary(dump_state(state))
    assert seen == table_codec.Summary("order", "running", T0, state.updated_at)
    assert table_codec.name_and_status(dump_state(state)) == ("order", "running")
    # A layout it does not know falls back to parsing.
    fallback = table_codec.summary(orjson.dumps({"status": "failed", "name": "n", "started_at": 3}))
    assert fallback is not None and fallback.status == "failed"
    # Events held for a saga that has not started are not one.
    held = table_codec.encode_value(table_codec.EarlyEvents(expires=1.0))
    assert table_codec.summary(held) is None and table_codec.name_and_status(held) is None


def test_rows_of_two_replicas_merge_newest_first_one_per_saga() -> None:
    def row(sid: str, started: float, updated: float) -> dict[str, object]:
        return {"id": sid, "_started": started, "_updated": updated, "status": f"s{updated}"}

    a = [row("x", 1, 5), row("y", 3, 3)]
    b = [row("x", 1, 7), row("z", 2, 2)]
    merged = render.newest_first(render.merge_rows(a, b), limit=10)
    assert [(r["id"], r["status"]) for r in merged] == [("y", "s3"), ("z", "s2"), ("x", "s7")]
    assert render.newest_first(merged, limit=1)[0]["id"] == "y"
    assert render.from_wire(render.wire_row(merged[0])) == merged[0]
    assert "_started" not in render.public(merged[0])


def test_list_query_validation() -> None:
    known = ["order", "trip"]
    query = parse_list_query({"status": "failed,running", "saga": "order", "limit": "5"}, known)
    assert query.statuses == {"failed", "running"} and query.saga == "order" and query.limit == 5
    assert wanted(query, "failed", "order") and not wanted(query, "completed", "order")
    assert not wanted(query, "failed", "trip")
    assert parse_list_query({}, known).limit == 50
    for bad, words in [
        ({"status": "stuck"}, "unknown status ['stuck']; choose from running"),
        ({"saga": "nope"}, "no saga definition 'nope' is loaded; loaded: order, trip"),
        ({"limit": "0"}, "limit=0 is out of range 1..1000"),
        ({"limit": "many"}, "limit='many' is not a whole number"),
        ({"colour": "red"}, "unknown query parameter(s) ['colour']"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_list_query(bad, known)
        assert caught.value.status == 400 and words in caught.value.detail


def test_start_requests() -> None:
    versions = {"order": [1, 2]}
    start = parse_start("order", b'{"amount": 3}', {"id": "o-1", "version": "2"}, versions)
    assert (start.saga, start.data, start.saga_id, start.version) == (
        "order",
        {"amount": 3},
        "o-1",
        2,
    )
    assert parse_start("order", b"", {}, versions).data == {}
    cases = [
        ("nope", b"{}", {}, 404, "no saga definition 'nope'; loaded: order"),
        ("order", b"{}", {"version": "7"}, 404, "has no version 7; loaded versions: [1, 2]"),
        ("order", b"[1]", {}, 400, "must be a JSON object, got list"),
        ("order", b"{oops", {}, 400, "is not valid JSON"),
        ("order", b"{}", {"id": "has space"}, 400, "is not valid"),
    ]
    for name, body, params, status, words in cases:
        with pytest.raises(ApiError) as caught:
            parse_start(name, body, params, versions)
        assert caught.value.status == status and words in caught.value.detail, caught.value.detail


def test_operator_requests_are_checked_by_a_dry_run_of_the_machine() -> None:
    k = SagaTestKit(three_step(comp_retries=2), start_time=T0)
    k.on(RESERVE).reply(RESERVED)
    k.on(CHARGE).reply(DECLINED)
    k.on(RELEASE).reply(RELEASE_FAILED, {"reason": "offline"})
    probe = k.start("s-5")
    k.advance(10)  # the release is retried after its backoff, then given up
    failed = probe.expect_status("failed").state
    k2 = kit()
    k2.on(CHARGE).reply(CHARGED)
    done = k2.start("s-6").expect_status("completed").state

    retry = parse_operator("retry", b"", {})
    assert retry == OperatorRequest("retry", "retry by operator (API)")
    dry_run(k.definition, failed, retry, T0 + 100)  # a failed saga can be retried
    with pytest.raises(ApiError) as caught:
        dry_run(k.definition, done, retry, T0 + 100)
    assert caught.value.status == 409
    assert "only a failed saga can be retried" in caught.value.detail
    assert caught.value.body()["saga_status"] == "completed"

    skip = parse_operator("skip", b'{"step": "reserve", "reason": "released by hand"}', {})
    dry_run(k.definition, failed, skip, T0 + 100)
    with pytest.raises(ApiError) as caught:
        dry_run(k.definition, failed, OperatorRequest("skip", "x", "nope"), T0 + 100)
    assert caught.value.status == 400 and "has no step 'nope'" in caught.value.detail

    for action, body, status, words in [
        ("skip", b'{"reason": "x"}', 400, "skip needs the step"),
        ("resolve", b"{}", 400, "resolve needs a reason"),
        ("explode", b"{}", 404, "no action 'explode'; choose one of retry, abort, skip, resolve"),
        ("abort", b'{"reason": 5}', 400, "'reason' must be a string"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_operator(action, body, {})
        assert caught.value.status == status and words in caught.value.detail


def test_bearer_token() -> None:
    check_auth(None, None)  # no token configured: open
    check_auth("Bearer t0k", "t0k")
    for header in (None, "Bearer nope", "Basic dDBr", "Bearer "):
        with pytest.raises(ApiError) as caught:
            check_auth(header, "t0k")
        assert caught.value.status == 401
        assert "Authorization: Bearer <token>" in caught.value.detail


def test_wait_parameter() -> None:
    assert parse_wait({}) == 0 and parse_wait({"wait": "2.5"}) == 2.5
    for bad in ("-1", "31", "soon"):
        with pytest.raises(ApiError):
            parse_wait({"wait": bad})


def shown(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_a_saga_a_record_raised_on_shows_it_in_the_api_and_the_cli(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17: the saga is marked for an operator, not silently stalled: ``GET
    /sagas/{id}`` and ``GET /sagas`` say why (read from the table as the API reads it),
    and so do ``sagas status`` and ``sagas list``."""
    table = Table()
    table.run([start("s-1")])
    raising_on_replies(monkeypatch, table)
    raw = table.run([reserved("s-1")]).writes["s-1"].raw
    assert raw is not None
    state = table_codec.saga_state(raw)
    assert state is not None
    detail = render.saga_detail(state, three_step())
    why = detail["needs_operator"]
    assert why.startswith("processing-error: KeyError") and "inventory.replies[" in why
    assert detail["status"] == "running" and detail["current_steps"] == ["reserve"]
    assert detail["history"][-1]["event"] == "processing-error"
    doc = table_codec.saga_document(raw)
    assert doc is not None
    assert render.saga_row(doc, three_step())["needs_operator"] == why
    assert table_codec.census_entry(raw) == ("order", "running", True)
    assert "needs operator" in shown(saga_status(detail))
    assert "running !" in shown(saga_list([render.saga_row(doc, three_step())]))
