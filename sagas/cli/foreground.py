"""Running one process in the foreground (`sagas service`, `sagas bridge`, `sagas worker`).

What the commands share: the log format, Kafka settings from the environment only,
serving until SIGTERM or Ctrl-C, and errors shown to a person as one line and exit
code 2 rather than a traceback. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from sagas.kafka.kafka_settings import KafkaSettings
    from sagas.participants.participant import Participant


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def kafka_failure(exc: BaseException) -> str | None:
    """One line saying why Kafka could not be reached or refused us, or None for any other
    error."""
    from sagas.kafka.authorization_failure import (
        explain_authorization_failure,
        is_authorization_failure,
    )
    from sagas.kafka.connection_failure import explain_connection_failure, is_connection_failure
    from sagas.kafka.kafka_settings import KafkaSettings

    if is_authorization_failure(exc):
        return str(explain_authorization_failure(exc, KafkaSettings()))
    if not is_connection_failure(exc):
        return None
    return str(explain_connection_failure(exc, KafkaSettings()))


#: seconds a one-shot command (`sagas start`, `load`) waits to reach Kafka
CONNECT_TIMEOUT = 15.0


def quiet_kafka_client_logs() -> None:
    """aiokafka logs each failed connection attempt; a one-shot command says it in one
    line (`kafka_failure`) instead."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL + 1)


@contextlib.contextmanager
def kafka_client_logs_held_back() -> Iterator[None]:
    """`quiet_kafka_client_logs` for a while (a process's preparation, whose failure is
    said in one line), then aiokafka logs as before."""
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    quiet_kafka_client_logs()
    try:
        yield
    finally:
        client_log.setLevel(level)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def kafka_from_environment() -> KafkaSettings:
    """``KAFKA_*`` settings; fails when no broker is named."""
    from sagas.kafka.kafka_settings import KafkaSettings

    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        fail(
            "KAFKA_BOOTSTRAP_SERVERS is not set; start a broker (`sagas broker`) and point "
            "KAFKA_BOOTSTRAP_SERVERS at it"
        )
    return kafka


def prepare_until_signal(work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``work()`` (what a process does before it serves: topics, checks) with SIGTERM
    and SIGINT already handled: either cancels it and exits 0 with one line, within
    `PREPARE_STOP_GRACE` seconds even if a Kafka client holds on to the cancellation."""
    import os

    async def main() -> bool:
        task = asyncio.ensure_future(work())
        asked = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, asked.set)
        waiting = asyncio.ensure_future(asked.wait())
        try:
            await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
            if not asked.is_set():
                task.result()  # its error, if it failed
                return False
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=PREPARE_STOP_GRACE)
            if not done:
                typer.echo(f"{what} stopped before it started", err=True)
                os._exit(0)  # a client swallowed the cancellation: nothing is in hand yet
            return True
        finally:
            waiting.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    if asyncio.run(main()):
        typer.echo(f"{what} stopped before it started", err=True)
        raise typer.Exit(0)


#: seconds a process may take to stop on SIGTERM before it serves (see `prepare_until_signal`)
PREPARE_STOP_GRACE = 3.0


def serve_until_signal(participant: Participant[Any], what: str) -> None:
    """Serve ``participant`` until SIGTERM or SIGINT (see `run_until_signal`)."""
    run_until_signal(participant.serve, what)


def run_until_signal(serve: Callable[[asyncio.Event], Awaitable[None]], what: str) -> None:
    """Run ``serve(stop)`` until SIGTERM or SIGINT sets ``stop``.

    A broker, network or client error ends the process with ``error: <what> stopped:
    <error>`` (exit code 2); any other error propagates with its traceback.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        asyncio.run(main())
    except Exception as exc:  # shown to a person: what stopped it, not a traceback
        from sagas.kafka.guarantee import GuaranteeError, TransactionsUnsupported
        from sagas.kafka.transaction_failures import (
            EXIT_RESTART,
            ReplicaFenced,
            TransactionInDoubt,
        )

        if isinstance(exc, TransactionInDoubt):  # not a mistake: a restart resumes
            typer.echo(f"error: {what} stopped: {exc}", err=True)
            raise typer.Exit(EXIT_RESTART) from None
        if isinstance(exc, (GuaranteeError, TransactionsUnsupported, ReplicaFenced)):
            fail(f"{what} stopped: {exc}")
        if (reason := kafka_failure(exc)) is not None:
            fail(f"{what} stopped: {reason}")
        if isinstance(exc, OSError) or exc.__class__.__module__.startswith(("events", "aiokafka")):
            fail(f"{what} stopped: {exc!r}")
        raise
