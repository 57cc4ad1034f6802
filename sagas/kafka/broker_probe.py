"""Is a Kafka broker up? A TCP connect, then a metadata request that must be answered.

Used while an embedded broker starts (`sagas.kafka.embedded_broker`): each check
returns None when it passed, else the error that says why not yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["metadata_refused", "run_blocking", "tcp_refused", "tcp_refused_async"]

PROBE_REQUEST_TIMEOUT_MS = 2000
_T = TypeVar("_T")


def tcp_refused(host: str, port: int) -> OSError | None:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return None
    except OSError as exc:
        return exc


async def tcp_refused_async(host: str, port: int) -> Exception | None:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=0.5)
    except (TimeoutError, OSError) as exc:
        return exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def metadata_refused(client_kwargs: dict[str, Any]) -> Exception | None:
    """None once the broker answers a metadata request (list topics) with these settings."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_kwargs, request_timeout_ms=PROBE_REQUEST_TIMEOUT_MS)
    try:
        await asyncio.wait_for(admin.start(), PROBE_REQUEST_TIMEOUT_MS / 1000 + 1)
        await asyncio.wait_for(admin.list_topics(), PROBE_REQUEST_TIMEOUT_MS / 1000 + 1)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
        return exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion from sync code, even when this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[_T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            errors.append(exc)

    thread = threading.Thread(target=target, name="embedded-broker-probe", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
