"""CLI output escapes control characters (issue 17): saga ids and values come from Kafka
(where ids were not checked before the id grammar) and used to reach the terminal raw,
so an id could clear the screen or forge a line of `sagas list`, `status` or `tail`."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from sagas.cli.ops_render import saga_list, saga_status, tail_line

EVIL = "o-1\x1b[2J\rFORGED\nline"


def shown(renderable: object, *, soft_wrap: bool = False, width: int = 300) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable, soft_wrap=soft_wrap)
    return out.getvalue()


def row() -> dict[str, object]:
    return {"id": EVIL, "saga": "order", "version": 1, "status": "failed",
            "started_at": None, "updated_at": None, "current_steps": ["pay\x07"],
            "failure": "declined\x1b[31m"}  # fmt: skip


def test_sagas_list_shows_control_characters_in_ids_escaped() -> None:
    text = shown(saga_list([row()]))
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b[2J\\rFORGED\\nline" in text


def test_sagas_status_shows_control_characters_escaped() -> None:
    detail = {**row(), "terminal": True, "phase": "backward", "context": {}, "steps": [],
              "history": [{"at": None, "event": "x", "step": "s\x1b", "detail": "d\n"}],
              "timers": [], "compensation_plan": [], "finished_at": None,
              "duration_seconds": None, "abort_reason": None}  # fmt: skip
    text = shown(saga_status(detail))
    assert "\x1b" not in text and "\\x1b" in text


def test_sagas_tail_prints_one_line_per_event_escaped_and_unwrapped() -> None:
    data = {"saga": "order", "step": "pay\x1b[2J", "reason": "declined " * 40}
    line = tail_line("saga.step.failed", EVIL, data, datetime(2026, 1, 1, tzinfo=UTC))
    text = shown(line, soft_wrap=True, width=80)  # as `sagas tail` prints, piped or not
    assert text.count("\n") == 1 and "\x1b" not in text and "\\x1b[2J" in text
