"""The benchmark's pure parts: its saga and participants, the load it offers, what it reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from bench import procstat
from bench.cpu_budget import budget, budgets
from bench.loadgen import Plan, start_record
from bench.participant import answer
from bench.profile import summarise
from bench.report import markdown, outcome_line, print_report
from bench.report_plot import plot
from bench.stats import latency_summary_ms, percentile
from bench.system_run import cpu_per_saga
from bench.targets import message_ratio, targets
from bench.workload import BENCH_SAGA, bench_definition
from events.codec import decode, encode
from sagas import control
from sagas.builder import definition_from_dict
from sagas.messages import StartSaga
from sagas.testing import SagaTestKit


def bench_kit() -> SagaTestKit:
    """The bench saga, answered by the bench participant's own `answer` function."""
    kit = SagaTestKit(definition_from_dict(bench_definition("", timeout=30)))

    def participant(command: Any) -> tuple[str, dict[str, Any]] | None:
        value, _ = encode(command)
        answered = answer(orjson.loads(value))
        assert answered is not None
        reply = orjson.loads(answered[1])
        assert reply["causationid"] == command.id and reply["sagaid"] == command.sagaid
        return reply["type"], reply["data"]

    for n in (1, 2, 3, 4):
        kit.on(f"bench.s{n}.do").respond(participant)
        kit.on(f"bench.s{n}.undo").respond(participant)
    return kit


def test_a_bench_saga_runs_its_four_steps() -> None:
    saga = bench_kit().start("b-1", {"n": 1, "fail": False})
    saga.expect_status("completed")
    saga.expect_commands("bench.s1.do", "bench.s2.do", "bench.s3.do", "bench.s4.do")


def test_a_failing_bench_saga_is_refused_at_step_3_and_compensates_two_steps() -> None:
    saga = bench_kit().start("b-2", {"n": 2, "fail": True})
    saga.expect_status("compensated")
    saga.expect_commands(
        "bench.s1.do", "bench.s2.do", "bench.s3.do", "bench.s2.undo", "bench.s1.undo"
    )


def test_the_participant_reply_is_a_valid_cloudevent() -> None:
    command = {"id": "c-1", "type": "bench.s3.do", "sagaid": "s-1", "data": {"fail": True}}
    step, value = answer(command) or (0, b"")
    event = decode(value)
    assert step == 3
    assert (event.type, event.causationid, event.sagaid) == ("bench.s3.refused", "c-1", "s-1")
    assert answer({"id": "x", "type": "order.placed", "sagaid": "s"}) is None


@pytest.mark.parametrize("workload", ["bench", "order"])
def test_the_load_generator_starts_sagas_with_valid_records(workload: str) -> None:
    plan = Plan("b", "p.", workload, "p.saga.control", "p.saga.lifecycle", 10, 20)
    records = [decode(start_record(plan, f"run-{i}", i)) for i in range(20)]
    if workload == "bench":
        messages = [control.to_message(r) for r in records]
        assert all(isinstance(m, StartSaga) for m in messages)
        assert [r.data["saga"] for r in records] == [BENCH_SAGA] * 20
        assert sum(r.data["data"]["fail"] for r in records) == 2  # every tenth saga
    else:
        assert {r.type for r in records} == {"order.placed"}
        assert len({r.data["customer_id"] for r in records}) == 20
    assert len({r.id for r in records}) == 20


def test_percentiles_are_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile(values, 50) == 0.05
    assert percentile(values, 99) == 0.099
    assert percentile([], 99) == 0.0
    assert latency_summary_ms(values) == {
        "p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "max_ms": 100.0,
    }  # fmt: skip


