"""`sagas tail` ends with one line when Kafka dies: a connection the broker reset, left
in an aiokafka future nobody awaits, is not dumped on stderr by asyncio's handler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from sagas.cli.ops_cmd import drop_lost_connections


@pytest.fixture
def filtered() -> Iterator[logging.Logger]:
    logger = logging.getLogger("asyncio")
    logger.addFilter(drop_lost_connections)
    yield logger
    logger.removeFilter(drop_lost_connections)


def test_a_reset_connection_never_retrieved_is_dropped_and_other_errors_still_logged(
    filtered: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            # what asyncio does when a future whose exception nobody read is collected
            loop.call_exception_handler(
                {"message": "Future exception was never retrieved",
                 "exception": ConnectionResetError(104, "Connection reset by peer")}
            )  # fmt: skip
            assert caplog.records == []
            loop.call_exception_handler(
                {"message": "Task exception was never retrieved", "exception": ValueError("bug")}
            )
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    assert [r.getMessage().splitlines()[0] for r in caplog.records] == [
        "Task exception was never retrieved",
        "something else",
    ]
