"""The processing-guarantee setting and the pure parts of the exactly-once stage."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from events.partitioning import partition_for
from events.records import OutRecord
from sagas.kafka.guarantee import (
    GuaranteeError,
    guarantee_from_env,
    isolation_level,
    reader_isolation,
)
from sagas.kafka.transaction_failures import ReplicaFenced
from sagas.kafka.transactions import (
    TransactionalCommits,
    split_by_partition,
    transactional_id,
)
from sagas.settings import CoordinatorSettings


def test_the_guarantee_defaults_to_at_least_once_and_refuses_anything_else() -> None:
    assert guarantee_from_env({}) == "at_least_once"
    assert guarantee_from_env({"SAGAS_PROCESSING_GUARANTEE": ""}) == "at_least_once"
    assert guarantee_from_env({"SAGAS_PROCESSING_GUARANTEE": "Exactly_Once"}) == "exactly_once"
    with pytest.raises(GuaranteeError, match="SAGAS_PROCESSING_GUARANTEE='twice': expected one"):
        guarantee_from_env({"SAGAS_PROCESSING_GUARANTEE": "twice"})
    assert isolation_level("exactly_once") == "read_committed"
    assert isolation_level("at_least_once") == "read_uncommitted"


def test_the_coordinator_reads_the_same_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGAS_PROCESSING_GUARANTEE", "EXACTLY_ONCE")
    assert CoordinatorSettings().processing_guarantee == "exactly_once"
    monkeypatch.setenv("SAGAS_PROCESSING_GUARANTEE", "maybe")
    with pytest.raises(ValidationError):
        CoordinatorSettings()


def test_a_batch_splits_into_the_transactions_of_its_sagas_partitions() -> None:
    partitions = 8
    keys = [f"saga-{i}".encode() for i in range(40)]
    records = [OutRecord("t.commands", key, b"v", []) for key in keys]
    owned = sorted({partition_for(k, partitions) for k in keys})
    dead = OutRecord("t.deadletter", None, b"x", [("x-dlq-partition", str(owned[-1]).encode())])
    stray = OutRecord("t.deadletter", None, b"y", [])
    grouped = split_by_partition([*records, dead, stray], partitions, owned)
    for n, group in grouped.items():
        keyed = [r for r in group if r.key is not None]
        assert all(partition_for(r.key, partitions) == n for r in keyed if r.key), n
        assert keyed == [r for r in records if partition_for(r.key or b"", partitions) == n]
    assert dead in grouped[owned[-1]] and stray in grouped[owned[0]]
    assert sum(len(g) for g in grouped.values()) == len(records) + 2


def test_transactional_ids_are_per_group_and_input_partition() -> None:
    assert transactional_id("shop-coordinator", 3) == "shop-coordinator-eos-3"


def test_readers_follow_the_setting_and_read_uncommitted_on_a_bad_value() -> None:
    assert reader_isolation({"SAGAS_PROCESSING_GUARANTEE": "exactly_once"}) == "read_committed"
    assert reader_isolation({}) == "read_uncommitted"
    assert reader_isolation({"SAGAS_PROCESSING_GUARANTEE": "twice"}) == "read_uncommitted"


async def test_transactional_commits_record_offsets_in_order_and_end_on_a_failed_batch() -> None:
    loop = asyncio.get_running_loop()
    commits = TransactionalCommits(depth=2)
    tp = TopicPartition("t", 0)
    first, second, third = (loop.create_future() for _ in range(3))
    await commits.add(first, {tp: 5})
    await commits.add(second, {tp: 9})
    second.set_result(None)  # done, but after a batch still in hand: not committed yet
    adding = asyncio.ensure_future(commits.add(third, {tp: 12}))  # over the depth: waits
    await asyncio.sleep(0)
    assert not adding.done() and commits.committed == {}
    first.set_result(None)
    await adding
    assert commits.committed == {tp: 9}
    third.set_exception(ReplicaFenced("taken over"))
    with pytest.raises(ReplicaFenced, match="taken over"):
        await commits.drain()
    assert commits.committed == {tp: 9}
