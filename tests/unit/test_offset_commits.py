"""Offsets are committed only for batches Kafka has, in order, and all of them on drain."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from sagas.kafka.offset_commits import OffsetCommits

TP0, TP1 = TopicPartition("in", 0), TopicPartition("in", 1)


class Consumer:
    def __init__(self, fail: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail = fail

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))


async def test_a_batch_not_yet_durable_holds_back_the_ones_after_it() -> None:
    commits = OffsetCommits(depth=8, interval=0.0)
    commits.consumer = consumer = Consumer()
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    await commits.add(first, {TP0: 10})
    second.set_result(None)
    await commits.add(second, {TP0: 20, TP1: 5})
    await asyncio.sleep(0)
    assert consumer.commits == [], "the second batch is durable, the first is not"
    first.set_result(None)
    await commits.drain()
    assert consumer.commits[-1] == {TP0: 20, TP1: 5}
    assert commits.committed == {TP0: 20, TP1: 5}


async def test_more_than_depth_in_hand_waits_for_the_oldest() -> None:
    commits = OffsetCommits(depth=1, interval=0.0)
    commits.consumer = Consumer()
    loop = asyncio.get_running_loop()
    first = loop.create_future()
    await commits.add(first, {TP0: 1})
    adding = asyncio.create_task(commits.add(loop.create_future(), {TP0: 2}))
    await asyncio.sleep(0.01)
    assert not adding.done(), "two in hand with depth 1: wait"
    first.set_result(None)
    await asyncio.wait_for(adding, 1)


async def test_a_failed_persist_is_raised_and_a_refused_commit_is_not() -> None:
    commits = OffsetCommits(depth=8, interval=0.0)
    commits.consumer = Consumer(fail=True)
    loop = asyncio.get_running_loop()
    ok = loop.create_future()
    ok.set_result(None)
    await commits.add(ok, {TP0: 3})
    await commits.drain()
    assert commits.committed == {}, "refused (group rebalanced): nothing recorded as committed"
    broken = loop.create_future()
    broken.set_exception(RuntimeError("broker gone"))
    with pytest.raises(RuntimeError, match="broker gone"):
        await commits.add(broken, {TP0: 4})


async def test_a_batch_is_committed_as_soon_as_it_is_durable() -> None:
    """Not only at the next batch or idle poll: a participant killed right after answering
    must not get that input again."""
    commits = OffsetCommits(depth=8, interval=0.0)
    commits.consumer = consumer = Consumer()
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    await commits.add(first, {TP0: 10})
    await commits.add(second, {TP0: 20})
    second.set_exception(RuntimeError("broker gone"))
    first.set_result(None)
    for _ in range(10):  # the callback, then the commit task
        await asyncio.sleep(0)
    assert consumer.commits == [{TP0: 10}], "the durable batch, not the failed one after it"
    assert commits.committed == {TP0: 10}
    with pytest.raises(RuntimeError, match="broker gone"):
        await commits.drain()
