"""Log lines a person or a log pipeline can follow saga by saga.

Two formats, chosen by ``--log-format`` or ``SAGAS_LOG_FORMAT``:

* ``text``: ``2024-05-01T12:00:00.123Z INFO sagas.coordinator: saga.completed saga_id=... step=...``
* ``json``: one JSON object per line::

    {"ts": "2024-05-01T12:00:00.123Z", "level": "info", "logger": "sagas.coordinator",
     "msg": "saga.step.succeeded", "saga_id": "9f0c...", "step": "reserve_inventory",
     "saga": "order"}

A line about a saga is logged with ``extra=saga_fields(saga_id, step, ...)``; such a
line always carries both ``saga_id`` and ``step`` (``null`` when the line is about
the saga as a whole), so ``jq 'select(.saga_id == "...")'`` finds its whole story.
"""

from __future__ import annotations

import logging
import logging.config
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

FORMATS = ("text", "json")

#: LogRecord attributes that are not extra fields.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
#: Fields every line about a saga has, in this order, right after the message.
_SAGA_KEYS = ("saga_id", "step")


def saga_fields(saga_id: str | None, step: str | None = None, **more: Any) -> dict[str, Any]:
    """The ``extra`` of a log call about one saga (and, when known, one of its steps)."""
    return {"saga_id": saga_id, "step": step, **more}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    if "saga_id" in extras:
        extras.setdefault("step", None)
    return extras


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extras = _extras(record)
        for key in _SAGA_KEYS:
            if key in extras:
                line[key] = extras.pop(key)
        line.update(extras)
        if record.exc_info:
            line["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            line["exc"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: message key=value ...`` with saga_id and step first."""

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        ordered = [(k, extras.pop(k)) for k in _SAGA_KEYS if k in extras] + sorted(extras.items())
        tail = "".join(f" {k}={v}" for k, v in ordered if v is not None)
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}{tail}"
        if record.exc_info:
            line += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return line


def check_format(log_format: str) -> str:
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    return log_format


def logging_config(level: str | int, log_format: str = "text") -> dict[str, Any]:
    """A `logging.config.dictConfig` dict: every logger to stdout in ``log_format``."""
    formatter = JsonFormatter if check_format(log_format) == "json" else TextFormatter
    level_name = logging.getLevelName(level) if isinstance(level, int) else level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sagas": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "sagas": {
                "class": "logging.StreamHandler",
                "formatter": "sagas",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level_name, "handlers": ["sagas"]},
    }


def configure(level: str | int = "info", log_format: str = "text") -> None:
    """Set up logging for a process: stdout, in ``log_format`` (text or json)."""
    logging.config.dictConfig(logging_config(level, log_format))
