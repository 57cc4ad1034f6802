"""The coordinator: moves bytes between Kafka and `sagas.machine.decide`, and owns its commits.

One replica of the coordinator group runs this loop over the input partitions
it owns (partition *n* of every input topic and of the saga table, see
`sagas.membership`):

1. fetch a batch of records (aiokafka, no auto-commit);
2. apply the pure batch step (`sagas.batch.apply_batch`): decode each record
   (what cannot be decoded or routed goes to the dead-letter topic with the
   reason headers) and run the state machine against the saga's state; the
   new states go into the in-memory table at once, so the next batch sees them;
3. persist: send every command and lifecycle event, then log the new states
   to the table's changelog, and wait until Kafka has all of them;
4. only then commit the batch's offsets.

Up to ``SAGAS_PIPELINE`` batches are in step 3 at once, committed in order.
A crash anywhere replays the uncommitted records against the last logged
states: the machine makes the same decisions, the same command ids go out
again, participants drop them. Nothing is acked that was not decided, and no
offset is committed whose effects are not in Kafka, also around rebalances:
a rebalance first waits for the batches in hand and commits them, and records
fetched across a rebalance are not decided but fetched again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import CollectorRegistry

from events.codec import encode
from events.envelope import CloudEvent
from events.partitioning import partition_for
from events.records import InRecord
from sagas import compiled_build, control
from sagas.admission_gate import LOG_END_INTERVAL, AdmissionGate
from sagas.admission_metrics import AdmissionMetrics
from sagas.batch import apply_batch
from sagas.batch_values import BatchContext, BatchLimits, BatchResult
from sagas.deadline_budget import DeadlineBudget, timer_kind
from sagas.kafka.authorization_failure import (
    explain_authorization_failure,
    is_authorization_failure,
)
from sagas.kafka.consumer_lag import LagRow
from sagas.kafka.guarantee import isolation_level
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.offset_commits import OffsetCommits
from sagas.kafka.producer_batches import batching_producer
from sagas.kafka.transaction_failures import EXIT_RESTART, ReplicaFenced
from sagas.kafka.transactions import PartitionTransactions, TransactionalCommits
from sagas.live_cache import LiveStates
from sagas.loader import DefinitionRegistry
from sagas.membership import CoPartitionedAssignor
from sagas.metrics import CoordinatorMetrics
from sagas.persist import Persister
from sagas.process.gc_policy import freeze_long_lived, relax_young_collections
from sagas.process.heap_trim import trim_heap
from sagas.retry_budget import RetryBudgetPolicy
from sagas.saga_table import SagaTable
from sagas.settings import CoordinatorSettings
from sagas.state import SagaState
from sagas.table_codec import TableValue, decode_value
from sagas.timers import TimerQueue, deadlines_in_table, still_armed

log = logging.getLogger("sagas.coordinator")

#: exit status of a replica that stopped because a batch could not be persisted
EXIT_BATCH_FAILED = 70
#: exit status of a replica fenced by another one holding its transactional ids (exactly_once)
EXIT_FENCED = EXIT_RESTART
#: seconds between two returns of freed heap memory to the OS, when idle (`sagas.process.heap_trim`)
HEAP_TRIM_INTERVAL = 5.0


def changelog_topic(app_id: str) -> str:
    """The table's changelog: ``<app id>-sagas-changelog``, compacted, co-partitioned."""
    return f"{app_id}-sagas-changelog"


