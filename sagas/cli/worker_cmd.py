"""`sagas worker`: run one coordinator replica."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sagas.cli import app

if TYPE_CHECKING:
    from sagas.api import HttpApi
    from sagas.coordinator import Coordinator


@app.command()
def worker(
    definitions: list[Path] = typer.Option(
        ...,
        "--definitions",
        "-d",
        help="YAML/JSON file of saga definitions, or a folder of them (repeatable).",
    ),
    web_port: int | None = typer.Option(None, min=1, max=65535, help="HTTP API and /metrics port."),
    create_topics: bool = typer.Option(True, help="Create missing topics before starting."),
    log_level: str | None = typer.Option(None, help="debug, info, warning, error."),
    log_format: str | None = typer.Option(
        None, help="text, or json (one object per line with saga_id and step); SAGAS_LOG_FORMAT."
    ),
) -> None:
    """Run a coordinator replica for the given saga definitions."""
    from pydantic import ValidationError

    from events.topics import Topics
    from sagas.cli.foreground import (
        fail,
        kafka_client_logs_held_back,
        kafka_failure,
        kafka_from_environment,
        prepare_until_signal,
    )
    from sagas.coordinator import Coordinator, changelog_topic
    from sagas.errors import SagaError
    from sagas.kafka.guarantee import TransactionsUnsupported, require_transactions
    from sagas.loader import DefinitionRegistry, load_definitions
    from sagas.settings import CoordinatorSettings
    from sagas.topic_setup import prepare_topics

    flags: dict[str, Any] = {"web_port": web_port, "log_level": log_level, "log_format": log_format}
    try:
        # flags validated like the variables they override (the same ranges and choices)
        settings = CoordinatorSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        wrong = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        given = [f"--{k.replace('_', '-')}" for k in wrong if flags.get(k) is not None]
        if not given:
            raise  # a variable's mistake: `sagas` names it (sagas.cli.exits)
        fail(f"{', '.join(sorted(given))}: {exc.errors()[0]['msg']}")
    kafka = kafka_from_environment()
    # until it serves, a failure is said in one line below, not in aiokafka's log too
    with kafka_client_logs_held_back():
        try:
            registry = DefinitionRegistry(d for path in definitions for d in load_definitions(path))
            topics = Topics.from_settings(kafka)
            changelog = changelog_topic(settings.app_id)
            # SIGTERM must stop a worker that waits for Kafka here too (compose, Kubernetes)
            prepare_until_signal(
                lambda: prepare_topics(
                    kafka, registry, topics, create=create_topics, changelog=changelog
                ),
                "coordinator",
            )
            if settings.processing_guarantee == "exactly_once":
                # the embedded broker has no transactions: refuse now, not at the first batch
                prepare_until_signal(
                    lambda: require_transactions(kafka, f"{settings.app_id}-eos-probe"),
                    "coordinator",
                )
        except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
            if isinstance(exc, TransactionsUnsupported):
                fail(str(exc))
            if (reason := kafka_failure(exc)) is not None:
                fail(reason)
            if isinstance(exc, SagaError) or exc.__class__.__module__.startswith(
                ("events", "aiokafka")
            ):
                fail(str(exc))
            raise
    coordinator = Coordinator(registry, kafka=kafka, settings=settings, topics=topics)
    run_coordinator(coordinator, settings.log_level, settings.log_format)


def run_coordinator(coordinator: Coordinator, log_level: str, log_format: str = "text") -> None:
    """Run a coordinator and its HTTP API in the foreground until SIGTERM/SIGINT, logging
    in ``log_format``.

    On the signal it finishes and commits the batches in hand and leaves the group,
    so its partitions move to the other replicas at once.
    """
    from sagas.api import install_api
    from sagas.cli.foreground import run_until_signal
    from sagas.logs import configure

    configure(log_level, log_format)
    token = coordinator.settings.api_token
    api = install_api(
        coordinator,
        coordinator.metrics_registry,
        token.get_secret_value() if token is not None else None,
        kafka=coordinator.kafka,
    )

    async def serve(stop: asyncio.Event) -> None:
        announce = asyncio.create_task(_announce_ready(coordinator, api, log_level))
        running = asyncio.create_task(serve_with_api(coordinator, api, stop))
        asked = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([running, asked], return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                await _stop_within(running, STOP_GRACE)
            if running.cancelled() and stop.is_set():
                # aiokafka's consumer lets its own fetch task's cancellation out of stop()
                # when the broker is gone: the stop was asked for, so it is not an error.
                _stop_log().warning("the coordinator stopped without reaching Kafka")
                return
            running.result()  # its error, if it failed
        finally:
            announce.cancel()
            asked.cancel()

    run_until_signal(serve, "coordinator")


#: seconds a replica may take to finish its batches and leave the group after SIGTERM
STOP_GRACE = 5.0


async def _stop_within(running: asyncio.Task[None], grace: float) -> None:
    """Let a clean stop finish; past ``grace`` exit anyway. A stop can wait on Kafka for
    ever (joining a group, committing or leaving with the broker gone), and SIGTERM must
    be honoured in every state. Exiting is safe: what was not committed is replayed by
    the replica that takes the partitions over (crash-only, like a SIGKILL)."""
    import logging
    import os

    done, _ = await asyncio.wait([running], timeout=grace)
    if done:
        return
    _stop_log().error(
        "the coordinator did not stop within %gs (is Kafka answering?); exiting now: "
        "uncommitted input is replayed by the next owner of its partitions",
        grace,
    )
    logging.shutdown()
    os._exit(0)


def _stop_log() -> Any:
    import logging

    return logging.getLogger("sagas.worker")


async def _announce_ready(coordinator: Coordinator, http_api: HttpApi, log_level: str) -> None:
    """Once the replica first serves its sagas, say so in one line, also at the default
    level (warning): where its API is and which partitions it owns."""
    import logging

    ready = logging.getLogger("sagas.worker")
    if logging.getLevelName(log_level.upper()) <= logging.WARNING:
        ready.setLevel(logging.INFO)
    api = http_api.saga_api
    while api.readiness()[0] != 200:
        await asyncio.sleep(0.1)
    partitions = sorted(coordinator.owned)
    ready.info(
        "worker ready: API %s, partitions %s of %d, group %s",
        coordinator.url,
        ",".join(map(str, partitions)) or "none",
        coordinator.kafka.partitions,
        coordinator.settings.app_id,
    )


async def serve_with_api(coordinator: Coordinator, api: HttpApi, stop: asyncio.Event) -> None:
    """The API first (``/healthz`` answers while the replica joins its group), then the
    coordinator until ``stop``; the API closes after the coordinator has stopped."""
    settings = coordinator.settings
    web = await api.serve(settings.web_host, settings.web_port)
    tasks = api.background_tasks()
    try:
        await coordinator.run(stop)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await web.cleanup()
        await api.close()
