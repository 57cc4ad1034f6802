"""The coordinator's own CPU per bench saga, in one process, without a broker.

    python -m bench.engine_cpu                      # 20,000 sagas, 5 runs: median and spread
    python -m bench.engine_cpu --profile 15         # and the top functions by own time

Drives a real `sagas.coordinator.Coordinator` (never started: no Kafka) through
bench sagas: starts go in as control records, the batch step decides them
(`Coordinator.process`: decode, route, decide, encode, table, live cache,
timers, metrics), and what it would send is answered in-process the way the
bench participants answer (`bench.participant.answer`), batch after batch,
until every saga is terminal. Only the coordinator's calls are timed
(``time.process_time``), so the figure is CPU per saga of the engine's Python
work, unaffected by what else the machine runs; what it leaves out is aiokafka
(fetching, producing) and the event loop, which the full benchmark includes.
It is the quick before/after of a change to the hot path; the full benchmark
(`python -m bench`) stays the figure that counts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import Plan, start_record
from bench.participant import answer
from bench.workload import write_bench_definition
from events.codec import CONTENT_TYPE_HEADER
from events.records import InRecord, OutRecord
from sagas.coordinator import Coordinator
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.loader import DefinitionRegistry, load_definitions
from sagas.process.gc_policy import freeze_long_lived, relax_young_collections
from sagas.settings import CoordinatorSettings

PREFIX = "cpu."
HEADERS = [CONTENT_TYPE_HEADER]


@dataclass(frozen=True)
class RunResult:
    sagas: int
    batches: int
    records: int
    cpu_seconds: float
    #: records the coordinator produced, by topic (without the prefix); changelog states included
    produced: dict[str, int]

    @property
    def us_per_saga(self) -> float:
        return 1e6 * self.cpu_seconds / self.sagas


def _coordinator(definitions: Path) -> Coordinator:
    registry = DefinitionRegistry(load_definitions(definitions))
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9", topic_prefix=PREFIX, partitions=1)
    coordinator = Coordinator(registry, kafka=kafka, settings=CoordinatorSettings())
    coordinator.owned = frozenset({0})
    return coordinator


@contextmanager
def coordinator_gc() -> Iterator[None]:
    """The cyclic collector as a started coordinator runs it (`sagas.process.gc_policy`:
    young collections every 20,000 allocations, what is alive before the run frozen),
    restored afterwards. With CPython's defaults the harness timed collections of 68-87 us
    per saga, and a figure ~100 us higher, that a started coordinator does not pay."""
    before = gc.get_threshold()
    relax_young_collections()
    freeze_long_lived()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


#: sees what each batch would persist: its outgoing records and its saga states
PersistObserver = Callable[[Sequence[OutRecord], dict[bytes, bytes | None]], None]


def run_once(
    definitions: Path,
    sagas: int,
    batch: int,
    profile: cProfile.Profile | None,
    observe: PersistObserver | None = None,
) -> RunResult:
    """Start ``sagas`` bench sagas, ``batch`` records per batch, until all are terminal
    (``observe``, if given, sees each batch's records, outside the time measured)."""
    coordinator = _coordinator(definitions)
    plan = Plan(
        bootstrap="", prefix=PREFIX, workload="bench", start_topic=coordinator.topics.control,
        lifecycle_topic=coordinator.topics.lifecycle, rate=1000.0, count=sagas, fail_every=10,
    )  # fmt: skip
    pending: deque[InRecord] = deque()
    offset = 0
    for i in range(sagas):
        sid = f"saga-{i:07d}"
        value = start_record(plan, sid, i)
        pending.append(InRecord(plan.start_topic, 0, offset, sid.encode(), value, HEADERS))
        offset += 1
    #: what the batch in hand would persist: read once it is timed, not while
    persisted: list[tuple[Any, Any]] = []
    produced: Counter[str] = Counter()

    def persist(outgoing: Any, writes: Any) -> asyncio.Future[None]:
        persisted.append((outgoing, writes))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    coordinator.persister.persist = persist  # type: ignore[method-assign]
    cpu = 0.0
    batches = records = 0
    now = time.time()

    async def drive() -> None:
        nonlocal cpu, batches, records, offset, now
        # new starts and replies interleave, as on a busy coordinator: each batch takes
        # the replies so far and tops up with starts
        starts = pending
        replies: deque[InRecord] = deque()
        while starts or replies:
            take = [replies.popleft() for _ in range(min(batch, len(replies)))]
            while len(take) < batch and starts:
                take.append(starts.popleft())
            now += 0.001
            t0 = time.process_time()
            if profile is not None:
                profile.enable()
            coordinator.process(take, now)
            if profile is not None:
                profile.disable()
            cpu += time.process_time() - t0
            batches += 1
            records += len(take)
            for outgoing, writes in persisted:
                produced.update(out.topic.removeprefix(PREFIX) for out in outgoing)
                produced["(changelog states)"] += len(writes)
                if observe is not None:
                    observe(outgoing, writes)
                for out in outgoing:
                    if out.topic.endswith(".commands"):
                        got = answer(orjson.loads(out.value))
                        if got is not None:
                            step, value = got
                            topic = f"{PREFIX}bench.s{step}.replies"
                            replies.append(InRecord(topic, 0, offset, out.key, value, HEADERS))
                            offset += 1
            persisted.clear()

    with coordinator_gc():
        asyncio.run(drive())
    terminal = sum(
        1
        for raw in coordinator.table.data.values()
        if b'"status":"completed"' in raw or b'"status":"compensated"' in raw
    )
    if terminal != sagas:
        raise SystemExit(f"only {terminal} of {sagas} sagas ended; the harness is broken")
    return RunResult(sagas, batches, records, cpu, dict(produced))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sagas", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="records per batch")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        definitions = write_bench_definition(PREFIX, Path(tmp), timeout=900.0)
        results = [run_once(definitions, args.sagas, args.batch, profile) for _ in range(args.runs)]
    per = [r.us_per_saga for r in results]
    first = results[0]
    print(
        f"{first.sagas:,} bench sagas, {first.records / first.sagas:.1f} records/saga in, "
        f"{first.records / first.batches:.0f} records/batch; coordinator CPU per saga "
        f"(us): median {statistics.median(per):.0f}, min {min(per):.0f}, max {max(per):.0f} "
        f"over {len(per)} runs: {', '.join(f'{p:.0f}' for p in per)}"
    )
    out = sorted(first.produced.items(), key=lambda item: -item[1])
    print(
        f"records produced per saga: {sum(first.produced.values()) / first.sagas:.1f} ("
        + ", ".join(f"{topic} {n / first.sagas:.2f}" for topic, n in out)
        + ")"
    )
    if profile is not None:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
