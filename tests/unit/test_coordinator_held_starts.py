"""The coordinator's batch loop decides held starts when there is room, with nothing fetched.

A real (unstarted) coordinator whose consumer is scripted: one fetch of five starts on
``saga.starts`` against a bound of two, then nothing. The starts past the bound are held
(`sagas.admission_gate.AdmissionGate.held`), their partition paused; as sagas end, the
loop decides them without a fetch, in order, commits their offsets only then, fetches
less while it holds some (a batch stays within ``SAGAS_BATCH_MAX``), and resumes the
partition once none is held. While a partition is paused the loop leaves it out of
``getmany``, so that aiokafka keeps what it had fetched of it for the resume."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from sagas.admission import AdmissionLimits
from tests.unit.unstarted_coordinator import unstarted


class ScriptedConsumer:
    """What the loop uses of an AIOKafkaConsumer, answering ``getmany`` from a script."""

    def __init__(self, assigned: set[TopicPartition], fetches: list[dict[Any, Any]]) -> None:
        self.assigned = assigned
        self.fetches = deque(fetches)
        self.paused: set[TopicPartition] = set()
        self.asked: list[int] = []  # max_records of each getmany
        self.asked_for: list[set[TopicPartition]] = []  # its partitions (all: none named)
        self.commits: list[dict[TopicPartition, int]] = []
        #: partitions whose buffer aiokafka would have dropped: paused, yet asked for
        self.dropped: set[TopicPartition] = set()

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[Any, Any]:
        self.asked.append(max_records)
        asked = set(partitions) or set(self.assigned)
        self.asked_for.append(asked)
        self.dropped |= asked & self.paused
        if self.fetches:
            return self.fetches.popleft()
        await asyncio.sleep(0.005)  # a fetch that found nothing (aiokafka waits up to timeout_ms)
        return {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int | None:
        return None  # the start backlog gauge asks; no fetch has told

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def bounded_loop(
    system: Any, starts: int, also: set[TopicPartition]
) -> tuple[ScriptedConsumer, TopicPartition, Callable[[], float]]:
    """The unstarted coordinator of ``system`` at a bound of two (low-water one), its
    consumer assigned partition 0 of ``saga.starts`` (and ``also``) and scripted to fetch
    ``starts`` starts there once; with the count of sagas started."""
    c = system.coordinator
    starts_tp = TopicPartition(c.topics.starts, 0)
    records = [dataclasses.replace(r, topic=c.topics.starts) for r in system.starts(0, starts)]
    consumer = ScriptedConsumer({starts_tp, *also}, [{starts_tp: records}])
    c.consumer = consumer
    c.commits.consumer = consumer
    c.owned = frozenset({0})
    c.admission.limits = AdmissionLimits(2, 1)
    started = lambda: system.sample("saga_started_total", {"saga": "bench"}) or 0  # noqa: E731
    return consumer, starts_tp, started


async def test_held_starts_are_decided_in_order_once_sagas_end_with_nothing_fetched(
    tmp_path: Path,
) -> None:
    system = unstarted(tmp_path)
    c = system.coordinator
    consumer, starts_tp, started = bounded_loop(system, 5, set())
    gate = c.admission
    loop = asyncio.create_task(c._consume())
    try:
        await until(lambda: started() == 2, "the first two starts")
        assert [r.offset for r in gate.held[starts_tp]] == [2, 3, 4]
        assert consumer.paused == {starts_tp}
        await until(lambda: len(consumer.asked) >= 3, "two more fetches")
        # at the bound nothing held is decided, nor committed
        assert started() == 2 and consumer.commits[-1] == {starts_tp: 2}
        # a batch fetches what the held starts leave of SAGAS_BATCH_MAX
        assert consumer.asked[0] == c.settings.batch_max
        assert consumer.asked[-1] == c.settings.batch_max - 3

        gate.in_flight = 0  # as if both sagas had ended
        await until(lambda: started() == 4, "two held starts, with nothing fetched")
        assert [r.offset for r in gate.held[starts_tp]] == [4]
        await until(lambda: consumer.commits[-1] == {starts_tp: 4}, "their commit")
        assert consumer.paused == {starts_tp}  # at the bound again
        gate.in_flight = 0
        await until(lambda: started() == 5, "the last held start")
        await until(lambda: consumer.commits[-1] == {starts_tp: 5}, "its commit")
        # one in flight: at the low-water mark, and nothing held: fetched again
        await until(lambda: consumer.paused == set(), "the partition resumed")
        assert gate.held == {}
    finally:
        c._stopping.set()
        await asyncio.wait_for(loop, 5)
    started_ids = [
        (out.key or b"").decode()
        for out in system.sent
        if out.topic == c.topics.lifecycle and b"saga.started" in (out.value or b"")
    ]
    assert started_ids == [f"s-{i}" for i in range(5)]


async def test_a_paused_start_partition_is_left_out_of_getmany_until_it_resumes(
    tmp_path: Path,
) -> None:
    """aiokafka drops the buffer of a paused partition that ``getmany`` is asked for, and
    fetches it again after the resume (up to ``max_partition_fetch_bytes`` of starts at
    every resume); the loop asks for the other partitions only while it is paused."""
    system = unstarted(tmp_path)
    c = system.coordinator
    control_tp = TopicPartition(c.topics.control, 0)
    consumer, starts_tp, started = bounded_loop(system, 3, {control_tp})
    gate = c.admission
    loop = asyncio.create_task(c._consume())
    try:
        await until(lambda: started() == 2 and len(consumer.asked_for) >= 3, "a paused fetch")
        assert consumer.paused == {starts_tp}
        assert consumer.asked_for[0] == {starts_tp, control_tp}  # before the pause
        assert consumer.asked_for[-1] == {control_tp}
        gate.in_flight = 0  # both sagas ended: the held start is decided, then resumed
        await until(lambda: started() == 3, "the held start")
        await until(lambda: consumer.paused == set(), "the partition resumed")
        mark = len(consumer.asked_for)
        await until(lambda: len(consumer.asked_for) > mark, "a fetch after the resume")
        assert consumer.asked_for[-1] == {starts_tp, control_tp}
        assert consumer.dropped == set(), "getmany was asked for a paused partition"
    finally:
        c._stopping.set()
        await asyncio.wait_for(loop, 5)
