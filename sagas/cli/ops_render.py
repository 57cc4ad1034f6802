"""How `sagas status`, `list` and `tail` show things: pure functions from JSON to text.

They take what the HTTP API (or the lifecycle topic) says and return rich
renderables or one-line strings, so they are tested without a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape as _markup_escape
from rich.table import Table
from rich.text import Text


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``, ``\\n``): ids and
    values come from Kafka and must not move the cursor, clear the screen or split a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def escape(text: str) -> str:
    """Printable (`printable`) and free of rich markup."""
    return _markup_escape(printable(text))


STATUS_STYLE = {
    "running": "cyan",
    "compensating": "yellow",
    "completed": "green",
    "compensated": "magenta",
    "failed": "bold red",
    "aborted": "red",
    "pending": "dim",
    "waiting_retry": "yellow",
    "succeeded": "green",
    "timed_out": "red",
    "cancelled": "dim red",
    "compensation_failed": "bold red",
    "skipped": "dim magenta",
}

LIFECYCLE_STYLE = {
    "saga.started": "cyan",
    "saga.step.succeeded": "green",
    "saga.step.failed": "red",
    "saga.compensating": "yellow",
    "saga.completed": "bold green",
    "saga.compensated": "bold magenta",
    "saga.failed": "bold red",
    "saga.aborted": "bold red",
}


def styled(status: str | None) -> Text:
    value = status or "-"
    return Text(value, style=STATUS_STYLE.get(value, ""))


def clock(stamp: str | None) -> str:
    """``2024-05-01T12:00:00.123Z`` -> ``12:00:00.123`` (the date is in the header)."""
    if not stamp:
        return "-"
    return stamp[11:23] if len(stamp) >= 23 else stamp


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def saga_status(detail: Mapping[str, Any]) -> RenderableType:
    """`sagas status ID`: a header, the steps, the context and the history."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("saga", f"{escape(str(detail['saga']))} v{detail['version']}")
    head.add_row("id", escape(str(detail["id"])))
    status = styled(detail["status"])
    if detail.get("current_steps"):
        status.append(printable(f"  at {', '.join(detail['current_steps'])}"), style="")
    head.add_row("status", status)
    if detail.get("needs_operator"):
        why = Text(printable(str(detail["needs_operator"])), style="bold red")
        head.add_row("needs operator", why)
    head.add_row("phase", str(detail.get("phase")))
    head.add_row("started", str(detail.get("started_at") or "-"))
    if detail.get("finished_at"):
        head.add_row(
            "finished",
            f"{detail['finished_at']}  ({seconds(detail.get('duration_seconds'))})",
        )
    for label, key in (("failure", "failure"), ("abort reason", "abort_reason")):
        if detail.get(key):
            head.add_row(label, Text(printable(str(detail[key])), style="red"))
    if detail.get("context"):
        head.add_row("context", _context(detail["context"]))
    if detail.get("served_by"):
        head.add_row("served by", Text(str(detail["served_by"]), style="dim"))

    steps = Table(title="steps", title_justify="left", expand=False)
    for column in ("#", "step", "status", "attempts", "undo", "started", "took", "outcome"):
        steps.add_column(column)
    for step in detail.get("steps", []):
        outcome = step.get("outcome") or ""
        if step.get("compensation_outcome"):
            outcome += f"  undo: {step['compensation_outcome']}"
        name = step["name"] + (" (pivot)" if step.get("pivot") else "")
        steps.add_row(
            str(step["index"]),
            escape(name),
            styled(step["status"]),
            f"{step['attempts']}/{step.get('max_attempts', '?')}",
            str(step.get("compensation_attempts") or "-"),
            clock(step.get("started_at")),
            seconds(step.get("duration_seconds")),
            escape(outcome),
        )

    history = Table(title="history", title_justify="left", expand=False)
    for column in ("at", "event", "step", "detail"):
        history.add_column(column)
    for entry in detail.get("history", []):
        history.add_row(
            clock(entry.get("at")),
            Text(entry["event"], style=LIFECYCLE_STYLE.get(entry["event"], "")),
            escape(entry.get("step") or ""),
            escape(entry.get("detail") or ""),
        )
    parts: list[RenderableType] = [head, steps]
    if detail.get("timers"):
        timers = ", ".join(
            f"{t['kind']} {t['step']} ({t['phase']} #{t['attempt']}) at {clock(t['due'])}"
            for t in detail["timers"]
        )
        parts.append(Text(f"pending timers: {timers}", style="dim"))
    parts.append(history)
    return Group(*parts)


def _context(context: Mapping[str, Any], width: int = 100) -> str:
    import orjson

    text = orjson.dumps(context).decode()
    return escape(text if len(text) <= width else text[: width - 1] + "…")


def saga_list(rows: Sequence[Mapping[str, Any]]) -> Table:
    """`sagas list`: one row per saga, newest first (ids never cut: they are for copying)."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("saga", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("at step")
    table.add_column("started", no_wrap=True)
    table.add_column("failure", overflow="ellipsis", no_wrap=True, max_width=40)
    for row in rows:
        started = (row.get("started_at") or "-").replace("T", " ")
        status = styled(row["status"])
        if row.get("needs_operator"):  # a record of it raised: `sagas status` says which
            status.append(" !", style="bold red")
        table.add_row(
            escape(str(row["id"])),
            escape(f"{row['saga']} v{row['version']}"),
            status,
            escape(", ".join(row.get("current_steps") or []) or "-"),
            started[5:19] if len(started) >= 19 else started,
            escape(row.get("failure") or ""),
        )
    return table


def tail_line(
    event_type: str, saga_id: str, data: Mapping[str, Any], time: datetime | None
) -> Text:
    """One lifecycle event as one readable line (`sagas tail`)."""
    stamp = (time or datetime.now(UTC)).astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    line = Text(f"{stamp}  ")
    line.append(f"{printable(event_type):<20}", style=LIFECYCLE_STYLE.get(event_type, ""))
    line.append(f"  {printable(str(data.get('saga', '?')))}  {printable(saga_id)}")
    if data.get("step"):
        line.append(f"  step={printable(str(data['step']))}")
    if data.get("status"):
        line.append("  status=")
        line.append_text(styled(printable(str(data["status"]))))
    for key in ("reason", "resolved", "phase"):
        if data.get(key):
            shown = printable(str(data[key]))
            line.append(f"  {key}={shown}", style="dim" if key == "phase" else "")
    return line
