"""`sagas service NAME`: run one reference participant in the foreground."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from sagas.cli.foreground import configure_logging, fail, kafka_from_environment, serve_until_signal


def service(
    name: str = typer.Argument(..., help="inventory, payment, shipping, order or bank."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="JSON/YAML services config (stock, limits, failures)."
    ),
    mode: str | None = typer.Option(
        None, help="orchestrated (answer commands), choreography (react to events), or both."
    ),
    metrics_port: int | None = typer.Option(
        None, help="Serve /metrics, /health and /invariants on this port."
    ),
    metrics_host: str = typer.Option("127.0.0.1", help="Address for the metrics port."),
    create_topics: bool = typer.Option(True, help="Create missing topics before starting."),
    log_level: str = typer.Option("info", help="debug, info, warning, error."),
) -> None:
    """Run a reference service against KAFKA_BOOTSTRAP_SERVERS until SIGTERM or Ctrl-C."""
    from services.config import ServicesConfig
    from services.run import SERVICE_NAMES, participant_for

    configure_logging(log_level)
    if name not in SERVICE_NAMES:
        fail(f"unknown service {name!r}; choose one of: {', '.join(SERVICE_NAMES)}")
    kafka = kafka_from_environment()
    try:
        settings = ServicesConfig.load(config, mode=mode, metrics_port=metrics_port)
    except ValueError as exc:
        fail(str(exc))
    participant = participant_for(
        name,
        settings,
        kafka,
        http_port=settings.metrics_port,
        http_host=metrics_host,
        create_topics=create_topics,
    )
    log = logging.getLogger("sagas.service")
    log.info("service %s starting (mode %s)", name, settings.mode.value)
    serve_until_signal(participant, f"service {name}")
    log.info("service %s stopped", name)
