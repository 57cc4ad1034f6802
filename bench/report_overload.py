"""The overload points' table (`bench.overload`), for the console and the markdown report."""

from __future__ import annotations

from typing import Any

from rich.table import Table

COLUMNS = (
    "admission",
    "offered/s",
    "x peak",
    "goodput/s",
    "of peak",
    "admitted p99 ms",
    "start wait p50 ms",
    "start wait p99 ms",
    "due-to-end p99 ms",
    "missing",
    "CPU us/saga coordinator",
    "pauses",
)


def rows(overload: dict[str, Any]) -> list[list[str]]:
    out = []
    for p in overload["points"]:
        bound = f"bound {overload['bound']:,}" if p["bound"] == "on" else "off"
        out.append(
            [
                bound,
                f"{p['offered_per_s']:,.0f}",
                f"{p['factor']:g}x",
                f"{p['achieved_per_s']:,.1f}",
                f"{p['goodput_share']:.0%}",
                f"{p['admitted_latency']['p99_ms']}",
                f"{p['start_wait']['p50_ms']}",
                f"{p['start_wait']['p99_ms']}",
                f"{p['latency']['p99_ms']}",
                f"{p['missing']}",
                f"{(p.get('cpu_us_per_saga') or {}).get('coordinator', 0):,.0f}",
                f"{(p.get('admission') or {}).get('pauses', 0):,.0f}",
            ]
        )
    return out


def heading(overload: dict[str, Any]) -> str:
    return (
        f"overload: peak {overload['peak_per_s']:,.1f}/s (at {overload['peak_offered_per_s']:,.0f}"
        f"/s offered, p99 {overload['peak_p99_ms']} ms); admission control off, then on"
    )


def overload_table(name: str, overload: dict[str, Any]) -> Table:
    table = Table(title=f"{name} / {heading(overload)}")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for row in rows(overload):
        table.add_row(*row)
    return table


def overload_markdown(overload: dict[str, Any]) -> list[str]:
    lines = [
        f"Overload: peak {overload['peak_per_s']:,.1f}/s (at {overload['peak_offered_per_s']:,.0f}"
        f"/s offered, p99 {overload['peak_p99_ms']} ms). Goodput: sagas ended per second while "
        "load was offered; admitted p99: from a saga's admission (saga.started) to its end; "
        "start wait: from when a start was due to its admission.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---:|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(overload)]
    return [*lines, ""]
