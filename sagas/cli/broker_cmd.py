"""`sagas broker`: a Kafka broker in the foreground: embedded Tansu, or a local Apache Kafka."""

from __future__ import annotations

import signal
import sys
from enum import StrEnum
from pathlib import Path
from types import FrameType

import typer

from sagas.cli import app


class Engine(StrEnum):
    embedded = "embedded"
    kafka = "kafka"


@app.command()
def broker(
    engine: Engine = typer.Option(
        Engine.embedded,
        help="embedded: Tansu, in memory, needs only Python. kafka: Apache Kafka (KRaft), "
        "its jars fetched with Maven on first use; needs Java 17+ and Maven.",
    ),
    nodes: int = typer.Option(
        1,
        help="Apache Kafka nodes: 1, or 3 for a KRaft quorum (replication factor 3, "
        "min.insync.replicas=2). --engine kafka only.",
    ),
    port: int | None = typer.Option(None, help="Port on 127.0.0.1 (default: a free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on and advertise."),
    cert: Path | None = typer.Option(None, help="TLS certificate (PEM). --engine embedded."),
    key: Path | None = typer.Option(None, help="TLS private key (PEM). --engine embedded."),
    authentication: bool = typer.Option(
        False, help="Require client authentication. --engine embedded."
    ),
    data_dir: Path | None = typer.Option(
        None,
        help="Keep Apache Kafka's data and logs here (default: a temporary folder, "
        "removed on stop). --engine kafka only.",
    ),
) -> None:
    """Run a Kafka broker until Ctrl-C.

    Point the other commands at it with KAFKA_BOOTSTRAP_SERVERS. The embedded
    broker keeps everything in memory; Apache Kafka keeps it in --data-dir or a
    temporary folder, gone when it stops.
    """

    def terminate(signum: int, frame: FrameType | None) -> None:
        # SIGTERM (docker stop, kill) must stop the broker too, like Ctrl-C does.
        raise KeyboardInterrupt

    if engine is Engine.embedded and (nodes != 1 or data_dir is not None):
        _usage("--nodes and --data-dir need --engine kafka (the embedded broker is one node)")
    if engine is Engine.kafka and (cert or key or authentication):
        _usage("--cert, --key and --authentication are for --engine embedded")
    if nodes not in (1, 3):
        _usage(f"--nodes must be 1 or 3 (a KRaft quorum), got {nodes}")
    previous = signal.signal(signal.SIGTERM, terminate)
    # A shell starts background jobs with SIGINT ignored; this command says
    # "Ctrl-C to stop", so SIGINT stops it wherever it was started from.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if engine is Engine.kafka:
            _run_apache_kafka(nodes=nodes, port=port, host=host, data_dir=data_dir)
        else:
            _run_embedded(port=port, host=host, cert=cert, key=key, auth=authentication)
    except KeyboardInterrupt:
        print("broker stopped", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _run_embedded(
    *, port: int | None, host: str, cert: Path | None, key: Path | None, auth: bool
) -> None:
    from sagas.kafka.embedded_broker import EMBEDDED_CLIENT_ENV, EmbeddedBroker, EmbeddedBrokerError

    embedded = EmbeddedBroker(port=port, host=host, cert=cert, key=key, authentication=auth)
    try:
        with embedded:
            _banner("embedded Tansu, in memory", embedded.bootstrap_servers, EMBEDDED_CLIENT_ENV)
            code = embedded.wait()
            tail = embedded.log_tail()
    except EmbeddedBrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"error: the broker exited by itself with code {code}\n{tail}", err=True)
    raise typer.Exit(1)


def _run_apache_kafka(*, nodes: int, port: int | None, host: str, data_dir: Path | None) -> None:
    from sagas.kafka.apache_kafka import ApacheKafka, ApacheKafkaError

    kafka = ApacheKafka(nodes=nodes, port=port, host=host, work_dir=data_dir)
    try:
        with kafka:
            what = f"Apache Kafka {kafka.version}, KRaft, {nodes} node{'s' * (nodes > 1)}"
            _banner(what, kafka.bootstrap_servers)
            print(f"pids {' '.join(str(p) for p in kafka.pids)}; data in {kafka.work_dir}",
                  flush=True)  # fmt: skip
            node = kafka.wait_any()
            tail = kafka.log_tail(node)
            typer.echo(f"error: Apache Kafka node {node + 1} exited by itself\n{tail}", err=True)
            raise typer.Exit(1)
    except ApacheKafkaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _banner(what: str, address: str, client_env: dict[str, str] | None = None) -> None:
    print(f"Kafka broker ({what}) listening on {address}", flush=True)
    print(f"export KAFKA_BOOTSTRAP_SERVERS={address}", flush=True)
    for name, value in (client_env or {}).items():
        print(f"export {name}={value}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)


def _usage(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