def test_proc_sampler_reads_cpu_and_memory_of_a_process() -> None:
    sampler = procstat.ProcSampler({"me": os.getpid()})
    sampler.sample_now()
    start = procstat.read_sample(os.getpid())
    assert start is not None
    # burn CPU until the kernel's tick-granular counter has moved
    while (now := procstat.read_sample(os.getpid())) and now.cpu_seconds <= start.cpu_seconds:
        sum(i * i for i in range(100_000))
    sampler.sample_now()
    usage = sampler.window(0, float("inf"))["me"]
    assert usage.rss_peak_mib > 1
    assert usage.cpu_percent > 0
    assert procstat.read_sample(2**22 + 12345) is None  # no such process


def test_profile_summary_ranks_own_time_and_packages(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "run (asyncio/events.py:80);decide (sagas/machine.py:10) 30\n"
        "run (asyncio/events.py:80);decode (events/codec.py:90);loads (orjson:0) 50\n"
        "run (asyncio/events.py:80);decode (events/codec.py:90) 20\n"
    )
    summary = summarise(raw)
    assert summary["samples"] == 100
    assert summary["own"][0] == {"function": "loads (orjson:0)", "percent": 50.0}
    inclusive = {f["function"]: f["percent"] for f in summary["inclusive"]}
    assert inclusive["decode (events/codec.py:90)"] == 70.0
    packages = {p["package"]: p["percent"] for p in summary["packages"]}
    assert packages["sagas.machine (decide)"] == 30.0


def _section(broker: str, p99_at_500: float) -> dict[str, Any]:
    def point(offered: float, achieved: float, p99: float) -> dict[str, Any]:
        return {
            "offered_per_s": offered, "achieved_per_s": achieved, "missing": 0,
            "records_per_saga": 20.0, "latency": {"p50_ms": p99 / 2, "p95_ms": p99, "p99_ms": p99},
            "cpu_percent": {"coordinator": 90.0, "broker": 40.0, "broker-2": 10.0},
            "cpu_us_per_saga": {"coordinator": 450.0, "broker": 250.0},
            "rss_peak_mib": {"coordinator": 80.0}, "load_before": (1.0, 1.0, 1.0),
        }  # fmt: skip

    return {
        "broker": {"name": broker, "version": f"{broker} 1.0", "fresh_per_phase": broker == "embedded",
                   "partitions": 1 if broker == "embedded" else 8, "client_env": {}},
        "ceiling": {"pipelined_per_s": 40_000.0, "single_p50_ms": 1.0, "single_p99_ms": 2.0,
                    "record_bytes": 400, "topic_partitions": 8, "load_before": (1.0, 1.0, 1.0)},
        "systems": {
            "bench": {
                "sweep": [point(500, 499, p99_at_500), point(1000, 700, 900.0)],
                "sustained": point(700, 690, 150.0) | {"send_start": 0.0, "send_end": 60.0},
                "memory": {"sagas": 1000, "bytes_per_saga": 3000, "rss_before_mib": 50},
                "recovery": {
                    "sagas": 1000,
                    "processing_again_s": 5.0,
                    "all_terminal_s": 20.0,
                    "missing": 0,
                },
            }
        },
    }  # fmt: skip


def _results() -> dict[str, Any]:
    return {
        "machine": {"nproc": 2, "cpu_model": "test", "ram_gib": 1, "python": "3", "git": "x"},
        "options": {"sustained": 60, "smoke": True},
        "brokers": {"embedded": _section("embedded", 80.0), "kafka": _section("kafka", 40.0)},
    }


def _overload_point(bound: str, factor: float, share: float, admitted_p99: float) -> dict[str, Any]:
    return {
        "bound": bound, "factor": factor, "offered_per_s": 1000 * factor, "missing": 0,
        "achieved_per_s": 1000 * share, "goodput_share": share,
        "admitted_latency": {"p50_ms": 100.0, "p99_ms": admitted_p99},
        "start_wait": {"p50_ms": 1.0, "p99_ms": 2.0}, "latency": {"p99_ms": admitted_p99},
    }  # fmt: skip


