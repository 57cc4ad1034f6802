"""Structured logs: one JSON object per line, saga_id and step on every line about a saga."""

from __future__ import annotations

import logging
import logging.config

import orjson
import pytest

from sagas.logs import JsonFormatter, TextFormatter, logging_config, saga_fields


def _record(msg: str, *args: object, extra: dict[str, object] | None = None) -> logging.LogRecord:
    logger = logging.getLogger("sagas.test")
    return logger.makeRecord("sagas.test", logging.INFO, __file__, 1, msg, args, None, extra=extra)


def test_json_line_about_a_saga_carries_saga_id_and_step() -> None:
    line = JsonFormatter().format(
        _record("%s", "saga.step.failed", extra=saga_fields("s-1", "charge", saga="order"))
    )
    assert "\n" not in line
    record = orjson.loads(line)
    assert record["msg"] == "saga.step.failed" and record["level"] == "info"
    assert record["saga_id"] == "s-1" and record["step"] == "charge" and record["saga"] == "order"
    assert record["logger"] == "sagas.test" and record["ts"].endswith("Z")
    assert list(record)[:6] == ["ts", "level", "logger", "msg", "saga_id", "step"]


def test_a_line_about_a_whole_saga_has_a_null_step_and_other_lines_no_saga_keys() -> None:
    whole = orjson.loads(JsonFormatter().format(_record("done", extra={"saga_id": "s-2"})))
    assert whole["saga_id"] == "s-2" and whole["step"] is None
    other = orjson.loads(JsonFormatter().format(_record("worker ready")))
    assert "saga_id" not in other and "step" not in other


def test_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in orjson.loads(line)["exc"]


def test_text_lines_put_saga_id_and_step_first() -> None:
    line = TextFormatter().format(
        _record("saga.completed", extra=saga_fields("s-3", None, saga="order", topic="t"))
    )
    assert line.endswith("INFO sagas.test: saga.completed saga_id=s-3 saga=order topic=t")


def test_logging_config_routes_every_logger_through_the_formatter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(logging_config("info", "json"))
        logging.getLogger("sagas.coordinator").info("x", extra=saga_fields("s-4", "pay"))
        logging.getLogger("aiokafka.consumer").warning("plain")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["logger"], r.get("saga_id")) for r in lines] == [
        ("sagas.coordinator", "s-4"),
        ("aiokafka.consumer", None),
    ]
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        logging_config("info", "xml")
