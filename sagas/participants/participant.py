"""The participant helper: a pure handler behind a thin aiokafka runner.

    def handle(state, event: CloudEvent) -> tuple[state, list[Outgoing]]:
        ...  # decide: no I/O, deterministic
        reply = event.reply("inventory.reserved", "inventory", {"reservation_id": rid})
        return new_state, [Outgoing("inventory.replies", reply)]

    participant = Participant(
        "inventory", ["inventory.commands"], handle, initial, kafka=KafkaSettings()
    )
    await participant.serve(stop)  # until stop.set(); or `async with participant:`

Per batch of input records the runner:

1. decodes each one (events.codec, then the catalog if one is given); what
   cannot be decoded or validated goes to ``saga.deadletter`` unchanged with
   the ``x-dlq-*`` headers; a type outside ``handles`` is skipped;
2. applies it through `ParticipantCore`: a known input id is a duplicate and
   gets the outputs recorded the first time, nothing else happens;
3. appends (input, outputs) of every new input to the changelog topic
   ``<prefix><name>.changelog`` (compacted, one partition, keyed by input id)
   and waits until Kafka has it;
4. publishes the outputs (key = saga id) and waits; then commits offsets.

A crash before 3 completes loses nothing (the inputs are redelivered and the
state is rebuilt without them); after 3, the restart replays the changelog,
the redelivered inputs are duplicates and get their original outputs. So a
SIGKILL anywhere never causes a second effect.

The participant is a single writer: its state covers every partition (stock
is shared by all orders), so it assigns itself all partitions of its inputs
instead of joining a group rebalance; offsets are committed under the group
``<prefix><name>``. Run one process per name. A restart needs no session to
expire first.

Optional: ``answer_delay(event_id)`` holds back the outputs of an input for that
many seconds (the reference services inject late answers with it:
`services.late_answers`). The input's partition is committed no further than the
input until its answer has gone out (`held_answers`), so a process that dies during
the delay is given the input again and the restart answers it from the changelog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from events.catalog import EventCatalog
from events.codec import decode
from events.dead_letters import (
    PROCESSING_ERROR,
    dead_letter,
    describe,
    error_details,
    without_value,
)
from events.errors import DecodeError
from events.records import InRecord
from sagas.kafka.authorization_failure import (
    explain_authorization_failure,
    is_authorization_failure,
)
from sagas.kafka.consumer_lag import partition_lag
from sagas.kafka.guarantee import (
    ProcessingGuarantee,
    guarantee_from_env,
    isolation_level,
    require_transactions,
)
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.offset_commits import OffsetCommits
from sagas.kafka.producer_batches import batching_producer, send_grouped
from sagas.kafka.transactions import WriterTransaction
from sagas.participants import participant_io as io
from sagas.participants.held_answers import HeldAnswer, HeldAnswers
from sagas.participants.participant_io import ParticipantMetrics, Record
from sagas.participants.participant_store import (
    Applied,
    ChangelogEntry,
    Handler,
    Outgoing,
    ParticipantCore,
    unit_interval,
)
from sagas.process.gc_policy import freeze_long_lived, relax_young_collections

__all__ = [
    "ChangelogEntry",
    "Handler",
    "Outgoing",
    "Participant",
    "ParticipantMetrics",
    "unit_interval",
]

log = logging.getLogger("sagas.participants.participant")

#: seconds between two offset commits under load: a crash replays at most this much,
#: and the replayed inputs are answered from the dedupe map (no second effect)
COMMIT_INTERVAL = 0.1

S = TypeVar("S")
#: An HTTP view of the state: (state, path parameters) -> JSON value, or None for 404.
View = Callable[[S, Mapping[str, str]], Any]


class Participant(Generic[S]):
    """Consume ``input_topics``, apply ``handler`` once per input id, publish its outputs."""

    def __init__(
        self,
        name: str,
        input_topics: Sequence[str],
        handler: Handler[S],
        initial_state: S,
        *,
        kafka: KafkaSettings,
        handles: Collection[str] | None = None,
        output_topics: Sequence[str] = (),
        catalog: EventCatalog | None = None,
        registry: CollectorRegistry | None = None,
        answer_delay: Callable[[str], float] | None = None,
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
        views: Mapping[str, View[S]] | None = None,
        create_topics: bool = True,
        batch_max: int = 500,
        guarantee: ProcessingGuarantee | None = None,
    ) -> None:
        from events.topics import Topics

        self.name = name
        self.input_topics = tuple(dict.fromkeys(input_topics))
        self.output_topics = tuple(dict.fromkeys(output_topics))
        self.kafka = kafka
        self.handles = frozenset(handles) if handles is not None else None
        self.catalog = catalog
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ParticipantMetrics.create(self.registry)
        self.answer_delay = answer_delay
        self.http_host, self.http_port = http_host, http_port
        self.views = dict(views or {})
        self.create_topics = create_topics
        self.batch_max = batch_max
        self.deadletter_topic = Topics.from_settings(kafka).deadletter
        self.changelog_topic = f"{kafka.topic_prefix}{name}.changelog"
        self.group_id = f"{kafka.topic_prefix}{name}"
        #: None: ``SAGAS_PROCESSING_GUARANTEE``, read by `start`
        self.guarantee = guarantee
        #: exactly_once: the batch's transaction (changelog, replies, dead letters, offsets)
        self._txn: WriterTransaction | None = None
        #: exactly_once: late answers go out on their own, outside any batch's transaction
        self._late_producer: AIOKafkaProducer | None = None
        self.core: ParticipantCore[S] = ParticipantCore(handler, initial_state)
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        #: offsets of published batches, committed in the background (one commit at a
        #: time, at most every COMMIT_INTERVAL s): the next fetch does not wait for it
        self.commits = OffsetCommits(depth=1, interval=COMMIT_INTERVAL)
        #: answers held back (``answer_delay``), and what may be committed meanwhile
        self.held = HeldAnswers(name, self._send_late)
        self._http: Any = None
        self._run_task: asyncio.Task[None] | None = None

    @property
    def state(self) -> S:
        return self.core.state

    @property
    def committed(self) -> dict[TopicPartition, int]:
        """Input partition -> the offset last committed (``participant_consumer_lag``)."""
        return self.commits.committed

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Participant[S]:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        self._run_task = asyncio.create_task(self.run(), name=f"participant {self.name}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Create topics, replay the changelog, then start consuming; sets ``ready``."""
        relax_young_collections()
        counts = await io.prepare_topics(self, create=self.create_topics)
        if self.guarantee is None:
            self.guarantee = guarantee_from_env()
        isolation = isolation_level(self.guarantee)
        if self.guarantee == "exactly_once":
            txn = WriterTransaction(None, self.group_id)
            # refuses a broker without transactions in one line (the embedded one)
            await require_transactions(self.kafka, txn.id)
            txn.producer = self._producer = batching_producer(self.kafka, transactional_id=txn.id)
            await self._producer.start()
            self._txn = txn
            self._late_producer = batching_producer(self.kafka, acks="all")
            await self._late_producer.start()
        else:
            self._producer = batching_producer(self.kafka, acks="all")
            await self._producer.start()
        replayed = await io.replay_changelog(
            self.kafka, self.changelog_topic, self.core, isolation=isolation
        )
        if self.core.mismatches:
            log.warning(
                "%s: %d of %d replayed inputs produced other outputs than recorded; the "
                "handler is not deterministic (state may differ from what was answered)",
                self.name,
                self.core.mismatches,
                replayed,
            )
        self._consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation,
            **self.kafka.consumer_kwargs(),
        )
        await self._consumer.start()
        self.commits.consumer = self._consumer
        partitions = [TopicPartition(t, p) for t in self.input_topics for p in range(counts[t])]
        self._consumer.assign(partitions)
        for tp in partitions:  # where a restart resumes: the lag counts from there
            offset = await self._consumer.committed(tp)
            if offset is not None:
                self.committed[tp] = offset
        topics = set(self.input_topics)
        self.metrics.held.labels(self.name).set_function(self.held.floor.holding)
        self.metrics.lag.watch(
            self.name, lambda: partition_lag(self._consumer, topics, self.committed)
        )
        if self.http_port is not None:
            self._http = await io.serve_http(self, self.http_host, self.http_port)
        freeze_long_lived()  # the modules and the replayed state: not walked by every full GC
        log.info("%s: replayed %d inputs, consuming %s", self.name, replayed, self.input_topics)
        self.ready.set()

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, process until ``stop`` is set, then stop; re-raises a failure of the loop
        (a refusal by Kafka's authorizer as a `KafkaAuthorizationError`: it cannot pass)."""
        try:
            await self._serve(stop)
        except Exception as exc:
            if is_authorization_failure(exc):
                raise explain_authorization_failure(exc, self.kafka) from None
            raise

    async def _serve(self, stop: asyncio.Event) -> None:
        async with self:
            assert self._run_task is not None
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({self._run_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
        if self._run_task.done() and not self._run_task.cancelled():
            self._run_task.result()  # raises what ended the loop

    async def run(self) -> None:
        """Process batches until `stop`."""
        assert self._consumer is not None, "call start() first"
        published = asyncio.get_running_loop().create_future()
        published.set_result(None)  # `process` returns once its outputs are durable
        while not self._stopping.is_set():
            try:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=self.batch_max)
            except Exception as exc:
                if is_authorization_failure(exc):
                    raise explain_authorization_failure(exc, self.kafka, "Read") from None
                raise
            records = [r for tp in sorted(batches) for r in batches[tp]]
            if records:
                await self.process(records)
                for tp, rs in batches.items():
                    if rs:
                        self.held.floor.handled(tp, rs[-1].offset + 1)
            # what is durable now, this batch's and any input whose held answer went out
            offsets = self.held.floor.due()
            if self._txn is not None:  # exactly_once: the offsets join the batch's writes
                if records or offsets:
                    await self._txn.commit(offsets)
                    self.committed.update(offsets)
                self.held.release()  # their effects are committed: their delays start
                continue
            self.held.release()  # `process` returned: their effects are in Kafka
            if offsets:
                await self.commits.add(published, offsets)
            else:
                self.commits.commit_parked()  # what the interval held back, as it comes due
            if not records:
                await self.commits.drain()
        await self.commits.drain()

    async def stop(self) -> None:
        """Finish the batch in hand, send held-back late answers now, close the clients."""
        self._stopping.set()
        if self._run_task is not None:
            try:
                await self._run_task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # `serve` re-raises it; here the clients must still close
                if not is_authorization_failure(exc):  # that one is said in one line
                    log.exception("%s: the batch loop failed", self.name)
        if self._producer is not None:
            await self._flush_held()
        self.metrics.lag.forget(self.name)
        with contextlib.suppress(KeyError):  # prometheus-client < 0.22 raises if not set
            self.metrics.held.remove(self.name)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._late_producer is not None:
            await self._late_producer.stop()
        if self._http is not None:
            await self._http.cleanup()

    # -- one batch ---------------------------------------------------------------------

    async def process(
        self, records: Iterable[Any], failures: Mapping[int, Exception] | None = None
    ) -> None:
        """Handle consumed records; returns once their outputs are published.

        ``failures``: records (by position) that a subclass's preparation raised on; they
        are dead-lettered as ``processing-error`` like one the handler raised on."""
        assert self._producer is not None
        logged: list[Record] = []
        out: list[Record] = []
        dead: list[Record] = []
        delayed: list[tuple[float, HeldAnswer]] = []
        timings: list[tuple[str, float]] = []
        for position, record in enumerate(records):
            started = time.perf_counter()
            where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
            event = None
            try:
                if failures and position in failures:
                    raise failures[position]
                event = decode(record.value, record.headers, **where)
                if self.handles is not None and event.type not in self.handles:
                    self._count(event.type, "ignored")
                    continue
                if self.catalog is not None:
                    self.catalog.validate(event, **where)
                applied = self.core.apply(record.topic, event)
            except DecodeError as exc:
                log.warning("%s: dead-lettering a record: %s", self.name, exc)
                dead.append(
                    dead_letter(InRecord.of(record), self.deadletter_topic, exc.reason, str(exc))
                )
                self._count(None, "deadletter")
                continue
            except Exception as exc:  # a bug (decoder, catalog, handler): park it, keep going
                log.error(
                    "%s: %s[%s]@%s raised %s; dead-lettered as %s", self.name, record.topic,
                    record.partition, record.offset, describe(exc), PROCESSING_ERROR,
                    exc_info=exc,
                )  # fmt: skip
                dead.append(
                    dead_letter(
                        InRecord.of(record),
                        self.deadletter_topic,
                        PROCESSING_ERROR,
                        describe(exc),
                        extra=error_details(exc),
                    )  # fmt: skip
                )
                self._count(event.type if event is not None else None, PROCESSING_ERROR)
                continue
            if applied.entry is not None:
                logged.append(
                    Record(self.changelog_topic, event.id.encode(), applied.entry.encode(), [], 0)
                )
            delay = self.answer_delay(event.id) if self.answer_delay is not None else 0.0
            if delay > 0:
                tp = TopicPartition(record.topic, record.partition)
                delayed.append((delay, HeldAnswer(applied.outputs, tp, record.offset)))
            else:
                out.extend(io.output_records(applied.outputs))
            self._count(event.type, _result(applied))
            timings.append((event.type, started))
        await self._send_all(logged)  # the effects first: an answer is never ahead of its log
        await self._send_all(out)
        await self._send_dead_letters(dead)
        for delay, answer in delayed:
            self.held.hold(delay, answer)
        now, child = time.perf_counter(), self.metrics.child
        for type_, started in timings:
            child(self.metrics.duration, self.name, self._label(type_)).observe(now - started)

    async def _flush_held(self) -> None:
        """On stop: send the answers still held back now, then commit their inputs."""
        if not await self.held.flush():
            return
        offsets = self.held.floor.due()
        if not offsets or self._consumer is None:
            return
        if self._txn is not None and self._txn.is_open:
            # the loop failed inside a batch: committing would publish that half batch
            log.warning("%s: a batch failed; inputs of held-back answers not committed", self.name)
            return
        try:
            if self._txn is not None:
                await self._txn.commit(offsets)
                self.committed.update(offsets)
            else:
                durable = asyncio.get_running_loop().create_future()
                durable.set_result(None)  # the answers went out just now
                await self.commits.add(durable, offsets)
                await self.commits.drain()
        except Exception as exc:  # a restart redelivers them: answered from the changelog
            log.warning("%s: inputs of held-back answers not committed: %s", self.name, exc)

    async def _send_late(self, records: Sequence[Record]) -> None:
        await self._send_all(records, late=True)

    async def _send_all(self, records: Sequence[Record], *, late: bool = False) -> None:
        """Send and wait; in exactly_once a batch's records join its transaction, and late
        answers (``late``) go out on their own producer."""
        producer = self._producer
        if late and self._late_producer is not None:
            producer = self._late_producer
        elif self._txn is not None and records:
            await self._txn.begin()
        assert producer is not None
        try:
            futures = await send_grouped(producer, records)
            if futures:
                await asyncio.gather(*futures)
        except Exception as exc:
            if is_authorization_failure(exc):
                raise explain_authorization_failure(exc, self.kafka, "Write") from None
            raise

    async def _send_dead_letters(self, records: Sequence[Record]) -> None:
        """Each record to the dead-letter topic; one too large for the producer or the
        broker goes without its value (``x-dlq-value-dropped``: its size), so a bad
        input near the size limit cannot stop the participant."""
        for record in records:
            try:
                await self._send_all([record])
            except MessageSizeTooLargeError:
                log.warning(
                    "%s: a dead letter of %d bytes is too large to publish; "
                    "publishing it without its value",
                    self.name,
                    len(record.value or b""),
                )
                await self._send_all([without_value(record)])

    def _label(self, type_: str | None) -> str:
        if type_ is None or (self.handles is not None and type_ not in self.handles):
            return "other"
        return type_

    def _count(self, type_: str | None, result: str) -> None:
        self.metrics.child(self.metrics.commands, self.name, self._label(type_), result).inc()


def _result(applied: Applied) -> str:
    if applied.duplicate:
        return "duplicate"
    return applied.outputs[0].event.type if applied.outputs else "no_output"
