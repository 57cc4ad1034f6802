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
from functools import lru_cache
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry

from events.codec import decode, encode
from events.envelope import CloudEvent
from events.errors import DecodeError
from events.kafka_settings import KafkaSettings
from sagas import control
from sagas.faust_consumer import adjust_faust_consumer
from sagas.live_cache import LiveStates
from sagas.loader import DefinitionRegistry
from sagas.logs import saga_fields
from sagas.machine import decide
from sagas.messages import Outcome, StartSaga
from sagas.metrics import CoordinatorMetrics
from sagas.routing import Reject, Route, route
from sagas.settings import CoordinatorSettings
from sagas.state import SagaState, SagaStatus
from sagas.state_codec import dump_state, load_state
from sagas.timers import TimerQueue

log = logging.getLogger("sagas.coordinator")

#: A table value that is not a saga yet: events that arrived before their saga started.
EARLY_MARKER = b"E"
EARLY_TOKEN = "early:"
#: A timer token that removes a finished saga from the table once its retention is over.
PURGE_TOKEN = "purge:"
_TERMINAL = frozenset(status.value for status in SagaStatus if status.terminal)


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``.

    Cached: every record of a saga asks again, and murmur2 is pure Python.
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


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
        self.known_types = _known_types(registry)
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
        batch = _Batch(self, now)
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
        for saga_id, raw in batch.writes.items():
            key = saga_id.encode()
            if partition_for(key, self.kafka.partitions) not in owned:
                self.live.forget(saga_id)
                continue
            self._write(key, raw)
            state = batch.decoded.get(saga_id)
            if state is None:
                self.live.forget(saga_id)
            else:
                self.live.put(state)
        for due, saga_id, token in batch.timers:
            self.timers.push(due, saga_id, token)

    def _write(self, key: bytes, raw: bytes | None) -> None:
        """Store a saga's state and log it to the changelog partition of its key.

        Written by hand rather than ``table[key] = raw`` because a batch spans
        partitions, and faust would pick the changelog partition of whichever
        event happens to be current.
        """
        self.table.send_changelog(partition_for(key, self.kafka.partitions), key, raw)
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
            if doc["status"] in _TERMINAL and doc.get("finished_at") is not None:
                due = doc["finished_at"] + self.settings.retention
                entries.append((due, saga_id, PURGE_TOKEN + saga_id))
        self.timers.replace(entries)
        log.info("re-armed %d timers from the table", len(entries))


def _known_types(registry: DefinitionRegistry) -> frozenset[str]:
    """Every event type a loaded definition expects on the topics the coordinator reads."""
    types: set[str] = set()
    for definition in registry:
        if definition.trigger is not None:
            types.add(definition.trigger.type)
        for step in definition.steps:
            types.update(step.success, step.failure)
            if step.compensation is not None:
                types.update(step.compensation.success, step.compensation.failure)
    return frozenset(types)


