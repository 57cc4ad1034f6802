"""The I/O a participant does besides its batch loop: topics, changelog replay, HTTP.

Kept apart from `sagas.participants.participant` so the runner reads as the batch protocol
it implements.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from events.codec import encode
from events.records import OutRecord
from sagas.kafka.admin import ensure_compacted_topic, ensure_topics, partition_counts
from sagas.kafka.consumer_lag import ConsumerLagCollector
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.log_reader import read_to_end
from sagas.kafka.metric_children import MetricChildren
from sagas.participants.participant_store import ChangelogEntry, Outgoing, ParticipantCore

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("sagas.participants.participant")

#: A record to publish.
Record = OutRecord


class Participant(Protocol):
    """What this module uses of `sagas.participants.participant.Participant` (named here, so that
    the runner, which calls these, is not imported back)."""

    @property
    def name(self) -> str: ...

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def input_topics(self) -> Collection[str]: ...

    @property
    def output_topics(self) -> Collection[str]: ...

    @property
    def deadletter_topic(self) -> str: ...

    @property
    def changelog_topic(self) -> str: ...

    @property
    def registry(self) -> CollectorRegistry: ...

    @property
    def ready(self) -> asyncio.Event: ...

    @property
    def core(self) -> ParticipantCore[Any]: ...

    @property
    def views(self) -> Mapping[str, Callable[[Any, dict[str, str]], Any]]: ...

    @property
    def state(self) -> Any: ...


DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class ParticipantMetrics:
    """``result`` is the first output's type, or duplicate/ignored/deadletter/no_output, or
    processing-error (the input made the decoder or the handler raise: a bug).

    ``lag`` is ``participant_consumer_lag{service,topic,partition}``: a name of its own
    rather than ``saga_consumer_lag`` with a service label, because a choreographed
    participant reads topics the coordinator reads too (``orders``), and the
    coordinator's ``sum by (topic)`` (dashboard, alert) must not add the two up.

    ``held`` is ``participant_held_answers{service}``: inputs whose answers are held back
    (``answer_delay``) and not yet sent; their partitions are committed no further meanwhile,
    so a value that keeps growing means late answers cannot be sent (the log says why).

    Series are per service name: two participants of one name sharing a registry share
    (and overwrite) theirs, as they do their lag."""

    commands: Counter
    duration: Histogram
    lag: ConsumerLagCollector
    held: Gauge
    #: ``child(metric, *labels)``: each labelled child made once (per input, twice)
    child: MetricChildren = field(
        default_factory=MetricChildren, init=False, repr=False, compare=False
    )

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ParticipantMetrics:
        known = _METRICS.get(registry)
        if known is None:
            known = _METRICS[registry] = cls(
                Counter(
                    "participant_commands",
                    "Inputs handled by a participant, by result.",
                    ["service", "type", "result"],
                    registry=registry,
                ),
                Histogram(
                    "participant_command_duration_seconds",
                    "Input received to its outputs published (late-answer delay excluded).",
                    ["service", "type"],
                    buckets=DURATION_BUCKETS,
                    registry=registry,
                ),
                ConsumerLagCollector(
                    "participant_consumer_lag",
                    "Records in an input partition not yet committed by the participant.",
                    "service",
                ),
                Gauge(
                    "participant_held_answers",
                    "Inputs whose answers are held back (answer_delay) and not yet sent.",
                    ["service"],
                    registry=registry,
                ),
            )
            registry.register(known.lag)
        return known


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, ParticipantMetrics] = (
    weakref.WeakKeyDictionary()
)


async def prepare_topics(participant: Participant, *, create: bool) -> dict[str, int]:
    """Make sure every topic exists; return the partition counts of the input topics."""
    kafka = participant.kafka
    names = [*participant.input_topics, *participant.output_topics, participant.deadletter_topic]
    if create:
        counts = await ensure_topics(kafka, names)
    else:
        counts = await partition_counts(kafka, participant.input_topics)
    await ensure_changelog(kafka, participant.changelog_topic)
    return counts


async def ensure_changelog(kafka: KafkaSettings, topic: str) -> None:
    """Create the changelog (one partition: its order is the order of effects) if missing."""
    await ensure_compacted_topic(kafka, topic, partitions=1)


async def replay_changelog(
    kafka: KafkaSettings,
    topic: str,
    core: ParticipantCore[Any],
    *,
    isolation: str = "read_uncommitted",
) -> int:
    """Feed every changelog entry to ``core``; return how many were read (``isolation``
    read_committed in exactly_once: an aborted batch's entries are not replayed)."""
    read = 0
    tps = [TopicPartition(topic, 0)]
    async for batch in read_to_end(kafka, tps, max_records=5000, isolation=isolation):
        for record in batch:
            if record.value is None:
                continue
            core.replay(ChangelogEntry.decode(record.value))
            read += 1
    return read


async def serve_http(participant: Participant, host: str, port: int) -> web.AppRunner:
    """``/metrics``, ``/health`` and the participant's views, on ``host:port``."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(participant.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def health(request: web.Request) -> web.Response:
        doc = {
            "name": participant.name,
            "ready": participant.ready.is_set(),
            "inputs_applied": len(participant.core.seen),
        }
        return _json(doc, 200 if participant.ready.is_set() else 503)

    def view_handler(view: Any) -> Any:
        async def handle(request: web.Request) -> web.Response:
            value = view(participant.state, dict(request.match_info))
            if value is None:
                return _json({"error": "not found", "path": request.path}, 404)
            return _json(value, 200)

        return handle

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    for path, view in participant.views.items():
        app.router.add_get(path, view_handler(view))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("%s: serving /metrics on http://%s:%d", participant.name, host, port)
    return runner


def _json(doc: Any, status: int) -> Any:
    from aiohttp import web

    return web.Response(
        body=orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def output_records(outputs: Iterable[Outgoing]) -> list[Record]:
    """The records of a handler's outputs, keyed by saga id."""
    records: list[Record] = []
    for o in outputs:
        value, headers = encode(o.event)
        records.append(OutRecord(o.topic, o.event.sagaid.encode(), value, headers))
    return records