def _overload() -> dict[str, Any]:
    """Peak 1,000/s at p99 400 ms; with the bound on, 2x keeps 95% at p99 700 ms (met), 3x
    keeps 95% at p99 900 ms (over 2x the peak's p99: not met); the bound off is no target."""
    return {
        "peak_per_s": 1000.0, "peak_offered_per_s": 1000.0, "peak_p99_ms": 400.0, "bound": 1000,
        "points": [
            _overload_point("off", 2, 0.4, 5000.0),
            _overload_point("on", 2, 0.95, 700.0),
            _overload_point("on", 3, 0.95, 900.0),
        ],
    }  # fmt: skip


def test_targets_say_which_figures_meet_each_brokers_issues() -> None:
    results = _results()
    for section in results["brokers"].values():
        section["systems"]["bench"]["overload"] = _overload()
    embedded = {
        (t["issue"], t["target"]): t["met"]
        for t in targets(results["brokers"]["embedded"], results["options"])
    }
    overload_2x = (
        "offered 2x the peak, admission control on: goodput >= 90% of the peak, none missing, "
        "admitted p99 <= 2x the peak's"
    )
    overload_3x = overload_2x.replace("2x the peak,", "3x the peak,")
    assert embedded == {
        ("issue 8", "p99 <= 100 ms at 500 sagas/s offered"): True,
        ("issue 8", ">= 1,500 sagas/s sustained 60 s, none missing"): False,
        ("issue 8", "<= 2,048 bytes of coordinator memory per in-flight saga"): False,
        ("issue 8", "SIGKILL with 1,000 in flight: processing within 15 s, all terminal, none lost"): True,
        ("issue 19", overload_2x): True,
        ("issue 19", overload_3x): False,
    }  # fmt: skip
    # Apache Kafka is held to issue 15 (p99 50 ms at 500/s, 100 ms at 1,000/s, back in 5 s)
    # and to issue 19: half of issue 15's coordinator CPU per saga (1,360 us at 500/s, 759 at
    # 1,000/s), 3,000/s sustained, p99 50 ms at 1,000/s, 2 KiB per saga, and overload.
    kafka = {
        (t["issue"], t["target"]): t["met"]
        for t in targets(results["brokers"]["kafka"], results["options"])
    }
    assert kafka == {
        ("issue 15", "p99 <= 50 ms at 500 sagas/s offered"): True,
        ("issue 15", "p99 <= 100 ms at 1,000 sagas/s offered"): False,
        ("issue 15", ">= 1,500 sagas/s sustained 60 s, none missing"): False,
        ("issue 15", "SIGKILL with 1,000 in flight: processing within 5 s, all terminal, none lost"): True,
        ("issue 19", "p99 <= 50 ms at 1,000 sagas/s offered"): False,
        ("issue 19", "coordinator CPU <= 680 us per bench saga at 500 sagas/s offered"): True,
        ("issue 19", "coordinator CPU <= 380 us per bench saga at 1,000 sagas/s offered"): False,
        ("issue 19", ">= 3,000 sagas/s sustained 60 s, none missing"): False,
        ("issue 19", "<= 2,048 bytes of coordinator memory per in-flight saga"): False,
        ("issue 19", overload_2x): True,
        ("issue 19", overload_3x): False,
    }  # fmt: skip
    measured = {
        t["target"]: t["measured"] for t in targets(results["brokers"]["kafka"], {"sustained": 60})
    }
    assert measured["coordinator CPU <= 380 us per bench saga at 1,000 sagas/s offered"] == (
        "450 us, 0.59x of issue 15's 759 us"
    )
    # a lost saga fails an overload point whatever its goodput
    results["brokers"]["kafka"]["systems"]["bench"]["overload"]["points"][1]["missing"] = 3
    assert not next(
        t["met"]
        for t in targets(results["brokers"]["kafka"], results["options"])
        if t["target"] == overload_2x
    )
    assert message_ratio(
        results["brokers"]["embedded"]["systems"]["bench"]["sweep"][0], {"pipelined_per_s": 40_000}
    ) == (499 * 20 / 40_000)


