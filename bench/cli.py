"""The benchmark's command line, shared by ``python -m bench`` and ``sagas bench``.

python -m bench              # the full run: < 10 minutes, writes bench/results/*.json
python -m bench --smoke      # seconds: a few sagas through every phase
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from bench.options import FULL, SMOKE, Options, StartsOn


def _rates(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        rates = tuple(float(r) for r in text.split(",") if r.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise typer.BadParameter("rates must be positive")
    return tuple(sorted(rates))


def _brokers(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    from bench.brokers import BROKERS

    names = tuple(b.strip() for b in text.split(",") if b.strip())
    unknown = [b for b in names if b not in BROKERS[:2]]
    if not names or unknown:
        raise typer.BadParameter(f"expected embedded and/or kafka, got {text!r}")
    return names


def _guarantees(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    from sagas.kafka.guarantee import GUARANTEES

    names = tuple(dict.fromkeys(g.strip() for g in text.split(",") if g.strip()))
    unknown = [g for g in names if g not in GUARANTEES]
    if not names or unknown:
        raise typer.BadParameter(f"expected {' and/or '.join(GUARANTEES)}, got {text!r}")
    return names


def bench(
    smoke: bool = typer.Option(False, "--smoke", help="Seconds instead of minutes (for tests)."),
    rates: str | None = typer.Option(
        None, help="Offered loads of the sweep, sagas/s, e.g. 100,250,500,1000,2000."
    ),
    duration: float | None = typer.Option(None, help="Seconds of load per sweep point."),
    sustained: float | None = typer.Option(None, help="Seconds of the sustained run (0: skip)."),
    park: int | None = typer.Option(
        None, help="Sagas parked for the memory and recovery phases (0: skip both)."
    ),
    services: bool | None = typer.Option(
        None,
        "--services/--no-services",
        help="Also sweep the order saga with the four reference services.",
    ),
    services_rates: str | None = typer.Option(None, help="Offered loads for the services sweep."),
    profile: float | None = typer.Option(
        None, help="Seconds of py-spy on the coordinator during the sustained run (0: none)."
    ),
    overload: str | None = typer.Option(
        None,
        help="Overload points as multiples of the sweep's peak, e.g. 2,3 (admission control "
        "off, then on); 'none' for no overload points.",
    ),
    overload_bound: int | None = typer.Option(
        None,
        min=1,
        help="SAGAS_MAX_IN_FLIGHT of the overload points' 'on' half (default: "
        "the coordinator's default).",
    ),
    starts_on: StartsOn | None = typer.Option(
        None,
        help="Where the bench saga's starts go in the sweep, the sustained run, the "
        "guarantees comparison and the park phase: starts (saga.starts, SagaClient's way; "
        "the default) or control (saga.control, the HTTP API's way).",
    ),
    partitions: int | None = typer.Option(
        None,
        min=1,
        help="Partitions per topic of the systems under test (default: SAGAS_PARTITIONS "
        "if set, else 1: one per coordinator replica, and the bench runs one).",
    ),
    broker: str | None = typer.Option(
        None,
        help="Brokers to measure, comma-separated, each in a section of its own: embedded "
        "(Tansu), kafka (Apache Kafka, started here; needs Java 17 and Maven). Default: "
        "embedded,kafka (--smoke: embedded). KAFKA_BOOTSTRAP_SERVERS replaces them.",
    ),
    guarantees: str | None = typer.Option(
        None,
        help="Also compare processing guarantees on each broker with transactions, e.g. "
        "at_least_once,exactly_once: the bench saga at --guarantee-rate, fresh processes "
        "per point, --guarantee-runs rounds (bench/guarantees.py).",
    ),
    guarantee_rate: float | None = typer.Option(
        None, min=1, help="Offered sagas/s of the guarantee comparison."
    ),
    guarantee_runs: int | None = typer.Option(
        None, min=1, help="Rounds of the guarantee comparison (spread over rounds)."
    ),
    results_dir: Path | None = typer.Option(None, help="Where the JSON results go."),
    plot: Path | None = typer.Option(None, help="Where the latency/throughput PNG goes."),
    run_dir: Path | None = typer.Option(
        None, help="Folder for the processes' logs (default: bench/results/run-<time>)."
    ),
) -> None:
    """Measure the broker's ceiling, then the whole system under an open-loop load sweep,
    its memory per in-flight saga and its recovery from a SIGKILL; print a table, write
    JSON and a latency-vs-throughput plot.

    Measures each broker of --broker side by side (embedded Tansu, then Apache Kafka);
    KAFKA_BOOTSTRAP_SERVERS, if set, is measured instead.
    """
    options: Options = SMOKE if smoke else FULL
    changes: dict[str, Any] = {
        "rates": _rates(rates),
        "duration": duration,
        "sustained": sustained,
        "park": park,
        "services": services,
        "services_rates": _rates(services_rates),
        "profile": profile,
        "partitions": partitions,
        "overload": () if overload == "none" else _rates(overload),
        "overload_bound": overload_bound,
        "starts_on": starts_on,
        "results_dir": results_dir,
        "plot": plot,
        "brokers": _brokers(broker),
        "guarantees": _guarantees(guarantees),
        "guarantee_rate": guarantee_rate,
        "guarantee_runs": guarantee_runs,
    }
    options = replace(options, **{k: v for k, v in changes.items() if v is not None})
    raise typer.Exit(run(options, run_dir))


def run(options: Options, run_dir: Path | None = None) -> int:
    import sys

    from rich.console import Console

    from bench.report import print_report, write_json, write_markdown
    from bench.report_plot import plot as draw
    from bench.run import BenchRun

    # a pipe (CI, `make test`, tee) gets wide tables rather than truncated columns
    console = Console() if sys.stdout.isatty() else Console(width=170)
    logging.basicConfig(level=logging.WARNING)
    folder = run_dir or options.results_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    kind = "smoke" if options.smoke else "full"
    console.print(f"[bold]sagastream benchmark[/] ({kind}); logs in {folder}")
    results = asyncio.run(BenchRun(options, console.print, folder).run())
    results["run_dir"] = str(folder)
    path = write_json(results, options.results_dir)
    print_report(results, console)
    console.print(f"results: {path} (and {write_markdown(results, path)})")
    if options.plot is not None:
        console.print(f"plot: {draw(results, options.plot)}")
    return 0


def main() -> None:
    typer.run(bench)
