"""At-least-once against exactly-once, in one run, on the same broker.

    python -m bench --broker kafka --guarantees at_least_once,exactly_once ...

For each of ``Options.guarantee_runs`` rounds, the bench saga runs at
``Options.guarantee_rate`` sagas/s for ``Options.duration`` seconds once per
guarantee (alternating, so that a drift of the machine's load hits both), each
time on fresh processes and topics of the same broker with
``SAGAS_PROCESSING_GUARANTEE`` set for every process: the coordinator, the
bench participant and the load generator (the last two then read
``read_committed``). Per point: achieved sagas/s, latency percentiles, CPU per
saga of every process (from /proc). The summary gives, per guarantee, the
median and the spread (min-max) over the rounds, and exactly_once's ratios to
at_least_once. The embedded broker has no transactions: skipped there.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from bench.brokers import BrokerUnderTest
from bench.options import Options
from sagas.kafka.guarantee import GUARANTEE_VARIABLE

__all__ = ["compare_guarantees", "summarise"]


class BenchRun(Protocol):
    """What the comparison uses of `bench.run.BenchRun` (named here, so that `bench.run`,
    which calls it, is not imported back)."""

    o: Options
    say: Callable[..., Any]

    def fresh_system(
        self,
        name: str,
        label: str,
        out: dict[str, Any],
        broker: BrokerUnderTest,
        coordinator_env: dict[str, str] | None = None,
        via_trigger: bool = False,
    ) -> AbstractAsyncContextManager[Any]: ...


#: the figures compared: (name in the summary, how to read it from a point)
FIGURES = (
    ("sagas_per_s", lambda p: p["achieved_per_s"]),
    ("p50_ms", lambda p: p["latency"]["p50_ms"]),
    ("p99_ms", lambda p: p["latency"]["p99_ms"]),
    ("coordinator_us_per_saga", lambda p: p["cpu_us_per_saga"].get("coordinator", 0.0)),
    ("broker_us_per_saga", lambda p: p["cpu_us_per_saga"].get("broker", 0.0)),
    ("participant_us_per_saga", lambda p: p["cpu_us_per_saga"].get("bench-participant", 0.0)),
)


async def compare_guarantees(run: BenchRun, broker: BrokerUnderTest) -> dict[str, Any]:
    """Run the rounds; the points per guarantee and their `summarise`."""
    o = run.o
    if broker.name == "embedded":
        run.say("[bold]guarantees[/]: skipped (the embedded broker has no transactions)")
        return {"skipped": "the embedded broker has no Kafka transactions"}
    run.say(
        f"[bold]guarantees[/]: bench saga at {o.guarantee_rate:g}/s for {o.duration:g} s, "
        f"{', '.join(o.guarantees)}, {o.guarantee_runs} round(s)"
    )
    points: dict[str, list[dict[str, Any]]] = {g: [] for g in o.guarantees}
    out: dict[str, Any] = {"rate": o.guarantee_rate, "points": points, "phase_seconds": {}}
    before = os.environ.get(GUARANTEE_VARIABLE)
    try:
        for round_ in range(o.guarantee_runs):
            for guarantee in o.guarantees:
                # read by every process the launcher and the load generator start
                os.environ[GUARANTEE_VARIABLE] = guarantee
                label = f"{guarantee}-{round_ + 1}"
                async with run.fresh_system("bench", label, out, broker) as phase:
                    points[guarantee].append(
                        await phase.point(o.guarantee_rate, o.duration, guarantee)
                    )
    finally:
        if before is None:
            os.environ.pop(GUARANTEE_VARIABLE, None)
        else:
            os.environ[GUARANTEE_VARIABLE] = before
    out["summary"] = summarise(points)
    for line in summary_lines(out["summary"]):
        run.say(f"  {line}")
    return out


def summarise(points: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per guarantee and figure: median, min, max over the rounds; and the ratios of
    exactly_once's medians to at_least_once's."""
    summary: dict[str, Any] = {}
    for guarantee, runs in points.items():
        summary[guarantee] = {
            name: _spread([float(read(p)) for p in runs]) for name, read in FIGURES if runs
        }
    base, eos = summary.get("at_least_once"), summary.get("exactly_once")
    if base and eos:
        summary["ratio_exactly_once"] = {
            name: round(eos[name]["median"] / base[name]["median"], 2)
            for name, _ in FIGURES
            if base.get(name) and base[name]["median"]
        }
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for guarantee in ("at_least_once", "exactly_once"):
        s = summary.get(guarantee)
        if not s:
            continue
        lines.append(
            f"{guarantee}: {_show(s['sagas_per_s'], '/s')}; p50 {_show(s['p50_ms'], ' ms')}, "
            f"p99 {_show(s['p99_ms'], ' ms')}; CPU per saga: coordinator "
            f"{_show(s['coordinator_us_per_saga'], ' us')}, broker "
            f"{_show(s['broker_us_per_saga'], ' us')}, participant "
            f"{_show(s['participant_us_per_saga'], ' us')}"
        )
    ratio = summary.get("ratio_exactly_once")
    if ratio:
        lines.append(
            "exactly_once / at_least_once (medians): "
            + ", ".join(f"{name} x{value:g}" for name, value in ratio.items())
        )
    return lines


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def _show(spread: dict[str, float], unit: str) -> str:
    if spread["min"] == spread["max"]:
        return f"{spread['median']:g}{unit}"
    return f"{spread['median']:g}{unit} ({spread['min']:g}-{spread['max']:g})"