def test_cpu_per_saga_divides_cpu_seconds_by_the_sagas_of_the_window() -> None:
    usage = {
        "coordinator": procstat.Usage(50.0, 5.0, 10.0, 1, 1, 1),
        "broker": procstat.Usage(20.0, 1.0, 10.0, 1, 1, 1),
        "broker-2": procstat.Usage(20.0, 1.0, 10.0, 1, 1, 1),
    }
    per = cpu_per_saga(usage, {"achieved_per_s": 1000.0})
    # 5 s of coordinator CPU for 10 s x 1,000 sagas/s: 500 us per saga; nodes summed
    assert per == {"coordinator": 500.0, "broker": 200.0}


def test_the_report_shows_both_brokers_side_by_side() -> None:
    text = markdown(_results())
    assert "| figure | embedded 1.0 | kafka 1.0 |" in text
    assert "| bench 500/s: achieved/s, p50 / p99 ms | 499; 40.0 / 80.0 | 499; 20.0 / 40.0 |" in text
    assert "| bench 500/s: CPU us/saga coordinator / broker | 450 / 250 | 450 / 250 |" in text
    assert "#### embedded: embedded 1.0" in text and "#### kafka: kafka 1.0" in text
    assert "| issue | target (kafka) | measured | met |" in text
    assert (
        "| issue 19 | coordinator CPU <= 380 us per bench saga at 1,000 sagas/s offered "
        "| 450 us, 0.59x of issue 15's 759 us | no |"
    ) in text