class _Batch:
    """What one batch decides: records to send, states to write, timers to arm."""

    def __init__(self, coordinator: Coordinator, now: float) -> None:
        self.c = coordinator
        self.now = now
        self.states: dict[str, bytes | None] = {}
        self.decoded: dict[str, SagaState | None] = {}
        self.writes: dict[str, bytes | None] = {}
        self.outgoing: list[tuple[Any, ...]] = []
        self.timers: list[tuple[float, str, str]] = []

    def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
    ) -> None:
        c = self.c
        c.metrics.messages.labels(topic, "in").inc()
        header_list = list(headers.items() if isinstance(headers, dict) else headers or [])
        try:
            event = decode(
                value,
                header_list,
                max_bytes=c.settings.max_record_bytes,
                topic=topic,
                partition=partition,
                offset=offset,
            )
        except DecodeError as exc:
            self.dead_letter(
                topic, partition, offset, key, value, header_list, exc.reason, str(exc)
            )
            return
        saga_key = event.sagaid.encode()
        expected = partition_for(saga_key, c.kafka.partitions)
        if partition != expected:
            # Produced with another partitioner (librdkafka's default, say): send it
            # where the saga's state lives, on the same topic.
            self.outgoing.append((topic, saga_key, value, header_list, expected))
            return
        if (
            topic == c.topics.control
            and event.type == control.TIMER_FIRED
            and (str(event.data.get("token", "")).startswith((EARLY_TOKEN, PURGE_TOKEN)))
        ):
            if event.data["token"].startswith(EARLY_TOKEN):
                self.expire_early(event.sagaid)
            else:
                self.purge(event.sagaid)
            return
        if topic != c.topics.control and event.type not in c.known_types:
            self.dead_letter(
                topic,
                partition,
                offset,
                key,
                value,
                header_list,
                "unknown-type",
                f"no loaded saga definition uses event type {event.type!r} "
                f"(saga {event.sagaid!r}); known: {', '.join(sorted(c.known_types))}",
            )
            return
        self.apply(topic, partition, offset, key, value, header_list, event)

    def apply(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        event: CloudEvent,
    ) -> None:
        c = self.c
        sid = event.sagaid
        raw = self.raw_state(sid)
        early = raw is not None and raw[:1] == EARLY_MARKER
        state = None if raw is None or early else self.state(sid, raw)
        routed = route(c.registry, c.triggers, c.topics.control, topic, event, state)
        if isinstance(routed, Reject):
            if routed.reason == "unknown-saga" and event.type == control.TIMER_FIRED:
                return  # a deadline outliving its saga (purged after its retention): stale
            if routed.reason == "unknown-saga" and self.could_be_early(topic, event):
                self.keep_early(
                    sid, raw if early else None, topic, partition, offset, key, value, headers
                )
                return
            self.dead_letter(
                topic, partition, offset, key, value, headers, routed.reason, routed.detail
            )
            return
        self.decide(sid, routed, state)
        if early and isinstance(routed.message, StartSaga):
            self.replay_early(sid, raw)

    def decide(self, sid: str, routed: Route, state: SagaState | None) -> None:
        c = self.c
        message = routed.message
        decision = decide(routed.definition, state, message, self.now)
        saga = routed.definition.name
        reopened = (
            state is not None
            and state.terminal
            and decision.state is not None
            and not decision.state.terminal
        )
        c.metrics.observe(saga, decision, started=isinstance(message, StartSaga), reopened=reopened)
        if decision.outcome is not Outcome.APPLIED or decision.state is None:
            if decision.outcome is not Outcome.STALE_TIMER:
                log.debug(
                    "saga %s: %s (%s)",
                    sid,
                    decision.outcome.value,
                    decision.note,
                    extra=saga_fields(sid, None, saga=saga),
                )
            return
        new = decision.state
        self.decoded[new.saga_id] = new
        raw = dump_state(new)
        self.states[new.saga_id] = raw
        self.writes[new.saga_id] = raw
        key = new.saga_id.encode()
        for out in decision.commands:
            value, headers = encode(out.event)
            self.outgoing.append((out.topic, key, value, headers))
        for event in decision.lifecycle:
            value, headers = encode(event)
            self.outgoing.append((c.topics.lifecycle, key, value, headers))
        if decision.lifecycle and log.isEnabledFor(logging.INFO):
            for event in decision.lifecycle:
                reason = event.data.get("reason")
                log.info(
                    "%s%s",
                    event.type,
                    f": {reason}" if reason else "",
                    extra=saga_fields(sid, event.data.get("step"), saga=saga),
                )
        self.timers.extend((t.due, new.saga_id, t.token) for t in decision.timers)
        if new.terminal and new.finished_at is not None:
            due = new.finished_at + c.settings.retention
            self.timers.append((due, new.saga_id, PURGE_TOKEN + new.saga_id))

    # -- state access -------------------------------------------------------------------

    def raw_state(self, sid: str) -> bytes | None:
        if sid not in self.states:
            self.states[sid] = self.c.table.get(sid.encode())
        return self.states[sid]

    def state(self, sid: str, raw: bytes) -> SagaState:
        if self.decoded.get(sid) is None:
            self.decoded[sid] = self.c.live.get(sid) or load_state(raw)
        state = self.decoded[sid]
        assert state is not None
        return state

    # -- events that arrive before their saga -------------------------------------------

    def could_be_early(self, topic: str, event: CloudEvent) -> bool:
        if topic == self.c.topics.control:
            return False
        return any(
            step.listens_on == topic and event.type in (*step.success, *step.failure)
            for definition in self.c.registry
            for step in definition.steps
        )

    def keep_early(
        self,
        sid: str,
        raw: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        held: dict[str, Any] = (
            orjson.loads(raw[1:])
            if raw
            else {
                "expires": self.now + self.c.settings.early_event_grace,
                "records": [],
            }
        )
        held["records"].append(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key": None if key is None else key.decode("utf-8", "replace"),
                "value": (value or b"").decode("utf-8", "replace"),
                "headers": [[k, v.decode("utf-8", "replace")] for k, v in headers],
            }
        )
        new_raw = EARLY_MARKER + orjson.dumps(held)
        self.states[sid] = new_raw
        self.writes[sid] = new_raw
        if raw is None:
            self.timers.append((held["expires"], sid, EARLY_TOKEN + sid))

    def replay_early(self, sid: str, raw: bytes | None) -> None:
        assert raw is not None
        for record in orjson.loads(raw[1:])["records"]:
            headers = [(k, v.encode()) for k, v in record["headers"]]
            value = record["value"].encode()
            event = decode(value, headers)
            self.apply(record["topic"], -1, -1, sid.encode(), value, headers, event)

    def purge(self, sid: str) -> None:
        """Forget a saga that finished longer ago than the retention (a tombstone in the log)."""
        raw = self.raw_state(sid)
        if raw is None or raw[:1] == EARLY_MARKER:
            return
        state = self.state(sid, raw)
        finished = state.finished_at
        if not state.terminal or finished is None:
            return
        if finished + self.c.settings.retention > self.now:
            return  # repaired and finished again since this timer was set
        self.states[sid] = None
        self.decoded.pop(sid, None)
        self.writes[sid] = None

    def expire_early(self, sid: str) -> None:
        raw = self.raw_state(sid)
        if raw is None or raw[:1] != EARLY_MARKER:
            return
        for record in orjson.loads(raw[1:])["records"]:
            headers = [(k, v.encode()) for k, v in record["headers"]]
            key = record.get("key")
            self.dead_letter(
                record["topic"],
                record.get("partition", -1),
                record.get("offset", -1),
                None if key is None else key.encode(),
                record["value"].encode(),
                headers,
                "unknown-saga",
                f"no saga {sid!r} started within {self.c.settings.early_event_grace}s of this "
                f"event; check the record's sagaid and that the saga's trigger was published",
            )
        self.states[sid] = None
        self.writes[sid] = None

    # -- dead letters -------------------------------------------------------------------

    def dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        reason: str,
        detail: str,
    ) -> None:
        c = self.c
        c.metrics.dead_letters.labels(reason).inc()
        log.warning(
            "dead letter from %s[%s]@%s: %s: %s",
            topic,
            partition,
            offset,
            reason,
            detail,
            extra=saga_fields(
                key.decode("utf-8", "replace") if key else None, None, reason=reason, topic=topic
            ),
        )
        dlq_headers = [
            *(h for h in headers if not h[0].startswith("x-dlq-")),
            ("x-dlq-reason", reason.encode()),
            ("x-dlq-topic", topic.encode()),
            ("x-dlq-partition", str(partition).encode()),
            ("x-dlq-offset", str(offset).encode()),
            ("x-dlq-detail", detail[:1000].encode("utf-8", "replace")),
        ]
        self.outgoing.append((c.topics.deadletter, key, value, dlq_headers))
