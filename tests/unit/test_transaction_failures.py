"""What a failed Kafka transaction makes a process do (`sagas.kafka.transactions`), with
no broker: a producer whose commit fails as Kafka's would.

* fenced (another process took the transactional id): `ReplicaFenced`, exit 75;
* anything else (a broker lost or paused mid-commit; aiokafka's producer is then
  fatal): `TransactionInDoubt`, also a restart, with one line naming the
  transactional id and the error;
* refused by an ACL: raised as it is, for the caller's one-line authorization
  message (a restart cannot fix it).
"""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaError,
    ProducerFenced,
    TopicAuthorizationFailedError,
    UnknownError,
)

from sagas.kafka.transaction_failures import EXIT_RESTART, ReplicaFenced, TransactionInDoubt
from sagas.kafka.transactions import PartitionTransactions, WriterTransaction

pytestmark = pytest.mark.asyncio


class FailingCommit:
    """A transactional producer whose ``commit_transaction`` raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send_offsets_to_transaction(self, offsets: object, group: str) -> None:
        self.calls.append("offsets")

    async def commit_transaction(self) -> None:
        self.calls.append("commit")
        raise self.error


async def _commit_partition(error: BaseException) -> BaseException:
    producer = FailingCommit(error)
    transactions = PartitionTransactions(lambda _id: producer, "app", partitions=4)  # type: ignore[arg-type, return-value]
    await transactions.own([2])
    with pytest.raises(BaseException) as raised:
        await transactions.persist([], {TopicPartition("app.input", 2): 41})
    assert producer.calls == ["start", "begin", "offsets", "commit"]
    return raised.value


async def test_a_commit_that_fails_unfenced_is_in_doubt_and_names_partition_and_error() -> None:
    exc = await _commit_partition(UnknownError("EndTxn"))
    assert type(exc) is TransactionInDoubt
    assert isinstance(exc, ReplicaFenced)  # handled alike: stop, a restart resumes
    message = str(exc)
    assert "'app-eos-2'" in message and "input partition 2" in message
    assert "UnknownError" in message and f"exit {EXIT_RESTART}" in message
    assert "\n" not in message


async def test_a_fenced_commit_is_fenced_not_in_doubt() -> None:
    exc = await _commit_partition(ProducerFenced())
    assert type(exc) is ReplicaFenced
    assert "held by another replica" in str(exc)


async def test_a_commit_refused_by_an_acl_is_raised_as_it_is() -> None:
    exc = await _commit_partition(TopicAuthorizationFailedError())
    assert type(exc) is TopicAuthorizationFailedError


async def test_a_failed_partition_fails_the_batches_after_it_too() -> None:
    producer = FailingCommit(KafkaError("broker gone"))
    transactions = PartitionTransactions(lambda _id: producer, "app", partitions=1)  # type: ignore[arg-type, return-value]
    await transactions.own([0])
    with pytest.raises(TransactionInDoubt):
        await transactions.persist([], {TopicPartition("app.input", 0): 1})
    with pytest.raises(TransactionInDoubt):  # never a second transaction on a dead producer
        await transactions.persist([], {TopicPartition("app.input", 0): 2})
    assert producer.calls.count("commit") == 1


async def test_a_writer_transaction_that_fails_unfenced_is_in_doubt() -> None:
    writer = WriterTransaction(FailingCommit(UnknownError()), "payment-service")
    with pytest.raises(TransactionInDoubt, match="'payment-service-eos'.*consumer group"):
        await writer.commit({TopicPartition("payment.commands", 0): 7})