def test_the_plot_is_drawn(tmp_path: Path) -> None:
    path = plot(_results(), tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_splits_latency_by_outcome() -> None:
    points = [
        {
            "offered_per_s": 500.0,
            "latency_by_outcome": {
                "completed": latency_summary_ms([0.06, 0.07]),
                "compensated": latency_summary_ms([0.08, 0.12]),
            },
        },
        {"offered_per_s": 1000.0},
    ]
    assert outcome_line(points) == (
        "p50/p99 ms by outcome: 500/s: compensated 80.0/120.0, completed 60.0/70.0."
    )


def test_engine_cpu_drives_every_bench_saga_to_its_end(tmp_path: Path) -> None:
    """`bench.engine_cpu` runs a real (unstarted) coordinator until every saga is terminal,
    and times only its own calls: nine in ten complete, one in ten is compensated."""
    from bench.engine_cpu import PREFIX, run_once
    from bench.workload import write_bench_definition

    definitions = write_bench_definition(PREFIX, tmp_path, timeout=900.0)
    result = run_once(definitions, 200, 50, None)
    assert result.sagas == 200
    # a start and four replies per completed saga; compensated: three replies and two undos
    assert result.records == 180 * 5 + 20 * 6
    assert result.batches >= result.records // 50
    assert 0 < result.us_per_saga < 1e6
    # what it writes: a start and an end event, and one per step outcome (undo ones too)
    assert result.produced["saga.lifecycle"] == 180 * 6 + 20 * 6
    assert result.produced["(changelog states)"] == result.records  # one per record in


def test_engine_cpu_times_the_coordinator_under_its_own_gc_policy(tmp_path: Path) -> None:
    """The harness runs the batch step with the collector tuned as a started coordinator
    tunes it (rare young collections, what lived before frozen), so its figure holds no
    collections the coordinator does not pay, and leaves the test process as it was."""
    import gc

    from bench.engine_cpu import PREFIX, run_once
    from bench.workload import write_bench_definition
    from sagas.process.gc_policy import YOUNG_THRESHOLD

    definitions = write_bench_definition(PREFIX, tmp_path, timeout=900.0)
    seen: list[tuple[int, int]] = []
    before = gc.get_threshold()
    run_once(
        definitions,
        20,
        10,
        None,
        lambda *_: seen.append((gc.get_threshold()[0], gc.get_freeze_count())),
    )
    assert seen and all(young == YOUNG_THRESHOLD and frozen > 0 for young, frozen in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_client_cpu_captures_the_coordinators_writes_batch_by_batch() -> None:
    """`bench.client_cpu` writes what the coordinator would, to the partitions it would:
    each batch's commands and lifecycle events, then its states on the changelog."""
    from bench.client_cpu import CHANGELOG, capture
    from events.partitioning import partition_for

    stream = capture(200, 55, 8)
    assert stream.sagas == 200 and len(stream.batches) >= (180 * 5 + 20 * 6) // 55
    states = [r for b in stream.batches for r in b.states]
    outgoing = [r for b in stream.batches for r in b.outgoing]
    assert len(states) == 180 * 5 + 20 * 6  # one per record in
    assert {r.topic for r in states} == {CHANGELOG}
    assert {r.topic.split(".")[-1] for r in outgoing} == {"commands", "lifecycle"}
    for r in [*states, *outgoing]:
        assert r.key is not None and r.partition == partition_for(r.key, 8)


def test_the_cpu_budget_gives_the_rate_the_cores_carry_at_a_points_cost() -> None:
    """Every process's CPU per saga, the launcher and load generator included, sets the rate
    the machine's cores carry at that cost; the same without the coordinator, the rate for a
    coordinator that cost nothing."""
    point = {
        "offered_per_s": 1000.0,
        "cpu_us_per_saga": {
            "coordinator": 750.0, "broker": 450.0, "bench-participant": 250.0,
            "loadgen": 240.0, "bench": 10.0,
        },
    }  # fmt: skip
    b = budget(point, cores=2)
    assert b is not None
    assert (b.total_us, b.others_us) == (1700.0, 950.0)
    assert round(b.ceiling_per_s) == 1176 and round(b.ceiling_without_coordinator_per_s) == 2105
    # replicas are all the coordinator's share
    replicas = {"coordinator-1": 400.0, "coordinator-2": 350.0, "broker": 950.0}
    two = budget({**point, "cpu_us_per_saga": replicas}, cores=2)
    assert two is not None and (two.total_us, two.others_us) == (1700.0, 950.0)
    # nothing to say: no figures, only the coordinator's, or no count of cores
    assert budget({"offered_per_s": 1.0, "cpu_us_per_saga": {"coordinator": 5.0}}, 2) is None
    assert budget({"offered_per_s": 1.0}, 2) is None
    assert budget(point, None) is None and budget(point, 0) is None


def test_the_report_gives_each_points_cpu_budget() -> None:
    text = markdown(_results())
    # 450 + 250 us per saga at every point of `_section`, 2 cores
    assert (
        "CPU budget at 1,000/s: every process 700 us per saga, so 2 cores carry at most "
        "2,857/s at that cost; without the coordinator's share 250 us, at most 8,000/s at "
        "those costs with a coordinator that cost nothing."
    ) in text
    assert "CPU budget at 700/s (sustained): every process 700 us" in text
    assert len(budgets(_results()["brokers"]["kafka"]["systems"]["bench"], 2)) == 3
    console = Console(record=True, width=400)
    print_report(_results(), console)
    shown = console.export_text()
    assert "CPU budget at 500/s: every process 700 us per saga, so 2 cores carry at most" in shown


def test_the_report_counts_coordinator_replicas_as_the_coordinator() -> None:
    results = _results()
    point = results["brokers"]["kafka"]["systems"]["bench"]["sweep"][0]
    point["cpu_percent"] = {
        "coordinator-1": 30.0, "coordinator-2": 25.0, "broker": 40.0, "svc": 7.0,
        "loadgen": 20.0, "bench": 1.0,
    }  # fmt: skip
    text = markdown(results)
    # CPU% coordinator | broker | participants | loadgen
    assert "| 55 | 40 | 7 | 20 |" in text


def _bench_cli(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> tuple[Any, list[Any]]:
    """`python -m bench argv`, its run replaced: (the CLI's result, the options it ran)."""
    import typer
    from typer.testing import CliRunner

    from bench import cli

    ran: list[Any] = []
    monkeypatch.setattr(cli, "run", lambda options, run_dir=None: ran.append(options) or 0)
    app = typer.Typer()
    app.command()(cli.bench)
    return CliRunner().invoke(app, argv), ran


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "starts"),
        (["--starts-on", "control"], "control"),
        (["--starts-on", "starts"], "starts"),
    ],
)
def test_bench_cli_sends_the_bench_starts_where_starts_on_says(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str
) -> None:
    from bench.options import StartsOn

    done, ran = _bench_cli(monkeypatch, ["--smoke", *argv])
    assert done.exit_code == 0, done.output
    (options,) = ran
    assert options.starts_on is StartsOn(expected)


