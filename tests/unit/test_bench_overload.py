"""The bench's overload figures: admitted latency and start wait, and their report."""

from __future__ import annotations

import orjson

from bench.loadgen import Plan, Tracker, admission_summary, start_record
from bench.overload import admission_counters, bound_setting
from bench.report_overload import overload_markdown, rows
from sagas.settings import CoordinatorSettings


def test_admitted_latency_runs_from_admission_and_the_wait_until_it() -> None:
    tracker = Tracker()
    tracker.due = {b"a": 10.0, b"b": 10.0, b"c": 10.0}
    # a: admitted at once, ended 0.1 s later; b: waited 2 s, then 0.1 s; c: still waiting
    tracker.started_at = {b"a": 10.0, b"b": 12.0}
    tracker.ended = {b"a": 0.1, b"b": 2.1}
    summary = admission_summary(tracker)
    assert summary["admitted_latency"]["max_ms"] == 100.0
    assert summary["admitted_latency"]["p50_ms"] == 100.0
    assert summary["start_wait"]["max_ms"] == 2000.0


def test_overload_starts_use_the_bench_saga_s_trigger() -> None:
    plan = Plan(
        "b:1", "p.", "bench", "p.bench.starts", "p.saga.lifecycle", 1.0, 1, via_trigger=True
    )
    doc = orjson.loads(start_record(plan, "s-1", 5))
    assert doc["type"] == "bench.requested" and doc["data"] == {"n": 5, "fail": True}


def test_the_on_half_uses_the_coordinator_default_unless_told() -> None:
    assert bound_setting(None) == CoordinatorSettings.model_fields["max_in_flight"].default
    assert bound_setting(300) == 300


def test_the_overload_table_names_each_half() -> None:
    point = {
        "offered_per_s": 4000.0,
        "factor": 2.0,
        "achieved_per_s": 1900.0,
        "goodput_share": 0.95,
        "admitted_latency": {"p99_ms": 80.0},
        "start_wait": {"p50_ms": 900.0, "p99_ms": 2500.0},
        "latency": {"p99_ms": 2580.0},
        "missing": 0,
        "cpu_us_per_saga": {"coordinator": 400.0},
        "admission": {"pauses": 3.0},
    }
    overload = {
        "peak_per_s": 2000.0,
        "peak_offered_per_s": 2000.0,
        "peak_p99_ms": 60.0,
        "bound": 1000,
        "points": [{**point, "bound": "off"}, {**point, "bound": "on"}],
    }
    table = rows(overload)
    assert [r[0] for r in table] == ["off", "bound 1,000"]
    assert table[1][4] == "95%"
    assert "| bound 1,000 | 4,000 | 2x | 1,900.0 | 95% | 80.0 |" in "\n".join(
        overload_markdown(overload)
    )


def test_what_admission_did_is_read_from_the_coordinator_s_metrics() -> None:
    text = (
        "# HELP saga_admission_pauses_total x\n"
        "saga_admission_pauses_total 3.0\n"
        "saga_admission_pauses_created 1.7e9\n"
        "saga_starts_deferred_total 120.0\n"
    )
    assert admission_counters(text) == {
        "pauses": 3.0,
        "starts_deferred": 120.0,
        "deadlines_held_back": 0.0,
    }