class Coordinator:
    """One replica of the saga coordinator."""

    def __init__(
        self,
        registry: DefinitionRegistry,
        *,
        kafka: KafkaSettings,
        settings: CoordinatorSettings,
        metrics_registry: CollectorRegistry | None = None,
        topics: Any = None,
    ) -> None:
        from events.topics import Topics

        self.registry = registry
        self.kafka = kafka
        self.settings = settings
        self.topics = topics or Topics.from_settings(kafka)
        self.metrics_registry = metrics_registry or CollectorRegistry()
        self.metrics = CoordinatorMetrics.create(self.metrics_registry)
        self.timers = TimerQueue()
        #: decoded states of the running sagas this replica owns, so that a reply does not
        #: pay for parsing its saga's state; the table stays the truth (cleared on rebalance)
        self.live = LiveStates(settings.live_cache)
        self.input_topics = sorted(registry.topics_read() | set(self.topics.inputs()))
        self.isolation = isolation_level(settings.processing_guarantee)
        self.table = SagaTable(
            kafka, changelog_topic(settings.app_id), kafka.partitions, isolation=self.isolation
        )
        #: what the batch step may know of this replica
        self.batch_context = BatchContext(
            registry,
            self.topics,
            kafka.partitions,
            BatchLimits(settings.max_record_bytes, settings.retention, settings.early_event_grace),
            self.read_value,
            self._starts_waiting,
        )
        self.url = settings.advertised_url()
        self.assignor = CoPartitionedAssignor(self.url, settings.instance_id)
        #: table partitions recovered and being processed here
        self.owned: frozenset[int] = frozenset()
        #: batches being persisted, and committing their offsets once they are
        self.commits: OffsetCommits | TransactionalCommits = (
            TransactionalCommits(depth=settings.pipeline)
            if settings.processing_guarantee == "exactly_once"
            else OffsetCommits(depth=settings.pipeline, interval=settings.commit_interval)
        )
        #: exactly_once: one transactional producer per owned input partition
        self.transactions: PartitionTransactions | None = None
        #: sends what each batch decided, then its states (`sagas.persist`)
        self.persister = Persister(
            self.metrics, self.table.topic, kafka.partitions, lambda: self._generation
        )
        #: the bound on sagas in flight, applied to the trigger partitions (`sagas.admission`)
        self.admission = AdmissionGate.for_registry(
            registry,
            self.topics,
            settings.max_in_flight,
            AdmissionMetrics.create(self.metrics_registry, self._start_backlog),
        )
        #: step deadlines fired stay a share of the commands sent (`sagas.retry_budget`)
        per_second = settings.retry_budget_per_second
        self.deadline_budget = DeadlineBudget(
            RetryBudgetPolicy(settings.retry_budget_ratio, per_second, max(10.0, per_second * 10)),
            time.time(),
        )
        self.started = False
        self.rebalancing = False
        self.recovering = False
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._generation = -1
        self._epoch = 0
        self._lock = asyncio.Lock()
        self._trimmed_at = 0.0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def committed(self) -> dict[TopicPartition, int]:
        """Input partition -> the offset this replica last committed."""
        return self.commits.committed

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and join the group; returns while the loops run in the background."""
        s, k = self.settings, self.kafka
        relax_young_collections()
        self.producer = batching_producer(
            k,
            record_limit=s.max_record_bytes,
            acks="all",
            max_request_size=max(s.max_record_bytes * 2, 1_048_576),
        )
        await self.producer.start()
        self.persister.producer = self.producer
        if isinstance(self.commits, TransactionalCommits):
            self.transactions = PartitionTransactions(
                lambda tx_id: batching_producer(
                    k,
                    record_limit=s.max_record_bytes,
                    transactional_id=tx_id,
                    max_request_size=max(s.max_record_bytes * 2, 1_048_576),
                ),
                s.app_id,
                k.partitions,
            )
        self.consumer = AIOKafkaConsumer(
            **k.consumer_kwargs(),
            group_id=s.app_id,
            group_instance_id=s.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=self.isolation,
            partition_assignment_strategy=(self.assignor,),
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval * 1000),
            rebalance_timeout_ms=int(s.rebalance_timeout * 1000),
            max_poll_interval_ms=max(300_000, int(s.rebalance_timeout * 1000)),
            max_partition_fetch_bytes=max(s.max_record_bytes * 2, 1_048_576),
        )
        await self.consumer.start()
        if isinstance(self.commits, OffsetCommits):
            self.commits.consumer = self.consumer
        self.consumer.subscribe(self.input_topics, listener=_Listener(self))
        self.started = True
        self._tasks = [
            asyncio.create_task(self._guard(self._consume()), name="sagas.consume"),
            asyncio.create_task(self._guard(self._timer_loop()), name="sagas.timers"),
            asyncio.create_task(self._guard(self._log_end_loop()), name="sagas.log-ends"),
        ]
        log.info(
            "coordinator %s started (%s); reading %s",
            self.url,
            compiled_build.describe(),
            ", ".join(self.input_topics),
        )

    async def stop(self) -> None:
        """Finish and commit the batches in hand, leave the group, close everything."""
        self._stopping.set()
        for task in self._tasks:
            if task.get_name() != "sagas.consume":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.consumer is not None:
            async with self._lock:
                await self.commits.drain()
            await self.consumer.stop()
        if self.transactions is not None:
            await self.transactions.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Start, run until ``stop`` is set (or a loop fails), then stop."""
        await self.start()
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopped, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            await self.stop()

    async def _guard(self, loop: Any) -> None:
        """Run a background loop; a failure in one ends the replica (crash-only)."""
        try:
            await loop
        except asyncio.CancelledError:
            raise
        except ReplicaFenced as exc:
            _exit_fenced(exc)
        except BaseException as exc:
            # A batch that did not finish must not be half-applied: exit, and a restarted
            # replica replays it from the last committed offset (like a SIGKILL).
            if is_authorization_failure(exc):  # the operator's to fix: one line, no trace
                refused = explain_authorization_failure(exc, self.kafka)
                if refused.resource_type == "Topic" and not (
                    {*self.input_topics, self.table.topic} & set(refused.names)
                ):
                    # topics it only writes: commands, lifecycle, dead letters
                    refused = explain_authorization_failure(exc, self.kafka, "Write")
                log.critical("coordinator loop stopped: %s", refused)
                print(f"error: coordinator stopped: {refused}", file=sys.stderr, flush=True)
            else:
                log.critical(
                    "coordinator loop failed; exiting so that its batch is replayed",
                    exc_info=True,
                )
            logging.shutdown()
            os._exit(EXIT_BATCH_FAILED)

    # -- what the HTTP API sees (`sagas.api.replica.Replica`) ------------------------------

    @property
    def partitions(self) -> int:
        return self.kafka.partitions

    def owners(self) -> dict[int, str]:
        return self.assignor.owners

    def owned_partitions(self) -> frozenset[int]:
        return self.owned

    def not_ready(self) -> str | None:
        if not self.started:
            return "the worker is starting"
        if self.recovering:
            return "table recovery is in progress"
        if self.rebalancing:
            return "the consumer group is rebalancing"
        if not self.assignor.owners:
            return "no partitions assigned yet (joining the consumer group)"
        return None

    def stored_values(self) -> dict[bytes, bytes]:
        return self.table.data

    async def publish_control(self, event: CloudEvent) -> None:
        value, headers = encode(event)
        key = event.sagaid.encode()
        await (await self.persister.send(self.topics.control, key, value, headers))

    def check_start(self) -> str | None:
        return self.admission.check_start()

    def input_lag(self) -> list[LagRow]:
        return self.admission.lag(self.consumer, set(self.input_topics), self.committed)

    def _starts_waiting(self, partition: int) -> bool:
        return self.admission.starts_waiting(self.consumer, partition)

    def _start_backlog(self) -> float:
        rows = self.admission.lag(self.consumer, self.admission.start_topics, self.committed)
        return float(sum(lag for _, _, lag in rows))

    # -- the batch loop -------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        batch_max = self.settings.batch_max
        while not self._stopping.is_set():
            epoch = self._epoch
            # held starts (`AdmissionGate.held`) are part of the batch: fetch the rest
            room = max(1, batch_max - self.admission.held_count)
            fetched = await consumer.getmany(
                *self.admission.fetch_from(consumer), timeout_ms=100, max_records=room
            )
            async with self._lock:
                if not fetched and not self.admission.may_admit_held():
                    await self.commits.drain()
                    self._trim_when_idle()
                    continue
                if not self._may_decide(epoch, fetched):
                    self._rewind(fetched)
                    continue
                admitted = self.admission.admit(fetched)
                records = [InRecord.of(r) for rs in admitted.records.values() for r in rs]
                persisted = self.process(
                    records, time.time(), admitted.offsets, admitted.start_room
                )
                self.admission.apply(consumer)
                await self.commits.add(persisted, admitted.offsets)

    def _trim_when_idle(self) -> None:
        now = time.monotonic()
        if now - self._trimmed_at >= HEAP_TRIM_INTERVAL:
            self._trimmed_at = now
            trim_heap()

    def _may_decide(self, epoch: int, fetched: dict[TopicPartition, Any]) -> bool:
        """Records fetched across a rebalance, or for partitions not recovered, wait."""
        if epoch != self._epoch or self.rebalancing or self._group_generation() != self._generation:
            return False
        return all(tp.partition in self.owned for tp in fetched)

    def _rewind(self, fetched: dict[TopicPartition, Any]) -> None:
        """Fetch these records again later (their partitions may have been reassigned)."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        for tp, records in fetched.items():
            if records and tp in assigned:
                self.consumer.seek(tp, records[0].offset)

    def _group_generation(self) -> int:
        coordinator = getattr(self.consumer, "_coordinator", None)
        return int(getattr(coordinator, "generation", -1))

    def read_value(self, saga_id: str) -> TableValue | None:
        """A saga's value in the table (the batch step's reader): decoded once per run."""
        state = self.live.get(saga_id)
        if state is not None:
            return state
        raw = self.table.get(saga_id.encode())
        return None if raw is None else decode_value(raw)

    def process(
        self,
        records: Sequence[InRecord],
        now: float,
        offsets: dict[TopicPartition, int] | None = None,
        start_room: int | None = None,
    ) -> asyncio.Future[None]:
        """Apply a batch (in memory at once) and start persisting it; resolves when durable
        (exactly_once: when its transactions, with ``offsets``, are committed).
        ``start_room``: new sagas it may start from ``saga.control`` (`apply_batch`)."""
        batch = apply_batch(self.batch_context, records, now, start_room)
        self.count(batch)
        self.admission.observe(batch.decisions)
        self.admission.count_deferred(batch.deferred_starts)
        self.deadline_budget.observe(batch.decisions)
        writes = {saga_id.encode(): w.raw for saga_id, w in batch.writes.items()}
        self.table.store(writes)
        for saga_id, w in batch.writes.items():
            if isinstance(w.value, SagaState):
                self.live.put(w.value)
            else:
                self.live.forget(saga_id)
        for due, saga_id, token in batch.timers:
            self.timers.push(due, saga_id, token)
        if self.transactions is not None and offsets is not None:
            records_out = self.persister.batch_records(batch.outgoing, writes)
            return self.transactions.persist(records_out, offsets)
        return self.persister.persist(batch.outgoing, writes)

    def count(self, batch: BatchResult) -> None:
        """The metric signals of a batch: its size, records in, decisions, dead letters."""
        metrics = self.metrics
        if size := sum(batch.consumed.values()):
            metrics.batch_records.observe(size)
        for topic, n in batch.consumed.items():
            metrics.child(metrics.messages, topic, "in").inc(n)
        for signal in batch.decisions:
            metrics.observe(signal.saga, signal.decision, signal.started, signal.reopened)
        for reason, n in batch.dead_letters.items():
            metrics.child(metrics.dead_letters, reason).inc(n)

    # -- rebalancing ----------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._epoch += 1
        self.rebalancing = True
        async with self._lock:
            await self.commits.drain()
            self.owned = frozenset()
            self.live.clear()
            gone = {tp.partition for tp in revoked}
            dropped = self.table.drop(gone)
            self.commits.forget(revoked)
            self.admission.drop_held(revoked)
        log.info("partitions %s revoked; %d sagas handed over", sorted(gone), dropped)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._epoch += 1
        async with self._lock:
            self._generation = self._group_generation()
            wanted = frozenset(tp.partition for tp in assigned)
            # aiokafka revokes everything before a rebalance; anything still held is stale
            self.table.drop(set(range(self.kafka.partitions)) - wanted)
            self.recovering = True
            started = time.monotonic()
            if self.transactions is not None:
                await self._fence_previous_owners(wanted, assigned)
            try:
                found = await self.table.recover(wanted)
            finally:
                self.recovering = False
            self.owned = wanted
            if found.relog:
                relog = {key: self.table.get(key) for key in found.relog}
                await asyncio.gather(*await self.persister.enqueue_states(relog))
            self.timers.replace(
                deadlines_in_table(self.table.data.items(), self.settings.retention)
            )
            self.admission.recount(self.table.data.values())
            if self.consumer is not None:
                self.admission.apply(self.consumer)
            # What recovery built lives until the next rebalance: keep the cyclic GC from
            # walking it again and again (with 100,000 sagas in hand its full collections
            # took a third of the restarted replica's time).
            freeze_long_lived()
            self.rebalancing = False
        log.info(
            "partitions %s assigned (generation %d); %d sagas recovered from %d changelog "
            "records in %.1fs",
            sorted(wanted),
            self._generation,
            len(found.keys),
            found.records,
            time.monotonic() - started,
        )

    async def _fence_previous_owners(
        self, wanted: frozenset[int], assigned: set[TopicPartition]
    ) -> None:
        """exactly_once: take the partitions' transactional ids (aborting what a previous
        owner left open), then read their committed offsets again: aiokafka fetched them
        before this callback, possibly while that owner's last transaction was committing."""
        assert self.transactions is not None and self.consumer is not None
        try:
            await self.transactions.own(wanted)
            for tp in sorted(assigned):
                offset = await self.consumer.committed(tp)
                if offset is not None:
                    self.consumer.seek(tp, offset)
        except Exception:
            # aiokafka only logs a listener's error: exit instead of running unfenced
            log.critical(
                "could not take the transactional ids of partitions %s; exiting",
                sorted(wanted),
                exc_info=True,
            )
            logging.shutdown()
            os._exit(EXIT_BATCH_FAILED)

    # -- timers ---------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        tick = self.settings.timer_tick
        while not self._stopping.is_set():
            await asyncio.sleep(tick)
            await self.fire_due_timers(time.time())

    async def _log_end_loop(self) -> None:
        """Keep the backlog of paused start partitions counted (`AdmissionGate.log_ends`)."""
        while not self._stopping.is_set():
            await asyncio.sleep(LOG_END_INTERVAL)
            if self.consumer is not None and not self.rebalancing:
                await self.admission.refresh_log_ends(self.consumer, self.committed)

    async def fire_due_timers(self, now: float) -> None:
        if self.rebalancing or not self.owned:
            return
        due = self.timers.pop_due(now)
        futures = []
        owned, partitions = self.owned, self.kafka.partitions
        for saga_id, token in due:
            key = saga_id.encode()
            if partition_for(key, partitions) not in owned or not still_armed(
                token, self.table.get(key), self.live.get(saga_id)
            ):
                continue
            kind = timer_kind(token, self.table.get(key), self.live.get(saga_id))
            if not self.deadline_budget.allows(token, now, kind):
                self.admission.metrics.budget_refused.inc()
                self.timers.push(now + self.deadline_budget.policy.retry_after, saga_id, token)
                continue
            value, headers = encode(control.timer_fired(saga_id, token))
            futures.append(await self.persister.send(self.topics.control, key, value, headers))
        if futures:
            await asyncio.gather(*futures)


def _exit_fenced(exc: ReplicaFenced) -> None:
    log.error("replica stopped (exit %d), a restart rejoins the group: %s", EXIT_FENCED, exc)
    logging.shutdown()
    os._exit(EXIT_FENCED)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.c.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.c.on_assigned(set(assigned))


__all__ = ["Coordinator", "changelog_topic", "partition_for"]
