"""Why a Kafka transaction stopped this process, and the exit code that says "restart me".

A transaction ends a process in two ways, both crash-only: another replica took its
transactional id over (`ReplicaFenced`), or it failed unfenced mid-commit and aiokafka's
producer is fatal (`TransactionInDoubt`). Either way Kafka committed or aborted it as a
whole, so a restart (exit `EXIT_RESTART`) resumes from what Kafka holds.
"""

from __future__ import annotations

from typing import Any

from aiokafka.errors import ProducerFenced

__all__ = ["EXIT_RESTART", "ReplicaFenced", "TransactionInDoubt", "in_doubt", "is_fenced"]


#: exit code of a process that stops so that a restart resumes it (EX_TEMPFAIL): fenced,
#: or its transaction in doubt. A supervisor should start it again.
EXIT_RESTART = 75


class ReplicaFenced(RuntimeError):
    """Another process now holds this partition's transactional id: this one must stop."""


class TransactionInDoubt(ReplicaFenced):
    """A transaction failed for another reason than fencing (a broker lost or paused in the
    middle of a commit): aiokafka's producer is then in a fatal state, and what the batch
    applied in memory may or may not be what Kafka committed. The process stops like a
    fenced one; its restart resumes from whatever Kafka holds (the transaction committed
    or aborted as a whole), so nothing is lost or doubled."""


def in_doubt(exc: BaseException, transactional: str, where: str) -> TransactionInDoubt:
    """The one-line error for a transaction that failed unfenced (``where``: what it was
    for, e.g. "input partition 3")."""
    reason = str(exc) or type(exc).__name__
    return TransactionInDoubt(
        f"transaction {transactional!r} ({where}) failed: {type(exc).__name__}: {reason}; "
        "Kafka commits or aborts it as a whole, and a restart resumes from what it holds "
        f"(exit {EXIT_RESTART}: restart this process)"
    )


#: Kafka's PRODUCER_FENCED error code (newer request versions; aiokafka has no class for it)
_PRODUCER_FENCED = 90


def is_fenced(exc: BaseException, producer: Any) -> bool:
    """Did ``exc`` come from the producer's transactional id being taken over? aiokafka
    raises ProducerFenced once; afterwards the producer is in a fatal state and its next
    step fails with whatever that state raises."""
    manager = getattr(producer, "_txn_manager", None)
    cause = None
    if manager is not None and manager.is_fatal_error():
        waiter = manager.wait_for_transaction_end()
        if waiter.done() and not waiter.cancelled():
            cause = waiter.exception()  # also marks it retrieved: asyncio logs it otherwise
    if isinstance(exc, ProducerFenced) or getattr(exc, "errno", None) == _PRODUCER_FENCED:
        return True
    return isinstance(cause, ProducerFenced)
