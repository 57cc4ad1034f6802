"""What the demo prints at the end: rich tables built from a `RunResult`.

Durations are those of the lifecycle events (``saga.started`` to the terminal
event, both stamped by the coordinator), so they measure the saga, not the
demo's view of it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from services.demo.checks import Check
from services.demo.drive import RunResult


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    pid: int | None
    metrics_url: str | None
    metrics_status: int | None  # HTTP status of GET /metrics at the end of the run


OUTCOMES = ("completed", "compensated", "failed", "aborted")
MAX_PROBLEMS = 25


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def outcome_table(result: RunResult) -> Table:
    table = Table(title="Sagas by outcome", title_justify="left")
    for col in ("outcome", "sagas", "share", "p50", "p95", "p99"):
        table.add_column(col, justify="left" if col == "outcome" else "right")
    durations: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for order in result.orders:
        t = result.trace(order)
        outcome = t.outcome or "not ended"
        counts[outcome] += 1
        if t.duration is not None:
            durations[outcome].append(t.duration)
            durations["all"].append(t.duration)
    total = len(result.orders)
    for outcome in (*OUTCOMES, "not ended"):
        if counts[outcome] or outcome in ("completed", "compensated"):
            d = durations[outcome]
            share = f"{counts[outcome] / total:.1%}" if total else "-"
            row = [_secs(percentile(d, p)) for p in (50, 95, 99)]
            table.add_row(outcome, str(counts[outcome]), share, *row)
    d = durations["all"]
    table.add_section()
    table.add_row(
        "all", str(total), "100%", *(_secs(percentile(d, p)) for p in (50, 95, 99)), style="bold"
    )
    return table


def failure_table(result: RunResult) -> Table:
    table = Table(title="Why sagas did not complete (first failed step)", title_justify="left")
    table.add_column("step")
    table.add_column("reason")
    table.add_column("sagas", justify="right")
    reasons: Counter[tuple[str, str]] = Counter()
    for order in result.orders:
        t = result.trace(order)
        if t.outcome and t.outcome != "completed" and t.failed:
            step, reason = t.failed[0]
            reasons[(step, _reason_kind(reason))] += 1
    for (step, reason), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(step, reason, str(n))
    return table


def compensation_table(result: RunResult) -> Table:
    table = Table(title="Compensations by step", title_justify="left")
    for col in ("step", "compensation", "sagas", "commands sent"):
        table.add_column(col, justify="left" if col in ("step", "compensation") else "right")
    sagas: Counter[tuple[str, str]] = Counter()
    commands: Counter[tuple[str, str]] = Counter()
    for order in result.orders:
        t = result.trace(order)
        for step in t.compensated_steps():
            kind = next(c.type for c in t.compensations if c.step == step)
            sagas[(step, kind)] += 1
        for c in t.compensations:
            commands[(c.step, c.type)] += 1
    for key in sorted(sagas, key=lambda k: -sagas[k]):
        table.add_row(key[0], key[1], str(sagas[key]), str(commands[key]))
    if not sagas:
        table.add_row("-", "-", "0", "0")
    return table


def throughput_table(result: RunResult, wall: float) -> Table:
    table = Table(title="Throughput", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    n = len(result.orders)
    placing = max(result.placed_until - result.placed_from, 1e-9)
    table.add_row(
        "orders placed",
        f"{n} in {placing:.1f} s ({n / placing:.1f}/s, asked {result.scenario.rate:g}/s)",
    )
    traces = [result.trace(o) for o in result.orders]
    starts = [t.started_at for t in traces if t.started_at is not None]
    ends = [t.ended_at for t in traces if t.ended_at is not None]
    if starts and ends:
        span = max(max(ends) - min(starts), 1e-9)
        table.add_row("sagas finished", f"{len(ends)} in {span:.1f} s ({len(ends) / span:.1f}/s)")
    table.add_row("wall time (start to checked)", f"{wall:.1f} s")
    return table


def process_table(result: RunResult, processes: Sequence[ProcessInfo]) -> Table:
    table = Table(title="Processes (Prometheus /metrics)", title_justify="left")
    table.add_column("process")
    table.add_column("pid", justify="right")
    table.add_column("/metrics", no_wrap=True)
    table.add_column("HTTP", justify="right")
    for p in processes:
        status = "no answer" if p.metrics_status is None else str(p.metrics_status)
        table.add_row(p.name, str(p.pid or "-"), p.metrics_url or "-", status)
    return table


def checks_table(checks: Sequence[Check]) -> Group:
    table = Table(title="Invariants", title_justify="left")
    table.add_column("", width=2)
    table.add_column("check")
    table.add_column("result")
    for c in checks:
        mark = Text("✓", style="bold green") if c.ok else Text("✗", style="bold red")
        table.add_row(mark, c.name, c.summary)
    details = []
    for c in checks:
        if c.ok:
            continue
        details.append(Text(f"{c.name}: {len(c.problems)} problem(s)", style="bold red"))
        for line in c.problems[:MAX_PROBLEMS]:
            details.append(Text(f"  - {line}"))
        if len(c.problems) > MAX_PROBLEMS:
            details.append(Text(f"  ... and {len(c.problems) - MAX_PROBLEMS} more"))
    return Group(table, *details)


def print_report(
    console: Console, result: RunResult, *, wall: float, processes: Sequence[ProcessInfo]
) -> None:
    console.print(outcome_table(result))
    console.print(failure_table(result))
    console.print(compensation_table(result))
    console.print(throughput_table(result, wall))
    console.print(process_table(result, processes))
    console.print(checks_table(result.checks))


def _reason_kind(reason: str) -> str:
    """``"payment.declined: credit limit exceeded for c: limit 5"`` -> up to the 2nd colon."""
    return ":".join(reason.split(":")[:2]).strip() or "(no reason given)"
