"""`sagas worker`: run one coordinator replica."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sagas.cli import app

if TYPE_CHECKING:
    from sagas.coordinator import Coordinator


@app.command()
def worker(
    definitions: list[Path] = typer.Option(
        ..., "--definitions", "-d", help="YAML/JSON file of saga definitions (repeatable)."
    ),
    web_port: int | None = typer.Option(None, help="HTTP API and /metrics port."),
    create_topics: bool = typer.Option(True, help="Create missing topics before starting."),
    log_level: str | None = typer.Option(None, help="debug, info, warning, error."),
    log_format: str | None = typer.Option(
        None, help="text, or json (one object per line with saga_id and step); SAGAS_LOG_FORMAT."
    ),
) -> None:
    """Run a coordinator replica for the given saga definitions."""
    from events.kafka_settings import KafkaSettings
    from events.topics import Topics
    from sagas.coordinator import Coordinator, changelog_topic
    from sagas.errors import SagaError
    from sagas.loader import DefinitionRegistry, load_definitions
    from sagas.settings import CoordinatorSettings
    from sagas.topic_setup import prepare_topics

    settings = CoordinatorSettings()
    if web_port is not None:
        settings = settings.model_copy(update={"web_port": web_port})
    if log_level is not None:
        settings = settings.model_copy(update={"log_level": log_level})
    if log_format is not None:
        if log_format not in ("text", "json"):
            typer.echo(f"error: --log-format must be text or json, not {log_format!r}", err=True)
            raise typer.Exit(2)
        settings = settings.model_copy(update={"log_format": log_format})
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        typer.echo(
            "KAFKA_BOOTSTRAP_SERVERS is not set; start a broker (`sagas broker`) and point "
            "KAFKA_BOOTSTRAP_SERVERS at it",
            err=True,
        )
        raise typer.Exit(2)
    try:
        registry = DefinitionRegistry(d for path in definitions for d in load_definitions(path))
        topics = Topics.from_settings(kafka)
        changelog = changelog_topic(settings.app_id)
        asyncio.run(
            prepare_topics(kafka, registry, topics, create=create_topics, changelog=changelog)
        )
    except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
        if isinstance(exc, SagaError) or exc.__class__.__module__.startswith("events"):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        raise
    coordinator = Coordinator(registry, kafka=kafka, settings=settings, topics=topics)
    run_coordinator(coordinator, settings.log_level, settings.log_format)


def run_coordinator(coordinator: Coordinator, log_level: str, log_format: str = "text") -> None:
    """Run a coordinator in the foreground until SIGTERM/SIGINT, logging in ``log_format``.

    On the signal it finishes and commits the batches in hand and leaves the group,
    so its partitions move to the other replicas at once.
    """
    from sagas.logs import configure

    configure(log_level, log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await coordinator.run(stop)

    try:
        asyncio.run(main())
    except OSError as exc:  # the port is taken, the broker is unreachable: one line
        typer.echo(f"error: coordinator stopped: {exc}", err=True)
        raise typer.Exit(2) from None
