"""`sagas broker`: the embedded Kafka-compatible broker in the foreground."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import typer

from sagas.cli import app


@app.command()
def broker(
    port: int | None = typer.Option(None, help="Port on 127.0.0.1 (default: a free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on and advertise."),
    cert: Path | None = typer.Option(None, help="TLS certificate (PEM) for the listener."),
    key: Path | None = typer.Option(None, help="TLS private key (PEM)."),
    authentication: bool = typer.Option(False, help="Require client authentication."),
) -> None:
    """Run an in-memory Kafka-compatible broker (Tansu) until Ctrl-C.

    Point the other commands at it with KAFKA_BOOTSTRAP_SERVERS. All data is
    in memory and gone when it stops.
    """
    from events.embedded_broker import EmbeddedBroker, EmbeddedBrokerError

    def terminate(signum: int, frame: FrameType | None) -> None:
        # SIGTERM (docker stop, kill) must stop the broker too, like Ctrl-C does.
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    # A shell starts background jobs with SIGINT ignored; this command says
    # "Ctrl-C to stop", so SIGINT stops it wherever it was started from.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    embedded = EmbeddedBroker(
        port=port, host=host, cert=cert, key=key, authentication=authentication
    )
    try:
        with embedded:
            address = embedded.bootstrap_servers
            print(f"Kafka broker (embedded Tansu, in memory) listening on {address}", flush=True)
            print(f"export KAFKA_BOOTSTRAP_SERVERS={address}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            code = embedded.wait()
            tail = embedded.log_tail()
        typer.echo(f"error: the broker exited by itself with code {code}\n{tail}", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        print("broker stopped", file=sys.stderr, flush=True)
    except EmbeddedBrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