def test_bench_cli_refuses_an_unknown_starts_on_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done, ran = _bench_cli(monkeypatch, ["--smoke", "--starts-on", "saga.triggers"])
    assert done.exit_code == 2 and not ran
    said = " ".join(done.output.replace("│", " ").split())  # unwrapped from rich's box
    assert "'saga.triggers' is not one of 'starts', 'control'" in said


@pytest.mark.parametrize(
    ("starts_on", "expected"),
    [("starts", "b-1.saga.starts"), ("control", "b-1.saga.control")],
)
def test_a_bench_run_takes_its_starts_topic_from_starts_on(starts_on: str, expected: str) -> None:
    """What `bench.system_run.SystemRun` sends the bench saga's starts to, from the enum or
    from its plain value (an `Options` built by hand)."""
    from bench.options import StartsOn
    from bench.workload import starts_topic
    from events.topics import Topics

    topics = Topics.with_prefix("b-1.")
    assert starts_topic(topics, StartsOn(starts_on)) == expected
    assert starts_topic(topics, starts_on) == expected
    with pytest.raises(ValueError, match="'saga.triggers' is not a valid StartsOn"):
        starts_topic(topics, "saga.triggers")


def test_bench_workload_says_when_its_starts_go_to_saga_control() -> None:
    from bench.workload import bench_workload

    on_starts = bench_workload("b-1.", "b-1.saga.starts")
    on_control = bench_workload("b-1.", "b-1.saga.control")
    assert on_starts.start_topic == "b-1.saga.starts"
    assert "saga.control" not in on_starts.description
    assert on_control.start_topic == "b-1.saga.control"
    assert on_control.description.endswith("; started on saga.control")


def test_the_report_says_why_a_park_phase_gave_no_memory_figure() -> None:
    """A park phase that never had every saga started has no figures, only its error: the
    report shows the error and "?" for what was not measured, and does not raise."""
    results = _results()
    error = "only 100 of 1,000 sagas started by the end of the wait (300 s); no memory figure"
    for section in results["brokers"].values():
        bench = section["systems"]["bench"]
        bench["memory"] = {"sagas": 1000, "rss_before_mib": 50, "error": error}
        bench["recovery"] = {"sagas": 1000, "missing": 900, "terminal": 100}
    text = markdown(results)
    assert f"= **? bytes per in-flight saga** ({error})." in text
    assert "SIGKILLed with ? sagas in flight" in text
    console = Console(record=True, width=400)
    print_report(results, console)
    shown = console.export_text()
    assert f"coordinator RSS 50 -> ? MiB = ? bytes per in-flight saga ({error})" in shown
    assert "SIGKILL with ? in flight" in shown


def test_a_park_phase_without_a_memory_figure_is_a_target_not_met() -> None:
    results = _results()
    error = "only 100 of 1,000 sagas started by the end of the wait (300 s); no memory figure"
    section = results["brokers"]["kafka"]
    section["systems"]["bench"]["memory"] = {"sagas": 1000, "rss_before_mib": 50, "error": error}
    rows = {
        t["target"]: t for t in targets(section, results["options"]) if t["issue"] == "issue 19"
    }
    memory = rows["<= 2,048 bytes of coordinator memory per in-flight saga"]
    assert memory["met"] is False
    assert memory["measured"] == f"not measured: {error}"
