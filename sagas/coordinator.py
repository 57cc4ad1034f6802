"""The coordinator: a faust app that moves bytes in and out of `sagas.machine.decide`.

Per batch of records (all input topics, every partition this replica owns):

1. decode each record; what cannot be decoded or routed goes to the
   dead-letter topic, unchanged, with the reason headers;
2. run the state machine for it against the saga's state (the batch sees its
   own earlier writes);
3. send every command and lifecycle event and wait until Kafka has them;
4. only then write the new states to the changelog-backed table.

A crash between 3 and 4 replays the batch: the machine makes the same
decisions, the same command ids go out again, participants drop them. Offsets
are committed after the producer is flushed (faust does that), so nothing the
table says happened is lost either.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry

from events.codec import encode
from events.kafka_settings import KafkaSettings
from events.partitioning import partition_for
from sagas import control
from sagas.batch import Batch, known_types
from sagas.faust_consumer import adjust_faust_consumer
from sagas.live_cache import LiveStates
from sagas.loader import DefinitionRegistry
from sagas.metrics import CoordinatorMetrics
from sagas.settings import CoordinatorSettings
from sagas.table_values import EARLY_MARKER, EARLY_TOKEN, PURGE_TOKEN, TERMINAL_STATUSES
from sagas.timers import TimerQueue

log = logging.getLogger("sagas.coordinator")


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
        self.triggers = registry.triggers()
        self.known_types = known_types(registry)
        self.timers = TimerQueue()
        self._needs_rebuild = True
        #: decoded states of the running sagas this replica owns, so that a reply does not
        #: pay for parsing its saga's state; the table stays the truth (cleared on rebalance)
        self.live = LiveStates(settings.live_cache)
        self.input_topics = sorted(registry.topics_read() | {self.topics.control})
        self._input_set = frozenset(self.input_topics)
        self.app = self._build_app()
        from sagas.api import install_api  # HTTP API, /metrics (imports this module)

        self.api = install_api(self)

    # -- wiring -------------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        s, k = self.settings, self.kafka
        adjust_faust_consumer(k)
        datadir = Path(s.data_dir) / s.app_id
        datadir.mkdir(parents=True, exist_ok=True)
        app = faust.App(
            s.app_id,
            broker=k.faust_broker_url(),
            store=s.store,
            datadir=str(datadir),
            topic_partitions=k.partitions,
            topic_replication_factor=k.replication_factor,
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=s.heartbeat_interval,
            broker_rebalance_timeout=s.rebalance_timeout,
            consumer_group_instance_id=s.instance_id,
            web_enabled=True,
            web_host=s.web_host,
            web_port=s.web_port,
            canonical_url=s.advertised_url(),
            web_bind=s.web_host,
            table_standby_replicas=0,
            producer_linger_ms=1,
            stream_buffer_maxsize=max(4096, s.batch_max * 2),
            **k.faust_kwargs(),
        )
        self.table = app.Table(
            "sagas",
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=k.partitions,
        )
        source = app.topic(
            *self.input_topics,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )

        async def coordinate(stream: faust.StreamT) -> None:
            batches = stream.take_events(s.batch_max, within=s.batch_within)  # type: ignore[attr-defined]
            async for events in batches:
                try:
                    await self.process_batch(events, time.time())
                except BaseException:
                    # faust acks a batch's records even when its consumer raises (take_events
                    # acks in a finally), and acked offsets get committed: a batch that did not
                    # finish would be lost. Exit before that can happen; a restarted replica
                    # replays it (crash-only, like a SIGKILL).
                    log.critical("batch failed; exiting so that it is replayed", exc_info=True)
                    logging.shutdown()
                    os._exit(70)

        app.agent(source, name="sagas.coordinate")(coordinate)
        app.timer(s.timer_tick, name="sagas.timers")(self._fire_due_timers)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_partitions_revoked.connect(self._on_assigned)
        return app

    async def _on_assigned(self, *args: Any, **kwargs: Any) -> None:
        self._needs_rebuild = True
        self.live.clear()

    # -- the batch ----------------------------------------------------------------------

    async def process_batch(self, events: Sequence[Any], now: float) -> None:
        batch = Batch(self, now)
        for event in events:
            msg = event.message
            batch.handle(msg.topic, msg.partition, msg.offset, msg.key, msg.value, msg.headers)
        futures = [await self._send(*record) for record in batch.outgoing]
        if futures:
            await asyncio.gather(*futures)
        # A paused replica waking up may have lost partitions while it worked: a saga whose
        # partition is no longer ours must not overwrite the new owner's state (the sends
        # were harmless duplicates; the new owner replays those records).
        inputs = self._input_set
        owned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic in inputs}
        writes = {
            saga_id: raw
            for saga_id, raw in batch.writes.items()
            if partition_for(saga_id.encode(), self.kafka.partitions) in owned
        }
        await self._log_states(writes)
        for saga_id in batch.writes:
            state = batch.decoded.get(saga_id) if saga_id in writes else None
            if state is None:
                self.live.forget(saga_id)
            else:
                self.live.put(state)
        for due, saga_id, token in batch.timers:
            self.timers.push(due, saga_id, token)

    async def _log_states(self, writes: dict[str, bytes | None]) -> None:
        """Log saga states to the table's changelog, wait for Kafka, then store them.

        Not ``table[key] = raw``: faust would pick the changelog partition of
        whichever event happens to be current (a batch spans partitions), and it
        queues the record in its own buffer, which its pre-commit flush can miss
        (seen: a coordinator killed after a commit came back without the state the
        committed records had produced). Here the batch is not done, so its
        records are not acked, until the changelog has every state.
        """
        if not writes:
            return
        topic = self.table.changelog_topic.get_topic_name()
        futures = []
        for saga_id, raw in writes.items():
            key = saga_id.encode()
            partition = partition_for(key, self.kafka.partitions)
            futures.append(await self._send(topic, key, raw, [], partition))
        await asyncio.gather(*futures)
        for saga_id, raw in writes.items():
            key = saga_id.encode()
            if raw is None:
                self.table.data.pop(key, None)
            else:
                self.table.data[key] = raw

    async def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> Any:
        self.metrics.messages.labels(topic, "out").inc()
        return await self.app.producer.send(topic, key, value, partition, None, headers)

    # -- timers -------------------------------------------------------------------------

    async def _fire_due_timers(self) -> None:
        if self._needs_rebuild:
            recovery = self.app.tables.recovery  # type: ignore[attr-defined]
            if self.app.rebalancing or not recovery.completed.is_set():
                return
            self._rebuild_timers()
        due = self.timers.pop_due(time.time())
        if not due:
            return
        futures = []
        for saga_id, token in due:
            value, headers = encode(control.timer_fired(saga_id, token))
            futures.append(await self._send(self.topics.control, saga_id.encode(), value, headers))
        await asyncio.gather(*futures)

    def _rebuild_timers(self) -> None:
        """Re-arm the deadlines of every saga in the partitions this replica now owns."""
        self._needs_rebuild = False
        entries = []
        for key, raw in list(self.table.items()):
            if raw is None:
                continue
            saga_id = key.decode()
            if raw[:1] == EARLY_MARKER:
                early = orjson.loads(raw[1:])
                entries.append((early["expires"], saga_id, EARLY_TOKEN + saga_id))
                continue
            # Plain JSON, not the model: recovery reads every saga the replica owns.
            doc = orjson.loads(raw)
            entries.extend((t["due"], saga_id, token) for token, t in doc["timers"].items())
            if doc["status"] in TERMINAL_STATUSES and doc.get("finished_at") is not None:
                due = doc["finished_at"] + self.settings.retention
                entries.append((due, saga_id, PURGE_TOKEN + saga_id))
        self.timers.replace(entries)
        log.info("re-armed %d timers from the table", len(entries))


__all__ = ["EARLY_MARKER", "Coordinator", "partition_for"]
