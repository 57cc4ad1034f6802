"""The processing guarantee: ``SAGAS_PROCESSING_GUARANTEE`` = ``at_least_once`` | ``exactly_once``.

``at_least_once`` (the default, and the only mode the embedded Tansu broker
can run): outputs are durable before the offsets that consumed their inputs
are committed; a crash replays the uncommitted inputs and sends the same
records again (same command ids), which the readers drop as duplicates.

``exactly_once`` (Apache Kafka): outputs, changelog records and the consumed
offsets of a batch are one Kafka transaction (`sagas.kafka.transactions`), and
every consumer reads ``read_committed``: a crash or a fenced zombie aborts the
transaction, so a record is never sent twice and never visible half-done.

The coordinator reads it as `sagas.settings.CoordinatorSettings.processing_guarantee`;
the participant runtime and ``sagas bridge`` read the same variable here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal, cast

from sagas.kafka.authorization_failure import (
    explain_authorization_failure,
    is_authorization_failure,
)
from sagas.kafka.kafka_settings import KafkaSettings

__all__ = [
    "GUARANTEES",
    "GUARANTEE_VARIABLE",
    "GuaranteeError",
    "ProcessingGuarantee",
    "TransactionsUnsupported",
    "guarantee_from_env",
    "isolation_level",
    "reader_isolation",
    "require_transactions",
]

ProcessingGuarantee = Literal["at_least_once", "exactly_once"]
GUARANTEES: tuple[ProcessingGuarantee, ...] = ("at_least_once", "exactly_once")
GUARANTEE_VARIABLE = "SAGAS_PROCESSING_GUARANTEE"

#: seconds the start-up probe waits for the broker to hand out a transactional producer id
PROBE_TIMEOUT = 15.0


class GuaranteeError(ValueError):
    """``SAGAS_PROCESSING_GUARANTEE`` holds something else than one of `GUARANTEES`."""


class TransactionsUnsupported(RuntimeError):
    """``exactly_once`` was asked for, but the broker does not run Kafka transactions."""


def guarantee_from_env(environ: Mapping[str, str] | None = None) -> ProcessingGuarantee:
    """The guarantee the environment asks for (``at_least_once`` when unset or empty)."""
    env = os.environ if environ is None else environ
    raw = (env.get(GUARANTEE_VARIABLE) or "at_least_once").strip().lower()
    if raw not in GUARANTEES:
        raise GuaranteeError(
            f"{GUARANTEE_VARIABLE}={raw!r}: expected one of {', '.join(GUARANTEES)}"
        )
    return cast(ProcessingGuarantee, raw)


def isolation_level(guarantee: ProcessingGuarantee) -> str:
    """What consumers read under ``guarantee``: only committed transactions in exactly_once."""
    return "read_committed" if guarantee == "exactly_once" else "read_uncommitted"


def reader_isolation(environ: Mapping[str, str] | None = None) -> str:
    """The isolation level of a reader of the engine's topics (``sagas tail``, the dead
    letters API, the demo): read_committed when the environment says exactly_once. A bad
    value reads uncommitted here; the processes that write refuse it."""
    try:
        return isolation_level(guarantee_from_env(environ))
    except GuaranteeError:
        return "read_uncommitted"


async def require_transactions(
    kafka: KafkaSettings, probe_id: str, *, timeout: float = PROBE_TIMEOUT
) -> None:
    """Raise `TransactionsUnsupported` unless the broker hands out a transactional producer id.

    Starts a producer with the transactional id ``probe_id`` (InitProducerId) and closes
    it. The embedded Tansu broker answers InitProducerId with an error; a broker that does
    not answer within ``timeout`` seconds is refused too, never waited on for ever.
    """
    from aiokafka import AIOKafkaProducer

    producer: Any = AIOKafkaProducer(
        **kafka.aiokafka_kwargs(), transactional_id=probe_id, request_timeout_ms=5000
    )
    sender = logging.getLogger("aiokafka.producer.sender")
    said = _Silenced()  # the refusal below says it in one line, not aiokafka's error too
    sender.addFilter(said)
    try:
        await asyncio.wait_for(producer.start(), timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "no transactions here"
        if is_authorization_failure(exc):  # transactions exist; this principal may not use them
            raise explain_authorization_failure(exc, kafka, "Write") from None
        reason = "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        raise TransactionsUnsupported(
            f"{GUARANTEE_VARIABLE}=exactly_once needs Kafka transactions, but the broker at "
            f"{kafka.bootstrap_servers or 'the embedded broker'} refused a transactional "
            f"producer ({reason}); the embedded Tansu broker has none: run Apache Kafka "
            f"(KAFKA_BOOTSTRAP_SERVERS) or set {GUARANTEE_VARIABLE}=at_least_once"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5)
        sender.removeFilter(said)


class _Silenced(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False
