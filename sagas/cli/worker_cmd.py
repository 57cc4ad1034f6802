"""`sagas worker`: run one coordinator replica."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from sagas.cli import app


@app.command()
def worker(
    definitions: list[Path] = typer.Option(
        ..., "--definitions", "-d", help="YAML/JSON file of saga definitions (repeatable)."
    ),
    web_port: int | None = typer.Option(None, help="HTTP API and /metrics port."),
    create_topics: bool = typer.Option(True, help="Create missing topics before starting."),
    log_level: str | None = typer.Option(None, help="debug, info, warning, error."),
) -> None:
    """Run a coordinator replica for the given saga definitions."""
    from events.kafka_settings import KafkaSettings
    from events.topics import Topics
    from sagas.coordinator import Coordinator
    from sagas.errors import SagaError
    from sagas.loader import DefinitionRegistry, load_definitions
    from sagas.settings import CoordinatorSettings
    from sagas.topic_setup import prepare_topics

    settings = CoordinatorSettings()
    if web_port is not None:
        settings = settings.model_copy(update={"web_port": web_port})
    if log_level is not None:
        settings = settings.model_copy(update={"log_level": log_level})
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        typer.echo(
            "KAFKA_BOOTSTRAP_SERVERS is not set; start a broker (`sagas broker`) and point "
            "KAFKA_BOOTSTRAP_SERVERS at it", err=True,
        )
        raise typer.Exit(2)
    try:
        registry = DefinitionRegistry(d for path in definitions for d in load_definitions(path))
        topics = Topics.from_settings(kafka)
        asyncio.run(prepare_topics(kafka, registry, topics, create=create_topics))
    except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
        if isinstance(exc, SagaError) or exc.__class__.__module__.startswith("events"):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        raise
    coordinator = Coordinator(registry, kafka=kafka, settings=settings, topics=topics)
    run_worker(coordinator.app, settings.log_level)


def run_worker(faust_app: object, log_level: str) -> None:
    """Run a faust app in the foreground until SIGTERM/SIGINT."""
    from faust import Worker

    worker = Worker(faust_app, loglevel=log_level, quiet=True)  # type: ignore[arg-type]
    # faust's terminal spinner lowers the root logger to DEBUG so that it can spin on
    # every record: every aiokafka debug line then gets built (8% of the CPU at load).
    worker.spinner = None
    worker.execute_from_commandline()
