"""`sagas service NAME`: run one reference participant in the foreground."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import NoReturn

import typer

from sagas.cli import app


@app.command()
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
    from events.kafka_settings import KafkaSettings
    from services.config import ServicesConfig
    from services.run import SERVICE_NAMES, participant_for

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if name not in SERVICE_NAMES:
        _fail(f"unknown service {name!r}; choose one of: {', '.join(SERVICE_NAMES)}")
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        _fail(
            "KAFKA_BOOTSTRAP_SERVERS is not set; start a broker (`sagas broker`) and point "
            "KAFKA_BOOTSTRAP_SERVERS at it"
        )
    try:
        settings = ServicesConfig.load(config, mode=mode)
    except ValueError as exc:
        _fail(str(exc))
    participant = participant_for(
        name,
        settings,
        kafka,
        http_port=metrics_port,
        http_host=metrics_host,
        create_topics=create_topics,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await participant.serve(stop)

    log = logging.getLogger("sagas.service")
    log.info("service %s starting (mode %s)", name, settings.mode.value)
    try:
        asyncio.run(main())
    except Exception as exc:  # shown to a person: what stopped it, not a traceback
        if isinstance(exc, OSError) or exc.__class__.__module__.startswith(("events", "aiokafka")):
            _fail(f"service {name} stopped: {exc!r}")
        raise
    log.info("service %s stopped", name)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
